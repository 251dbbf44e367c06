import { describe, expect, it } from 'vitest';
import {
  MemoryTree,
  consistencyProof,
  emptyRoot,
  inclusionProof,
  leafHash,
  nodeHash,
  rootFromInclusionProof,
  verifyConsistency,
  verifyInclusion,
} from '../../ledger/index.ts';
import td from './vectors/transparency-dev-merkle.json' with { type: 'json' };
import rfc from './vectors/rfc9162-example.json' with { type: 'json' };
import { flipBit, hex, mth, refLeafHash } from './reference.ts';

const h = (s: string): Buffer => Buffer.from(s, 'hex');
const b64 = (s: string): Buffer => Buffer.from(s, 'base64');
const leafHashes = td.leaves.map((l) => leafHash(h(l)));

function treeOf(n: number): MemoryTree {
  const t = new MemoryTree();
  for (const lh of leafHashes.slice(0, n)) t.appendLeafHash(lh);
  return t;
}

describe('RFC 9162 hashing primitives', () => {
  it('empty root is SHA-256 of the empty string', () => {
    expect(hex(emptyRoot())).toBe(td.emptyTreeHash);
    expect(hex(new MemoryTree().root())).toBe(td.emptyTreeHash);
  });

  it('leaf and node hashes use the 0x00 / 0x01 prefixes', () => {
    const d = Buffer.from('hello');
    expect(hex(leafHash(d))).toBe(hex(refLeafHash(d)));
    const l = leafHash(Buffer.from('l'));
    const r = leafHash(Buffer.from('r'));
    expect(hex(nodeHash(l, r))).toBe(hex(mth([l, r])));
    expect(hex(nodeHash(l, r))).not.toBe(hex(nodeHash(r, l)));
    // A large leaf (beyond the internal scratch buffer) hashes the same.
    const big = Buffer.alloc(10_000, 7);
    expect(hex(leafHash(big))).toBe(hex(refLeafHash(big)));
  });

  it('returned hashes are independent copies', () => {
    const a = leafHash(Buffer.from('a'));
    const before = hex(a);
    leafHash(Buffer.from('b'));
    expect(hex(a)).toBe(before);
  });
});

describe('transparency-dev/merkle vectors (proof/verify_test.go)', () => {
  it('roots of trees of 1..8 leaves', () => {
    const t = treeOf(8);
    td.roots.forEach((root, i) => expect(hex(t.root(i + 1))).toBe(root));
  });

  it.each(td.inclusionProofs)('inclusion proof leaf $leaf of $size: generated and verified', (v) => {
    const t = treeOf(8);
    const index = v.leaf - 1;
    expect(t.inclusionProof(index, v.size).map(hex)).toEqual(v.proof);
    const proof = v.proof.map(h);
    const root = h(td.roots[v.size - 1]!);
    expect(verifyInclusion(leafHashes[index]!, index, v.size, proof, root)).toBe(true);
    expect(hex(rootFromInclusionProof(leafHashes[index]!, index, v.size, proof)!)).toBe(hex(root));
  });

  it.each(td.consistencyProofs)('consistency proof $size1 -> $size2: generated and verified', (v) => {
    const t = treeOf(8);
    expect(t.consistencyProof(v.size1, v.size2).map(hex)).toEqual(v.proof);
    expect(verifyConsistency(v.size1, v.size2, v.proof.map(h), h(td.roots[v.size1 - 1]!), h(td.roots[v.size2 - 1]!))).toBe(true);
  });

  it.each(td.testdata.inclusion)('testdata $file', (v) => {
    const ok = verifyInclusion(b64(v.leafHash), v.leafIdx, v.treeSize, (v.proof ?? []).map(b64), b64(v.root));
    expect(ok).toBe(!v.wantErr);
  });

  it.each(td.testdata.consistency)('testdata $file', (v) => {
    const ok = verifyConsistency(v.size1, v.size2, (v.proof ?? []).map(b64), b64(v.root1), b64(v.root2));
    expect(ok).toBe(!v.wantErr);
  });
});

