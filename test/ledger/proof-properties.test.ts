import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryTree, leafHash, rootFromInclusionProof, verifyConsistency, verifyInclusion } from '../../ledger/index.ts';
import { detBytes, flipBit, hex, mth, refPath, refProof } from './reference.ts';

// One tree of MAX leaves; every tree size up to MAX is a prefix of it.
const MAX = 2048;
const leaves = Array.from({ length: MAX }, (_, i) => detBytes('prop', i, 1 + (i % 40)));
const hashes = leaves.map(leafHash);
const tree = new MemoryTree();
for (const h of hashes) tree.appendLeafHash(h);

const sizeAndIndex = fc.integer({ min: 1, max: MAX }).chain((size) => fc.tuple(fc.constant(size), fc.integer({ min: 0, max: size - 1 })));
const twoSizes = fc
  .tuple(fc.integer({ min: 1, max: MAX }), fc.integer({ min: 1, max: MAX }))
  .map(([a, b]) => (a <= b ? [a, b] : [b, a]) as [number, number]);
const bit = fc.integer({ min: 0, max: 255 });
const RUNS = { numRuns: 150 };

describe('inclusion proofs over random tree sizes (<= 2048 leaves)', () => {
  it('match the RFC recursive definition and verify against the root', () => {
    fc.assert(
      fc.property(sizeAndIndex, ([size, index]) => {
        const proof = tree.inclusionProof(index, size);
        const prefix = hashes.slice(0, size);
        expect(proof.map(hex)).toEqual(refPath(index, prefix).map(hex));
        const root = tree.root(size);
        expect(hex(root)).toBe(hex(mth(prefix)));
        expect(verifyInclusion(hashes[index]!, index, size, proof, root)).toBe(true);
      }),
      RUNS,
    );
  });

  it('fail after flipping one bit of the leaf, any proof node, the index or the root', () => {
    fc.assert(
      fc.property(sizeAndIndex, bit, fc.nat(), fc.nat(53), ([size, index], b, which, ib) => {
        const proof = tree.inclusionProof(index, size);
        const root = tree.root(size);
        const leaf = hashes[index]!;
        expect(verifyInclusion(flipBit(leaf, b), index, size, proof, root)).toBe(false);
        expect(verifyInclusion(leaf, index, size, proof, flipBit(root, b))).toBe(false);
        if (proof.length > 0) {
          const bad = proof.slice();
          const i = which % proof.length;
          bad[i] = flipBit(proof[i]!, b);
          expect(verifyInclusion(leaf, index, size, bad, root)).toBe(false);
        }
        const otherIndex = index ^ 2 ** (ib % 12);
        expect(verifyInclusion(leaf, otherIndex, size, proof, root)).toBe(false);
        expect(verifyInclusion(leaf, index + 2 ** 40, size, proof, root)).toBe(false);
      }),
      RUNS,
    );
  });

  it('every index of a few sizes round-trips through rootFromInclusionProof', () => {
    for (const size of [1, 2, 3, 255, 256, 257, 1000]) {
      const root = hex(tree.root(size));
      for (let i = 0; i < size; i++) {
        expect(hex(rootFromInclusionProof(hashes[i]!, i, size, tree.inclusionProof(i, size))!)).toBe(root);
      }
    }
  });
});

describe('consistency proofs over random tree sizes (<= 2048 leaves)', () => {
  it('match the RFC recursive definition and verify', () => {
    fc.assert(
      fc.property(twoSizes, ([m, n]) => {
        const proof = tree.consistencyProof(m, n);
        expect(proof.map(hex)).toEqual(refProof(m, hashes.slice(0, n)).map(hex));
        expect(verifyConsistency(m, n, proof, tree.root(m), tree.root(n))).toBe(true);
      }),
      RUNS,
    );
  });

  it('fail after flipping one bit of any proof node or either root', () => {
    fc.assert(
      fc.property(twoSizes, bit, fc.nat(), ([m, n], b, which) => {
        const proof = tree.consistencyProof(m, n);
        const r1 = tree.root(m);
        const r2 = tree.root(n);
        expect(verifyConsistency(m, n, proof, flipBit(r1, b), r2)).toBe(false);
        expect(verifyConsistency(m, n, proof, r1, flipBit(r2, b))).toBe(false);
        if (proof.length > 0) {
          const bad = proof.slice();
          const i = which % proof.length;
          bad[i] = flipBit(proof[i]!, b);
          expect(verifyConsistency(m, n, bad, r1, r2)).toBe(false);
          expect(verifyConsistency(m, n, proof.slice(1), r1, r2)).toBe(false);
          expect(verifyConsistency(m, n, [...proof, proof[0]!], r1, r2)).toBe(false);
        }
      }),
      RUNS,
    );
  });

  it('exhaustively for all pairs of sizes up to 48', () => {
    for (let n = 1; n <= 48; n++) {
      for (let m = 1; m <= n; m++) {
        const proof = tree.consistencyProof(m, n);
        expect(proof.map(hex)).toEqual(refProof(m, hashes.slice(0, n)).map(hex));
        expect(verifyConsistency(m, n, proof, tree.root(m), tree.root(n))).toBe(true);
        if (m < n) expect(verifyConsistency(m, n, proof, tree.root(m), tree.root(n - 1))).toBe(false);
      }
    }
  });
});
