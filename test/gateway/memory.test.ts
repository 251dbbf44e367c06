// The idle trim gives memory back once after start-up and once per busy spell that ends, never
// over and over while the node stays idle.
import { describe, it, expect } from 'vitest';
import { MemoryPolicy } from '../../gateway/node/index.ts';
import { Scheduler } from '../../gateway/core/index.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const spin = (ms: number) => { const end = performance.now() + ms; while (performance.now() < end) { /* busy */ } };

describe('MemoryPolicy', () => {
  it('trims after start-up and after a busy spell, not again while idle', async () => {
    // Check windows of 300 ms: a loaded test machine's own background work (GC, test-runner traffic)
    // stays well under the 5% (15 ms) that counts as busy, while the spell below fills them.
    const trimmer = new MemoryPolicy({ checkMs: 300 });
    const scheduler = new Scheduler();
    trimmer.start(scheduler);
    scheduler.start();
    try {
      await sleep(1500);
      expect(trimmer.trims).toBe(1); // start-up only: the idle checks since found nothing busy
      // A busy spell spread over a few check intervals (the event loop mostly active), then quiet.
      for (let i = 0; i < 14; i++) { spin(45); await sleep(5); }
      await sleep(1500);
      expect(trimmer.trims).toBe(2);
      await sleep(900);
      expect(trimmer.trims).toBe(2);
    } finally {
      await scheduler.stop();
    }
  });

  it('with idleTrim off, never trims', async () => {
    const policy = new MemoryPolicy({ checkMs: 100, idleTrim: false });
    const scheduler = new Scheduler();
    policy.start(scheduler);
    scheduler.start();
    try {
      for (let i = 0; i < 4; i++) { spin(45); await sleep(5); }
      await sleep(500);
      expect(policy.trims).toBe(0);
    } finally {
      await scheduler.stop();
    }
  });
});
