/**
 * Merkle proofs per RFC 9162 §2.1.
 *
 * Generation works over any {@link HashSource}: something that can return the hash of a *perfect*
 * subtree (2^level leaves, aligned). Every node an RFC 9162 proof needs is either such a subtree or a
 * right-edge subtree that is recomputed from perfect ones, so tiles, an in-memory tree or a test
 * oracle can all serve proofs.
 *
 * Verification follows the iterative algorithms of RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2
 * (consistency) literally, on plain numbers (indices up to 2^53 - 1; no 32-bit bit operations).
 * Verifiers never throw on hostile input: malformed hashes, sizes or proofs make them return false.
 */
import { hash } from 'node:crypto';
import { LedgerError } from './errors.ts';
import { HASH_SIZE, emptyRoot, latin1, nodeHash } from './hash.ts';

export interface HashSource {
  /**
   * MTH of the perfect subtree of height `level` at position `index`, i.e. of the leaves
   * [index * 2^level, (index + 1) * 2^level). Only called for subtrees that are complete.
   */
  subtreeHash(level: number, index: number): Uint8Array;
}

/** Largest power of two strictly smaller than n (n >= 2). */
function splitPoint(n: number): number {
  if (n <= 0x80000000) return 2 ** (31 - Math.clz32(n - 1));
  let k = 0x80000000;
  while (k * 2 < n) k *= 2;
  return k;
}

function log2Exact(k: number): number {
  if (k <= 0x80000000) return 31 - Math.clz32(k);
  let h = 31;
  while (2 ** h < k) h++;
  return h;
}

function checkSize(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new LedgerError('BAD_ARGUMENT', `${name} must be a non-negative safe integer, got ${v}`);
  }
}

/**
 * MTH(D[start:end]) for a range as it appears in the RFC recursion (start aligned to the largest
 * power of two not above end - start): greedy decomposition into perfect subtrees, folded from the right.
 */
function rangeHash(src: HashSource, start: number, end: number): Uint8Array {
  const n = end - start;
  if (n <= 0) {
    if (n === 0 && start === 0) return emptyRoot();
    throw new LedgerError('BAD_ARGUMENT', `empty or inverted range [${start}, ${end})`);
  }
  const parts: Uint8Array[] = [];
  let pos = start;
  while (pos < end) {
    // Largest 2^h with pos % 2^h == 0 and pos + 2^h <= end.
    let h = 0;
    while (pos % 2 ** (h + 1) === 0 && pos + 2 ** (h + 1) <= end) h++;
    parts.push(src.subtreeHash(h, pos / 2 ** h));
    pos += 2 ** h;
  }
  let acc = parts[parts.length - 1]!;
  for (let i = parts.length - 2; i >= 0; i--) acc = nodeHash(parts[i]!, acc);
  return acc;
}

/** Root hash of the first `size` leaves. */
export function rootHash(src: HashSource, size: number): Uint8Array {
  checkSize('size', size);
  return size === 0 ? emptyRoot() : rangeHash(src, 0, size);
}

/** RFC 9162 §2.1.3.1 PATH(index, D[0:size]), ordered from the leaf upwards. */
export function inclusionProof(src: HashSource, index: number, size: number): Uint8Array[] {
  checkSize('index', index);
  checkSize('size', size);
  if (index >= size) throw new LedgerError('BAD_ARGUMENT', `leaf index ${index} is not below tree size ${size}`);
  const proof: Uint8Array[] = [];
  const path = (m: number, start: number, n: number): void => {
    if (n === 1) return;
    const k = splitPoint(n);
    if (m < k) {
      path(m, start, k);
      proof.push(rangeHash(src, start + k, start + n));
    } else {
      path(m - k, start + k, n - k);
      proof.push(src.subtreeHash(log2Exact(k), start / k));
    }
  };
  path(index, 0, size);
  return proof;
}

/** RFC 9162 §2.1.4.1 PROOF(size1, D[0:size2]); empty when size1 is 0 or equals size2. */
export function consistencyProof(src: HashSource, size1: number, size2: number): Uint8Array[] {
  checkSize('size1', size1);
  checkSize('size2', size2);
  if (size1 > size2) throw new LedgerError('BAD_ARGUMENT', `size1 ${size1} exceeds size2 ${size2}`);
  const proof: Uint8Array[] = [];
  if (size1 === 0 || size1 === size2) return proof;
  const sub = (m: number, start: number, n: number, whole: boolean): void => {
    if (m === n) {
      if (!whole) proof.push(rangeHash(src, start, start + n));
      return;
    }
    const k = splitPoint(n);
    if (m <= k) {
      sub(m, start, k, whole);
      proof.push(rangeHash(src, start + k, start + n));
    } else {
      sub(m - k, start + k, n - k, false);
      proof.push(src.subtreeHash(log2Exact(k), start / k));
    }
  };
  sub(size1, 0, size2, true);
  return proof;
}

// ---------------------------------------------------------------------------------------------
// Verification. Intermediate hashes are carried as latin1 strings (one char per byte) so each step
// is one node:crypto call on a reused 65-byte buffer, without allocating Buffers.

