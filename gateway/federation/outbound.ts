// Outbound federation: per-recipient queue state in SQLite (survives restarts), one relay channel per
// peer (QUIC first, HTTP/2 as fallback), retries with exponential backoff, and a delivery failure
// notice in the sender's mailbox on a permanent error or expiry.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import {
  decodeEnvelope,
  signMessage,
  sealEnvelope,
  type DidResolver,
  type Envelope,
} from '../../identity/index.ts';
import type { Store, OutboundItem, HeldEnvelope } from '../store/index.ts';
import type { PeerTransport, PeerConnection } from '../transport/index.ts';
import { GatewayError, oneLine, LruMap } from '../core/index.ts';
import { acceptEnvelope, type AcceptDeps } from '../accept/index.ts';
import { RelayChannel, RelayError, PERMANENT_CODES, peerText } from './relay.ts';
import { formatEndpoint, type Route, type Router } from './routing.ts';
import { storedReceipt, type ReceiptFields, type SignedReceipt } from './receipt.ts';

export interface RetryPolicy { initialMs: number; maxMs: number }

export interface PeerStatus {
  domain: string;
  did: string;
  endpoint: string;
  transport: 'quic' | 'http2' | '';
  rttMs: number;
  lastError: string;
  lastSeenMs: number;
  source: string;
}

export interface OutboundOptions extends AcceptDeps {
  router: Router;
  transports: PeerTransport[];
  nodeDid: string;
  nodeKeys: { signingKeyId: string; signingPrivateKey: Uint8Array };
  localDomains: string[];
  retry: RetryPolicy;
  maxInFlightPerPeer: number;
  /** Even with nothing due, the queue is re-read this often (items whose delivery ended abnormally). */
  queueScanMs: number;
  ackTimeoutMs: number;
  dialTimeoutMs: number;
  log: Logger;
  resolver: DidResolver;
  /** Told how long each relayed envelope waited for its acknowledgement (metrics). */
  observeRelay?: (outcome: 'ok' | 'error', seconds: number) => void;
}

/**
 * What a failure notice says for each code that ends a delivery (docs/PROTOCOL.md §4.1 item 4, and
 * expiry). Fixed text: the notice is signed by this node as postmaster, so it does not repeat a peer's
 * words (those stay in `queue list`, one line each).
 */
const NOTICE_REASONS: Record<string, string> = {
  EXPIRED: 'the message expired before the recipient domain accepted it',
  UNKNOWN_RECIPIENT: "the recipient's node has no such mailbox",
  INVALID_ARGUMENT: "the recipient's node refused the message as malformed",
  TOO_LARGE: "the message is larger than the recipient's node accepts",
  ENCODING: "the recipient's node could not decode the message",
  SIGNATURE: "the recipient's node could not verify the message's signature",
  KEY_NOT_IN_DID: "the signing key is not in the sender's DID document",
  HASH_MISMATCH: "the message hash did not match the message",
  TIME_WINDOW: "the recipient's node refused the message's time window (clock skew or lifetime)",
  RECIPIENTS_DIGEST: "the recipient key digest did not match the recipients",
  PEER_REJECTED: "the recipient's node and this node did not accept each other's identity or domain",
  REPLAY: "the recipient's node already holds this message",
  LIMIT: "the message exceeds a limit of the recipient's node",
};

/** Peers (domains) whose last connection attempt is remembered for status. */
const MAX_PEER_RECORDS = 10_000;

/** A delivery that waited this long for its channel re-reads its recipients' state before sending. */
const CHANNEL_WAIT_RECHECK_MS = 50;

/** How often an open channel is checked against the domain's current route. */
const ROUTE_RECHECK_MS = 1_000;

