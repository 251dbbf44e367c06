/**
 * The lifecycle every PeerConnection shares (docs/TRANSPORT.md §1): its streams and the backstop on
 * how many the peer has open, inbound streams held until a handler is set, openStream()'s checks,
 * keep-alive pings and the smoothed RTT, the close reason, close() and `closed`. A transport
 * subclasses it and implements how a stream is opened, how a ping is sent, and how its wire closes.
 */
import { checkMethod, deferred, deliverStream } from './common.ts';
import type { BaseMessageStream } from './base-stream.ts';
import { TransportError, abortError } from './errors.ts';
import type { MessageStream, OpenStreamOptions, PeerConnection, TransportKind, TransportLimits } from './types.ts';

/** Keep-alive pings go out every idleTimeoutMs / 3, but not more often than this. */
const PING_INTERVAL_MIN_MS = 250;

export interface ConnectionInit {
  owner: { connectionClosed(conn: BasePeerConnection<BaseMessageStream>): void };
  direction: 'inbound' | 'outbound';
  remotePublicKey: Uint8Array;
  remoteAddress: string;
  limits: TransportLimits;
}

export abstract class BasePeerConnection<S extends BaseMessageStream> implements PeerConnection {
  abstract readonly transport: TransportKind;
  readonly remotePublicKey: Uint8Array;
  readonly remoteAddress: string;
  readonly direction: 'inbound' | 'outbound';
  readonly closed: Promise<void>;
  protected readonly limits: TransportLimits;
  readonly #owner: ConnectionInit['owner'];
  readonly #closedDeferred = deferred<void>();
  readonly #streams = new Set<S>();
  #inboundOpen = 0;
  #handler: ((method: string, stream: MessageStream) => void) | undefined;
  #pending: S[] = [];
  #isClosed = false;
  #closeError: TransportError | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #pingSentAt: number | undefined;
  #rtt: number | undefined;

  constructor(init: ConnectionInit) {
    this.#owner = init.owner;
    this.direction = init.direction;
    this.remotePublicKey = init.remotePublicKey;
    this.remoteAddress = init.remoteAddress;
    this.limits = init.limits;
    this.closed = this.#closedDeferred.promise;
  }

  // --- what the wire implements ---

  /** Opens a wire stream for `method` (the connection is open, the method checked) and tracks it with trackOutgoing(). */
  protected abstract newStream(method: string, signal: AbortSignal | undefined): Promise<S>;
  /** Closes the wire at once; markClosed() runs now or when the wire reports the close. */
  protected abstract closeWire(): Promise<void>;
  /** The wire is gone: release what it holds (before the streams fail). */
  protected abstract onWireClosed(err: TransportError): void;
  /** Sends a keep-alive ping; its answer calls pingAnswered(), a failure pingFailed(). */
  protected abstract sendPing(): void;
  /** A ping went unanswered for idleTimeoutMs: true to ping again, false when the wire gave up on the peer. */
  protected abstract pingUnanswered(): boolean;

  // --- state for the wire ---

  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Why the connection closed (or will report when it does). */
  closeReason(): TransportError {
    return this.#closeError ?? new TransportError('CONNECTION_CLOSED', 'connection closed by the peer or lost', { remote: true });
  }

  /** Records why the connection is closing; the first reason wins. */
  protected noteCloseReason(err: TransportError): void {
    this.#closeError ??= err;
  }

  /** The peer already has this many streams open towards us (twice the limit: see docs/TRANSPORT.md §6). */
  protected tooManyIncoming(): boolean {
    return this.#inboundOpen >= 2 * this.limits.maxConcurrentStreams;
  }

  /** A stream the peer opened: counted, then handed to the handler (or held until one is set). */
  protected acceptIncoming(stream: S): void {
    this.#streams.add(stream);
    this.#inboundOpen++;
    if (this.#handler !== undefined) deliverStream(this.#handler, stream);
    else this.#pending.push(stream);
  }

  /** A stream this side opened: it fails with the connection. */
  protected trackOutgoing(stream: S): void {
    this.#streams.add(stream);
  }

  /** Forgets a finished stream; false if it was not tracked (already forgotten, or the connection closed). */
  protected forgetStream(stream: S): boolean {
    if (!this.#streams.delete(stream)) return false;
    if (stream.inbound) {
      this.#inboundOpen--;
      const i = this.#pending.indexOf(stream);
      if (i >= 0) this.#pending.splice(i, 1);
    }
    return true;
  }

  /** Fails every open stream with the close reason (the wire may report its close later). */
  protected failStreams(): void {
    const err = this.closeReason();
    for (const s of this.#streams) s.onConnectionClosed(err);
  }

  /** The wire is closed: everything pending fails with the close reason, `closed` resolves. Idempotent. */
  protected markClosed(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    const err = this.closeReason();
    this.#closeError = err;
    clearInterval(this.#pingTimer);
    this.onWireClosed(err);
    this.failStreams();
    this.#streams.clear();
    this.#pending = [];
    this.#owner.connectionClosed(this);
    this.#closedDeferred.resolve();
  }

  protected startPings(): void {
    if (this.#isClosed) return;
    this.#ping();
    const every = Math.max(PING_INTERVAL_MIN_MS, Math.floor(this.limits.idleTimeoutMs / 3));
    this.#pingTimer = setInterval(() => this.#ping(), every);
    this.#pingTimer.unref();
  }

  /** The outstanding ping was answered; `sampleMs` when the wire measured it, else measured from when it was sent. */
  protected pingAnswered(sampleMs?: number): void {
    if (this.#pingSentAt === undefined) return;
    const sample = sampleMs ?? performance.now() - this.#pingSentAt;
    this.#pingSentAt = undefined;
    this.#rtt = this.#rtt === undefined ? sample : this.#rtt * 0.875 + sample * 0.125;
  }

  protected pingFailed(): void {
    this.#pingSentAt = undefined;
  }

  #ping(): void {
    if (this.#isClosed) return;
    if (this.#pingSentAt !== undefined) {
      if (performance.now() - this.#pingSentAt <= this.limits.idleTimeoutMs) return;
      if (!this.pingUnanswered()) return;
    }
    this.#pingSentAt = performance.now();
    this.sendPing();
  }

  // --- PeerConnection ---

  rtt(): number | undefined {
    return this.#rtt;
  }

  onStream(handler: (method: string, stream: MessageStream) => void): void {
    this.#handler = handler;
    for (const s of this.#pending.splice(0)) deliverStream(handler, s);
  }

  async openStream(method: string, opts?: OpenStreamOptions): Promise<MessageStream> {
    checkMethod(method);
    const signal = opts?.signal;
    if (signal?.aborted) throw abortError(signal, 'openStream');
    if (this.#isClosed) throw this.closeReason();
    return this.newStream(method, signal);
  }

  async close(): Promise<void> {
    if (!this.#isClosed) {
      this.noteCloseReason(new TransportError('CONNECTION_CLOSED', 'connection closed locally'));
      await this.closeWire();
    }
    await this.closed;
  }
}
