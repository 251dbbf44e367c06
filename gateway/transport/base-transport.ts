/**
 * The lifecycle every PeerTransport shares (docs/TRANSPORT.md §1): identity and limits, the argument
 * checks of listen() and dial(), the dial's deadline, AbortSignal and the mapping of its failures to
 * DIAL_FAILED / DIAL_TIMEOUT / ABORTED / TRANSPORT_CLOSED, inbound connections held until a handler
 * is set, and close(). A transport subclasses it and implements how its listener starts and stops and
 * how a dial connects and authenticates the peer.
 */
import { bytesEqual } from '../../identity/index.ts';
import type { BasePeerConnection } from './base-connection.ts';
import type { BaseMessageStream } from './base-stream.ts';
import { abortPromise, asError, checkAddress, checkExpectedKey, deliverConnection, resolveIdentity, resolveLimits } from './common.ts';
import { TransportError, abortError, isTransportError } from './errors.ts';
import type { DialOptions, ListenOptions, PeerAddress, PeerConnection, PeerTransport, TransportIdentity, TransportKind, TransportLimits } from './types.ts';

const WIRE_NAMES: Record<TransportKind, string> = { quic: 'QUIC', http2: 'HTTP/2' };

export interface DialContext {
  /** Aborts with the dial: its deadline, the caller's signal, or the transport closing. */
  signal: AbortSignal;
  /** Rejects when `signal` aborts: race every wait of the dial against it. */
  aborted: Promise<never>;
  expectedPeerKey: Uint8Array | undefined;
}

type Connection = BasePeerConnection<BaseMessageStream>;

export abstract class BasePeerTransport<C extends Connection> implements PeerTransport {
  abstract readonly kind: TransportKind;
  readonly publicKey: Uint8Array;
  readonly limits: Readonly<TransportLimits>;
  protected readonly privateKey: Uint8Array;
  readonly #connections = new Set<C>();
  #handler: ((conn: PeerConnection) => void) | undefined;
  #pendingInbound: C[] = [];
  #closed = false;
  readonly #closing = new AbortController();

  constructor(opts: TransportIdentity & Partial<TransportLimits>) {
    const id = resolveIdentity(opts);
    this.privateKey = id.privateKey;
    this.publicKey = id.publicKey;
    this.limits = Object.freeze(resolveLimits(opts));
  }

  // --- what the wire implements ---

  protected abstract get listening(): boolean;
  /** Starts the listener on the checked address; LISTEN_FAILED when the address cannot be bound. */
  protected abstract startListening(opts: ListenOptions): Promise<PeerAddress>;
  /** Stops the listener and handshakes in progress; resolves once the listener is gone. */
  protected abstract stopListening(): Promise<void>;
  /**
   * Connects and authenticates the peer, racing every wait against `ctx.aborted`; releases what it
   * opened when it fails. Errors other than TransportErrors become DIAL_FAILED.
   */
  protected abstract connect(addr: PeerAddress, ctx: DialContext): Promise<C>;

  // --- state for the wire ---

  protected get isClosed(): boolean {
    return this.#closed;
  }

  protected checkOpen(): void {
    if (this.#closed) throw new TransportError('TRANSPORT_CLOSED', 'transport closed');
  }

  /** A connection that authenticated its peer: closed with the transport. */
  protected addConnection(conn: C): void {
    this.#connections.add(conn);
  }

  /** An authenticated inbound connection: to the handler, or held until one is set. */
  protected deliverInbound(conn: C): void {
    if (this.#handler !== undefined) deliverConnection(this.#handler, conn);
    else this.#pendingInbound.push(conn);
  }

  connectionClosed(conn: Connection): void {
    this.#connections.delete(conn as C);
    const i = this.#pendingInbound.indexOf(conn as C);
    if (i >= 0) this.#pendingInbound.splice(i, 1);
  }

  // --- PeerTransport ---

  onConnection(handler: (conn: PeerConnection) => void): void {
    this.#handler = handler;
    for (const c of this.#pendingInbound.splice(0)) deliverConnection(handler, c);
  }

  async listen(opts: ListenOptions): Promise<PeerAddress> {
    checkAddress(opts, true);
    this.checkOpen();
    if (this.listening) throw new TransportError('INVALID_ARGUMENT', 'already listening');
    if (opts.signal?.aborted) throw abortError(opts.signal, 'listen');
    return this.startListening(opts);
  }

  async dial(addr: PeerAddress, opts: DialOptions = {}): Promise<PeerConnection> {
    checkAddress(addr, false);
    checkExpectedKey(opts.expectedPeerKey);
    this.checkOpen();
    if (opts.signal?.aborted) throw abortError(opts.signal, 'dial');
    const timeoutMs = opts.timeoutMs ?? this.limits.handshakeTimeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signals = [timeout, this.#closing.signal];
    if (opts.signal !== undefined) signals.push(opts.signal);
    const signal = AbortSignal.any(signals);
    const abort = abortPromise(signal, 'dial');
    const target = `${WIRE_NAMES[this.kind]} dial to ${addr.host}:${addr.port}`;
    try {
      return await this.connect(addr, { signal, aborted: abort.promise, expectedPeerKey: opts.expectedPeerKey });
    } catch (err) {
      if (isTransportError(err) && err.code !== 'ABORTED') throw err;
      if (this.#closing.signal.aborted) throw new TransportError('TRANSPORT_CLOSED', 'transport closed during dial');
      if (opts.signal?.aborted) throw abortError(opts.signal, 'dial');
      if (timeout.aborted) throw new TransportError('DIAL_TIMEOUT', `${target} timed out after ${timeoutMs} ms`);
      const e = asError(err) as NodeJS.ErrnoException;
      throw new TransportError('DIAL_FAILED', `${target} failed: ${e.code ?? ''} ${e.message}`.replace(/\s+/g, ' '), { cause: err });
    } finally {
      abort.cleanup();
    }
  }

  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#closing.abort(new TransportError('TRANSPORT_CLOSED', 'transport closed'));
    }
    const stopped = this.stopListening();
    await Promise.all([...this.#connections].map((c) => c.close()));
    this.#pendingInbound = [];
    await stopped;
  }
}

/** PEER_KEY_MISMATCH unless the peer authenticated with the key the dialer expects (if it expects one). */
export function checkPeerKey(expected: Uint8Array | undefined, authenticated: Uint8Array): void {
  if (expected !== undefined && !bytesEqual(expected, authenticated)) {
    throw new TransportError('PEER_KEY_MISMATCH', 'the peer authenticated with a different Ed25519 key than expected');
  }
}