export class OutboundDelivery {
  private readonly opts: OutboundOptions;
  private readonly channels = new Map<string, Promise<RelayChannel>>();
  private readonly channelRoutes = new WeakMap<RelayChannel, { endpoint: string; checkedAt: number }>();
  /** What `aftersmtp peers` shows, by domain: bounded, since the domains tried are named by senders. */
  private readonly peers = new LruMap<string, PeerStatus>(MAX_PEER_RECORDS);
  private readonly sending = new Set<string>();
  private readonly deliveries = new Set<Promise<void>>();
  /** Items just queued by the store (handed over by its onOutbound event), not yet dispatched. */
  private fresh: OutboundItem[] = [];
  /** The envelopes of fresh items, as the store's event handed them over (spares reading them back). */
  private freshEnvelopes = new Map<string, HeldEnvelope>();
  /** The queue must be read from the store (start, kick, due retries, items left for lack of room). */
  private needScan = true;
  /** Due items were left in the store for lack of room: read them once room frees up. */
  private backlog = false;
  /** When the next deferred item falls due may have changed (a scan, a deferral): ask the store again. */
  private dueChanged = true;
  /** Deliveries (message x domain) this process works on at once; beyond that, items wait in the store. */
  private readonly capacity: number;
  private timer?: NodeJS.Timeout;
  private running = false;
  private wake?: () => void;
  private loop?: Promise<void>;

  constructor(opts: OutboundOptions) {
    this.opts = opts;
    this.capacity = Math.max(256, 4 * opts.maxInFlightPerPeer);
  }

  start(): void {
    this.running = true;
    this.stopListening = this.opts.storage.events.onOutbound(this.onOutbound);
    this.loop = this.run();
  }

  private stopListening?: () => void;
  private readonly onOutbound = (items?: OutboundItem[], held?: HeldEnvelope) => {
    if (items?.length) {
      this.fresh.push(...items);
      if (held) this.freshEnvelopes.set(hex(items[0]!.messageId), held);
    } else {
      this.needScan = true;
    }
    this.wake?.();
  };

  /** Wakes the loop now and re-reads the queue (after `queue retry`, a new route, tests). */
  kick(): void {
    this.needScan = true;
    this.wake?.();
  }

