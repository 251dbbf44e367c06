/**
 * The bytes a node anchors on a Substrate chain, and the Substrate account of its anchoring key.
 * Pure functions on node:crypto only: importing this module never loads @polkadot/api.
 *
 * Payload (78 bytes, see docs/ANCHORING.md):
 *   "ASMTP" (5 ASCII bytes) || 0x01 (version) || SHA-256(UTF-8 origin) (32) || u64 big-endian tree size (8) || root (32)
 */
import { createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import { LedgerError } from './errors.ts';

export const ANCHOR_MAGIC = 'ASMTP';
export const ANCHOR_VERSION = 0x01;
export const ANCHOR_PAYLOAD_SIZE = 5 + 1 + 32 + 8 + 32;

const MAGIC_BYTES = Buffer.from(ANCHOR_MAGIC, 'ascii');
const U64_MAX = (1n << 64n) - 1n;

export interface ParsedAnchorPayload {
  version: number;
  /** SHA-256 of the UTF-8 log origin (the origin itself is not on chain). */
  originHash: Uint8Array;
  /** Tree size as an unsigned 64-bit integer. */
  size: bigint;
  /** 32-byte RFC 9162 root hash. */
  root: Uint8Array;
}

/** SHA-256 of the UTF-8 encoding of `origin`, as carried in the payload. */
export function anchorOriginHash(origin: string): Uint8Array {
  if (typeof origin !== 'string' || origin.length === 0) throw new LedgerError('BAD_ARGUMENT', 'anchor origin must be a non-empty string');
  return createHash('sha256').update(origin, 'utf8').digest();
}

function toU64(size: number | bigint): bigint {
  if (typeof size === 'number') {
    if (!Number.isSafeInteger(size) || size < 0) throw new LedgerError('BAD_ARGUMENT', `anchor size must be a non-negative safe integer, got ${size}`);
    return BigInt(size);
  }
  if (typeof size !== 'bigint' || size < 0n || size > U64_MAX) throw new LedgerError('BAD_ARGUMENT', 'anchor size must fit in an unsigned 64-bit integer');
  return size;
}

/** The 78-byte anchor payload for checkpoint (origin, size, root). */
export function anchorPayload(origin: string, size: number | bigint, root: Uint8Array): Uint8Array {
  if (!(root instanceof Uint8Array) || root.length !== 32) throw new LedgerError('BAD_ARGUMENT', 'anchor root must be 32 bytes');
  const out = Buffer.alloc(ANCHOR_PAYLOAD_SIZE);
  MAGIC_BYTES.copy(out, 0);
  out[5] = ANCHOR_VERSION;
  out.set(anchorOriginHash(origin), 6);
  out.writeBigUInt64BE(toU64(size), 38);
  out.set(root, 46);
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/** Parses an anchor payload; throws LedgerError('BAD_ARGUMENT') saying what is wrong. */
export function parseAnchorPayload(bytes: Uint8Array): ParsedAnchorPayload {
  if (!(bytes instanceof Uint8Array)) throw new LedgerError('BAD_ARGUMENT', 'anchor payload must be bytes');
  if (bytes.length !== ANCHOR_PAYLOAD_SIZE) {
    throw new LedgerError('BAD_ARGUMENT', `anchor payload must be ${ANCHOR_PAYLOAD_SIZE} bytes, got ${bytes.length}`);
  }
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (!b.subarray(0, 5).equals(MAGIC_BYTES)) throw new LedgerError('BAD_ARGUMENT', 'anchor payload does not start with "ASMTP"');
  if (b[5] !== ANCHOR_VERSION) throw new LedgerError('BAD_ARGUMENT', `unsupported anchor payload version ${b[5]}`);
  return {
    version: b[5],
    originHash: Uint8Array.from(b.subarray(6, 38)),
    size: b.readBigUInt64BE(38),
    root: Uint8Array.from(b.subarray(46, 78)),
  };
}

// ---------------------------------------------------------------------------------------------
// Substrate account of an Ed25519 key

const BASE58_ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
const SS58_PREFIX = Buffer.from('SS58PRE', 'ascii');
/** Generic Substrate SS58 format. */
export const SS58_GENERIC = 42;

function base58Encode(bytes: Uint8Array): string {
  let n = BigInt('0x' + (Buffer.from(bytes).toString('hex') || '0'));
  let out = '';
  while (n > 0n) {
    out = BASE58_ALPHABET[Number(n % 58n)] + out;
    n /= 58n;
  }
  for (let i = 0; i < bytes.length && bytes[i] === 0; i++) out = '1' + out;
  return out;
}

function base58Decode(text: string): Uint8Array {
  let n = 0n;
  for (const ch of text) {
    const v = BASE58_ALPHABET.indexOf(ch);
    if (v < 0) throw new LedgerError('BAD_ARGUMENT', `invalid base58 character ${JSON.stringify(ch)}`);
    n = n * 58n + BigInt(v);
  }
  let hex = n === 0n ? '' : n.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  let zeros = 0;
  while (zeros < text.length && text[zeros] === '1') zeros++;
  return Uint8Array.from(Buffer.concat([Buffer.alloc(zeros), Buffer.from(hex, 'hex')]));
}

function ss58PrefixBytes(format: number): Uint8Array {
  if (!Number.isInteger(format) || format < 0 || format > 16383 || format === 46 || format === 47) {
    throw new LedgerError('BAD_ARGUMENT', `invalid SS58 format ${format}`);
  }
  if (format < 64) return Uint8Array.of(format);
  return Uint8Array.of(((format & 0b1111_1100) >> 2) | 0b0100_0000, (format >> 8) | ((format & 0b11) << 6));
}

function ss58Checksum(data: Uint8Array): Buffer {
  return createHash('blake2b512').update(SS58_PREFIX).update(data).digest().subarray(0, 2);
}

/**
 * SS58 address of a 32-byte public key used directly as an AccountId32 (an Ed25519 key is its own
 * Substrate account). `ss58Format` defaults to 42 (generic Substrate); chains have their own (Kusama
 * and its asset hub: 2, Polkadot: 0). The address is only a rendering: verification compares public keys.
 */
export function substrateAddress(publicKey: Uint8Array, ss58Format: number = SS58_GENERIC): string {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) throw new LedgerError('BAD_KEY', 'Substrate account public key must be 32 bytes');
  const data = Buffer.concat([ss58PrefixBytes(ss58Format), publicKey]);
  return base58Encode(Buffer.concat([data, ss58Checksum(data)]));
}

/** Decodes an SS58 address of a 32-byte account; returns the account bytes and the SS58 format. */
export function decodeSubstrateAddress(address: string): { publicKey: Uint8Array; ss58Format: number } {
  const raw = base58Decode(address);
  if (raw.length < 35) throw new LedgerError('BAD_ARGUMENT', 'SS58 address too short for a 32-byte account');
  const prefixLen = raw[0]! & 0b0100_0000 ? 2 : 1;
  if (raw.length !== prefixLen + 32 + 2) throw new LedgerError('BAD_ARGUMENT', 'SS58 address is not a 32-byte account');
  const data = raw.subarray(0, prefixLen + 32);
  if (!ss58Checksum(data).equals(raw.subarray(prefixLen + 32))) throw new LedgerError('BAD_ARGUMENT', 'SS58 checksum mismatch');
  const ss58Format = prefixLen === 1
    ? raw[0]!
    : ((raw[0]! & 0b0011_1111) << 2) | (raw[1]! >> 6) | ((raw[1]! & 0b0011_1111) << 8);
  return { publicKey: Uint8Array.from(raw.subarray(prefixLen, prefixLen + 32)), ss58Format };
}

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** Public key of a raw Ed25519 seed (32 bytes, or 64 bytes seed || public key, which is checked). */
export function ed25519PublicKeyFromSeed(seed: Uint8Array): Uint8Array {
  if (!(seed instanceof Uint8Array) || (seed.length !== 32 && seed.length !== 64)) {
    throw new LedgerError('BAD_KEY', 'anchoring key must be a 32-byte Ed25519 seed (or 64 bytes seed || public key)');
  }
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed.subarray(0, 32)]), format: 'der', type: 'pkcs8' });
  const publicKey = Buffer.from(createPublicKey(key).export({ format: 'jwk' }).x!, 'base64url');
  if (seed.length === 64 && !publicKey.equals(seed.subarray(32))) {
    throw new LedgerError('BAD_KEY', '64-byte anchoring key does not end in the public key of its seed');
  }
  return Uint8Array.from(publicKey);
}
