/**
 * PeerTransport over QUIC with @chainsafe/libp2p-quic, used through its public js-libp2p transport
 * interface (`quic()` -> Transport.dial / createListener with our own minimal Upgrader; no
 * multistream-select, no libp2p node). Wire protocol: docs/TRANSPORT.md §3.
 *
 * - The libp2p TLS 1.3 handshake authenticates both peers' Ed25519 keys; the peer id libp2p derives
 *   from the peer's certificate is an identity multihash of its public key, which we decode into
 *   `remotePublicKey`.
 * - One QUIC bidirectional stream per RPC (first frame OPEN names the method), plus one control
 *   stream per connection (credit, resets, pings).
 * - The library's stream class reads eagerly into memory, so QUIC's own flow control never pushes
 *   back on a peer whose reader stopped: we add credit-based flow control per stream (WINDOW frames).
 * - When the connection closes, its stream muxer is aborted (otherwise its accept loop spins).
 * - Its native streams are read up to 64 KiB at a time instead of 4 KiB (quic-reads.ts).
 *
 * The stream, connection and transport lifecycle it shares with HTTP/2 is in base-stream.ts,
 * base-connection.ts and base-transport.ts; this file implements their hooks for the QUIC wire.
 */
import net from 'node:net';
import { quic } from '@chainsafe/libp2p-quic';
import type { QuicComponents } from '@chainsafe/libp2p-quic';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { defaultLogger } from '@libp2p/logger';
import type { ComponentLogger, Logger } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import type {
  ClearableSignal,
  Connection,
  Listener,
  MultiaddrConnection,
  Stream,
  StreamMuxer,
  StreamMuxerFactory,
  Transport,
  Upgrader,
  UpgraderOptions,
} from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import { base58btcDecode, bytesEqual } from '../../identity/index.ts';
import { BasePeerConnection } from './base-connection.ts';
import type { ConnectionInit } from './base-connection.ts';
import { BaseMessageStream } from './base-stream.ts';
import type { WriteTail } from './base-stream.ts';
import { BasePeerTransport, checkPeerKey } from './base-transport.ts';
import type { DialContext } from './base-transport.ts';
import { asError, checkMethod, deferred, formatAddress, raceSignal } from './common.ts';
import type { Deferred } from './common.ts';
import { TransportError, abortError, isTransportError, remoteResetError, wireCodeOf } from './errors.ts';
import { FRAME_HEADER_BYTES, FrameDecoder, FrameType, MAX_CONTROL_PAYLOAD, encodeFrame, frameHeader } from './framing.ts';
import type { Frame } from './framing.ts';
import { widenQuicReads } from './quic-reads.ts';
import type { ListenOptions, PeerAddress, TransportIdentity, TransportLimits } from './types.ts';

/** Credit every stream direction starts with (before the receiver's first WINDOW frame). */
export const QUIC_INITIAL_WINDOW = 65_536;
/** Protocol version in HELLO. */
export const QUIC_PROTOCOL_VERSION = 1;
/** Largest single write of message bytes (keeps one stream from hogging the connection). */
const MAX_PIECE = 256 * 1024;
/** Messages up to this size are copied behind their header and written in one piece. */
const COALESCE_BYTES = 64 * 1024;
/** Queued small writes are merged up to this size. */
const COALESCE_WRITE_BYTES = 64 * 1024;
/**
 * Message bytes of one stream handed to the library but not yet written by it. A send without an
 * abort signal returns its place in line as soon as its bytes are queued (so later sends can join the
 * same native write) and waits for the write only beyond this: backpressure stays bounded.
 */
const PIPELINE_BYTES = 256 * 1024;
/** How long an unexplained end of a stream waits for the peer's RESET frame before it is reported. */
const RESET_GRACE_MS = 250;

export interface QuicTransportOptions extends TransportIdentity, Partial<TransportLimits> {}

const DATA_CONTROL_TYPES: ReadonlySet<number> = new Set([FrameType.OPEN, FrameType.HELLO, FrameType.END]);
const CONTROL_TYPES: ReadonlySet<number> = new Set([FrameType.HELLO, FrameType.WINDOW, FrameType.RESET, FrameType.PING, FrameType.PONG]);
const STREAM_TYPES: ReadonlySet<number> = new Set([FrameType.END]);
const NO_TYPES: ReadonlySet<number> = new Set();

// ---------------------------------------------------------------------------------------------
// Peer identity from the libp2p peer id
// ---------------------------------------------------------------------------------------------

/** identity multihash (0x00, 36) of the libp2p PublicKey protobuf {Type: Ed25519 (1), Data: 32 bytes}. */
const ED25519_PEER_ID_PREFIX = Uint8Array.from([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]);

