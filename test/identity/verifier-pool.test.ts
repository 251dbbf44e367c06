// The worker-thread verifier must answer exactly as verifySignature does, batch or not, and keep
// answering (on the calling thread) once stopped.
import { describe, it, expect } from 'vitest';
import { generateSigningKeyPair, sign, verifySignature, SignatureVerifierPool, randomBytes } from '../../identity/index.ts';

describe('SignatureVerifierPool', () => {
  it('gives the same answers as verifySignature for valid, tampered and malformed input, in one batch', async () => {
    const pool = new SignatureVerifierPool();
    pool.start();
    const signers = Array.from({ length: 3 }, () => generateSigningKeyPair());
    const cases: [Uint8Array, Uint8Array, Uint8Array][] = [];
    for (let i = 0; i < 300; i++) {
      const signer = signers[i % 3]!;
      const data = randomBytes(50 + (i % 200));
      const signature = sign(signer.privateKey, data);
      switch (i % 5) {
        case 0: cases.push([signer.publicKey, data, signature]); break;
        case 1: { const bad = Uint8Array.from(data); bad[0]! ^= 1; cases.push([signer.publicKey, bad, signature]); break; }
        case 2: cases.push([signers[(i + 1) % 3]!.publicKey, data, signature]); break; // another key
        case 3: cases.push([signer.publicKey, data, signature.subarray(0, 63)]); break; // malformed signature
        default: cases.push([new Uint8Array(32).fill(0xff), data, signature]); // not a curve point
      }
    }
    const answers = await Promise.all(cases.map(([k, d, s]) => pool.verify(k, d, s)));
    expect(answers).toEqual(cases.map(([k, d, s]) => verifySignature(k, d, s)));
    expect(answers.filter(Boolean).length).toBe(60);
    await pool.stop();
    // Stopped: verification goes on, on this thread.
    const [k, d, s] = cases[0]!;
    await expect(pool.verify(k, d, s)).resolves.toBe(true);
  });

  it('finishes verifications still outstanding when it is stopped', async () => {
    const pool = new SignatureVerifierPool();
    pool.start();
    const signer = generateSigningKeyPair();
    const data = randomBytes(64);
    const pending = Array.from({ length: 50 }, () => pool.verify(signer.publicKey, data, sign(signer.privateKey, data)));
    await pool.stop();
    expect(await Promise.all(pending)).toEqual(Array(50).fill(true));
  });
});

describe('SignatureVerifierPool when its worker dies', () => {
  it('answers outstanding and later verifications on the calling thread', async () => {
    const pool = new SignatureVerifierPool();
    pool.start();
    const signer = generateSigningKeyPair();
    const data = randomBytes(64);
    const good = sign(signer.privateKey, data);
    const bad = Uint8Array.from(good);
    bad[5]! ^= 1;
    // Enough in one turn to go to the worker (its thread starts with the first verification).
    const first = await Promise.all(Array.from({ length: 8 }, (_, i) => pool.verify(signer.publicKey, data, i % 2 ? bad : good)));
    expect(first).toEqual([true, false, true, false, true, false, true, false]);
    // Fault injection: the worker thread exits under the pool.
    const worker = (pool as unknown as { worker: { terminate(): Promise<number> } }).worker;
    const pending = Array.from({ length: 8 }, (_, i) => pool.verify(signer.publicKey, data, i % 2 ? bad : good));
    await worker.terminate();
    expect(await Promise.all(pending)).toEqual([true, false, true, false, true, false, true, false]);
    expect(await Promise.all(Array.from({ length: 8 }, () => pool.verify(signer.publicKey, data, bad)))).toEqual(Array(8).fill(false));
    await pool.stop();
  });
});
