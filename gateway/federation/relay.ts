// The Relay protocol between nodes (docs/PROTOCOL.md "Relay"): long-lived streams per peer (a sender
// opens RELAY_LANES of them), "/aftersmtp.v1.Relay/Stream", RelayFrame messages in gRPC framing. Both ends open with a hello
// naming their DID; the transport already authenticated the peer's Ed25519 key, and each end checks
// that key is in the DID's document. Envelopes flow one way, acks with the receiver's log receipt
// the other; the receiver's window (max_in_flight) bounds what is unacknowledged, so a slow receiver
// slows the sender instead of growing its memory.
import type { Logger } from 'pino';
import { loadProto, type Receipt } from '../../proto/index.ts';
import { bytesEqual, verifySignature, type DidResolver, type Envelope, type SignatureCheck } from '../../identity/index.ts';
import type { MessageStream, PeerConnection } from '../transport/index.ts';
import { envelopeFromWire, envelopeToWire, GatewayError, oneLine, peerErrorCode, type GatewayErrorCode } from '../core/index.ts';
import { acceptEnvelope, domainOf, type AcceptDeps } from '../accept/index.ts';
import type { PeerBudget } from './peer-budget.ts';
import { ReceiptCheckCache, verifyReceipt, type ReceiptBatcher, type ReceiptFields, type SignedReceipt } from './receipt.ts';

export const RELAY_METHOD = '/aftersmtp.v1.Relay/Stream';
/** Mailbox lookup between nodes: which DID holds an address (the answering node is authoritative). */
export const RESOLVE_METHOD = '/aftersmtp.v1.Identity/Resolve';

function resolveCodec() {
  const method = (loadProto().packageDefinition['aftersmtp.v1.Identity'] as unknown as Record<string, {
    requestSerialize(v: unknown): Buffer; requestDeserialize(b: Buffer): unknown; responseSerialize(v: unknown): Buffer; responseDeserialize(b: Buffer): unknown;
  }>).Resolve!;
  return method;
}

/** Asks a peer node which DID holds `address` (one request, one reply, on its own stream). */
export async function resolveAtPeer(conn: PeerConnection, address: string, signal?: AbortSignal): Promise<{ did: string; documentJson: string }> {
  const codec = resolveCodec();
  const stream = await conn.openStream(RESOLVE_METHOD, { signal });
  await stream.send(codec.requestSerialize({ address }));
  await stream.end();
  for await (const message of stream) {
    const reply = codec.responseDeserialize(Buffer.from(message)) as { did: string; documentJson: string; error?: string };
    if (!reply.did) throw new GatewayError('UNKNOWN_RECIPIENT', `the node for ${address} has no such mailbox`);
    return reply;
  }
  throw new GatewayError('UNKNOWN_RECIPIENT', `the node for ${address} has no such mailbox`);
}

/** Answers one peer lookup; an unknown address gets an empty reply (no error detail to enumerate). */
export async function serveResolve(stream: MessageStream, lookup: (address: string) => { did: string; documentJson: string } | undefined): Promise<void> {
  const codec = resolveCodec();
  try {
    for await (const message of stream) {
      const request = codec.requestDeserialize(Buffer.from(message)) as { address: string };
      const found = lookup(request.address);
      await stream.send(codec.responseSerialize(found ?? { did: '', documentJson: '' }));
      break;
    }
    await stream.end();
  } catch (err) {
    stream.abort(err as Error);
  }
}
const HELLO_TIMEOUT_MS = 10_000;

export interface RelayHello { did: string; domains: string[]; maxInFlight: number; batchedReceipts?: boolean }
export interface RelayAckFrame { frameId: number; receipt?: Receipt | null; error?: { code: string; status: number; message: string } | null }
export interface RelayFrameIn {
  frameId: number;
  senderDomain: string;
  senderAddress: string;
  kind?: 'envelope' | 'ack' | 'hello';
  envelope?: import('../../proto/index.ts').Envelope__Output | null;
  ack?: RelayAckFrame | null;
  hello?: RelayHello | null;
}