/** The raw Ed25519 public key of an authenticated libp2p peer id (base58btc), or AUTH_FAILED. */
export function ed25519KeyFromPeerId(peerId: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = base58btcDecode(peerId);
  } catch (err) {
    throw new TransportError('AUTH_FAILED', 'peer id is not base58btc', { cause: err });
  }
  if (bytes.length !== ED25519_PEER_ID_PREFIX.length + 32 || !bytesEqual(bytes.subarray(0, ED25519_PEER_ID_PREFIX.length), ED25519_PEER_ID_PREFIX)) {
    throw new TransportError('AUTH_FAILED', 'peer is not authenticated by an Ed25519 key');
  }
  return bytes.slice(ED25519_PEER_ID_PREFIX.length);
}

function keyFromMultiaddr(ma: Multiaddr): Uint8Array {
  const peerId = ma.getPeerId();
  if (peerId === null) throw new TransportError('AUTH_FAILED', 'QUIC connection carries no authenticated peer id');
  return ed25519KeyFromPeerId(peerId);
}

function quicMultiaddr(host: string, port: number): Multiaddr {
  const family = net.isIP(host);
  if (family === 0) throw new TransportError('INVALID_ARGUMENT', `QUIC needs an IP address, not ${JSON.stringify(host)}`);
  return multiaddr(`/${family === 6 ? 'ip6' : 'ip4'}/${host}/udp/${port}/quic-v1`);
}

// ---------------------------------------------------------------------------------------------
// Byte channel over one libp2p stream
// ---------------------------------------------------------------------------------------------

interface ChannelHandler {
  onFrame(frame: Frame): void;
  /** Message bytes received so far (cumulative), after each chunk. */
  onProgress(pos: number): void;
  /** The readable side ended: cleanly (`err` undefined) or not; `midFrame` if it stopped inside a frame. */
  onEnd(err: unknown, midFrame: boolean): void;
}

interface PendingWrite {
  chunk: Uint8Array;
  done: Deferred<void>;
}

/** Feeds the libp2p stream's sink; write() resolves once the library has written the chunk. */
class SinkFeeder {
  #queue: PendingWrite[] = [];
  #wake: (() => void) | undefined;
  #closing = false;
  #failed: Error | undefined;

  write(chunk: Uint8Array): Promise<void> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    if (this.#closing) return Promise.reject(new TransportError('STREAM_CLOSED', 'stream already ended'));
    const done = deferred<void>();
    done.promise.catch(() => {});
    this.#queue.push({ chunk, done });
    this.#kick();
    return done.promise;
  }

  /** Ends the source after the queued chunks (the library then sends the FIN). */
  close(): void {
    this.#closing = true;
    this.#kick();
  }

