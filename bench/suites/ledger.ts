// npm run bench:ledger — the provenance ledger (ledger/), next to the raw SQLite ceiling measured in
// the same run. Bounded in count and time; prints figures, never fails on speed.
//
//   node_modules/.bin/node bench/suites/ledger.ts            (BENCH_LEAVES=1000000 BENCH_SECONDS=3 by default)
//
// 1. Durable appends/s (WAL, synchronous=FULL: one fsync per commit) with batches of 1/64/256
//    leaves, each next to a plain SQLite INSERT of the same 34-byte rows, same pragmas, same batches.
// 2. A log of BENCH_LEAVES leaves: inclusion-proof generation/s (random leaves: cold tiles; recent
//    leaves: edge tiles in memory) and verification/s; consistency proofs.
// 3. Checkpoint signing/s: durable (consistency checks + Ed25519 + fsync) and note signing alone.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import {
  TransparencyLog,
  ed25519NoteSigner,
  encodeLeaf,
  generateEd25519KeyPair,
  signCheckpointNote,
  verifyConsistency,
  verifyInclusion,
} from '../../ledger/index.ts';

const LEAVES = Number(process.env.BENCH_LEAVES ?? 1_000_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = 3; // append figures: median of ROUNDS alternating raw/ledger slices of SECONDS / 2
const BATCHES = [1, 64, 256];
const ORIGIN = 'bench.example/ledger';

const dir = mkdtempSync(join(tmpdir(), 'bench-ledger-'));
const key = generateEd25519KeyPair();
// Distinct pseudo-random message hashes, cheap to make (xorshift128), so that neither side pays
// for generating its rows.
let x = 123456789, y = 362436069, z = 521288629, w = 88675123;
const hash32 = new Uint8Array(32);
const hashWords = new Uint32Array(hash32.buffer);
function nextLeaf(): Uint8Array {
  for (let i = 0; i < 8; i++) {
    const t = x ^ (x << 11);
    x = y; y = z; z = w;
    w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    hashWords[i] = w;
  }
  return encodeLeaf({ version: 1, type: 'message', messageHash: hash32 });
}
const median = (a: number[]): number => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)]!;

const fmt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const rows: [string, string, string][] = [];
function report(what: string, value: string, note = ''): void {
  rows.push([what, value, note]);
  console.log(`${what.padEnd(58)} ${value.padStart(12)}  ${note}`);
}

/**
 * Runs `op` (which handles `unit` items per call) until `seconds` or `maxItems`; returns items/s.
 * Per-call latencies (ms) are pushed to `latencies` when given.
 */
function rate(seconds: number, maxItems: number, unit: number, op: () => void, latencies?: number[]): number {
  let items = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  let now = start;
  while (items < maxItems && now < deadline) {
    op();
    items += unit;
    const t = performance.now();
    latencies?.push(t - now);
    now = t;
  }
  return (items / (now - start)) * 1000;
}
const pct = (a: number[], q: number): number => [...a].sort((p, r) => p - r)[Math.min(a.length - 1, Math.floor(q * a.length))] ?? NaN;

function rawDb(path: string): { insert: (rows: Uint8Array[]) => void; close: () => void } {
  const db = new DatabaseSync(path);
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;');
  db.exec('CREATE TABLE raw (idx INTEGER PRIMARY KEY, data BLOB NOT NULL)');
  const ins = db.prepare('INSERT INTO raw (idx, data) VALUES (?, ?)');
  let idx = 0;
  return {
    insert(batch) {
      db.exec('BEGIN IMMEDIATE');
      for (const r of batch) ins.run(idx++, r);
      db.exec('COMMIT');
    },
    close: () => db.close(),
  };
}

console.log(`ledger bench: node ${process.version}, ${LEAVES.toLocaleString('en-US')} leaves, ${SECONDS}s per figure, data in ${dir}\n`);

