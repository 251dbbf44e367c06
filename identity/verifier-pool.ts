// Ed25519 verification off the event loop. A node verifies one signature per accepted envelope (and
// one per relay receipt); at a few thousand messages a second that is the largest single cost on the
// main thread. The pool hands the verifications queued in one turn of the event loop to a worker
// thread as one batch, so the main thread keeps serving gRPC and SQLite while the worker verifies.
// Results are the same as verifySignature(); if the worker cannot run, verification falls back to
// the calling thread, so a broken worker costs speed, never correctness.
import { Worker } from 'node:worker_threads';
import { verifySignature } from './keys.ts';

// The worker keeps KeyObjects for the keys it has seen (most traffic comes from few senders).
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const crypto = require('node:crypto');
const keys = new Map();
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
function keyOf(raw) {
  const id = Buffer.from(raw).toString('latin1');
  let key = keys.get(id);
  if (key === undefined) {
    key = crypto.createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
    if (keys.size >= 4096) keys.delete(keys.keys().next().value);
    keys.set(id, key);
  }
  return key;
}
// A batch arrives packed in one transferred buffer: per item u32 data length, key (32), signature (64), data.
parentPort.on('message', ({ id, count, packed }) => {
  const bytes = Buffer.from(packed);
  const results = new Uint8Array(count);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const length = bytes.readUInt32LE(at);
    const publicKey = bytes.subarray(at + 4, at + 36);
    const signature = bytes.subarray(at + 36, at + 100);
    const data = bytes.subarray(at + 100, at + 100 + length);
    at += 100 + length;
    try { results[i] = crypto.verify(null, data, keyOf(publicKey), signature) ? 1 : 0; } catch { results[i] = 0; }
  }
  parentPort.postMessage({ id, results }, [results.buffer]);
});
`;

/** Batches smaller than this are verified on the calling thread. */
const MIN_WORKER_BATCH = 4;

/** An Ed25519 check as the node runs it: verifySignature's answer, possibly computed on another thread. */
export type SignatureCheck = (publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array) => boolean | Promise<boolean>;

interface Pending { items: [Uint8Array, Uint8Array, Uint8Array][]; resolvers: ((ok: boolean) => void)[] }

export class SignatureVerifierPool {
  private worker?: Worker;
  private failed = false;
  private queued?: Pending;
  private readonly inFlight = new Map<number, Pending>();
  private nextId = 1;
  private started = false;

  /**
   * Enables the pool (verify() before start() verifies on the calling thread). The worker thread
   * itself starts with the first verification, so an idle node does not carry its memory.
   */
  start(): void {
    this.started = true;
  }

  private spawn(): void {
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref(); // referenced only while verifications are outstanding
    worker.on('message', ({ id, results }: { id: number; results: Uint8Array }) => {
      const batch = this.inFlight.get(id);
      if (!batch) return;
      this.inFlight.delete(id);
      if (this.inFlight.size === 0) worker.unref();
      batch.resolvers.forEach((resolve, i) => resolve(results[i] === 1));
    });
    worker.on('error', () => this.fail());
    worker.on('exit', () => this.fail());
    this.worker = worker;
  }

  /** Stops the worker; outstanding verifications finish on the calling thread. */
  async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    this.started = false;
    this.failed = false;
    this.drainLocally();
    if (worker) {
      worker.removeAllListeners('exit');
      worker.removeAllListeners('error');
      await worker.terminate();
    }
  }

  /** Verifies a pure Ed25519 signature; resolves false for malformed keys or signatures (never rejects). */
  verify(publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): Promise<boolean> {
    if (this.started && !this.worker && !this.failed) this.spawn();
    if (!this.worker || publicKey?.length !== 32 || signature?.length !== 64) {
      return Promise.resolve(verifySignature(publicKey, data, signature));
    }
    return new Promise((resolve) => {
      if (!this.queued) {
        this.queued = { items: [], resolvers: [] };
        setImmediate(() => this.send());
      }
      this.queued.items.push([publicKey, data, signature]);
      this.queued.resolvers.push(resolve);
    });
  }

  private send(): void {
    const batch = this.queued;
    this.queued = undefined;
    if (!batch) return;
    // A hand-off costs the main thread ~45 us, a verification ~75 us: for a batch of 1-3 the saving does
    // not pay for the extra work on a machine whose cores are all busy, so small batches stay here.
    if (!this.worker || batch.items.length < MIN_WORKER_BATCH) {
      batch.resolvers.forEach((resolve, i) => resolve(verifySignature(...batch.items[i]!)));
      return;
    }
    // Views may sit on large buffers (a whole received frame) that postMessage would copy whole:
    // pack just the bytes needed into one buffer and transfer it.
    let size = 0;
    for (const [, data] of batch.items) size += 100 + data.length;
    const packed = new Uint8Array(size);
    const view = new DataView(packed.buffer);
    let at = 0;
    for (const [publicKey, data, signature] of batch.items) {
      view.setUint32(at, data.length, true);
      packed.set(publicKey, at + 4);
      packed.set(signature, at + 36);
      packed.set(data, at + 100);
      at += 100 + data.length;
    }
    const id = this.nextId++;
    this.inFlight.set(id, batch);
    this.worker.ref();
    this.worker.postMessage({ id, count: batch.items.length, packed: packed.buffer }, [packed.buffer]);
  }

  private fail(): void {
    this.worker = undefined;
    this.failed = true;
    this.drainLocally();
  }

  /** Finishes every outstanding verification on this thread. */
  private drainLocally(): void {
    for (const batch of this.inFlight.values()) batch.resolvers.forEach((resolve, i) => resolve(verifySignature(...batch.items[i]!)));
    this.inFlight.clear();
    this.send();
  }
}
