/**
 * Frames on a byte stream (docs/TRANSPORT.md §2): 1 type byte, u32 big-endian payload length, payload.
 * Type 0x00 is exactly gRPC's length-prefixed message (compressed flag 0); the 0x8x/0x9x types are
 * AfterSMTP's QUIC control frames and never appear on HTTP/2.
 */
import { TransportError } from './errors.ts';

export const FRAME_HEADER_BYTES = 5;

export const FrameType = {
  /** gRPC message, uncompressed. */
  MESSAGE: 0x00,
  /** gRPC message, compressed: never negotiated, always a protocol error. */
  COMPRESSED: 0x01,
  /** QUIC data stream, first frame: u32 stream id, u32 opener receive window, UTF-8 method. */
  OPEN: 0x80,
  /** QUIC control stream: u32 stream id, u32 credit increment. */
  WINDOW: 0x81,
  /** QUIC data stream: clean half-close marker (empty payload), followed by the QUIC FIN. */
  END: 0x82,
  /** QUIC control stream: u32 stream id, u8 code length, ASCII code, UTF-8 message. */
  RESET: 0x83,
  /** QUIC control stream: 8 opaque bytes, answered by PONG with the same bytes. */
  PING: 0x84,
  PONG: 0x85,
  /** QUIC control stream, first frame in each direction: u32 protocol version (1). */
  HELLO: 0x90,
} as const;

/** Largest payload of any non-MESSAGE frame. */
export const MAX_CONTROL_PAYLOAD = 4096;
/** Largest method name (UTF-8 bytes). */
export const MAX_METHOD_BYTES = 1024;

export interface Frame {
  type: number;
  payload: Uint8Array;
  /** Cumulative count of MESSAGE-frame bytes (headers included) consumed when this frame completed. */
  endPos: number;
}

export function frameHeader(type: number, length: number): Uint8Array {
  const h = new Uint8Array(FRAME_HEADER_BYTES);
  h[0] = type;
  new DataView(h.buffer).setUint32(1, length, false);
  return h;
}

/** Header and payload in one buffer (copies the payload: use for small frames). */
export function encodeFrame(type: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, payload.length, false);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

export interface FrameDecoderOptions {
  maxMessageBytes: number;
  /** Non-MESSAGE frame types accepted; anything else is a PROTOCOL_ERROR. */
  allowedControl: ReadonlySet<number>;
  /** Whether MESSAGE frames are accepted (initially). */
  allowMessages: boolean;
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) {
    const p = parts[0]!;
    // A plain Uint8Array view (no copy), whatever the source handed us (e.g. a Buffer).
    return p.constructor === Uint8Array ? p : new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * Incremental decoder. Checks the length in each header before buffering anything of the payload:
 * an oversized MESSAGE throws MESSAGE_TOO_LARGE, an unknown/oversized control frame PROTOCOL_ERROR.
 */
export class FrameDecoder {
  maxMessageBytes: number;
  allowedControl: ReadonlySet<number>;
  allowMessages: boolean;
  /** Cumulative MESSAGE-frame bytes consumed (what flow control counts). */
  messagePos = 0;
  readonly #header = new Uint8Array(FRAME_HEADER_BYTES);
  #headerLen = 0;
  #type = -1;
  #need = 0;
  #got = 0;
  #parts: Uint8Array[] = [];

  constructor(opts: FrameDecoderOptions) {
    this.maxMessageBytes = opts.maxMessageBytes;
    this.allowedControl = opts.allowedControl;
    this.allowMessages = opts.allowMessages;
  }

  /** True between the first byte of a frame and its last. */
  get midFrame(): boolean {
    return this.#headerLen > 0 || this.#type >= 0;
  }

  /**
   * Decodes `chunk`, calling `emit` for each frame as soon as it is complete (so `emit` may change
   * `allowMessages`/`allowedControl` for the frames that follow). Throws TransportError.
   */
  push(chunk: Uint8Array, emit: (frame: Frame) => void): void {
    let off = 0;
    const len = chunk.length;
    while (off < len) {
      if (this.#type < 0) {
        const n = Math.min(FRAME_HEADER_BYTES - this.#headerLen, len - off);
        this.#header.set(chunk.subarray(off, off + n), this.#headerLen);
        this.#headerLen += n;
        off += n;
        if (this.#headerLen < FRAME_HEADER_BYTES) break;
        this.#headerLen = 0;
        const type = this.#header[0]!;
        const length = new DataView(this.#header.buffer).getUint32(1, false);
        this.#check(type, length);
        if (type === FrameType.MESSAGE) this.messagePos += FRAME_HEADER_BYTES;
        this.#type = type;
        this.#need = length;
        this.#got = 0;
        this.#parts = [];
        if (length === 0) this.#emit(emit);
      } else {
        const n = Math.min(this.#need - this.#got, len - off);
        this.#parts.push(chunk.subarray(off, off + n));
        this.#got += n;
        off += n;
        if (this.#type === FrameType.MESSAGE) this.messagePos += n;
        if (this.#got === this.#need) this.#emit(emit);
      }
    }
  }

  #check(type: number, length: number): void {
    if (type === FrameType.MESSAGE) {
      if (!this.allowMessages) throw new TransportError('PROTOCOL_ERROR', 'message frame not allowed here');
      if (length > this.maxMessageBytes) {
        throw new TransportError('MESSAGE_TOO_LARGE', `incoming message of ${length} bytes exceeds the limit of ${this.maxMessageBytes}`);
      }
      return;
    }
    if (type === FrameType.COMPRESSED) throw new TransportError('PROTOCOL_ERROR', 'compressed gRPC messages are not supported');
    if (!this.allowedControl.has(type)) throw new TransportError('PROTOCOL_ERROR', `unexpected frame type 0x${type.toString(16)}`);
    if (length > MAX_CONTROL_PAYLOAD) throw new TransportError('PROTOCOL_ERROR', `control frame of ${length} bytes`);
  }

  #emit(emit: (frame: Frame) => void): void {
    const frame: Frame = { type: this.#type, payload: concat(this.#parts, this.#need), endPos: this.messagePos };
    this.#type = -1;
    this.#parts = [];
    emit(frame);
  }
}
