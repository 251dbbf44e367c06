/**
 * QuicMessageStream and QuicPeerConnection: one QUIC bidirectional stream per RPC with our credit
 * (WINDOW frames), and the connection with its control stream (HELLO, WINDOW, RESET, PING). They
 * share one file because they refer to each other: a stream reports to its connection (control
 * frames, its end), the connection creates and routes to its streams.
 */
import type { MultiaddrConnection, Stream, StreamMuxer, StreamMuxerFactory } from '@libp2p/interface';
import { BasePeerConnection } from './base-connection.ts';
import type { ConnectionInit } from './base-connection.ts';
import { BaseMessageStream } from './base-stream.ts';
import type { WriteTail } from './base-stream.ts';
import { checkMethod, raceSignal } from './common.ts';
import { TransportError, isTransportError, remoteResetError, wireCodeOf } from './errors.ts';
import { FRAME_HEADER_BYTES, FrameType, encodeFrame, frameHeader } from './framing.ts';
import type { Frame } from './framing.ts';
import { CONTROL_TYPES, FrameChannel, NO_TYPES, QUIC_PROTOCOL_VERSION, STREAM_TYPES, encodeIdU32, encodeReset, helloFrame, nullHandler, u32 } from './quic-frames.ts';
import type { ChannelHandler } from './quic-frames.ts';
import type { TransportLimits } from './types.ts';

/** Credit every stream direction starts with (before the receiver's first WINDOW frame). */
export const QUIC_INITIAL_WINDOW = 65_536;
/** Largest single write of message bytes (keeps one stream from hogging the connection). */
const MAX_PIECE = 256 * 1024;
/** Messages up to this size are copied behind their header and written in one piece. */
const COALESCE_BYTES = 64 * 1024;
/**
 * Message bytes of one stream handed to the library but not yet written by it. A send without an
 * abort signal returns its place in line as soon as its bytes are queued (so later sends can join the
 * same native write) and waits for the write only beyond this: backpressure stays bounded.
 */
const PIPELINE_BYTES = 256 * 1024;
/** How long an unexplained end of a stream waits for the peer's RESET frame before it is reported. */
const RESET_GRACE_MS = 250;

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

export class QuicMessageStream extends BaseMessageStream implements ChannelHandler {
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

export class QuicPeerConnection extends BasePeerConnection<QuicMessageStream> {
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

function checkMethodOrProtocolError(method: string): void {
  try {
    checkMethod(method);
  } catch {
    throw new TransportError('PROTOCOL_ERROR', 'invalid method in OPEN');
  }
}
