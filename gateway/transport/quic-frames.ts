/**
 * The QUIC wire's framing plumbing (docs/TRANSPORT.md §3): a frame channel over one libp2p stream
 * (its writer feeds the stream's sink and merges queued small writes; its reader decodes frames),
 * and the encoders of the control frames (HELLO, WINDOW, RESET).
 */
import type { Stream } from '@libp2p/interface';
import { asError, deferred } from './common.ts';
import type { Deferred } from './common.ts';
import { TransportError } from './errors.ts';
import { FrameDecoder, FrameType, MAX_CONTROL_PAYLOAD, encodeFrame } from './framing.ts';
import type { Frame } from './framing.ts';

/** Protocol version in HELLO. */
export const QUIC_PROTOCOL_VERSION = 1;
/** Queued small writes are merged up to this size. */
const COALESCE_WRITE_BYTES = 64 * 1024;

const DATA_CONTROL_TYPES: ReadonlySet<number> = new Set([FrameType.OPEN, FrameType.HELLO, FrameType.END]);
export const CONTROL_TYPES: ReadonlySet<number> = new Set([FrameType.HELLO, FrameType.WINDOW, FrameType.RESET, FrameType.PING, FrameType.PONG]);
export const STREAM_TYPES: ReadonlySet<number> = new Set([FrameType.END]);
export const NO_TYPES: ReadonlySet<number> = new Set();

// ---------------------------------------------------------------------------------------------
// Byte channel over one libp2p stream
// ---------------------------------------------------------------------------------------------

export interface ChannelHandler {
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

export class FrameChannel {
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

export function u32(bytes: Uint8Array, off: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(off, false);
}

export function encodeIdU32(type: number, id: number, value: number): Uint8Array {
  const p = new Uint8Array(8);
  const dv = new DataView(p.buffer);
  dv.setUint32(0, id, false);
  dv.setUint32(4, value, false);
  return encodeFrame(type, p);
}

export function encodeReset(id: number, code: string, message: string): Uint8Array {
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

export const nullHandler: ChannelHandler = { onFrame: () => {}, onProgress: () => {}, onEnd: () => {} };

export function helloFrame(): Uint8Array {
  const p = new Uint8Array(4);
  new DataView(p.buffer).setUint32(0, QUIC_PROTOCOL_VERSION, false);
  return encodeFrame(FrameType.HELLO, p);
}
