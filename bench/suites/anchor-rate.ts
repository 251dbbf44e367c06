// Part of `npm run bench:ledger`: chain load against mail volume. A real chain (chopsticks, in-process),
// the node's SubstrateAnchor with a fixed interval, and a log growing 1x vs 100x faster: the number of
// extrinsics per interval must not change. Bounded: a few intervals per run.
import { createHash, randomBytes } from 'node:crypto';
import { SubstrateAnchor, ed25519PublicKeyFromSeed } from '../../ledger/index.ts';
import { accountNonce, startChain } from '../../test/chain.ts';

export async function anchorRate(opts: { intervalMs?: number; intervals?: number } = {}): Promise<void> {
  const intervalMs = opts.intervalMs ?? 2000;
  const intervals = opts.intervals ?? 4;
  const chain = await startChain();
  try {
    console.log(`\nChain load (chopsticks, anchor interval ${intervalMs} ms, ${intervals} intervals per run):`);
    for (const entriesPerSecond of [200, 20_000]) {
      const seed = new Uint8Array(randomBytes(32));
      const publicKey = ed25519PublicKeyFromSeed(seed);
      await chain.fund(publicKey);
      let size = 1;
      const grow = setInterval(() => { size += entriesPerSecond / 20; }, 50);
      const anchor = new SubstrateAnchor({
        endpoint: chain.endpoint, seed, origin: 'bench.test/aftersmtp', intervalMs,
        source: () => ({ size, root: createHash('sha256').update(`root ${size}`).digest() }),
      });
      const t0 = Date.now();
      anchor.start();
      await new Promise((r) => setTimeout(r, intervalMs * intervals));
      await anchor.stop();
      clearInterval(grow);
      const elapsedH = (Date.now() - t0) / 3_600_000;
      const extrinsics = await accountNonce(chain.endpoint, publicKey);
      console.log(`  log growing ${String(entriesPerSecond).padStart(6)} entries/s: ${size.toLocaleString('en-US').padStart(9)} entries, ${extrinsics} extrinsics = ${(extrinsics / elapsedH).toFixed(0)} per hour (bound: one per interval = ${(3_600_000 / intervalMs).toFixed(0)}/h)`);
    }
  } finally {
    await chain.close();
  }
}

if (import.meta.main) {
  await anchorRate();
  process.exit(0);
}