describe('RFC 9162 §2.1.5 worked example (7 leaves)', () => {
  const t = treeOf(7);
  const node = (label: string): string => {
    const [a, b] = rfc.nodes[label as keyof typeof rfc.nodes];
    return hex(mth(leafHashes.slice(a, b)));
  };

  it('root is the "hash" node', () => {
    expect(hex(t.root())).toBe(node('hash'));
    expect(hex(t.root())).toBe(td.roots[6]);
  });

  it.each(rfc.inclusion)('inclusion proof of d$index is [$proof]', (v) => {
    const proof = t.inclusionProof(v.index, v.size);
    expect(proof.map(hex)).toEqual(v.proof.map(node));
    expect(verifyInclusion(leafHashes[v.index]!, v.index, v.size, proof, t.root())).toBe(true);
  });

  it.each(rfc.consistency)('consistency proof $name is [$proof]', (v) => {
    const proof = t.consistencyProof(v.size1, v.size2);
    expect(proof.map(hex)).toEqual(v.proof.map(node));
    expect(verifyConsistency(v.size1, v.size2, proof, t.root(v.size1), t.root(v.size2))).toBe(true);
  });

  it('every single-bit change of any proof node is rejected (exhaustive)', () => {
    for (const v of rfc.inclusion) {
      const proof = t.inclusionProof(v.index, v.size);
      for (let i = 0; i < proof.length; i++) {
        for (let bit = 0; bit < 256; bit++) {
          const bad = proof.slice();
          bad[i] = flipBit(proof[i]!, bit);
          expect(verifyInclusion(leafHashes[v.index]!, v.index, v.size, bad, t.root())).toBe(false);
        }
      }
    }
    for (const v of rfc.consistency) {
      const proof = t.consistencyProof(v.size1, v.size2);
      for (let i = 0; i < proof.length; i++) {
        for (let bit = 0; bit < 256; bit++) {
          const bad = proof.slice();
          bad[i] = flipBit(proof[i]!, bit);
          expect(verifyConsistency(v.size1, v.size2, bad, t.root(v.size1), t.root(v.size2))).toBe(false);
        }
      }
    }
  });
});