function codec() {
  const method = (loadProto().packageDefinition['aftersmtp.v1.Relay'] as unknown as Record<string, { requestSerialize(v: unknown): Buffer; requestDeserialize(b: Buffer): unknown }>).Stream!;
  return {
    encode: (frame: unknown): Uint8Array => method.requestSerialize(frame),
    decode: (bytes: Uint8Array): RelayFrameIn => method.requestDeserialize(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as RelayFrameIn,
  };
}

/** Checks that the transport-authenticated key is one of the DID's authentication keys. */
async function checkPeerKey(resolver: DidResolver, did: string, remotePublicKey: Uint8Array): Promise<void> {
  const keys = await resolver.resolveKeys(did).catch((err: Error) => {
    throw new GatewayError('PEER_REJECTED', `cannot resolve the peer's DID ${did}: ${err.message}`);
  });
  const listed = [...keys.authentication.values()].some((k) => bytesEqual(k, remotePublicKey));
  if (!listed) throw new GatewayError('PEER_REJECTED', `the peer's transport key is not in ${did}'s DID document`);
}

async function readHello(stream: MessageStream, decode: (b: Uint8Array) => RelayFrameIn, iterator: AsyncIterator<Uint8Array>): Promise<RelayHello> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new GatewayError('PEER_REJECTED', 'no relay hello within 10 s')), HELLO_TIMEOUT_MS);
  });
  try {
    const first = await Promise.race([iterator.next(), timeout]);
    if (first.done) throw new GatewayError('PEER_REJECTED', 'the peer closed the relay stream before its hello');
    const frame = decode(first.value);
    if (frame.kind !== 'hello' || !frame.hello?.did) throw new GatewayError('PEER_REJECTED', 'the first relay frame must be a hello');
    return frame.hello;
  } catch (err) {
    stream.abort(err as Error);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

export interface RelayServerDeps extends AcceptDeps {
  nodeDid: string;
  localDomains: string[];
  maxInFlight: number;
  /** The peer's share over all its streams and connections (federation.peerBudget). */
  budget: PeerBudget;
  log: Logger;
  /** Whether `domain` is served by the node `peerDid` (static route, did:web host, or DNS discovery). */
  peerServesDomain: (peerDid: string, domain: string) => Promise<boolean>;
  /** Signs every receipt this node gives a peer (with its Ed25519 signing key), batched for peers that accept it. */
  receipts: ReceiptBatcher;
  onEvent?: (event: { peerDid: string; accepted?: boolean; code?: string }) => void;
}

/** Serves one inbound relay stream until the peer ends it. Never throws; logs and counts refusals. */
export async function serveRelayStream(conn: PeerConnection, stream: MessageStream, deps: RelayServerDeps): Promise<void> {
  const { encode, decode } = codec();
  const iterator = stream[Symbol.asyncIterator]();
  let hello: RelayHello;
  try {
    hello = await readHello(stream, decode, iterator);
    await checkPeerKey(deps.resolver, hello.did, conn.remotePublicKey);
    stream.liftFirstMessageLimit(); // the peer is who its hello says: envelopes of any allowed size from now on
  } catch (err) {
    deps.log.warn({ peer: conn.remoteAddress, err: (err as Error).message }, 'relay peer refused');
    deps.onEvent?.({ peerDid: '', accepted: false, code: (err as GatewayError).code ?? 'PEER_REJECTED' });
    stream.abort(err as Error);
    return;
  }
  const log = deps.log.child({ peer: hello.did.slice(-16), transport: conn.transport });
  const inFlight = new Set<Promise<void>>();
  // A read waiting for the peer's budget gives up when the connection goes.
  const ended = new AbortController();
  void conn.closed.then(() => ended.abort());
  try {
    await stream.send(encode({ frameId: 0, hello: { did: deps.nodeDid, domains: deps.localDomains, maxInFlight: deps.maxInFlight } }));
    for (;;) {
      const next = await iterator.next();
      if (next.done) break;
      // The peer's share over all its streams: beyond it this stream is not read until work finishes.
      const bytes = next.value.length;
      await deps.budget.acquire(bytes, ended.signal);
      let frame: RelayFrameIn;
      try {
        frame = decode(next.value);
      } catch (err) {
        deps.budget.release(bytes);
        throw err;
      }
      if (frame.kind !== 'envelope') {
        deps.budget.release(bytes);
        continue;
      }
      const work = handleEnvelope(frame, hello, deps, log).then((ack) => stream.send(encode({ frameId: frame.frameId, ack })));
      const tracked = work.catch((err: Error) => log.warn({ err: err.message }, 'relay ack not sent'))
        .finally(() => { deps.budget.release(bytes); inFlight.delete(tracked); });
      inFlight.add(tracked);
      // The sender respects our window; a peer that exceeds it gets backpressure from us.
      if (inFlight.size >= deps.maxInFlight) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    await stream.end();
  } catch (err) {
    log.info({ err: (err as Error).message }, 'relay stream ended abnormally');
    stream.abort(err as Error);
  }
}

async function handleEnvelope(frame: RelayFrameIn, hello: RelayHello, deps: RelayServerDeps, log: Logger): Promise<RelayAckFrame> {
  try {
    const envelope = envelopeFromWire(frame.envelope);
    const senderDomain = frame.senderDomain.toLowerCase();
    if (!senderDomain || !(await deps.peerServesDomain(hello.did, senderDomain))) {
      throw new GatewayError('PEER_REJECTED', `the envelope's sender domain "${senderDomain}" is not served by the peer ${hello.did}`);
    }
    const webHost = /^did:web:([^:]+)/.exec(envelope.senderDid)?.[1];
    if (webHost && decodeURIComponent(webHost).toLowerCase().split(':')[0] !== senderDomain) {
      throw new GatewayError('PEER_REJECTED', `sender ${envelope.senderDid} is not in the domain ${senderDomain}`);
    }
    // The peer vouches for the sender's full address only within the domain it was checked to serve.
    const senderAddress = frame.senderAddress.toLowerCase();
    if (senderAddress && domainOf(senderAddress) !== senderDomain) {
      throw new GatewayError('PEER_REJECTED', `the envelope's sender address "${senderAddress}" is not in its sender domain ${senderDomain}`);
    }
    const accepted = await acceptEnvelope(deps, envelope, { senderAddress, senderDomain, fromPeer: true });
    deps.onEvent?.({ peerDid: hello.did, accepted: true });
    const receipt = accepted.receipt as Receipt & ReceiptFields;
    return { frameId: frame.frameId, receipt: hello.batchedReceipts ? await deps.receipts.sign(receipt) : deps.receipts.signAlone(receipt) };
  } catch (err) {
    const code = (err as GatewayError).code ?? 'INTERNAL';
    log.info({ code, err: (err as Error).message }, 'relayed envelope refused');
    deps.onEvent?.({ peerDid: hello.did, accepted: false, code });
    return { frameId: frame.frameId, error: { code, status: 0, message: code === 'INTERNAL' ? 'internal error' : (err as Error).message } };
  }
}

/**
 * The most of a peer's error message this node keeps (queue, peer status, logs). Room for what a node
 * says when its rules refuse a message: a rule name, two addresses (up to 254 characters each) and the
 * key id the sender must seal to, which a shorter cut loses.
 */
export const PEER_TEXT_MAX = 1000;

/** A peer's free text as this node keeps it: one line, at most PEER_TEXT_MAX characters. */
export function peerText(text: string): string {
  const chars = [...oneLine(text)];
  return chars.length > PEER_TEXT_MAX ? `${chars.slice(0, PEER_TEXT_MAX - 1).join('')}…` : chars.join('');
}

/**
 * Codes after which sending the same envelope again cannot succeed. PERMISSION_DENIED is a peer's policy
 * refusing the message (a compliance rule's reject): it refuses every re-send alike, as a rule refusing
 * mail leaving over SMTP fails it at once.
 */
export const PERMANENT_CODES = new Set(['UNKNOWN_RECIPIENT', 'INVALID_ARGUMENT', 'TOO_LARGE', 'ENCODING', 'SIGNATURE', 'KEY_NOT_IN_DID', 'HASH_MISMATCH', 'TIME_WINDOW', 'RECIPIENTS_DIGEST', 'PEER_REJECTED', 'REPLAY', 'LIMIT', 'PERMISSION_DENIED']);

export class RelayError extends GatewayError {
  readonly permanent: boolean;
  constructor(code: GatewayErrorCode, message: string) {
    super(code, message);
    this.permanent = PERMANENT_CODES.has(code);
  }
}

/**
 * Relay streams a channel opens to its peer. The peer's window (its hello's max_in_flight) still bounds
 * what is unacknowledged over all of them; several streams let the receiver read them in parallel (the
 * reads of one QUIC stream come one turn of the event loop at a time, which caps one stream on a busy
 * node; DECISIONS 32).
 */
export const RELAY_LANES = 4;

interface Lane { stream: MessageStream; inFlight: number }

/** The sending side of the relay to one peer: RELAY_LANES streams on one authenticated connection. */
export class RelayChannel {
  readonly peerDid: string;
  readonly conn: PeerConnection;
  private readonly lanes: Lane[];
  private readonly encode: (f: unknown) => Uint8Array;
  private readonly pending = new Map<number, { resolve: (r: Receipt) => void; reject: (e: Error) => void; lane: Lane }>();
  private nextFrame = 1;
  private window = 1;
  private waiters: (() => void)[] = [];
  private failure?: Error;
  private readonly ackTimeoutMs: number;
  private readonly resolver: DidResolver;
  private readonly verify: SignatureCheck;
  /** A batch of receipts shares one signature: it is verified once. */
  private readonly receiptChecks = new ReceiptCheckCache();
  readonly closed: Promise<void>;

  private constructor(peerDid: string, conn: PeerConnection, opened: { stream: MessageStream; iterator: AsyncIterator<Uint8Array> }[], peerHello: RelayHello, decode: (b: Uint8Array) => RelayFrameIn, ackTimeoutMs: number, resolver: DidResolver, verify: SignatureCheck = verifySignature) {
    this.peerDid = peerDid;
    this.resolver = resolver;
    this.verify = verify;
    this.ackTimeoutMs = ackTimeoutMs;
    this.conn = conn;
    this.lanes = opened.map((o) => ({ stream: o.stream, inFlight: 0 }));
    this.encode = codec().encode;
    this.window = Math.max(1, Math.min(peerHello.maxInFlight || 1, 1024));
    this.closed = Promise.all(opened.map((o) => this.readAcks(o.iterator, decode))).then(() => {});
  }

  /** Opens the relay streams on an authenticated connection and exchanges hellos on each. */
  static async open(conn: PeerConnection, args: { peerDid: string; nodeDid: string; domains: string[]; maxInFlight: number; resolver: DidResolver; ackTimeoutMs: number; signal?: AbortSignal; lanes?: number;
    verify?: SignatureCheck;
    /** Announce that this sender accepts batched receipts (default true; false speaks as a v1-only node). */
    batchedReceipts?: boolean }): Promise<RelayChannel> {
    await checkPeerKey(args.resolver, args.peerDid, conn.remotePublicKey);
    const { encode, decode } = codec();
    const openLane = async () => {
      const stream = await conn.openStream(RELAY_METHOD, { signal: args.signal });
      await stream.send(encode({ frameId: 0, hello: { did: args.nodeDid, domains: args.domains, maxInFlight: args.maxInFlight, batchedReceipts: args.batchedReceipts ?? true } }));
      const iterator = stream[Symbol.asyncIterator]();
      const hello = await readHello(stream, decode, iterator);
      if (hello.did !== args.peerDid) {
        const err = new GatewayError('PEER_REJECTED', `the peer says it is ${hello.did}, the route names ${args.peerDid}`);
        stream.abort(err);
        throw err;
      }
      return { stream, iterator, hello };
    };
    const first = await openLane();
    const opened = [first];
    try {
      for (let i = 1; i < (args.lanes ?? RELAY_LANES); i++) opened.push(await openLane());
    } catch (err) {
      for (const o of opened) o.stream.abort(err as Error);
      throw err;
    }
    return new RelayChannel(args.peerDid, conn, opened, first.hello, decode, args.ackTimeoutMs, args.resolver, args.verify);
  }

  get usable(): boolean {
    return this.failure === undefined;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Sends one envelope, vouching for its sender's domain (and, when given, the full address of the local
   * mailbox that submitted it); resolves with the peer's receipt once it is durable there. A receipt that
   * does not verify (other hash, not signed by the peer DID's key) rejects with BAD_RECEIPT: not delivered.
   */
  async send(envelope: Envelope, senderDomain: string, opts: { senderAddress?: string; signal?: AbortSignal } = {}): Promise<Receipt> {
    const receipt = await this.sendUnverified(envelope, { senderDomain, senderAddress: opts.senderAddress ?? '' }, opts.signal);
    try {
      await verifyReceipt(receipt as ReceiptFields & Partial<SignedReceipt>, envelope.messageHash, this.peerDid, this.resolver, this.verify, this.receiptChecks);
    } catch (err) {
      throw new RelayError('BAD_RECEIPT', (err as Error).message);
    }
    return receipt;
  }

  private async sendUnverified(envelope: Envelope, sender: { senderDomain: string; senderAddress: string }, signal?: AbortSignal): Promise<Receipt> {
    while (this.pending.size >= this.window && !this.failure) await new Promise<void>((r) => this.waiters.push(r));
    if (this.failure) throw this.failure;
    const frameId = this.nextFrame++;
    let lane = this.lanes[0]!;
    for (const l of this.lanes) if (l.inFlight < lane.inFlight) lane = l;
    lane.inFlight++;
    const result = new Promise<Receipt>((resolve, reject) => this.pending.set(frameId, { resolve, reject, lane }));
    // A peer that stops answering (killed, partitioned, stuck) must not hold mail forever: the whole
    // channel is failed, its messages go back to the queue and are retried on a new connection.
    const timer = setTimeout(() => {
      this.fail(new GatewayError('PEER_UNAVAILABLE', `${this.peerDid} did not acknowledge within ${this.ackTimeoutMs} ms`));
    }, this.ackTimeoutMs);
    result.then(() => clearTimeout(timer), () => clearTimeout(timer));
    try {
      await lane.stream.send(this.encode({ frameId, ...sender, envelope: envelopeToWire(envelope) }), { signal });
    } catch (err) {
      if (this.pending.delete(frameId)) lane.inFlight--;
      this.fail(new GatewayError('PEER_UNAVAILABLE', `relay stream to ${this.peerDid} failed: ${(err as Error).message}`));
      throw this.failure;
    }
    return result;
  }

  private async readAcks(iterator: AsyncIterator<Uint8Array>, decode: (b: Uint8Array) => RelayFrameIn): Promise<void> {
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done) break;
        const frame = decode(next.value);
        if (frame.kind !== 'ack' || !frame.ack) continue;
        const waiter = this.pending.get(frame.ack.frameId);
        if (!waiter) continue;
        this.pending.delete(frame.ack.frameId);
        waiter.lane.inFlight--;
        // The peer's words go into the queue, the admin API and failure notices: kept tame from here on.
        if (frame.ack.error) waiter.reject(new RelayError(peerErrorCode(frame.ack.error.code), peerText(frame.ack.error.message)));
        else if (frame.ack.receipt) waiter.resolve(frame.ack.receipt);
        else waiter.reject(new RelayError('INVALID_ARGUMENT', 'ack without receipt'));
        this.waiters.shift()?.();
      }
      this.fail(new GatewayError('PEER_UNAVAILABLE', `${this.peerDid} ended the relay stream`));
    } catch (err) {
      this.fail(new GatewayError('PEER_UNAVAILABLE', `relay stream to ${this.peerDid} broke: ${(err as Error).message}`));
    }
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const w of this.waiters.splice(0)) w();
    for (const lane of this.lanes) lane.stream.abort(err);
    // The channel owns its connection: the queue dials a new one for what failed here, so this one is
    // closed, or it would stay open at both ends (kept alive by pings) and count against the peer's
    // connection budget (federation.peerBudget.maxConnections) until the peer refused every new one.
    void this.conn.close().catch(() => {});
  }

  close(): void {
    this.fail(new GatewayError('SHUTTING_DOWN', 'relay channel closed'));
  }
}

