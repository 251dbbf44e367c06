/**
 * RFC 9162 §2.1.1 Merkle Tree Hash primitives (SHA-256):
 *   leaf hash  = SHA-256(0x00 || data)
 *   node hash  = SHA-256(0x01 || left || right)
 *   empty tree = SHA-256("")
 *
 * node:crypto's one-shot `hash()` is used with a `latin1` string digest that is turned back into a
 * pooled Buffer: on Node 24 that is ~3x cheaper per call than asking for a 'buffer' digest, and these
 * functions sit on the append and verification hot paths (64-byte inputs, call overhead dominates).
 */
import { hash } from 'node:crypto';
import { LedgerError } from './errors.ts';

export const HASH_SIZE = 32;

const nodeScratch = Buffer.alloc(1 + 2 * HASH_SIZE);
nodeScratch[0] = 0x01;
let leafScratch = Buffer.alloc(1 + 256);

/** SHA-256 of `data`. */
export function sha256(data: Uint8Array | string): Uint8Array {
  return Buffer.from(hash('sha256', data, 'binary'), 'latin1');
}

const EMPTY_ROOT_BYTES = sha256(new Uint8Array(0));

/** Root hash of the empty tree, SHA-256(""). A fresh copy each call. */
export function emptyRoot(): Uint8Array {
  return Uint8Array.from(EMPTY_ROOT_BYTES);
}

/** RFC 9162 leaf hash: SHA-256(0x00 || data). */
export function leafHash(data: Uint8Array): Uint8Array {
  const n = data.length + 1;
  if (n > leafScratch.length) leafScratch = Buffer.alloc(Math.max(n, leafScratch.length * 2));
  leafScratch[0] = 0x00;
  leafScratch.set(data, 1);
  return Buffer.from(hash('sha256', leafScratch.subarray(0, n), 'binary'), 'latin1');
}

/** RFC 9162 interior node hash: SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  if (left.length !== HASH_SIZE || right.length !== HASH_SIZE) {
    throw new LedgerError('BAD_ARGUMENT', 'nodeHash: both children must be 32-byte hashes');
  }
  nodeScratch.set(left, 1);
  nodeScratch.set(right, 1 + HASH_SIZE);
  return Buffer.from(hash('sha256', nodeScratch, 'binary'), 'latin1');
}

/**
 * Hash of two adjacent hashes: SHA-256(0x01 || src[srcOffset .. srcOffset + 64)) written into `out`
 * at `outOffset`. Sibling nodes sit next to each other in tile buffers, so this saves two copies.
 */
export function hashAdjacentInto(src: Buffer, srcOffset: number, out: Buffer, outOffset: number): void {
  src.copy(nodeScratch, 1, srcOffset, srcOffset + 2 * HASH_SIZE);
  out.write(hash('sha256', nodeScratch, 'binary'), outOffset, HASH_SIZE, 'latin1');
}

/** Byte equality (public data: no constant-time requirement). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
}

export function toBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('base64');
}

/** View of `b` as a latin1 string (one char per byte); used by the verification fast path. */
export function latin1(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('latin1');
}
