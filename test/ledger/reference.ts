/**
 * Test oracle: RFC 9162 §2.1 definitions written as literally as possible (recursive, on arrays,
 * with createHash), independent of ledger/proof.ts.
 */
import { createHash } from 'node:crypto';

export function refLeafHash(data: Uint8Array): Buffer {
  return createHash('sha256').update(Buffer.of(0x00)).update(data).digest();
}

export function refNodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(Buffer.of(0x01)).update(left).update(right).digest();
}

function k(n: number): number {
  let p = 1;
  while (p * 2 < n) p *= 2;
  return p;
}

/** MTH over leaf hashes (D already hashed with the leaf prefix). */
export function mth(h: readonly Uint8Array[]): Buffer {
  if (h.length === 0) return createHash('sha256').digest();
  if (h.length === 1) return Buffer.from(h[0]!);
  const s = k(h.length);
  return refNodeHash(mth(h.slice(0, s)), mth(h.slice(s)));
}

/** PATH(m, D[n]). */
export function refPath(m: number, h: readonly Uint8Array[]): Buffer[] {
  if (h.length <= 1) return [];
  const s = k(h.length);
  return m < s
    ? [...refPath(m, h.slice(0, s)), mth(h.slice(s))]
    : [...refPath(m - s, h.slice(s)), mth(h.slice(0, s))];
}

function subproof(m: number, h: readonly Uint8Array[], b: boolean): Buffer[] {
  const n = h.length;
  if (m === n) return b ? [] : [mth(h)];
  const s = k(n);
  return m <= s
    ? [...subproof(m, h.slice(0, s), b), mth(h.slice(s))]
    : [...subproof(m - s, h.slice(s), false), mth(h.slice(0, s))];
}

/** PROOF(m, D[n]) for 0 < m < n (empty otherwise). */
export function refProof(m: number, h: readonly Uint8Array[]): Buffer[] {
  if (m === 0 || m === h.length) return [];
  return subproof(m, h, true);
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

export function flipBit(b: Uint8Array, bit: number): Uint8Array {
  const c = Uint8Array.from(b);
  c[bit >> 3]! ^= 1 << (bit & 7);
  return c;
}

/** Deterministic pseudo-random bytes (SHA-256 counter mode) for reproducible fixtures. */
export function detBytes(seed: string, i: number, len = 32): Buffer {
  const out = Buffer.alloc(len);
  for (let off = 0, c = 0; off < len; off += 32, c++) {
    createHash('sha256').update(`${seed}/${i}/${c}`).digest().copy(out, off);
  }
  return out;
}
