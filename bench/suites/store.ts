// The store's cost per message, for the node's write patterns, next to the floor's store (bench/floors/floor-store.ts:
// one append-only row per message, the same WAL group commit). Per message: bytes the process writes
// (WAL, checkpoints; /proc/self/io) and CPU over all its threads (process.cpuUsage). Messages arrive
// BATCH to an event-loop turn, as under load.
//   node bench/suites/store.ts            (BENCH_STORE_COUNT=6000 timed, BENCH_STORE_PRELOAD=20000 untimed, BENCH_STORE_BYTES=3049)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Store } from '../../gateway/store/index.ts';
import { FloorStore } from '../floors/floor-store.ts';
import { writtenBytes } from '../helpers/proc.ts';

const COUNT = Number(process.env.BENCH_STORE_COUNT ?? 6000);
const PRELOAD = Number(process.env.BENCH_STORE_PRELOAD ?? 20000);
const BYTES = Number(process.env.BENCH_STORE_BYTES ?? 3049); // a 2 KB message's envelope
const BATCH = 32;
const MAILBOX = 'bob@b.test';

const written = () => writtenBytes(process.pid);
// A relay receipt as the outbound queue keeps it (hex fields, a batch path of 5).
const receipt = JSON.stringify({ logOrigin: 'b.test/log', leafIndex: 123456, checkpointSize: 123460, messageHash: randomBytes(32).toString('hex'),
  signature: randomBytes(64).toString('hex'), batchSize: 32, batchIndex: 7, batchPath: Array.from({ length: 5 }, () => randomBytes(32).toString('hex')) });

type Pattern = (ids: Uint8Array[], envelopes: Uint8Array[]) => Promise<void>;

// Each message expires a day after it is stored, as a sender's default lifetime makes it (close to arrival order).
const lifetimeMs = 86_400_000;
const remote = { recipients: [{ address: MAILBOX, domain: 'b.test', transport: 'relay' as const }], sender: 'alice@a.test', senderDomain: 'a.test' };
/** The node's write patterns, each on a store of its own. */
const NODE_PATTERNS: [string, (storage: Store) => Pattern][] = [
  ['relay sender (A): queued, then delivered', (storage) => async (ids, envelopes) => {
    await Promise.all(ids.map((messageId, i) => storage.storeEnvelope({ messageId, expiresMs: Date.now() + lifetimeMs, envelope: envelopes[i]!, mailboxes: [], logIndex: i, remote })));
    await Promise.all(ids.map((id) => storage.outbound.updateMany(storage.outbound.of(id).map((item) => ({ ...item, state: 'delivered' as const, attempts: 1, lastError: '', receipt })))));
  }],
  ['relay sender, peer down: queued only', (storage) => async (ids, envelopes) => {
    await Promise.all(ids.map((messageId, i) => storage.storeEnvelope({ messageId, expiresMs: Date.now() + lifetimeMs, envelope: envelopes[i]!, mailboxes: [], logIndex: i, remote })));
  }],
  ['recipient node (B): stored, then acked', (storage) => async (ids, envelopes) => {
    const seqs = await Promise.all(ids.map((messageId, i) => storage.storeEnvelope({ messageId, expiresMs: Date.now() + lifetimeMs, envelope: envelopes[i]!, mailboxes: [MAILBOX], logIndex: i })));
    await Promise.all(seqs.map((s) => storage.deliveries.ack(MAILBOX, [s.get(MAILBOX)!])));
  }],
];

async function measure(pattern: Pattern, count: number): Promise<{ kib: number; cpuUs: number }> {
  const w0 = written();
  const c0 = process.cpuUsage();
  for (let done = 0; done < count; done += BATCH) {
    await pattern(Array.from({ length: BATCH }, () => randomBytes(16)), Array.from({ length: BATCH }, () => randomBytes(BYTES)));
  }
  await new Promise((resolve) => setTimeout(resolve, 600)); // the checkpoint worker copies the WAL (counted)
  const cpu = process.cpuUsage(c0);
  return { kib: (written() - w0) / count / 1024, cpuUs: (cpu.user + cpu.system) / count };
}

const dir = mkdtempSync(join(tmpdir(), 'asmtp-storebench-'));
try {
  const floor = new FloorStore(dir);
  const floorPattern: Pattern = async (ids, envelopes) => {
    const seqs = await Promise.all(envelopes.map((e, i) => floor.store(i, e)));
    for (const seq of seqs) floor.delivered(seq);
  };
  await measure(floorPattern, PRELOAD);
  const reference = await measure(floorPattern, COUNT);
  await floor.close();
  console.log(`bench:store  ${COUNT} messages of ${BYTES} B per pattern, ${PRELOAD} untimed first (a fresh store each), ${BATCH} per event-loop turn`);
  console.log(`${'pattern'.padEnd(44)}${'KiB written/msg'.padStart(16)}${'CPU us/msg'.padStart(12)}${'x floor CPU'.padStart(13)}`);
  const row = (name: string, r: { kib: number; cpuUs: number }) =>
    console.log(`${name.padEnd(44)}${r.kib.toFixed(1).padStart(16)}${r.cpuUs.toFixed(0).padStart(12)}${(r.cpuUs / reference.cpuUs).toFixed(2).padStart(12)}x`);
  row('floor: one appended row, then marked', reference);
  for (const [name, makePattern] of NODE_PATTERNS) {
    const storage = new Store(join(dir, `${name.replace(/\W+/g, '-')}.db`), { durability: 'deferred' });
    storage.mailboxes.add({ address: MAILBOX, did: 'did:key:z6MkBench', signingKeyId: 'did:key:z6MkBench#k', signingPublicKey: new Uint8Array(32), agreementKeyId: 'did:key:z6MkBench#x',
      agreementPublicKey: new Uint8Array(32), tokenSha256: '0'.repeat(64), documentJson: '{}', createdMs: Date.now() });
    const pattern = makePattern(storage);
    await measure(pattern, PRELOAD);
    row(name, await measure(pattern, COUNT));
    await storage.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
