// Throwaway: A's store pattern (accept with one remote recipient, then delivered), bytes written and CPU per message.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Storage } from '../gateway/storage.ts';

const N = Number(process.argv[2] ?? 6000);
const BATCH = 32;
let seqn = 0;
const PRELOAD = Number(process.argv[3] ?? 20000);
const io = () => Number(/write_bytes: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8'))![1]);
const dir = mkdtempSync(join(tmpdir(), 'walbench-'));
const storage = new Storage(join(dir, 'store.sqlite'), { durability: 'deferred' });
const B = process.env.MODE === 'b';
if (B) storage.addMailbox({ address: 'bob@b.test', did: 'did:key:z6Mkbob', signingKeyId: 'did:key:z6Mkbob#k', signingPublicKey: new Uint8Array(32), agreementKeyId: 'did:key:z6Mkbob#x', agreementPublicKey: new Uint8Array(32), tokenSha256: 'aa', documentJson: '{}', createdMs: Date.now() } as never);
const receipt = JSON.stringify({ logOrigin: 'b.test/log', leafIndex: 123456, checkpointSize: 123460, messageHash: randomBytes(32).toString('hex'), signature: randomBytes(64).toString('hex'), batchSize: 32, batchIndex: 7, batchPath: Array.from({ length: 5 }, () => randomBytes(32).toString('hex')) });
async function round(n: number, measure: boolean) {
  const w0 = io(); const c0 = process.cpuUsage();
  let cs = 0, cu = 0;
  for (let i = 0; i < n; i += BATCH) {
    const ids = Array.from({ length: BATCH }, () => { const id = randomBytes(16); if (process.env.TIMEID) id.writeUIntBE(Date.now() * 16 + (seqn++ & 15), 0, 6); return id; });
    const envs = ids.map(() => randomBytes(3049));
    let t = process.cpuUsage();
    const seqs = await Promise.all(ids.map((id, k) => storage.storeEnvelope({ messageId: id, expiresMs: Date.now() + 86400000, envelope: envs[k]!, mailboxes: B ? ['bob@b.test'] : [], logIndex: i,
      ...(B ? {} : { remote: { recipients: [{ address: 'bob@b.test', domain: 'b.test' }], sender: 'alice@a.test', senderDomain: 'a.test' } }) })));
    let d = process.cpuUsage(t); cs += d.user + d.system; t = process.cpuUsage();
    if (process.env.NOUPDATE) continue;
    if (B) { await Promise.all(seqs.map((m) => storage.ack('bob@b.test', [m.get('bob@b.test')!]))); d = process.cpuUsage(t); cu += d.user + d.system; continue; }
    await Promise.all(ids.map((id) => storage.updateOutboundMany(storage.outboundOf(id).map((it) => ({ ...it, state: 'delivered' as const, attempts: 1, lastError: '', receipt })))));
    d = process.cpuUsage(t); cu += d.user + d.system;
  }
  await new Promise((r) => setTimeout(r, 600)); // let the checkpoint run
  const c = process.cpuUsage(c0);
  if (measure) console.log(`${n} msgs: ${((io() - w0) / n / 1024).toFixed(1)} KiB written/msg, ${((c.user + c.system) / n).toFixed(1)} us CPU/msg (user ${(c.user / n).toFixed(1)}, sys ${(c.system / n).toFixed(1)}); store phase ${(cs / n).toFixed(1)}, update phase ${(cu / n).toFixed(1)}`);
}
await round(PRELOAD, false);
await round(N, true);
await round(N, true);
await storage.close();
rmSync(dir, { recursive: true, force: true });