describe('verifier probes (the transparency-dev corruption list, applied to every vector)', () => {
  const some = h('abacaba000000000000000000000000000000000000000000060061e00123456');
  const t = treeOf(8);

  it('inclusion: wrong index, size, leaf, root, garbage, removed/inserted components', () => {
    for (const v of td.inclusionProofs.filter((p) => p.proof.length > 0)) {
      const i = v.leaf - 1;
      const proof = v.proof.map(h);
      const root = h(td.roots[v.size - 1]!);
      const lh = leafHashes[i]!;
      const probes: [number, number, Uint8Array, Uint8Array, Uint8Array[]][] = [
        [i - 1, v.size, root, lh, proof],
        [i + 1, v.size, root, lh, proof],
        [i ^ 2, v.size, root, lh, proof],
        [i, v.size * 2, root, lh, proof],
        [i, Math.floor(v.size / 2), root, lh, proof],
        [i, v.size, root, Buffer.from('WrongLeaf'), proof],
        [i, v.size, emptyRoot(), lh, proof],
        [i, v.size, some, lh, proof],
        [i, v.size, root, lh, [...proof, new Uint8Array(0)]],
        [i, v.size, root, lh, [...proof, root]],
        [i, v.size, root, lh, [new Uint8Array(0), ...proof]],
        [i, v.size, root, lh, [root, ...proof]],
        [i, v.size, root, lh, proof.slice(0, -1)],
      ];
      if (proof.length > 1) probes.push([i, v.size, root, lh, [proof[0]!, some, ...proof.slice(1)]]);
      for (const [idx, size, r, leaf, p] of probes) expect(verifyInclusion(leaf, idx, size, p, r)).toBe(false);
    }
  });

  it('consistency: wrong sizes, roots, empty/garbage/truncated proofs', () => {
    for (const v of td.consistencyProofs.filter((p) => p.proof.length > 0)) {
      const proof = v.proof.map(h);
      const r1 = h(td.roots[v.size1 - 1]!);
      const r2 = h(td.roots[v.size2 - 1]!);
      const probes: [number, number, Uint8Array, Uint8Array, Uint8Array[]][] = [
        [v.size1 - 1, v.size2, r1, r2, proof],
        [v.size1 + 1, v.size2, r1, r2, proof],
        [v.size1 ^ 2, v.size2, r1, r2, proof],
        [v.size1, v.size2 * 2, r1, r2, proof],
        [v.size1, Math.floor(v.size2 / 2), r1, r2, proof],
        [v.size1, v.size2, Buffer.from('WrongRoot'), r2, proof],
        [v.size1, v.size2, r1, Buffer.from('WrongRoot'), proof],
        [v.size1, v.size2, r2, r1, proof],
        [v.size1, v.size2, r1, r2, []],
        [v.size1, v.size2, r1, r2, [...proof, new Uint8Array(0)]],
        [v.size1, v.size2, r1, r2, [...proof, r1]],
        [v.size1, v.size2, r1, r2, [...proof, r2]],
        [v.size1, v.size2, r1, r2, [new Uint8Array(0), ...proof]],
        [v.size1, v.size2, r1, r2, [r1, ...proof]],
        [v.size1, v.size2, r1, r2, [r2, ...proof]],
        [v.size1, v.size2, r1, r2, [proof[0]!, ...proof]],
        [v.size1, v.size2, r1, r2, proof.slice(0, -1)],
      ];
      for (const [s1, s2, a, b, p] of probes) expect(verifyConsistency(s1, s2, p, a, b)).toBe(false);
    }
  });

  it('edge cases: empty trees, equal sizes, time travel, malformed input', () => {
    const e = emptyRoot();
    const r1 = t.root(1);
    expect(verifyConsistency(0, 0, [], e, e)).toBe(true);
    expect(verifyConsistency(0, 5, [], e, t.root(5))).toBe(true);
    expect(verifyConsistency(0, 5, [], some, t.root(5))).toBe(false); // size-0 root must be SHA-256("")
    expect(verifyConsistency(0, 5, [e], e, t.root(5))).toBe(false);
    expect(verifyConsistency(1, 1, [], r1, r1)).toBe(true);
    expect(verifyConsistency(1, 1, [], r1, some)).toBe(false);
    expect(verifyConsistency(1, 1, [e], r1, r1)).toBe(false);
    expect(verifyConsistency(2, 1, [], r1, r1)).toBe(false);
    expect(verifyConsistency(1, 2, [], r1, t.root(2))).toBe(false);
    expect(verifyConsistency(-1, 2, [], r1, t.root(2))).toBe(false);
    expect(verifyConsistency(1.5, 2, [], r1, t.root(2))).toBe(false);
    expect(verifyInclusion(r1, 0, 1, [], r1)).toBe(true);
    expect(verifyInclusion(r1, 0, 0, [], r1)).toBe(false);
    expect(verifyInclusion(r1, 1, 1, [], r1)).toBe(false);
    expect(verifyInclusion(r1, -1, 1, [], r1)).toBe(false);
    expect(verifyInclusion(r1, 0, 1, [], new Uint8Array(0))).toBe(false);
    expect(verifyInclusion(new Uint8Array(0), 0, 1, [], r1)).toBe(false);
    expect(verifyInclusion(r1, 0, Number.MAX_SAFE_INTEGER + 1, [], r1)).toBe(false);
    expect(rootFromInclusionProof(r1, 0, 2, [])).toBeNull();
  });

  it('generators reject out-of-range arguments', () => {
    expect(() => inclusionProof(t, 8, 8)).toThrow(/not below/);
    expect(() => consistencyProof(t, 5, 4)).toThrow(/exceeds/);
    expect(consistencyProof(t, 0, 8)).toEqual([]);
    expect(consistencyProof(t, 8, 8)).toEqual([]);
  });
});
