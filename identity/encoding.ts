/**
 * Byte helpers and the canonical encoding primitives of PROTOCOL §2:
 * unsigned big-endian integers, lp(x) = u32(len) || x, list(xs) = u32(count) || xs.
 * Decoders are strict: no trailing bytes, no length running past the end, valid UTF-8 only,
 * integers within JavaScript's safe range, every field within its limit.
 */
import { Buffer } from 'node:buffer';
import { IdentityError } from './errors.ts';

/** A plain Uint8Array view of the same memory (no copy), so callers never receive a Buffer. */
export function asU8(b: Uint8Array): Uint8Array {
  return b.constructor === Uint8Array ? b : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  return asU8(Buffer.concat(parts));
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** Bytewise lexicographic comparison (shorter prefix first), as used for sorting key ids. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function fromHex(s: string): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) {
    throw new IdentityError('ENCODING', 'invalid hex string');
  }
  return new Uint8Array(Buffer.from(s, 'hex'));
}

export function toBase64Url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

/** Strict base64url (RFC 4648 §5, no padding): rejects foreign characters and non-canonical tails. */
export function fromBase64Url(s: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) {
    throw new IdentityError('ENCODING', 'invalid base64url string');
  }
  const out = Buffer.from(s, 'base64url');
  if (out.toString('base64url') !== s) throw new IdentityError('ENCODING', 'non-canonical base64url string');
  return new Uint8Array(out);
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

export function utf8(s: string): Uint8Array {
  return utf8Encoder.encode(s);
}

/** Strict UTF-8 decoding: invalid sequences are an error and a leading BOM is kept (so decode/encode round-trips). */
export function fromUtf8(b: Uint8Array, what = 'string'): string {
  try {
    return utf8Decoder.decode(b);
  } catch {
    throw new IdentityError('ENCODING', `${what} is not valid UTF-8`);
  }
}

/** UTF-8 length of a string without allocating. */
export function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** True when the string survives a UTF-8 round trip (no lone surrogates). */
function isWellFormedString(s: string): boolean {
  return s.isWellFormed();
}

// ---------------------------------------------------------------------------------------------
// base58btc (Bitcoin alphabet) and multibase/multicodec, for did:key and publicKeyMultibase.

const B58_ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
const B58_MAP = new Int8Array(128).fill(-1);
for (let i = 0; i < B58_ALPHABET.length; i++) B58_MAP[B58_ALPHABET.charCodeAt(i)] = i;

export function base58btcEncode(bytes: Uint8Array): string {
  let zeros = 0;
  while (zeros < bytes.length && bytes[zeros] === 0) zeros++;
  // log(256)/log(58) ~ 1.366
  const size = Math.ceil(((bytes.length - zeros) * 138) / 100) + 1;
  const digits = new Uint8Array(size);
  let length = 0;
  for (let i = zeros; i < bytes.length; i++) {
    let carry = bytes[i]!;
    let j = 0;
    for (let k = size - 1; (carry !== 0 || j < length) && k >= 0; k--, j++) {
      carry += 256 * digits[k]!;
      digits[k] = carry % 58;
      carry = Math.floor(carry / 58);
    }
    length = j;
  }
  let start = size - length;
  while (start < size && digits[start] === 0) start++;
  let out = '1'.repeat(zeros);
  for (let i = start; i < size; i++) out += B58_ALPHABET[digits[i]!];
  return out;
}

export function base58btcDecode(s: string): Uint8Array {
  if (s.length === 0) return new Uint8Array(0);
  let zeros = 0;
  while (zeros < s.length && s[zeros] === '1') zeros++;
  // log(58)/log(256) ~ 0.733
  const size = Math.ceil(((s.length - zeros) * 733) / 1000) + 1;
  const bytes = new Uint8Array(size);
  let length = 0;
  for (let i = zeros; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? B58_MAP[c]! : -1;
    if (v < 0) throw new IdentityError('ENCODING', 'invalid base58btc character');
    let carry = v;
    let j = 0;
    for (let k = size - 1; (carry !== 0 || j < length) && k >= 0; k--, j++) {
      carry += 58 * bytes[k]!;
      bytes[k] = carry % 256;
      carry = Math.floor(carry / 256);
    }
    length = j;
  }
  let start = size - length;
  while (start < size && bytes[start] === 0) start++;
  const out = new Uint8Array(zeros + (size - start));
  out.set(bytes.subarray(start), zeros);
  return out;
}

/** Multicodec prefixes (unsigned varint of the code) used by did:key and *2020 key types. */
export const MULTICODEC_ED25519_PUB = Uint8Array.of(0xed, 0x01);
export const MULTICODEC_X25519_PUB = Uint8Array.of(0xec, 0x01);

/** 'z' + base58btc(prefix || key) */
export function encodeMultibaseKey(prefix: Uint8Array, key: Uint8Array): string {
  return 'z' + base58btcEncode(concatBytes(prefix, key));
}

/** Decodes a 'z' multibase key with the given multicodec prefix and 32-byte payload. */
export function decodeMultibaseKey(value: string, prefix: Uint8Array, what: string): Uint8Array {
  if (typeof value !== 'string' || !value.startsWith('z')) {
    throw new IdentityError('ENCODING', `${what}: publicKeyMultibase must be base58btc ('z')`);
  }
  const raw = base58btcDecode(value.slice(1));
  if (raw.length !== prefix.length + 32 || !bytesEqual(raw.subarray(0, prefix.length), prefix)) {
    throw new IdentityError('ENCODING', `${what}: wrong multicodec prefix or key length`);
  }
  return raw.slice(prefix.length);
}

