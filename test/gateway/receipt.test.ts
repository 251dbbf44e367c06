// Relay receipts (PROTOCOL.md §4.1 "Receipts"): single and batched forms, what a sending node accepts,
// and that a batch costs one signature check. The batch tree is recomputed here independently of the
// ledger module (RFC 9162 §2.1.1 hashing with node:crypto).
import { describe, it, expect } from 'vitest';
import { createHash } from 'node:crypto';
import { createDidResolver, didKeyFromEd25519, generateSigningKeyPair, verifySignature } from '../../identity/index.ts';
import {
  MAX_RECEIPT_BATCH, ReceiptBatcher, ReceiptCheckCache, receiptBatchSigningInput, receiptFromStored, receiptSigningInput,
  signReceiptBatch, storedReceipt, verifyReceipt, type ReceiptFields, type SignedReceipt,
} from '../../gateway/federation/receipt.ts';

const node = generateSigningKeyPair();
const nodeDid = didKeyFromEd25519(node.publicKey);
const resolver = createDidResolver();

function receiptFor(i: number): ReceiptFields {
  return { logOrigin: 'b.test/aftersmtp', leafIndex: 1000 + i, checkpointSize: i % 2 ? 0 : 999, messageHash: createHash('sha256').update(`message ${i}`).digest() };
}

