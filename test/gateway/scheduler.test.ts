// The node's scheduler, driven by a clock the test moves.
import { describe, expect, it } from 'vitest';
import { Scheduler } from '../../gateway/core/index.ts';
import { ManualClock } from '../manual-clock.ts';

/** Lets the promise callbacks of a job that finished run (no time passes on the test's clock). */
const settle = () => new Promise((r) => setImmediate(r));

describe('Scheduler', () => {
  it('runs each job first after firstRunAfterMs, then one interval after each run ends', async () => {
    const clock = new ManualClock();
    const s = new Scheduler({ clock });
    const at: Record<string, number[]> = { a: [], b: [] };
    s.every('a', 1000, () => { at.a!.push(clock.now() - clock.startMs); });
    s.every('b', { intervalMs: 3000, firstRunAfterMs: 0 }, () => { at.b!.push(clock.now() - clock.startMs); });
    s.start();
    for (let t = 0; t < 7000; t += 500) { clock.advance(t === 0 ? 0 : 500); await settle(); }
    expect(at.a).toEqual([1000, 2000, 3000, 4000, 5000, 6000]);
    expect(at.b).toEqual([0, 3000, 6000]);
    await s.stop();
  });

  it('never overlaps a slow run with the next: the next starts one interval after it ends', async () => {
    const clock = new ManualClock();
    const s = new Scheduler({ clock });
    let release!: () => void;
    const starts: number[] = [];
    s.every('slow', 1000, () => {
      starts.push(clock.now() - clock.startMs);
      return new Promise<void>((r) => { release = r; });
    });
    s.start();
    clock.advance(1000);
    await settle();
    clock.advance(5000); // the run is still going: nothing else starts
    await settle();
    expect(starts).toEqual([1000]);
    expect(s.status()[0]).toMatchObject({ running: true, runs: 0 });
    release();
    await settle();
    clock.advance(999);
    await settle();
    expect(starts).toEqual([1000]);
    clock.advance(1);
    await settle();
    expect(starts).toEqual([1000, 7000]);
    release();
    await s.stop();
  });

  it('logs a failing job, counts it, and runs it again at its next time', async () => {
    const clock = new ManualClock();
    const warnings: object[] = [];
    const s = new Scheduler({ clock, log: { warn: (obj) => { warnings.push(obj); } } });
    let n = 0;
    s.every('flaky', 100, async () => { n++; if (n === 1) throw new Error('disk hiccup'); });
    s.start();
    clock.advance(100);
    await settle();
    expect(s.status()[0]).toMatchObject({ failures: 1, lastError: 'disk hiccup', runs: 1 });
    expect(warnings).toEqual([{ job: 'flaky', err: 'disk hiccup' }]);
    clock.advance(100);
    await settle();
    expect(n).toBe(2);
    expect(s.status()[0]).toMatchObject({ failures: 1, lastError: null, runs: 2 });
    await s.stop();
  });

  it('stop aborts a running job, waits for it, and leaves no timer behind, lent ones included', async () => {
    const clock = new ManualClock();
    const s = new Scheduler({ clock });
    let sawAbort = false;
    let finished = false;
    s.every('long', 100, (signal) => new Promise<void>((resolve) => {
      signal.addEventListener('abort', () => { sawAbort = true; setImmediate(() => { finished = true; resolve(); }); });
    }));
    s.every('idle', 10_000, () => {});
    let lentFired = false;
    s.start();
    s.clock.setTimeout(() => { lentFired = true; }, 50_000);
    clock.advance(100);
    await settle();
    await s.stop();
    expect(sawAbort).toBe(true);
    expect(finished).toBe(true);
    expect(clock.pending).toBe(0);
    clock.advance(100_000);
    expect(lentFired).toBe(false);
    expect(s.status().every((j) => j.nextRunAtMs === null && !j.running)).toBe(true);
  });

  it('refuses a job registered twice or without a positive interval', () => {
    const s = new Scheduler({ clock: new ManualClock() });
    s.every('x', 1, () => {});
    expect(() => s.every('x', 1, () => {})).toThrow(/already/);
    expect(() => s.every('y', 0, () => {})).toThrow(/positive/);
  });
});
