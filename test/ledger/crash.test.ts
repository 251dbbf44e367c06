/**
 * Crash safety: a writer appending and signing in a loop is SIGKILLed at a random moment, several
 * times over the same store. After each kill the reopened log must be consistent with every
 * checkpoint already signed, its root must equal the root recomputed from the stored entries, and
 * its size must be a whole number of batches (each batch committed entirely or not at all).
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, describe, expect, it } from 'vitest';
import { TransparencyLog, openCheckpoint, verifyConsistency } from '../../ledger/index.ts';
import { batchLength } from './fixtures/crash-plan.ts';
import { tempDir, testKey } from './helpers.ts';
import { hex, mth, refLeafHash } from './reference.ts';

const NODE = resolve('node_modules/.bin/node');
const WRITER = resolve('test/ledger/fixtures/crash-writer.ts');
const key = testKey('crash');
const tmp = tempDir('ledger-crash-');
afterAll(() => tmp.cleanup());
const dbPath = tmp.path('crash.db');

/**
 * Runs the writer until it has printed `minSigned` checkpoints, then kills it after a random delay.
 * Returns the start of the last batch it announced (all of its output is read before returning).
 */
async function runAndKill(minSigned: number): Promise<{ lastStart: number; signal: string | null }> {
  const child = spawn(NODE, [WRITER, dbPath, hex(key.privateKey), hex(key.publicKey)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let signed = 0;
  let lastStart = -1;
  let stderr = '';
  let buf = '';
  let killTimer: NodeJS.Timeout | undefined;
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.startsWith('appending ')) lastStart = Number(line.slice(10));
      if (line.startsWith('signed ') && ++signed === minSigned) {
        killTimer = setTimeout(() => child.kill('SIGKILL'), Math.floor(Math.random() * 120));
      }
    }
  });
  const { code, signal } = await new Promise<{ code: number | null; signal: string | null }>((res) =>
    child.on('close', (c, s) => res({ code: c, signal: s })),
  );
  clearTimeout(killTimer);
  if (signal !== 'SIGKILL') throw new Error(`writer exited on its own (${code}): ${stderr}`);
  return { lastStart, signal };
}

function checkRecovered(): { size: number; checkpoints: number } {
  const log = TransparencyLog.open(dbPath, { origin: 'crash.test/ledger', signingKey: key });
  try {
    const size = log.size;
    const root = log.root();
    // Whole batches only.
    let s = 0;
    while (s < size) s += batchLength(s);
    expect(s).toBe(size);
    // Every signed checkpoint: valid signature, and the reopened tree extends it.
    const cps = log.checkpoints();
    expect(cps.length).toBeGreaterThan(0);
    for (const cp of cps) {
      const opened = openCheckpoint(cp.note, { log: log.noteVerifier, origin: 'crash.test/ledger' });
      expect(opened.checkpoint.size).toBe(cp.size);
      expect(hex(opened.checkpoint.root)).toBe(hex(cp.root));
      expect(cp.size).toBeLessThanOrEqual(size);
      expect(verifyConsistency(cp.size, size, log.consistencyProof(cp.size, size), opened.checkpoint.root, root)).toBe(true);
    }
    // Root recomputed from scratch from the stored entries (independent code path).
    const db = new DatabaseSync(dbPath, { readOnly: true });
    const entries = db.prepare('SELECT idx, data FROM entries ORDER BY idx').all() as { idx: number; data: Uint8Array }[];
    db.close();
    expect(entries.length).toBe(size);
    entries.forEach((e, i) => expect(e.idx).toBe(i));
    expect(hex(mth(entries.map((e) => refLeafHash(e.data))))).toBe(hex(root));
    // Tiles vs entries, full audit.
    log.verifyStorage();
    // And the log keeps working: sign again (must be consistent with everything before).
    expect(log.signCheckpoint().size).toBe(size);
    return { size, checkpoints: cps.length };
  } finally {
    log.close();
  }
}

describe('crash safety (SIGKILL during append/sign)', () => {
  it('recovers a log consistent with every signed checkpoint, three kills in a row', { timeout: 60_000 }, async () => {
    let lastSize = 0;
    const outcomes: string[] = [];
    for (let round = 1; round <= 3; round++) {
      const { lastStart, signal } = await runAndKill(2 + round);
      expect(signal).toBe('SIGKILL');
      const { size } = checkRecovered();
      expect(size).toBeGreaterThan(lastSize);
      // The batch in flight at the kill is either entirely there or entirely absent.
      expect([lastStart, lastStart + batchLength(lastStart)]).toContain(size);
      outcomes.push(size === lastStart ? 'in-flight batch lost' : 'last batch committed');
      lastSize = size;
    }
    console.log(`crash rounds: ${outcomes.join(', ')}; final size ${lastSize}`);
  });
});