// ---------------------------------------------------------------------------------------------
// Canonical writer/reader.

/**
 * Canonical encoder: writes into one growing buffer (encoders pass the exact size when they know it),
 * so an envelope is one allocation and one copy of each field, not a list of pieces concatenated.
 */
export class ByteWriter {
  #buf: Buffer;
  #pos = 0;

  constructor(capacity = 128) {
    this.#buf = Buffer.allocUnsafe(Math.max(16, capacity));
  }

  get length(): number {
    return this.#pos;
  }

  #room(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#pos + n));
    this.#buf.copy(next, 0, 0, this.#pos);
    this.#buf = next;
  }

  bytes(b: Uint8Array): this {
    this.#room(b.length);
    this.#buf.set(b, this.#pos);
    this.#pos += b.length;
    return this;
  }

  u8(v: number): this {
    this.#room(1);
    this.#buf[this.#pos++] = v & 0xff;
    return this;
  }

  u16(v: number): this {
    this.#room(2);
    this.#pos = this.#buf.writeUInt16BE(v, this.#pos);
    return this;
  }

  u32(v: number): this {
    this.#room(4);
    this.#pos = this.#buf.writeUInt32BE(v, this.#pos);
    return this;
  }

  u64(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new IdentityError('INVALID_ARGUMENT', `u64 value ${v} is not a non-negative safe integer`);
    }
    this.#room(8);
    this.#buf.writeUInt32BE(Math.floor(v / 0x1_0000_0000), this.#pos);
    this.#pos = this.#buf.writeUInt32BE(v >>> 0, this.#pos + 4);
    return this;
  }

  fixed(b: Uint8Array, length: number, what: string): this {
    if (b.length !== length) throw new IdentityError('INVALID_ARGUMENT', `${what} must be ${length} bytes, got ${b.length}`);
    return this.bytes(b);
  }

  /** lp(x) = u32(len(x)) || x */
  lp(b: Uint8Array): this {
    return this.u32(b.length).bytes(b);
  }

  /** lp(utf8(s)); lone surrogates are refused (they cannot be encoded faithfully). */
  str(s: string, what: string): this {
    if (!s.isWellFormed()) throw new IdentityError('INVALID_ARGUMENT', `${what} contains a lone surrogate`);
    const n = Buffer.byteLength(s, 'utf8');
    this.u32(n);
    this.#room(n);
    this.#pos += this.#buf.write(s, this.#pos, n, 'utf8');
    return this;
  }

  /** The bytes written (a view; the writer is not used afterwards). */
  finish(): Uint8Array {
    return new Uint8Array(this.#buf.buffer, this.#buf.byteOffset, this.#pos);
  }
}

export class ByteReader {
  readonly #buf: Uint8Array;
  readonly #view: DataView;
  #pos = 0;
  readonly #what: string;

  constructor(buf: Uint8Array, what: string) {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.#what = what;
  }

  get offset(): number {
    return this.#pos;
  }

  get remaining(): number {
    return this.#buf.length - this.#pos;
  }

  #need(n: number, field: string): void {
    if (n > this.#buf.length - this.#pos) {
      throw new IdentityError('ENCODING', `${this.#what}: truncated at ${field} (need ${n} bytes at offset ${this.#pos})`);
    }
  }

  u8(field: string): number {
    this.#need(1, field);
    return this.#buf[this.#pos++]!;
  }

  u16(field: string): number {
    this.#need(2, field);
    const v = this.#view.getUint16(this.#pos);
    this.#pos += 2;
    return v;
  }

  u32(field: string): number {
    this.#need(4, field);
    const v = this.#view.getUint32(this.#pos);
    this.#pos += 4;
    return v;
  }

  u64(field: string): number {
    this.#need(8, field);
    const v = this.#view.getBigUint64(this.#pos);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new IdentityError('ENCODING', `${this.#what}: ${field} exceeds 2^53-1`);
    }
    this.#pos += 8;
    return Number(v);
  }

  /** A view (no copy) of the next n bytes. */
  fixed(n: number, field: string): Uint8Array {
    this.#need(n, field);
    const out = new Uint8Array(this.#buf.buffer, this.#buf.byteOffset + this.#pos, n);
    this.#pos += n;
    return out;
  }

  /** lp(x) with a maximum length; returns a view. Running past the end is ENCODING, a complete but too long field LIMIT. */
  lp(field: string, maxLength: number): Uint8Array {
    const n = this.u32(`${field} length`);
    this.#need(n, field);
    if (n > maxLength) {
      throw new IdentityError('LIMIT', `${this.#what}: ${field} is ${n} bytes, over the limit of ${maxLength}`);
    }
    return this.fixed(n, field);
  }

  str(field: string, maxBytes: number): string {
    return fromUtf8(this.lp(field, maxBytes), `${this.#what}: ${field}`);
  }

  /** u32 count of a list whose items take at least minItemBytes each, bounded. */
  count(field: string, max: number, minItemBytes: number): number {
    const n = this.u32(`${field} count`);
    if (n * minItemBytes > this.remaining) {
      throw new IdentityError('ENCODING', `${this.#what}: ${n} ${field} cannot fit in the remaining ${this.remaining} bytes`);
    }
    if (n > max) throw new IdentityError('LIMIT', `${this.#what}: ${n} ${field}, over the limit of ${max}`);
    return n;
  }

  end(): void {
    if (this.#pos !== this.#buf.length) {
      throw new IdentityError('ENCODING', `${this.#what}: ${this.#buf.length - this.#pos} trailing bytes`);
    }
  }
}
