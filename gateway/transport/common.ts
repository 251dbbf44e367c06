/**
 * Pieces both transports share: option checks, the receive queue with its flow-control accounting,
 * and small promise helpers.
 */
import { bytesEqual, ed25519PublicKeyFromSeed } from '../../identity/index.ts';
import { TransportError, abortError } from './errors.ts';
import { MAX_METHOD_BYTES } from './framing.ts';
import { DEFAULT_LIMITS } from './types.ts';
import type { MessageStream, PeerConnection, TransportIdentity, TransportLimits } from './types.ts';

export const METHOD_PATTERN = /^\/[\x21-\x7e]*$/;

export function checkMethod(method: string): void {
  if (typeof method !== 'string' || !METHOD_PATTERN.test(method) || Buffer.byteLength(method) > MAX_METHOD_BYTES) {
    throw new TransportError('INVALID_ARGUMENT', `invalid method ${JSON.stringify(method)} (must start with "/", printable ASCII)`);
  }
}

export function resolveLimits(opts: Partial<TransportLimits> | undefined): TransportLimits {
  const limits: TransportLimits = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(DEFAULT_LIMITS) as (keyof TransportLimits)[]) {
    const v = opts?.[key];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v <= 0) throw new TransportError('INVALID_ARGUMENT', `${key} must be a positive integer`);
    limits[key] = v;
  }
  if (limits.maxMessageBytes > 0xffff_ffff) throw new TransportError('INVALID_ARGUMENT', 'maxMessageBytes must fit in 32 bits');
  if (limits.streamWindowBytes < 65_536) throw new TransportError('INVALID_ARGUMENT', 'streamWindowBytes must be at least 65536');
  if (limits.streamWindowBytes > 0x7fff_ffff) throw new TransportError('INVALID_ARGUMENT', 'streamWindowBytes must be below 2^31');
  if (limits.maxConcurrentStreams > 10_000) throw new TransportError('INVALID_ARGUMENT', 'maxConcurrentStreams must be at most 10000');
  return limits;
}

export function resolveIdentity(id: TransportIdentity): { privateKey: Uint8Array; publicKey: Uint8Array } {
  if (!(id?.privateKey instanceof Uint8Array) || id.privateKey.length !== 32) {
    throw new TransportError('INVALID_ARGUMENT', 'privateKey must be the 32-byte Ed25519 seed');
  }
  const publicKey = ed25519PublicKeyFromSeed(id.privateKey);
  if (id.publicKey !== undefined && !(id.publicKey instanceof Uint8Array && bytesEqual(id.publicKey, publicKey))) {
    throw new TransportError('INVALID_ARGUMENT', 'publicKey does not belong to privateKey');
  }
  return { privateKey: Uint8Array.from(id.privateKey), publicKey };
}