const sha = (...parts: Uint8Array[]) => { const h = createHash('sha256'); for (const p of parts) h.update(p); return h.digest(); };
function leafBytes(r: ReceiptFields): Buffer {
  const b = Buffer.alloc(48);
  b.writeBigUInt64BE(BigInt(r.leafIndex), 0);
  b.writeBigUInt64BE(BigInt(r.checkpointSize), 8);
  Buffer.from(r.messageHash).copy(b, 16);
  return b;
}
/** RFC 9162 MTH over the leaves, written out recursively. */
function mth(leaves: Buffer[]): Buffer {
  if (leaves.length === 1) return sha(Buffer.from([0]), leaves[0]!);
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return sha(Buffer.from([1]), mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

const check = (r: ReceiptFields & Partial<SignedReceipt>, expectedHash = r.messageHash, cache?: ReceiptCheckCache, verify = verifySignature) =>
  verifyReceipt(r, expectedHash, nodeDid, resolver, verify, cache);

describe('relay receipts', () => {
  it('signs a lone receipt in the v1 form: the signature covers the receipt itself', async () => {
    const [one] = signReceiptBatch([receiptFor(0)], node.privateKey);
    expect(one!.batchSize).toBeUndefined();
    expect(verifySignature(node.publicKey, receiptSigningInput(one!), one!.signature)).toBe(true);
    await check(one!);
  });

  it('signs a batch once over the RFC 9162 root of its receipts; every receipt verifies on its own', async () => {
    for (const n of [2, 3, 5, 8, 13]) {
      const receipts = Array.from({ length: n }, (_, i) => receiptFor(i));
      const signed = signReceiptBatch(receipts, node.privateKey);
      const root = mth(receipts.map(leafBytes));
      expect(verifySignature(node.publicKey, receiptBatchSigningInput('b.test/aftersmtp', n, root), signed[0]!.signature)).toBe(true);
      expect(new Set(signed.map((s) => Buffer.from(s.signature).toString('hex'))).size).toBe(1);
      for (const [i, s] of signed.entries()) {
        expect(s.batchSize).toBe(n);
        expect(s.batchIndex).toBe(i);
        await check(s);
      }
    }
  });

  it('refuses a batched receipt when any signed field, its position or its path is altered', async () => {
    const signed = signReceiptBatch(Array.from({ length: 6 }, (_, i) => receiptFor(i)), node.privateKey);
    const r = signed[3]!;
    const flipped = (h: Uint8Array) => { const c = Uint8Array.from(h); c[0]! ^= 1; return c; };
    const otherHash = flipped(r.messageHash);
    const forgeries: [string, ReceiptFields & Partial<SignedReceipt>, Uint8Array, RegExp][] = [
      ['leaf index', { ...r, leafIndex: 7 }, r.messageHash, /not signed by a key/],
      ['checkpoint size', { ...r, checkpointSize: 5000 }, r.messageHash, /not signed by a key/],
      ['message hash', { ...r, messageHash: otherHash }, otherHash, /not signed by a key/],
      ['log origin', { ...r, logOrigin: 'c.test/aftersmtp' }, r.messageHash, /not signed by a key/],
      ['batch index', { ...r, batchIndex: 2 }, r.messageHash, /not signed by a key/],
      ['batch size', { ...r, batchSize: 7 }, r.messageHash, /not signed by a key|wrong length/],
      ['path hash', { ...r, batchPath: r.batchPath!.map((h, i) => (i === 0 ? flipped(h) : h)) }, r.messageHash, /not signed by a key/],
      ['path length', { ...r, batchPath: r.batchPath!.slice(1) }, r.messageHash, /wrong length/],
      ['position past the batch', { ...r, batchIndex: 6 }, r.messageHash, /invalid batch position/],
      ['negative position', { ...r, batchIndex: -1 }, r.messageHash, /invalid batch position/],
      ['oversized batch', { ...r, batchSize: MAX_RECEIPT_BATCH + 1 }, r.messageHash, /invalid batch position/],
      ['signature', { ...r, signature: flipped(r.signature) }, r.messageHash, /not signed by a key/],
      ['v1 form of a batch signature', { ...r, batchSize: 0 }, r.messageHash, /not signed by a key/],
    ];
    for (const [what, forged, expected, reason] of forgeries) {
      await expect(check(forged, expected), what).rejects.toMatchObject({ code: 'BAD_RECEIPT', message: expect.stringMatching(reason) });
    }
    // A receipt for another message than the one sent is no acknowledgement of it.
    await expect(check(r, otherHash)).rejects.toThrow(/another message hash/);
    // Signed by a key that is not the peer's.
    const stranger = signReceiptBatch(Array.from({ length: 3 }, (_, i) => receiptFor(i)), generateSigningKeyPair().privateKey);
    await expect(check(stranger[1]!)).rejects.toThrow(/not signed by a key of its DID document/);
  });

  it('checks the signature of a batch once, and a forged batch fails for every receipt in it', async () => {
    const signed = signReceiptBatch(Array.from({ length: 8 }, (_, i) => receiptFor(i)), node.privateKey);
    let calls = 0;
    const counting = (k: Uint8Array, d: Uint8Array, s: Uint8Array) => { calls++; return verifySignature(k, d, s); };
    const cache = new ReceiptCheckCache();
    await Promise.all(signed.map((s) => check(s, s.messageHash, cache, counting)));
    expect(calls).toBe(1);
    calls = 0;
    await Promise.all(signed.map((s) => check(s, s.messageHash, undefined, counting)));
    expect(calls).toBe(signed.length);

    const forgedSignature = new Uint8Array(64).fill(9);
    const results = await Promise.allSettled(signed.map((s) => check({ ...s, signature: forgedSignature }, s.messageHash, cache)));
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
  });

  it('batches the receipts asked for in one turn of the event loop, and only those', async () => {
    const batcher = new ReceiptBatcher(node.privateKey);
    const first = await Promise.all([0, 1, 2, 3, 4].map((i) => batcher.sign(receiptFor(i))));
    const second = await Promise.all([5, 6].map((i) => batcher.sign(receiptFor(i))));
    const lone = await batcher.sign(receiptFor(7));
    expect(first.map((s) => s.batchSize)).toEqual([5, 5, 5, 5, 5]);
    expect(second.map((s) => s.batchIndex)).toEqual([0, 1]);
    expect(Buffer.compare(Buffer.from(first[0]!.signature), Buffer.from(second[0]!.signature))).not.toBe(0);
    expect(lone.batchSize).toBeUndefined();
    for (const s of [...first, ...second, lone]) await check(s);
    expect(batcher.signAlone(receiptFor(8)).batchSize).toBeUndefined();
    // 5 + 2 + 1 + 1 receipts, 4 signatures.
    expect(batcher.stats).toEqual({ receipts: 9, signatures: 4 });
  });

  it('keeps receipts in a stored form that verifies as it was received', async () => {
    for (const r of [...signReceiptBatch(Array.from({ length: 3 }, (_, i) => receiptFor(i)), node.privateKey), ...signReceiptBatch([receiptFor(9)], node.privateKey)]) {
      const kept = JSON.parse(JSON.stringify(storedReceipt(r)));
      expect(kept.signature).toMatch(/^[0-9a-f]{128}$/);
      await check(receiptFromStored(kept), r.messageHash);
      await expect(check(receiptFromStored({ ...kept, leafIndex: kept.leafIndex + 1 }), r.messageHash)).rejects.toThrow(/not signed/);
    }
  });
});