try {
  // --- 1. durable appends -----------------------------------------------------------------------
  console.log('Durable appends (WAL + synchronous=FULL, one transaction per batch):');
  const appendLog = TransparencyLog.open(join(dir, 'append.db'), { origin: ORIGIN, signingKey: key });
  for (const b of BATCHES) {
    const raw = rawDb(join(dir, `raw-${b}.db`));
    const rawRates: number[] = [];
    const logRates: number[] = [];
    const lat: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      rawRates.push(rate(SECONDS / 2, 2_000_000, b, () => raw.insert(Array.from({ length: b }, nextLeaf))));
      logRates.push(rate(SECONDS / 2, 2_000_000, b, () => appendLog.append(Array.from({ length: b }, nextLeaf)), lat));
    }
    raw.close();
    const rawRate = median(rawRates);
    const logRate = median(logRates);
    report(
      `  ledger append, batch ${b}`,
      `${fmt(logRate)}/s`,
      `raw SQLite INSERT ceiling ${fmt(rawRate)}/s (ledger = ${((logRate / rawRate) * 100).toFixed(0)}%); ${fmt(logRate / b)} commits/s, commit p50 ${pct(lat, 0.5).toFixed(2)} / p99 ${pct(lat, 0.99).toFixed(2)} / max ${Math.max(...lat).toFixed(1)} ms`,
    );
  }
  report('  (ledger size after the append runs)', fmt(appendLog.size));
  appendLog.close();

  // --- 2. proofs at LEAVES ------------------------------------------------------------------------
  console.log(`\nProofs in a log of ${LEAVES.toLocaleString('en-US')} leaves:`);
  const logPath = join(dir, 'big.db');
  const log = TransparencyLog.open(logPath, { origin: ORIGIN, signingKey: key });
  const buildStart = performance.now();
  const BUILD_BATCH = 4096;
  while (log.size < LEAVES) {
    const n = Math.min(BUILD_BATCH, LEAVES - log.size);
    log.append(Array.from({ length: n }, nextLeaf));
  }
  const buildMs = performance.now() - buildStart;
  report(`  build (append, batch ${BUILD_BATCH})`, `${fmt((LEAVES / buildMs) * 1000)}/s`, `${(buildMs / 1000).toFixed(1)} s, database ${(statSync(logPath).size / 2 ** 20).toFixed(0)} MiB`);
  const size = log.size;
  const root = log.root();
  let seed = 12345;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };

  report('  inclusion proof generation, random leaf', `${fmt(rate(SECONDS, 200_000, 1, () => log.inclusionProof(rnd(size))))}/s`, 'cold level-0 tile: 255 hashes to expand it');
  report('  inclusion proof generation, recent leaf (last 256)', `${fmt(rate(SECONDS, 500_000, 1, () => log.inclusionProof(size - 1 - rnd(256))))}/s`, 'edge tile in memory (the receipt case)');

  const samples = Array.from({ length: 2000 }, () => {
    const i = rnd(size);
    return { i, leaf: log.leafHash(i), proof: log.inclusionProof(i) };
  });
  let k = 0;
  let bad = 0;
  const verifyRate = rate(SECONDS, 2_000_000, 1, () => {
    const s = samples[k++ % samples.length]!;
    if (!verifyInclusion(s.leaf, s.i, size, s.proof, root)) bad++;
  });
  report('  inclusion proof verification', `${fmt(verifyRate)}/s`, `${samples[0]!.proof.length} hashes per proof${bad ? `, ${bad} FAILED` : ''}`);

  const csamples = Array.from({ length: 200 }, () => {
    const m = 1 + rnd(size - 1);
    return { m, rootM: log.rootAt(m), proof: log.consistencyProof(m) };
  });
  report('  consistency proof generation, random size -> latest', `${fmt(rate(SECONDS, 100_000, 1, () => log.consistencyProof(1 + rnd(size - 1))))}/s`);
  k = 0;
  report(
    '  consistency proof verification',
    `${fmt(rate(SECONDS, 1_000_000, 1, () => {
      const c = csamples[k++ % csamples.length]!;
      if (!verifyConsistency(c.m, size, c.proof, c.rootM, root)) bad++;
    }))}/s`,
    bad ? `${bad} FAILED` : '',
  );

  // --- 3. checkpoints -----------------------------------------------------------------------------
  console.log('\nCheckpoints:');
  log.signCheckpoint();
  let back = 0;
  report(
    '  signCheckpoint (durable: checks + Ed25519 + fsync)',
    `${fmt(rate(SECONDS, 20_000, 1, () => log.signCheckpoint({ size: size - 1 - (back++ % 100_000) })))}/s`,
    'each at a new size, consistency-checked against latest and largest',
  );
  const signer = ed25519NoteSigner(ORIGIN, key);
  let s2 = 0;
  report('  checkpoint note signing only (Ed25519, in memory)', `${fmt(rate(SECONDS, 200_000, 1, () => signCheckpointNote({ origin: ORIGIN, size: s2++, root }, signer)))}/s`);
  log.close();

  // Chain extrinsics per hour stay constant as volume grows 100x (BENCH_CHAIN=0 skips it).
  if (process.env.BENCH_CHAIN !== '0') await (await import('./anchor-rate.ts')).anchorRate();

  console.log('\nTargets (issue #3): >= 20,000 durable appends/s (batched), >= 30,000 inclusion-proof verifications/s.');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