const scratch = Buffer.alloc(1 + 2 * HASH_SIZE);
scratch[0] = 0x01;

function isHash(h: unknown): h is Uint8Array {
  return h instanceof Uint8Array && h.length === HASH_SIZE;
}

function isProof(proof: unknown): proof is readonly Uint8Array[] {
  if (!Array.isArray(proof)) return false;
  for (const p of proof) if (!isHash(p)) return false;
  return true;
}

/** HASH(0x01 || left || right) with the right child given as a latin1 string. */
function hashLR(left: Uint8Array, right: string): string {
  scratch.set(left, 1);
  scratch.write(right, 1 + HASH_SIZE, HASH_SIZE, 'latin1');
  return hash('sha256', scratch, 'binary');
}

/** HASH(0x01 || left || right) with the left child given as a latin1 string. */
function hashRL(left: string, right: Uint8Array): string {
  scratch.write(left, 1, HASH_SIZE, 'latin1');
  scratch.set(right, 1 + HASH_SIZE);
  return hash('sha256', scratch, 'binary');
}

function rootFromInclusionLatin1(
  leaf: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
): string | null {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return null;
  if (!isHash(leaf) || !isProof(proof)) return null;
  let fn = index;
  let sn = size - 1;
  let r = latin1(leaf);
  for (const p of proof) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = hashLR(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = hashRL(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

/**
 * RFC 9162 §2.1.3.2: the root implied by an inclusion proof, or null if the proof is malformed for
 * (index, size) (wrong length, index out of range, bad hash sizes).
 */
export function rootFromInclusionProof(
  leafHash: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
): Uint8Array | null {
  const r = rootFromInclusionLatin1(leafHash, index, size, proof);
  return r === null ? null : Buffer.from(r, 'latin1');
}

/** RFC 9162 §2.1.3.2 inclusion proof verification. */
export function verifyInclusion(
  leafHash: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!isHash(root)) return false;
  const r = rootFromInclusionLatin1(leafHash, index, size, proof);
  return r !== null && r === latin1(root);
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

/**
 * RFC 9162 §2.1.4.2 consistency proof verification, for 0 <= size1 <= size2.
 * Edge cases (outside the RFC's 0 < size1 < size2): size1 == size2 needs an empty proof and equal
 * roots; size1 == 0 needs an empty proof and root1 equal to the empty-tree hash SHA-256("").
 */
export function verifyConsistency(
  size1: number,
  size2: number,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
): boolean {
  if (!Number.isSafeInteger(size1) || !Number.isSafeInteger(size2) || size1 < 0 || size1 > size2) return false;
  if (!isHash(root1) || !isHash(root2) || !isProof(proof)) return false;
  const r1 = latin1(root1);
  const r2 = latin1(root2);
  if (size1 === size2) return proof.length === 0 && r1 === r2;
  if (size1 === 0) return proof.length === 0 && r1 === latin1(emptyRoot());
  if (proof.length === 0) return false;

  const path: readonly Uint8Array[] = isPowerOfTwo(size1) ? [root1, ...proof] : proof;
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = latin1(path[0]!);
  let sr = fr;
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = hashLR(c, fr);
      sr = hashLR(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = hashRL(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && fr === r1 && sr === r2;
}

/**
 * A complete in-memory Merkle tree (every level kept). Handy as a reference, for verifiers that hold a
 * small set of leaves, and for tests; the durable log is {@link TransparencyLog}.
 */
export class MemoryTree implements HashSource {
  /** levels[h][i] = hash of perfect subtree of height h at index i. */
  readonly #levels: Uint8Array[][] = [[]];

  get size(): number {
    return this.#levels[0]!.length;
  }

  /** Appends a leaf by its leaf hash. */
  appendLeafHash(h: Uint8Array): void {
    if (h.length !== HASH_SIZE) throw new LedgerError('BAD_ARGUMENT', 'leaf hash must be 32 bytes');
    let level = 0;
    let node = h;
    for (;;) {
      const row = (this.#levels[level] ??= []);
      row.push(node);
      if (row.length % 2 === 1) return;
      node = nodeHash(row[row.length - 2]!, node);
      level++;
    }
  }

  subtreeHash(level: number, index: number): Uint8Array {
    const h = this.#levels[level]?.[index];
    if (h === undefined) throw new LedgerError('NOT_FOUND', `no complete subtree at level ${level} index ${index}`);
    return h;
  }

  root(size: number = this.size): Uint8Array {
    if (size > this.size) throw new LedgerError('BAD_ARGUMENT', `size ${size} exceeds tree size ${this.size}`);
    return rootHash(this, size);
  }

  inclusionProof(index: number, size: number = this.size): Uint8Array[] {
    if (size > this.size) throw new LedgerError('BAD_ARGUMENT', `size ${size} exceeds tree size ${this.size}`);
    return inclusionProof(this, index, size);
  }

  consistencyProof(size1: number, size2: number = this.size): Uint8Array[] {
    if (size2 > this.size) throw new LedgerError('BAD_ARGUMENT', `size ${size2} exceeds tree size ${this.size}`);
    return consistencyProof(this, size1, size2);
  }
}
