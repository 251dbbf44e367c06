/**
 * The lifecycle every MessageStream shares, whatever carries it (docs/TRANSPORT.md §1): the receive
 * queue and its flow-control releases, the first-message cap until the reader lifts it, serialized
 * sends with their refusals and AbortSignal, half-close, abort and failure. A transport subclasses it
 * and implements only what its wire needs: how a message, the half-close and a reset are written,
 * and what releasing received bytes means for the peer's credit.
 */
import { ReceiveQueue, SerialQueue, deferred, raceSignal, sendRefusal } from './common.ts';
import type { Deferred } from './common.ts';
import { abortError } from './errors.ts';
import type { TransportError } from './errors.ts';
import type { FrameDecoder } from './framing.ts';
import type { MessageStream, SendOptions, TransportLimits } from './types.ts';

export interface StreamInit {
  method: string;
  /** The peer opened the stream: its messages are held to firstMessageBytes until liftFirstMessageLimit(). */
  inbound: boolean;
  limits: TransportLimits;
  /** Decodes what the peer sends on this stream; the base sets its message limit. */
  decoder: FrameDecoder;
}

/** The rest of a send that sendData() left running after the send's turn; the send resolves once it does. */
export type WriteTail = () => Promise<void>;

export abstract class BaseMessageStream implements MessageStream {
  readonly method: string;
  readonly inbound: boolean;
  /** Receive window: how far the peer may send ahead of this side's reader. */
  readonly window: number;
  protected readonly decoder: FrameDecoder;
  protected readonly queue: ReceiveQueue;
  readonly #maxMessageBytes: number;
  readonly #sends = new SerialQueue();
  readonly #failed = deferred<Error>();
  #error: Error | undefined;
  #localEnd: 'open' | 'ending' | 'ended' = 'open';
  #endPromise: Promise<void> | undefined;
  #writeWaiter: Deferred<void> | undefined;
  #finished = false;

  constructor(init: StreamInit) {
    this.method = init.method;
    this.inbound = init.inbound;
    this.window = init.limits.streamWindowBytes;
    this.#maxMessageBytes = init.limits.maxMessageBytes;
    this.decoder = init.decoder;
    this.decoder.allowMessages = true;
    this.decoder.maxMessageBytes = init.inbound ? Math.min(init.limits.firstMessageBytes, init.limits.maxMessageBytes) : init.limits.maxMessageBytes;
    this.queue = new ReceiveQueue((releasedUpTo) => this.onRelease(releasedUpTo));
    this.#failed.promise.catch(() => {});
  }

  // --- what the wire implements ---

  /**
   * Writes one message (gRPC framing) once it is this send's turn; waits for flow control through
   * writable(). May resolve before the last bytes are written, handing them back as a WriteTail.
   */
  protected abstract sendData(message: Uint8Array, signal: AbortSignal | undefined): Promise<WriteTail | undefined>;
  /** Writes the clean half-close once every queued send is written. */
  protected abstract sendEnd(): Promise<void>;
  /** Resets the stream on the wire after a local abort (the stream has already failed with `err`). */
  protected abstract sendReset(err: Error): void;
  /** The reader released received bytes up to `releasedUpTo` (cumulative): the peer may send more. */
  protected abstract onRelease(releasedUpTo: number): void;
  /** The stream just failed with `err` (local abort, peer reset, lost connection). */
  protected abstract onFailed(err: Error): void;
  /** The half-close was written. */
  protected onLocalEnded(): void {}

  // --- state for the wire ---

  /** Why the stream failed, once it did. */
  get failure(): Error | undefined {
    return this.#error;
  }

  /** Resolves with the stream's error when it fails. */
  protected get failed(): Promise<Error> {
    return this.#failed.promise;
  }

  protected get localEnded(): boolean {
    return this.#localEnd === 'ended';
  }

  /** The wire stream is gone (closed or fully finished): abort() has nothing left to reset. */
  protected get finished(): boolean {
    return this.#finished;
  }

  /** Marks the wire stream gone; false if it already was. */
  protected markFinished(): boolean {
    if (this.#finished) return false;
    this.#finished = true;
    return true;
  }

  /** Waits until wakeWriter() (credit arrived, buffer drained) or the stream fails. */
  protected writable(signal: AbortSignal | undefined): Promise<void> {
    this.#writeWaiter ??= deferred<void>();
    return raceSignal(this.#writeWaiter.promise, signal, 'send');
  }

  protected wakeWriter(): void {
    const w = this.#writeWaiter;
    this.#writeWaiter = undefined;
    w?.resolve();
  }

  // --- MessageStream ---

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.queue.iterator();
  }

  send(message: Uint8Array, opts?: SendOptions): Promise<void> {
    const refusal = sendRefusal(message, { error: this.#error, localEnd: this.#localEnd, maxMessageBytes: this.#maxMessageBytes });
    if (refusal) return Promise.reject(refusal);
    const signal = opts?.signal;
    let tail: WriteTail | undefined;
    const queued = this.#sends.run(async () => {
      if (this.#error !== undefined) throw this.#error;
      if (signal?.aborted) throw abortError(signal, 'send');
      tail = await this.sendData(message, signal);
    });
    return queued.then(() => tail?.());
  }

  end(): Promise<void> {
    if (this.#endPromise !== undefined) return this.#endPromise;
    if (this.#error !== undefined) return Promise.reject(this.#error);
    this.#localEnd = 'ending';
    this.#endPromise = this.#sends.run(async () => {
      if (this.#error !== undefined) throw this.#error;
      await this.sendEnd();
      this.#localEnd = 'ended';
      this.onLocalEnded();
    });
    this.#endPromise.catch(() => {});
    return this.#endPromise;
  }

  liftFirstMessageLimit(): void {
    this.decoder.maxMessageBytes = this.#maxMessageBytes;
  }

  abort(err: Error): void {
    if (this.#error !== undefined || this.#finished) return;
    this.abortWith(err);
  }

  /** Fails the stream with `err` and resets it on the wire (a local abort, or what the peer sent broke a rule). */
  protected abortWith(err: Error): void {
    if (this.#error !== undefined) return;
    this.fail(err);
    this.sendReset(err);
  }

  /** Fails every pending and later operation with `err`; the first failure wins. */
  protected fail(err: Error): void {
    if (this.#error !== undefined) return;
    this.#error = err;
    this.#failed.resolve(err);
    this.queue.fail(err);
    const w = this.#writeWaiter;
    this.#writeWaiter = undefined;
    w?.reject(err);
    w?.promise.catch(() => {});
    this.onFailed(err);
  }

  /** The connection is gone. */
  onConnectionClosed(err: TransportError): void {
    this.fail(err);
  }
}