  fail(err: Error): void {
    if (this.#failed !== undefined) return;
    this.#failed = err;
    for (const w of this.#queue.splice(0)) w.done.reject(err);
    this.#kick();
  }

  #kick(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async *source(): AsyncGenerator<Uint8Array> {
    try {
      while (true) {
        while (this.#queue.length === 0) {
          if (this.#failed !== undefined || this.#closing) return;
          await new Promise<void>((resolve) => {
            this.#wake = resolve;
          });
        }
        if (this.#failed !== undefined) return;
        // Coalesce small queued chunks into one write (frames of many streams' control traffic,
        // OPEN + first message, END, ...): native writes are the expensive part.
        let n = 1;
        let bytes = this.#queue[0]!.chunk.length;
        while (n < this.#queue.length && bytes + this.#queue[n]!.chunk.length <= COALESCE_WRITE_BYTES) {
          bytes += this.#queue[n]!.chunk.length;
          n++;
        }
        let chunk: Uint8Array;
        if (n === 1) chunk = this.#queue[0]!.chunk;
        else {
          chunk = new Uint8Array(bytes);
          let off = 0;
          for (let i = 0; i < n; i++) {
            chunk.set(this.#queue[i]!.chunk, off);
            off += this.#queue[i]!.chunk.length;
          }
        }
        yield chunk;
        // The sink asks for the next chunk only after it has written this one.
        for (const item of this.#queue.splice(0, n)) item.done.resolve();
      }
    } finally {
      if (this.#queue.length > 0) {
        const err = this.#failed ?? new TransportError('STREAM_CLOSED', 'stream writer stopped');
        for (const w of this.#queue.splice(0)) w.done.reject(err);
      }
    }
  }
}

class FrameChannel {
  readonly raw: Stream;
  readonly decoder: FrameDecoder;
  handler: ChannelHandler;
  readonly #feeder = new SinkFeeder();
  readonly #sinkDone: Promise<void>;
  #reset = false;

  constructor(raw: Stream, maxMessageBytes: number, handler: ChannelHandler) {
    this.raw = raw;
    this.handler = handler;
    this.decoder = new FrameDecoder({ maxMessageBytes, allowedControl: DATA_CONTROL_TYPES, allowMessages: false });
    this.#sinkDone = raw.sink(this.#feeder.source());
    this.#sinkDone.catch((err: unknown) => this.#feeder.fail(asError(err)));
    void this.#pump();
  }

  write(chunk: Uint8Array): Promise<void> {
    return this.#feeder.write(chunk);
  }

  /** Half-close after the queued writes; resolves when the FIN was sent. */
  async finish(): Promise<void> {
    this.#feeder.close();
    await this.#sinkDone;
  }

  /** Resets both directions of the QUIC stream. Idempotent. */
  reset(err: Error): void {
    if (this.#reset) return;
    this.#reset = true;
    this.#feeder.fail(err);
    this.raw.abort(err);
  }

  async #pump(): Promise<void> {
    let failure: unknown;
    try {
      for await (const list of this.raw.source) {
        const chunk = list.subarray();
        this.decoder.push(chunk, (frame) => this.handler.onFrame(frame));
        this.handler.onProgress(this.decoder.messagePos);
      }
    } catch (err) {
      failure = err ?? new Error('stream source failed');
    }
    this.handler.onEnd(failure, this.decoder.midFrame);
  }
}

function u32(bytes: Uint8Array, off: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(off, false);
}

function encodeIdU32(type: number, id: number, value: number): Uint8Array {
  const p = new Uint8Array(8);
  const dv = new DataView(p.buffer);
  dv.setUint32(0, id, false);
  dv.setUint32(4, value, false);
  return encodeFrame(type, p);
}

function encodeReset(id: number, code: string, message: string): Uint8Array {
  const codeBytes = Buffer.from(code, 'ascii');
  let msg = Buffer.from(message, 'utf8');
  const room = MAX_CONTROL_PAYLOAD - 5 - codeBytes.length;
  if (msg.length > room) msg = msg.subarray(0, room);
  const p = new Uint8Array(5 + codeBytes.length + msg.length);
  new DataView(p.buffer).setUint32(0, id, false);
  p[4] = codeBytes.length;
  p.set(codeBytes, 5);
  p.set(msg, 5 + codeBytes.length);
  return encodeFrame(FrameType.RESET, p);
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

class QuicMessageStream extends BaseMessageStream implements ChannelHandler {
  readonly id: number;
  readonly #conn: QuicPeerConnection;
  readonly #ch: FrameChannel;
  /** Total message bytes the peer allows us to send (initial + its WINDOW increments). */
  #peerAllowed = QUIC_INITIAL_WINDOW;
  #sentPos = 0;
  /** Bytes queued in the channel whose write has not completed (see PIPELINE_BYTES). */
  #unwritten = 0;
  /** Total message bytes we allowed the peer to send. */
  #advertised = QUIC_INITIAL_WINDOW;
  #bumped = false;
  /** OPEN frame not yet written: it goes out with the first message or END (one write less per RPC). */
  #pendingOpen: Uint8Array | undefined;
  #endSeen = false;
  #readDone = false;
  #resetTimer: NodeJS.Timeout | undefined;

  constructor(conn: QuicPeerConnection, ch: FrameChannel, id: number, method: string, inbound: boolean, limits: TransportLimits) {
    super({ method, inbound, limits, decoder: ch.decoder });
    this.#conn = conn;
    this.#ch = ch;
    this.id = id;
    ch.handler = this;
    ch.decoder.allowedControl = STREAM_TYPES;
  }

  /**
   * Opener (`peerWindow` undefined): our receive window travels in the OPEN frame. Acceptor: the
   * peer's window came in OPEN; the peer starts with the initial 64 KiB of credit from us, raised to
   * our window by the first WINDOW frame (sent only once the peer used half of it: short RPCs never
   * need one).
   */
  start(peerWindow: number | undefined): void {
    if (peerWindow === undefined) {
      this.#advertised = this.window;
      this.#bumped = true;
    } else {
      this.#peerAllowed = peerWindow;
    }
  }

  // --- receiving ---

  onFrame(frame: Frame): void {
    if (frame.type === FrameType.MESSAGE) {
      this.#checkCredit(frame.endPos);
      this.queue.push(frame.payload, frame.endPos);
    } else if (frame.type === FrameType.END) {
      if (frame.payload.length !== 0) throw new TransportError('PROTOCOL_ERROR', 'END frame with payload');
      this.#endSeen = true;
      this.decoder.allowMessages = false;
      this.decoder.allowedControl = NO_TYPES;
      this.queue.end();
    } else {
      throw new TransportError('PROTOCOL_ERROR', `unexpected frame 0x${frame.type.toString(16)} on a data stream`);
    }
  }

  onProgress(pos: number): void {
    this.#checkCredit(pos);
    this.queue.progress(pos);
    if (!this.#bumped) this.#maybeGrant(this.queue.releasedUpTo, pos);
  }

  onEnd(err: unknown, midFrame: boolean): void {
    if (this.failure !== undefined) return;
    if (isTransportError(err) && (err.code === 'MESSAGE_TOO_LARGE' || err.code === 'PROTOCOL_ERROR')) {
      // Our decoder or a frame handler rejected what the peer sent.
      this.abortWith(err);
      return;
    }
    if (err === undefined && this.#endSeen && !midFrame) {
      this.#readDone = true;
      this.#maybeFinished();
      return;
    }
    // Ended without END: the peer reset the stream or the connection is going away.
    void this.#suspectReset(err);
  }

  /**
   * The QUIC stream broke without an explanation yet: the peer's RESET frame (with its code) travels
   * on the control stream and normally arrives at the same time; wait a moment for it (or for the
   * connection close) before reporting a plain STREAM_RESET. Resolves with the stream's error.
   */
  #suspectReset(cause: unknown): Promise<Error> {
    if (this.failure === undefined && this.#resetTimer === undefined) {
      this.#resetTimer = setTimeout(() => this.#failAndReset(new TransportError('STREAM_RESET', 'stream reset by the peer', { remote: true, cause })), RESET_GRACE_MS);
    }
    return this.failed;
  }

  /** A write failed: the peer reset the stream or the connection broke. */
  async #writeFailed(err: unknown): Promise<Error> {
    return this.failure ?? (await this.#suspectReset(err));
  }

  #failAndReset(err: Error): void {
    if (this.failure !== undefined) return;
    this.fail(err);
    this.#ch.reset(err);
  }

  #checkCredit(pos: number): void {
    if (pos > this.#advertised) throw new TransportError('PROTOCOL_ERROR', 'peer exceeded its flow-control credit');
  }

  protected onRelease(upTo: number): void {
    this.#maybeGrant(upTo, this.queue.recvPos);
  }

  /**
   * Credit: the peer may always have up to `window` bytes beyond what our reader released. Grant in
   * steps of a quarter window; before the first grant, only once the peer used half its initial credit.
   */
  #maybeGrant(released: number, recvPos: number): void {
    if (this.failure !== undefined || this.#endSeen) return;
    const inc = released + this.window - this.#advertised;
    if (inc <= 0) return;
    if (this.#bumped ? inc < this.window / 4 : this.#advertised - recvPos > QUIC_INITIAL_WINDOW / 2) return;
    this.#bumped = true;
    this.#advertised += inc;
    void this.#conn.sendControl(encodeIdU32(FrameType.WINDOW, this.id, inc));
  }

  /** WINDOW from the peer. */
  onWindow(inc: number): void {
    this.#peerAllowed += inc;
    this.wakeWriter();
  }

  /** RESET from the peer. */
  onRemoteReset(code: string, message: string): void {
    this.#failAndReset(remoteResetError(code, message));
  }

  override onConnectionClosed(err: TransportError): void {
    this.#failAndReset(err);
  }

  // --- sending ---

  protected async sendData(message: Uint8Array, signal: AbortSignal | undefined): Promise<WriteTail | undefined> {
    const total = FRAME_HEADER_BYTES + message.length;
    const small = total <= COALESCE_BYTES ? encodeFrame(FrameType.MESSAGE, message) : undefined;
    const header = small === undefined ? frameHeader(FrameType.MESSAGE, message.length) : undefined;
    const pieceOf = (from: number, n: number): Uint8Array => {
      if (small !== undefined) return small.subarray(from, from + n);
      if (from >= FRAME_HEADER_BYTES) return message.subarray(from - FRAME_HEADER_BYTES, from - FRAME_HEADER_BYTES + n);
      const piece = new Uint8Array(n);
      const h = Math.min(FRAME_HEADER_BYTES - from, n);
      piece.set(header!.subarray(from, from + h));
      if (n > h) piece.set(message.subarray(0, n - h), h);
      return piece;
    };
    // The last piece's write, when the send leaves the queue before it completed (pipelined).
    let pending: Promise<void> | undefined;
    let written = 0;
    try {
      while (written < total) {
        const avail = await this.#credit(signal);
        const n = Math.min(total - written, avail, MAX_PIECE);
        const piece = this.#withOpen(pieceOf(written, n));
        this.#sentPos += n;
        written += n;
        if (signal !== undefined) {
          // One piece at a time in the library's hands, so an abort leaves nothing of it queued.
          await raceSignal(this.#ch.write(piece), signal, 'send');
          continue;
        }
        // Without a signal, pieces queue behind each other up to PIPELINE_BYTES; the channel merges
        // queued pieces into one native write. Backpressure: beyond that, wait for this write.
        const write = this.#ch.write(piece);
        this.#unwritten += piece.length;
        const size = piece.length;
        void write.then(() => { this.#unwritten -= size; }, () => { this.#unwritten -= size; });
        if (this.#unwritten > PIPELINE_BYTES) await write;
        else pending = write;
      }
    } catch (err) {
      if (this.failure !== undefined) throw this.failure;
      if (isTransportError(err, 'ABORTED')) {
        // Our caller's signal. If part of the frame is on the wire the stream cannot continue.
        if (written > 0) this.abort(err);
        throw err;
      }
      throw await this.#writeFailed(err);
    }
    const last = pending;
    // The send resolves once its last piece is written, as without pipelining.
    return last === undefined ? undefined : () => last.catch(async (err: unknown) => { throw await this.#writeFailed(err); });
  }

  /** Opener: prefix the first bytes written with the pending OPEN frame (not counted by flow control). */
  #withOpen(bytes: Uint8Array): Uint8Array {
    const open = this.#pendingOpen;
    if (open === undefined) return bytes;
    this.#pendingOpen = undefined;
    const both = new Uint8Array(open.length + bytes.length);
    both.set(open);
    both.set(bytes, open.length);
    return both;
  }

  /** Opener: the OPEN frame goes out with the first message or END, or on its own if none comes soon. */
  setPendingOpen(open: Uint8Array): void {
    this.#pendingOpen = open;
    setImmediate(() => {
      if (this.#pendingOpen === undefined || this.failure !== undefined) return;
      void this.#ch.write(this.#withOpen(new Uint8Array(0))).catch(() => {});
    });
  }

  async #credit(signal: AbortSignal | undefined): Promise<number> {
    while (true) {
      if (this.failure !== undefined) throw this.failure;
      const avail = this.#peerAllowed - this.#sentPos;
      if (avail > 0) return avail;
      await this.writable(signal);
    }
  }

  protected async sendEnd(): Promise<void> {
    try {
      await this.#ch.write(this.#withOpen(encodeFrame(FrameType.END, new Uint8Array(0))));
      await this.#ch.finish();
    } catch (err) {
      throw await this.#writeFailed(err);
    }
  }

  protected override onLocalEnded(): void {
    this.#maybeFinished();
  }

  /** Tell the peer why (control stream), then reset the QUIC stream. */
  protected sendReset(err: Error): void {
    const sent = this.#conn.sendControl(encodeReset(this.id, wireCodeOf(err), err.message));
    const timer = setTimeout(() => this.#ch.reset(err), 1_000);
    void sent.finally(() => {
      clearTimeout(timer);
      this.#ch.reset(err);
    });
  }

  protected onFailed(): void {
    clearTimeout(this.#resetTimer);
    this.#finish();
  }

  #maybeFinished(): void {
    if (this.localEnded && this.#readDone) this.#finish();
  }

  #finish(): void {
    if (this.markFinished()) this.#conn.streamFinished(this);
  }
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

interface QuicConnectionInit extends ConnectionInit {
  maConn: MultiaddrConnection;
  muxerFactory: StreamMuxerFactory;
}

class QuicPeerConnection extends BasePeerConnection<QuicMessageStream> {
  readonly transport = 'quic' as const;
  readonly #maConn: MultiaddrConnection;
  readonly #muxer: StreamMuxer;
  /** Open data streams by their protocol id (WINDOW and RESET frames name them). */
  readonly #byId = new Map<number, QuicMessageStream>();
  #nextId: number;
  #control: FrameChannel | undefined;
  #controlBacklog: Uint8Array[] = [];
  #controlTimer: NodeJS.Timeout | undefined;
  #pingNonce = 0n;

  constructor(init: QuicConnectionInit) {
    super(init);
    this.#maConn = init.maConn;
    this.#nextId = init.direction === 'outbound' ? 1 : 2;
    // The library marks the connection closed by setting timeline.close (libp2p's contract for
    // MultiaddrConnection); that is our cue to abort the muxer and fail every stream.
    const timeline = init.maConn.timeline;
    init.maConn.timeline = new Proxy(timeline, {
      set: (target, prop, value) => {
        (target as unknown as Record<string | symbol, unknown>)[prop] = value;
        if (prop === 'close' && value !== undefined) queueMicrotask(() => this.markClosed());
        return true;
      },
    });
    this.#muxer = init.muxerFactory.createStreamMuxer({
      direction: init.direction,
      onIncomingStream: (s) => this.#onIncoming(s),
    });
    if (init.direction === 'inbound') {
      this.#controlTimer = setTimeout(() => {
        if (this.#control === undefined) this.#closeWith(new TransportError('HANDSHAKE_TIMEOUT', 'peer opened no control stream'));
      }, init.limits.handshakeTimeoutMs);
    }
  }

  /** Dialer: open the control stream. */
  async openControl(): Promise<void> {
    const raw = await this.#muxer.newStream();
    this.#startControl(new FrameChannel(raw, this.limits.maxMessageBytes, nullHandler));
  }

  /** The control stream is up (opened by us, or the peer's HELLO arrived on it): say HELLO, start pinging. */
  #startControl(ch: FrameChannel): void {
    this.#control = ch;
    ch.handler = this.#controlHandler();
    ch.decoder.allowedControl = CONTROL_TYPES;
    clearTimeout(this.#controlTimer);
    void ch.write(helloFrame()).catch((err: unknown) => this.#controlFailed(err));
    const backlog = this.#controlBacklog.splice(0);
    for (const frame of backlog) void this.sendControl(frame);
    this.startPings();
  }

  protected async newStream(method: string, signal: AbortSignal | undefined): Promise<QuicMessageStream> {
    const opening = Promise.resolve().then(() => this.#muxer.newStream());
    let raw: Stream;
    try {
      raw = await raceSignal(opening, signal, 'openStream');
    } catch (err) {
      opening.then((s) => s.abort(new Error('openStream aborted')), () => {});
      if (isTransportError(err)) throw err;
      throw this.isClosed ? this.closeReason() : new TransportError('CONNECTION_CLOSED', 'could not open a stream', { cause: err });
    }
    if (this.isClosed) {
      raw.abort(new Error('connection closed'));
      throw this.closeReason();
    }
    const id = this.#nextId;
    if (id > 0xffff_fffe) {
      raw.abort(new Error('stream ids exhausted'));
      throw new TransportError('UNSUPPORTED', 'stream ids exhausted on this connection; reconnect');
    }
    this.#nextId += 2;
    const ch = new FrameChannel(raw, this.limits.maxMessageBytes, nullHandler);
    const stream = new QuicMessageStream(this, ch, id, method, false, this.limits);
    this.#byId.set(id, stream);
    this.trackOutgoing(stream);
    const name = Buffer.from(method, 'utf8');
    const open = new Uint8Array(8 + name.length);
    const dv = new DataView(open.buffer);
    dv.setUint32(0, id, false);
    dv.setUint32(4, stream.window, false);
    open.set(name, 8);
    stream.setPendingOpen(encodeFrame(FrameType.OPEN, open));
    stream.start(undefined);
    return stream;
  }

  protected async closeWire(): Promise<void> {
    try {
      await this.#maConn.close();
    } catch {
      this.#maConn.abort(this.closeReason());
    }
    this.markClosed();
  }

  protected onWireClosed(err: TransportError): void {
    clearTimeout(this.#controlTimer);
    // Abort the muxer: its accept loop would otherwise spin on the dead connection.
    this.#muxer.abort(err);
    this.#control?.reset(err);
    this.#byId.clear();
  }

  /** Queue a control frame; resolves when written (or immediately if the connection is gone). */
  sendControl(frame: Uint8Array): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    if (this.#control === undefined) {
      this.#controlBacklog.push(frame);
      return Promise.resolve();
    }
    return this.#control.write(frame).catch((err: unknown) => this.#controlFailed(err));
  }

  streamFinished(stream: QuicMessageStream): void {
    if (this.#byId.get(stream.id) === stream) this.#byId.delete(stream.id);
    this.forgetStream(stream);
  }

  #closeWith(err: TransportError): void {
    if (this.isClosed) return;
    this.noteCloseReason(err);
    this.#maConn.abort(err);
    this.markClosed();
  }

  #controlFailed(err: unknown): void {
    if (!this.isClosed) this.#closeWith(new TransportError('CONNECTION_CLOSED', 'control stream failed', { cause: err }));
  }

  protected sendPing(): void {
    this.#pingNonce++;
    const p = new Uint8Array(8);
    new DataView(p.buffer).setBigUint64(0, this.#pingNonce, false);
    void this.sendControl(encodeFrame(FrameType.PING, p));
  }

  /** QUIC's own keep-alive and idle timeout detect a silent peer; just ask again. */
  protected pingUnanswered(): boolean {
    return true;
  }

  #controlHandler(): ChannelHandler {
    return {
      onFrame: (frame) => this.#onControlFrame(frame),
      onProgress: () => {},
      onEnd: (err) => {
        if (!this.isClosed) {
          const code = isTransportError(err) ? err.code : 'CONNECTION_CLOSED';
          this.#closeWith(new TransportError(code === 'PROTOCOL_ERROR' ? 'PROTOCOL_ERROR' : 'CONNECTION_CLOSED', 'control stream ended', { cause: err }));
        }
      },
    };
  }

  #onControlFrame(frame: Frame): void {
    const p = frame.payload;
    switch (frame.type) {
      case FrameType.HELLO:
        if (p.length < 4 || u32(p, 0) !== QUIC_PROTOCOL_VERSION) throw new TransportError('PROTOCOL_ERROR', 'unsupported protocol version');
        return;
      case FrameType.WINDOW: {
        if (p.length !== 8) throw new TransportError('PROTOCOL_ERROR', 'bad WINDOW frame');
        this.#byId.get(u32(p, 0))?.onWindow(u32(p, 4));
        return;
      }
      case FrameType.RESET: {
        if (p.length < 5 || p.length < 5 + p[4]!) throw new TransportError('PROTOCOL_ERROR', 'bad RESET frame');
        const codeLen = p[4]!;
        const code = Buffer.from(p.subarray(5, 5 + codeLen)).toString('ascii');
        const message = Buffer.from(p.subarray(5 + codeLen)).toString('utf8');
        this.#byId.get(u32(p, 0))?.onRemoteReset(code, message);
        return;
      }
      case FrameType.PING:
        if (p.length !== 8) throw new TransportError('PROTOCOL_ERROR', 'bad PING frame');
        void this.sendControl(encodeFrame(FrameType.PONG, p));
        return;
      case FrameType.PONG: {
        if (p.length !== 8) throw new TransportError('PROTOCOL_ERROR', 'bad PONG frame');
        if (new DataView(p.buffer, p.byteOffset, 8).getBigUint64(0, false) === this.#pingNonce) this.pingAnswered();
        return;
      }
      default:
        throw new TransportError('PROTOCOL_ERROR', `unexpected frame 0x${frame.type.toString(16)} on the control stream`);
    }
  }

  #onIncoming(raw: Stream): void {
    if (this.isClosed) {
      raw.abort(new Error('connection closed'));
      return;
    }
    let settled = false;
    const timer = setTimeout(() => {
      if (!settled) ch.reset(new TransportError('HANDSHAKE_TIMEOUT', 'stream sent no OPEN frame'));
    }, this.limits.handshakeTimeoutMs);
    const ch: FrameChannel = new FrameChannel(raw, this.limits.maxMessageBytes, {
      onFrame: (frame) => {
        settled = true;
        clearTimeout(timer);
        if (frame.type === FrameType.HELLO && this.direction === 'inbound' && this.#control === undefined) {
          this.#startControl(ch);
          this.#onControlFrame(frame);
          return;
        }
        if (frame.type === FrameType.OPEN) {
          this.#onOpen(ch, frame.payload);
          return;
        }
        throw new TransportError('PROTOCOL_ERROR', 'stream did not start with OPEN');
      },
      onProgress: () => {},
      onEnd: (err) => {
        settled = true;
        clearTimeout(timer);
        if (isTransportError(err)) ch.reset(err);
      },
    });
  }

  #onOpen(ch: FrameChannel, p: Uint8Array): void {
    if (p.length < 9) throw new TransportError('PROTOCOL_ERROR', 'bad OPEN frame');
    const id = u32(p, 0);
    const peerWindow = u32(p, 4);
    const method = Buffer.from(p.subarray(8)).toString('utf8');
    const peerParity = this.direction === 'inbound' ? 1 : 0;
    if (id % 2 !== peerParity || this.#byId.has(id)) throw new TransportError('PROTOCOL_ERROR', `bad stream id ${id}`);
    checkMethodOrProtocolError(method);
    // QUIC's stream credit (MAX_STREAMS = maxConcurrentStreams + the control stream) is the real limit.
    if (this.tooManyIncoming()) {
      const err = new TransportError('STREAM_REFUSED', `more than ${this.limits.maxConcurrentStreams} concurrent streams`);
      void this.sendControl(encodeReset(id, 'STREAM_REFUSED', err.message)).finally(() => ch.reset(err));
      ch.handler = nullHandler;
      return;
    }
    const stream = new QuicMessageStream(this, ch, id, method, true, this.limits);
    this.#byId.set(id, stream);
    stream.start(peerWindow);
    this.acceptIncoming(stream);
  }
}

const nullHandler: ChannelHandler = { onFrame: () => {}, onProgress: () => {}, onEnd: () => {} };

function helloFrame(): Uint8Array {
  const p = new Uint8Array(4);
  new DataView(p.buffer).setUint32(0, QUIC_PROTOCOL_VERSION, false);
  return encodeFrame(FrameType.HELLO, p);
}

function checkMethodOrProtocolError(method: string): void {
  try {
    checkMethod(method);
  } catch {
    throw new TransportError('PROTOCOL_ERROR', 'invalid method in OPEN');
  }
}

// ---------------------------------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------------------------------

export class QuicTransport extends BasePeerTransport<QuicPeerConnection> {
  readonly kind = 'quic' as const;
  #libp2p: Promise<Transport> | undefined;
  #listener: Listener | undefined;

  constructor(opts: QuicTransportOptions) {
    super(opts);
  }

  #transport(): Promise<Transport> {
    this.#libp2p ??= (async () => {
      await widenQuicReads();
      const privateKey = await generateKeyPairFromSeed('Ed25519', this.privateKey);
      const factory = quic({
        handshakeTimeout: this.limits.handshakeTimeoutMs,
        maxIdleTimeout: this.limits.idleTimeoutMs,
        keepAliveInterval: Math.max(500, Math.floor(this.limits.idleTimeoutMs / 3)),
        // + the control stream
        maxConcurrentStreamLimit: this.limits.maxConcurrentStreams + 1,
      });
      // @libp2p/crypto 5 types its keys with @libp2p/interface 3, the transport with 2: same runtime shape.
      return factory({ privateKey: privateKey as unknown as QuicComponents['privateKey'], logger: libp2pLogger() });
    })();
    return this.#libp2p;
  }

  protected get listening(): boolean {
    return this.#listener !== undefined;
  }

  protected async startListening(opts: ListenOptions): Promise<PeerAddress> {
    const ma = quicMultiaddr(opts.host, opts.port);
    const t = await raceSignal(this.#transport(), opts.signal, 'listen');
    const listener = t.createListener({ upgrader: this.#upgrader(undefined) });
    this.#listener = listener;
    try {
      await listener.listen(ma);
    } catch (err) {
      this.#listener = undefined;
      await listener.close().catch(() => {});
      throw new TransportError('LISTEN_FAILED', `cannot listen on ${opts.host}:${opts.port}: ${asError(err).message}`, { cause: err });
    }
    if (opts.signal?.aborted || this.isClosed) {
      this.#listener = undefined;
      await listener.close();
      throw this.isClosed ? new TransportError('TRANSPORT_CLOSED', 'transport closed') : abortError(opts.signal, 'listen');
    }
    const bound = listener.getAddrs()[0]?.nodeAddress();
    if (bound === undefined) throw new TransportError('LISTEN_FAILED', 'listener has no address');
    return { host: bound.address, port: bound.port };
  }

  protected async stopListening(): Promise<void> {
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.close().catch(() => {});
  }

  protected async connect(addr: PeerAddress, ctx: DialContext): Promise<QuicPeerConnection> {
    const ma = quicMultiaddr(addr.host, addr.port);
    const state: DialState = { cancelled: false, expectedPeerKey: ctx.expectedPeerKey };
    let dialing: Promise<Connection> | undefined;
    try {
      const t = await Promise.race([this.#transport(), ctx.aborted]);
      dialing = t.dial(ma, { upgrader: this.#upgrader(state), signal: ctx.signal });
      return (await Promise.race([dialing, ctx.aborted])) as unknown as QuicPeerConnection;
    } catch (err) {
      state.cancelled = true;
      // A dial the library completes after we gave up must not leak a connection.
      dialing?.then((c) => void (c as unknown as QuicPeerConnection).close().catch(() => {}), () => {});
      throw err;
    }
  }

  #upgrader(dial: DialState | undefined): Upgrader {
    const make = (maConn: MultiaddrConnection, opts: UpgraderOptions | undefined, direction: 'inbound' | 'outbound'): QuicPeerConnection => {
      this.checkOpen();
      if (dial?.cancelled) throw new TransportError('ABORTED', 'dial cancelled');
      const muxerFactory = opts?.muxerFactory;
      if (muxerFactory === undefined) throw new TransportError('PROTOCOL_ERROR', 'QUIC connection without stream muxer');
      const remotePublicKey = keyFromMultiaddr(maConn.remoteAddr);
      checkPeerKey(dial?.expectedPeerKey, remotePublicKey);
      const node = maConn.remoteAddr.nodeAddress();
      const conn = new QuicPeerConnection({
        owner: this,
        maConn,
        muxerFactory,
        direction,
        remotePublicKey,
        remoteAddress: formatAddress(node.address, node.port),
        limits: this.limits,
      });
      this.addConnection(conn);
      return conn;
    };
    return {
      upgradeOutbound: async (maConn, opts) => {
        const conn = make(maConn, opts, 'outbound');
        try {
          await conn.openControl();
        } catch (err) {
          await conn.close();
          throw new TransportError('DIAL_FAILED', 'could not open the control stream', { cause: err });
        }
        // The library's contract returns a libp2p Connection; our dial() is its only consumer.
        return conn as unknown as Connection;
      },
      upgradeInbound: async (maConn, opts) => {
        this.deliverInbound(make(maConn, opts, 'inbound'));
      },
      createInboundAbortSignal: (signal: AbortSignal): ClearableSignal => {
        const s = AbortSignal.any([signal, AbortSignal.timeout(this.limits.handshakeTimeoutMs)]);
        return Object.assign(s, { clear: () => {} });
      },
      getStreamMuxers: () => new Map(),
      getConnectionEncrypters: () => new Map(),
    };
  }
}

/**
 * The library makes a logger per stream; debug's loggers are not free (~50 µs each). Use them only
 * when libp2p debugging is switched on (DEBUG=libp2p:*), else a no-op logger.
 */
function libp2pLogger(): ComponentLogger {
  if (/libp2p/.test(process.env.DEBUG ?? '')) return defaultLogger();
  const noop = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false }) as unknown as Logger;
  (noop as { newScope: (name: string) => Logger }).newScope = () => noop;
  return { forComponent: () => noop };
}

interface DialState {
  cancelled: boolean;
  expectedPeerKey: Uint8Array | undefined;
}
