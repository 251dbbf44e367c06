// The relay agent: carries queued mail to peer AfterSMTP nodes. One relay channel per peer (QUIC first,
// HTTP/2 as fallback), dialled once however many deliveries wait for it, re-checked against the domain's
// route; the peer's signed receipt is kept with each recipient it took.
import type { Logger } from 'pino';
import type { DidResolver, SignatureCheck } from '../../identity/index.ts';
import type { Store } from '../store/index.ts';
import type { PeerTransport, PeerConnection } from '../transport/index.ts';
import { GatewayError, oneLine, LruMap } from '../core/index.ts';
import type { DeliveryAgent, DeliveryBatch, RecipientOutcome } from '../queue/index.ts';
import { RelayChannel, RelayError, PERMANENT_CODES } from './relay.ts';
import { formatEndpoint, type Route, type Router } from './routing.ts';
import { storedReceipt, type ReceiptFields, type SignedReceipt } from './receipt.ts';

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

export interface RelayAgentOptions {
  storage: Store;
  router: Router;
  transports: PeerTransport[];
  nodeDid: string;
  localDomains: string[];
  maxInFlightPerPeer: number;
  ackTimeoutMs: number;
  dialTimeoutMs: number;
  resolver: DidResolver;
  verify?: SignatureCheck;
  log: Logger;
  /** Told how long each relayed envelope waited for its acknowledgement (metrics). */
  observeRelay?: (outcome: 'ok' | 'error', seconds: number) => void;
}

/** Peers (domains) whose last connection attempt is remembered for status. */
const MAX_PEER_RECORDS = 10_000;

/** A delivery that waited this long for its channel re-reads its recipients' state before sending. */
const CHANNEL_WAIT_RECHECK_MS = 50;

/** How often an open channel is checked against the domain's current route. */
const ROUTE_RECHECK_MS = 1_000;

export class RelayAgent implements DeliveryAgent {
  readonly kind = 'relay' as const;
  private readonly opts: RelayAgentOptions;
  private readonly channels = new Map<string, Promise<RelayChannel>>();
  private readonly channelRoutes = new WeakMap<RelayChannel, { endpoint: string; checkedAt: number }>();
  /** What `aftersmtp peers` shows, by domain: bounded, since the domains tried are named by senders. */
  private readonly peers = new LruMap<string, PeerStatus>(MAX_PEER_RECORDS);

  constructor(opts: RelayAgentOptions) {
    this.opts = opts;
  }

  async deliver(batch: DeliveryBatch): Promise<RecipientOutcome[]> {
    const { domain, envelope, held } = batch;
    let items = batch.items;
    try {
      const waitStart = performance.now();
      const channel = await this.channel(domain);
      if (performance.now() - waitStart > CHANNEL_WAIT_RECHECK_MS) {
        // A dial can take seconds: an operator may have purged or held these recipients meanwhile, and
        // what was taken out of the queue is not sent. (A channel at hand costs no read here.)
        const waiting = new Set(this.opts.storage.outbound.of(items[0]!.messageId)
          .filter((i) => i.state === 'queued' || i.state === 'deferred').map((i) => i.recipient));
        items = items.filter((i) => waiting.has(i.recipient));
        if (items.length === 0) return [];
      }
      const t0 = performance.now();
      const receipt = await channel.send(envelope, held.senderDomain, { senderAddress: held.sender }).catch((err: unknown) => {
        this.opts.observeRelay?.('error', (performance.now() - t0) / 1000);
        throw err;
      });
      this.opts.observeRelay?.('ok', (performance.now() - t0) / 1000);
      const peer = this.peers.get(domain);
      if (peer) Object.assign(peer, { lastSeenMs: Date.now(), rttMs: channel.conn.rtt?.() ?? performance.now() - t0, lastError: '' });
      // The peer holds it durably now. Should the queue's update be lost (crash), the item is sent again
      // and the peer answers the re-send with its original receipt, storing nothing twice.
      // Kept as the peer's signed promise (docs/PROTOCOL.md §4.1): byte fields in hex, checkable as stored.
      const stamp = JSON.stringify(storedReceipt(receipt as ReceiptFields & Partial<SignedReceipt>));
      return items.map((i) => ({ recipient: i.recipient, state: 'delivered', receipt: stamp }));
    } catch (err) {
      const code = (err as GatewayError).code ?? 'INTERNAL';
      const message = (err as Error).message;
      const peer = this.peers.get(domain);
      if (peer) peer.lastError = oneLine(message);
      const permanent = err instanceof RelayError ? err.permanent : PERMANENT_CODES.has(code);
      const state = permanent || code === 'UNKNOWN_RECIPIENT' ? 'failed' : 'deferred';
      this.opts.log.info({ domain, code, err: message }, state === 'failed' ? 'relay failed permanently' : 'relay deferred');
      return items.map((i) => ({ recipient: i.recipient, state, code, error: message }));
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

  /** Closes every channel: envelopes waiting for an acknowledgement fail fast. */
  async interrupt(): Promise<void> {
    for (const c of this.channels.values()) await c.then((ch) => ch.close(), () => {});
  }

  async stop(): Promise<void> {
    for (const c of this.channels.values()) await c.then((ch) => ch.conn.close(), () => {});
    this.channels.clear();
  }
}