export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** "host:port" of a socket address ("[host]:port" for IPv6). */
export function formatAddress(address: string | undefined, port: number | undefined): string {
  if (address === undefined) return 'unknown';
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export function checkExpectedKey(key: Uint8Array | undefined): void {
  if (key !== undefined && !(key instanceof Uint8Array && key.length === 32)) {
    throw new TransportError('INVALID_ARGUMENT', 'expectedPeerKey must be a 32-byte Ed25519 public key');
  }
}

export function checkAddress(addr: { host: string; port: number }, allowZero: boolean): void {
  if (typeof addr?.host !== 'string' || addr.host.length === 0) throw new TransportError('INVALID_ARGUMENT', 'host is required');
  if (!Number.isInteger(addr.port) || addr.port < (allowZero ? 0 : 1) || addr.port > 65_535) {
    throw new TransportError('INVALID_ARGUMENT', `invalid port ${addr.port}`);
  }
}

/** Calls the application's stream handler; a handler that throws aborts that stream, nothing else. */
export function deliverStream(handler: (method: string, stream: MessageStream) => void, stream: MessageStream): void {
  const fail = (err: unknown) => stream.abort(asError(err));
  try {
    // An async handler's rejection must not become an unhandled rejection (it would stop the node).
    const result: unknown = handler(stream.method, stream);
    if (result instanceof Promise) result.catch(fail);
  } catch (err) {
    fail(err);
  }
}

/** Calls the application's connection handler; a handler that throws closes that connection. */
export function deliverConnection(handler: (conn: PeerConnection) => void, conn: PeerConnection): void {
  const fail = () => void conn.close().catch(() => {});
  try {
    const result: unknown = handler(conn);
    if (result instanceof Promise) result.catch(fail);
  } catch {
    fail();
  }
}

/** Rejects when `signal` aborts; `cleanup` removes the listener. */
export function abortPromise(signal: AbortSignal, what: string): { promise: Promise<never>; cleanup: () => void } {
  let onAbort: (() => void) | undefined;
  const promise = new Promise<never>((_, reject) => {
    if (signal.aborted) {
      reject(abortError(signal, what));
      return;
    }
    onAbort = () => reject(abortError(signal, what));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  promise.catch(() => {});
  return { promise, cleanup: () => onAbort && signal.removeEventListener('abort', onAbort) };
}

/** `p`, or a rejection as soon as `signal` aborts (p keeps running; the caller cleans up after it). */
export async function raceSignal<T>(p: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (signal === undefined) return p;
  const a = abortPromise(signal, what);
  try {
    return await Promise.race([p, a.promise]);
  } finally {
    a.cleanup();
  }
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Runs async jobs one after the other (keeps each message's bytes contiguous on the wire). */
export class SerialQueue {
  #tail: Promise<void> = Promise.resolve();
  run<T>(job: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(job);
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

interface Queued {
  data: Uint8Array;
  endPos: number;
}

/**
 * Received messages waiting for the reader, with the accounting flow control needs.
 *
 * Bytes are *released* (the sender may send that much more) strictly in order: a queued message is
 * released when the reader takes it; the bytes of a partially received message are released only
 * while the reader is waiting for it. So a reader that stops reading holds at most the receive
 * window; a waiting reader can receive messages larger than the window.
 */
export class ReceiveQueue implements AsyncIterator<Uint8Array> {
  /** Cumulative message bytes released so far. */
  releasedUpTo = 0;
  /** Cumulative message bytes received so far. */
  recvPos = 0;
  readonly #onRelease: (releasedUpTo: number, readerWaiting: boolean) => void;
  #items: Queued[] = [];
  #head = 0;
  #waiter: Deferred<IteratorResult<Uint8Array>> | undefined;
  #ended = false;
  #error: Error | undefined;
  #discarding = false;
  #iterated = false;

  constructor(onRelease: (releasedUpTo: number, readerWaiting: boolean) => void) {
    this.#onRelease = onRelease;
  }

  /** The peer half-closed cleanly (all its messages are in the queue). */
  get ended(): boolean {
    return this.#ended;
  }

  get failed(): Error | undefined {
    return this.#error;
  }

  /** Bytes received and not yet released. */
  get held(): number {
    return this.recvPos - this.releasedUpTo;
  }

  get readerWaiting(): boolean {
    return this.#waiter !== undefined;
  }

  push(data: Uint8Array, endPos: number): void {
    if (endPos > this.recvPos) this.recvPos = endPos;
    if (this.#error !== undefined) return;
    if (this.#discarding) {
      this.#release(endPos);
      return;
    }
    const w = this.#waiter;
    if (w !== undefined) {
      this.#waiter = undefined;
      this.#release(endPos);
      w.resolve({ value: data, done: false });
      return;
    }
    this.#items.push({ data, endPos });
  }

  /** Bytes arrived (possibly part of a message). */
  progress(recvPos: number): void {
    if (recvPos > this.recvPos) this.recvPos = recvPos;
    if (this.#waiter !== undefined || this.#discarding) this.#release(this.recvPos);
  }

  end(): void {
    if (this.#ended || this.#error !== undefined) return;
    this.#ended = true;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.resolve({ value: undefined, done: true });
  }

  /** Fails the read side; queued messages are dropped. No effect once the peer ended cleanly. */
  fail(err: Error): void {
    if (this.#ended || this.#error !== undefined) return;
    this.#error = err;
    this.#items = [];
    this.#head = 0;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.reject(err);
  }

  next(): Promise<IteratorResult<Uint8Array>> {
    if (this.#head < this.#items.length) {
      const item = this.#items[this.#head]!;
      this.#items[this.#head] = undefined as unknown as Queued;
      this.#head++;
      if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
        this.#items = this.#items.slice(this.#head);
        this.#head = 0;
      }
      this.#release(item.endPos);
      return Promise.resolve({ value: item.data, done: false });
    }
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (this.#ended || this.#discarding) return Promise.resolve({ value: undefined, done: true });
    if (this.#waiter !== undefined) return Promise.reject(new TransportError('INVALID_ARGUMENT', 'concurrent next() on a message stream'));
    this.#items = [];
    this.#head = 0;
    this.#waiter = deferred();
    this.#release(this.recvPos);
    return this.#waiter.promise;
  }

  /** The reader stopped: drop what is queued and whatever arrives later (keeps releasing credit). */
  /** The stream's one iterator (a message stream can be iterated once). */
  iterator(): AsyncIterator<Uint8Array> {
    if (this.#iterated) throw new TransportError('INVALID_ARGUMENT', 'a message stream can be iterated once');
    this.#iterated = true;
    // return(): the reader left; the rest of what the peer sends is discarded as it arrives.
    return { next: () => this.next(), return: () => this.return() };
  }

  return(): Promise<IteratorResult<Uint8Array>> {
    this.#discarding = true;
    this.#items = [];
    this.#head = 0;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.resolve({ value: undefined, done: true });
    this.#release(this.recvPos);
    return Promise.resolve({ value: undefined, done: true });
  }

  #release(pos: number): void {
    if (pos > this.releasedUpTo) {
      this.releasedUpTo = pos;
      this.#onRelease(pos, this.#waiter !== undefined);
    }
  }
}

/** Why send() must refuse `message` before queueing it, or undefined when it may be sent. */
export function sendRefusal(message: unknown, state: { error: Error | undefined; localEnd: string; maxMessageBytes: number }): TransportError | Error | undefined {
  if (!(message instanceof Uint8Array)) return new TransportError('INVALID_ARGUMENT', 'message must be a Uint8Array');
  if (state.error !== undefined) return state.error;
  if (state.localEnd !== 'open') return new TransportError('STREAM_CLOSED', 'send after end()');
  if (message.length > state.maxMessageBytes) {
    return new TransportError('MESSAGE_TOO_LARGE', `message of ${message.length} bytes exceeds the limit of ${state.maxMessageBytes}`);
  }
  return undefined;
}