  /**
   * The queue lives in the store; this loop hands due items to deliveries. New items arrive with the
   * store's event (no query per message); the store is read at start, on kick, when a deferred item
   * falls due, when room frees up after items were left there, and every few seconds as a safety net.
   * At most `capacity` deliveries run at once; each peer's relay window bounds what is on the wire.
   */
  private async run(): Promise<void> {
    let safetyScanAt = 0;
    let dueAt: number | undefined;
    while (this.running) {
      const now = Date.now();
      if (now >= safetyScanAt || (dueAt !== undefined && now >= dueAt)) this.needScan = true;
      if (this.backlog && this.deliveries.size <= this.capacity / 2) this.needScan = true;
      if (this.needScan) {
        this.needScan = false;
        this.dueChanged = true;
        this.backlog = false;
        this.fresh = []; // committed before their event: the scan sees them
        this.freshEnvelopes.clear();
        safetyScanAt = now + this.opts.queueScanMs;
        const room = this.capacity - this.deliveries.size;
        if (room > 0) {
          const limit = room + this.sending.size;
          const rows = this.opts.storage.outbound.due(now, limit);
          const due = rows.filter((i) => !this.sending.has(key(i)));
          // A full page means more may be due behind it: read again as soon as room frees up, not at
          // the next safety scan (that wait stalled a backlog for seconds).
          if (this.dispatch(due) < due.length || rows.length >= limit) this.backlog = true;
        } else {
          this.backlog = true;
        }
      }
      if (this.fresh.length) {
        const fresh = this.fresh;
        this.fresh = [];
        if (this.dispatch(fresh.filter((i) => !this.sending.has(key(i))), this.freshEnvelopes) < fresh.length) this.backlog = true;
        this.freshEnvelopes.clear();
      }
      // Most turns only hand fresh items over: the next due time changes with scans and deferrals only.
      if (this.dueChanged || (dueAt !== undefined && dueAt <= Date.now())) {
        this.dueChanged = false;
        dueAt = this.opts.storage.outbound.nextDueAfter(Date.now());
      }
      const wakeAt = Math.min(safetyScanAt, dueAt ?? Infinity);
      const wait = Math.max(10, Math.min(60_000, wakeAt - Date.now()));
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, wait);
      });
      clearTimeout(this.timer);
      this.wake = undefined;
    }
  }

  /**
   * Starts one delivery per (message, domain) while there is room: the peer stores the envelope for
   * all its recipients at once. Returns how many items were taken; the rest stay queued in the store.
   */
  private dispatch(items: OutboundItem[], envelopes?: Map<string, HeldEnvelope>): number {
    const groups = new Map<string, OutboundItem[]>();
    for (const item of items) {
      const k = `${hex(item.messageId)}|${item.domain}`;
      const list = groups.get(k);
      if (list) list.push(item);
      else groups.set(k, [item]);
    }
    let taken = 0;
    for (const group of groups.values()) {
      if (this.deliveries.size >= this.capacity) break;
      taken += group.length;
      for (const i of group) this.sending.add(key(i));
      const delivery: Promise<void> = this.deliver(group, envelopes?.get(hex(group[0]!.messageId)))
        .catch((err: Error) => this.opts.log.error({ err: err.message }, 'outbound delivery failed'))
        .finally(() => {
          for (const i of group) this.sending.delete(key(i));
          this.deliveries.delete(delivery);
          this.wake?.();
        });
      this.deliveries.add(delivery);
    }
    return taken;
  }

  private async deliver(items: OutboundItem[], held?: HeldEnvelope): Promise<void> {
    const first = items[0]!;
    const stored = held ?? this.opts.storage.outbound.envelope(first.messageId);
    if (!stored) {
      for (const item of items) await this.opts.storage.outbound.purge(item.messageId, item.recipient);
      return;
    }
    const envelope = decodeEnvelope(stored.envelope);
    if (Date.now() > first.expiresMs) {
      await this.fail(items, stored.sender, envelope, 'EXPIRED', 'the message expired before the recipient domain accepted it');
      return;
    }
    try {
      const waitStart = performance.now();
      const channel = await this.channel(first.domain);
      if (performance.now() - waitStart > CHANNEL_WAIT_RECHECK_MS) {
        // A dial can take seconds: an operator may have purged or held these recipients meanwhile, and
        // what was taken out of the queue is not sent. (A channel at hand costs no read here.)
        const waiting = new Set(this.opts.storage.outbound.of(first.messageId)
          .filter((i) => i.state === 'queued' || i.state === 'deferred').map((i) => i.recipient));
        items = items.filter((i) => waiting.has(i.recipient));
        if (items.length === 0) return;
      }
      const t0 = performance.now();
      const receipt = await channel.send(envelope, stored.senderDomain, { senderAddress: stored.sender }).catch((err: unknown) => {
        this.opts.observeRelay?.('error', (performance.now() - t0) / 1000);
        throw err;
      });
      this.opts.observeRelay?.('ok', (performance.now() - t0) / 1000);
      const peer = this.peers.get(first.domain);
      if (peer) Object.assign(peer, { lastSeenMs: Date.now(), rttMs: channel.conn.rtt?.() ?? performance.now() - t0, lastError: '' });
      // The peer holds it durably now. Should this update be lost (crash), the item is sent again and
      // the peer answers the re-send with its original receipt, storing nothing twice.
      // Kept as the peer's signed promise (docs/PROTOCOL.md §4.1): byte fields in hex, checkable as stored.
      const stamp = JSON.stringify(storedReceipt(receipt as ReceiptFields & Partial<SignedReceipt>));
      await this.opts.storage.outbound.updateMany(items.map((item) => ({ ...item, state: 'delivered' as const, attempts: item.attempts + 1, lastError: '', receipt: stamp })));
      this.opts.log.info({ domain: first.domain, recipients: items.length }, 'relayed');
    } catch (err) {
      const code = (err as GatewayError).code ?? 'INTERNAL';
      const message = (err as Error).message;
      const peer = this.peers.get(first.domain);
      if (peer) peer.lastError = oneLine(message);
      const permanent = err instanceof RelayError ? err.permanent : PERMANENT_CODES.has(code);
      if (permanent || code === 'UNKNOWN_RECIPIENT') {
        await this.fail(items, stored.sender, envelope, code, message);
        return;
      }
      await this.opts.storage.outbound.updateMany(items.map((item) => {
        const attempts = item.attempts + 1;
        const delay = Math.min(this.opts.retry.maxMs, this.opts.retry.initialMs * 2 ** (attempts - 1));
        return { ...item, state: 'deferred' as const, attempts, nextAttemptMs: Date.now() + delay, lastError: oneLine(`${code}: ${message}`) };
      }));
      this.dueChanged = true;
      this.opts.log.info({ domain: first.domain, code, err: message }, 'relay deferred');
    }
  }

  /** The relay channel to a domain's node (for other requests on the same authenticated connection). */
  channelFor(domain: string): Promise<RelayChannel> {
    return this.channel(domain);
  }

  /** The relay channel to a domain's node, connecting (QUIC, then HTTP/2) when there is none. */
  private channel(domain: string): Promise<RelayChannel> {
    // Many deliveries ask at once. Each forgets only the channel it saw fail: otherwise the second of
    // them would drop the replacement the first had just begun, and every waiter would dial its own
    // connection (a burst of them, past the peer's connection budget).
    const forget = (channel: Promise<RelayChannel>) => { if (this.channels.get(domain) === channel) this.channels.delete(domain); };
    const existing = this.channels.get(domain);
    if (existing) {
      return existing.then(async (c) => {
        if (c.usable && await this.stillRouted(domain, c)) return c;
        forget(existing);
        return this.channel(domain);
      }, () => {
        forget(existing);
        return this.channel(domain);
      });
    }
    const created = this.connect(domain);
    this.channels.set(domain, created);
    created.catch(() => forget(created));
    return created;
  }

  /**
   * Whether an open channel still matches the domain's route (checked at most once a second): an
   * operator who changes a route (`aftersmtp route add`) expects the next mail to take it, not the
   * connection that happened to be open. A lookup that fails keeps the working channel.
   */
  private async stillRouted(domain: string, channel: RelayChannel): Promise<boolean> {
    const info = this.channelRoutes.get(channel);
    if (!info || Date.now() - info.checkedAt < ROUTE_RECHECK_MS) return true;
    info.checkedAt = Date.now();
    let route: Route;
    try {
      route = await this.opts.router.route(domain);
    } catch {
      return true;
    }
    if (route.did === channel.peerDid && route.endpoints.some((e) => formatEndpoint(e) === info.endpoint)) return true;
    this.opts.log.info({ domain, was: info.endpoint }, 'route changed; reconnecting');
    channel.close(); // what is in flight on it is retried on the new channel; the peer stores nothing twice
    return false;
  }

  private async connect(domain: string): Promise<RelayChannel> {
    const route = await this.opts.router.route(domain);
    const errors: string[] = [];
    for (const endpoint of route.endpoints) {
      const transport = this.opts.transports.find((t) => t.kind === endpoint.transport);
      if (!transport) continue;
      let conn: PeerConnection | undefined;
      try {
        conn = await transport.dial({ host: endpoint.host, port: endpoint.port }, { timeoutMs: this.opts.dialTimeoutMs });
        const channel = await RelayChannel.open(conn, {
          peerDid: route.did,
          nodeDid: this.opts.nodeDid,
          domains: this.opts.localDomains,
          maxInFlight: this.opts.maxInFlightPerPeer,
          resolver: this.opts.resolver,
          ackTimeoutMs: this.opts.ackTimeoutMs,
          verify: this.opts.verify,
        });
        this.recordPeer(route, formatEndpoint(endpoint), endpoint.transport, '');
        this.channelRoutes.set(channel, { endpoint: formatEndpoint(endpoint), checkedAt: Date.now() });
        return channel;
      } catch (err) {
        await conn?.close().catch(() => {});
        errors.push(`${formatEndpoint(endpoint)}: ${(err as Error).message}`);
        this.recordPeer(route, formatEndpoint(endpoint), '', (err as Error).message);
        if ((err as GatewayError).code === 'PEER_REJECTED') throw err;
      }
    }
    throw new GatewayError('PEER_UNAVAILABLE', `cannot reach ${domain}'s node: ${errors.join('; ') || 'no usable endpoint'}`);
  }

  private recordPeer(route: Route, endpoint: string, transport: PeerStatus['transport'], lastError: string): void {
    const prev = this.peers.peek(route.domain);
    this.peers.set(route.domain, {
      domain: route.domain,
      did: route.did,
      endpoint,
      transport,
      rttMs: prev?.rttMs ?? 0,
      lastError,
      lastSeenMs: transport ? Date.now() : prev?.lastSeenMs ?? 0,
      source: route.source,
    });
  }

  peerStatus(): PeerStatus[] {
    return [...this.peers.values()];
  }

  /** Marks items failed and puts one delivery failure notice in the sender's mailbox. */
  private async fail(items: OutboundItem[], sender: string, envelope: Envelope, code: string, reason: string): Promise<void> {
    await this.opts.storage.outbound.updateMany(items.map((item) => ({ ...item, state: 'failed' as const, attempts: item.attempts + 1, lastError: oneLine(`${code}: ${reason}`) })));
    this.opts.log.warn({ code, recipients: items.length }, 'relay failed permanently');
    if (!sender) return;
    await this.notify(sender, envelope, items.map((i) => i.recipient), code, reason).catch((err: Error) => {
      this.opts.log.error({ err: err.message }, 'delivery failure notice not stored');
    });
  }

  /**
   * The notice is an AfterSMTP message from the node DID, sealed to the sender's key, in the shape of
   * an RFC 3464 delivery status notification so mail clients show it as a bounce.
   */
  private async notify(sender: string, original: Envelope, recipients: string[], code: string, reason: string): Promise<void> {
    const mailbox = this.opts.storage.mailboxes.byAddress(sender);
    if (!mailbox) return;
    const messageId = new Uint8Array(randomBytes(16));
    const now = Date.now();
    const domain = this.opts.localDomains[0]!;
    const boundary = `dsn-${Buffer.from(messageId).toString('hex')}`;
    const body = [
      `From: Mail Delivery System <postmaster@${domain}>`,
      `To: <${sender}>`,
      'Subject: Delivery Status Notification (Failure)',
      `Date: ${new Date(now).toUTCString()}`,
      `Message-ID: <${Buffer.from(messageId).toString('hex')}@${domain}>`,
      'MIME-Version: 1.0',
      `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
      '',
      `--${boundary}`,
      'Content-Type: text/plain; charset=utf-8',
      '',
      `Your message ${Buffer.from(original.messageId).toString('hex')} could not be delivered to ${recipients.join(', ')}.`,
      `Reason: ${NOTICE_REASONS[code] ?? peerText(reason)}`,
      '',
      `--${boundary}`,
      'Content-Type: message/delivery-status',
      '',
      `Reporting-MTA: dns; ${domain}`,
      `Arrival-Date: ${new Date(original.createdMs).toUTCString()}`,
      '',
      ...recipients.flatMap((r) => [`Final-Recipient: rfc822; ${r}`, 'Action: failed', `Status: ${code === 'EXPIRED' ? '4.4.7' : '5.0.0'}`, `Diagnostic-Code: x-aftersmtp; ${oneLine(code)}`, '']),
      `--${boundary}--`,
      '',
    ].join('\r\n');
    const signed = signMessage({
      header: { messageId, from: { did: this.opts.nodeDid, address: `postmaster@${domain}` }, to: [{ did: mailbox.did, address: sender }], createdMs: now, expiresMs: now + this.opts.config.limits.maxLifetimeMs, contentType: 'message/rfc822' },
      body: new TextEncoder().encode(body),
      keyId: this.opts.nodeKeys.signingKeyId,
      privateKey: this.opts.nodeKeys.signingPrivateKey,
    });
    const envelope = sealEnvelope({
      signedMessage: signed.signedMessage,
      messageId,
      messageHash: signed.messageHash,
      senderDid: this.opts.nodeDid,
      senderKeyId: this.opts.nodeKeys.signingKeyId,
      senderPrivateKey: this.opts.nodeKeys.signingPrivateKey,
      recipientAddresses: [sender],
      recipients: [{ keyId: mailbox.agreementKeyId, publicKey: mailbox.agreementPublicKey }],
      createdMs: now,
      expiresMs: now + this.opts.config.limits.maxLifetimeMs,
    });
    await acceptEnvelope(this.opts, envelope, { senderAddress: `postmaster@${domain}`, senderDomain: domain, fromPeer: false });
  }

  async stop(): Promise<void> {
    this.running = false;
    this.stopListening?.();
    this.wake?.();
    await this.loop;
    for (const c of this.channels.values()) await c.then((ch) => ch.close(), () => {});
    // Pending sends fail fast once their channel is closed; their items stay queued for next start.
    await Promise.allSettled([...this.deliveries]);
    for (const c of this.channels.values()) await c.then((ch) => ch.conn.close(), () => {});
    this.channels.clear();
  }
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

function key(i: OutboundItem): string {
  return `${hex(i.messageId)}|${i.recipient}`;
}
