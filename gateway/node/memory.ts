// How a node uses memory: grow the heap freely under load, give memory back when it goes quiet.
//
// Under load. A node's JavaScript heap is small (~25 MB live) but it handles megabytes a second of
// message bytes in Buffers outside it. V8 sizes the next full-GC limit from the live heap and its GC
// speed, and on such a small, fast-to-mark heap it picks a growth factor of ~1.1: with 50 KB messages a
// node ran a full mark-compact every ~150 ms (40 in 10 s) and its GC threads used a quarter of a core.
// A fixed growth factor of 2 (--heap-growing-percent=100) lets the old generation reach twice its live
// size first: 7-12 full GCs in the same run and 15-25% more federation throughput at 50 KB, with no
// measurable rise in peak RSS (docs/DECISIONS.md 15). V8 reads the flag at every GC, so setting it at
// start-up takes effect. The flag is process-wide.
//
// When quiet. V8 keeps the young generation and old-space pages it grew under load (30-50 MB of RSS at
// the default young-generation size) although an idle node needs none of it. Shrinking the young
// generation for good (--max-semi-space-size=1) costs 15-20% of federation throughput here, so instead
// the node runs one memory-reducing full GC after start-up and again whenever it turns idle after a busy
// spell (docs/DECISIONS.md 14). Idle = the event loop was active less than IDLE_UTILIZATION of the last
// check interval.
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Scheduler } from '../core/index.ts';

const IDLE_UTILIZATION = 0.02;
const BUSY_UTILIZATION = 0.05;

type GcFunction = (options?: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

function memoryReducingGc(): GcFunction | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as GcFunction) : undefined;
  } catch {
    return undefined;
  }
}

export interface MemoryPolicyOptions {
  /** Old-generation growth per full GC in percent (100 = double); 0 leaves V8's own heuristic. */
  heapGrowthPercent?: number;
  /** Give memory back when the node turns idle (default true). */
  idleTrim?: boolean;
  /** Interval of the idle check (tests shorten it). */
  checkMs?: number;
}

export class MemoryPolicy {
  private readonly checkMs: number;
  private readonly heapGrowthPercent: number;
  private readonly idleTrim: boolean;
  private last?: EventLoopUtilization;
  private busySinceTrim = false;
  /** The check window that holds a trim's own GC time says nothing about traffic. */
  private ignoreNextWindow = false;
  private gc?: GcFunction;
  /** Trims done (diagnostics, tests). */
  trims = 0;

  constructor(opts: MemoryPolicyOptions = {}) {
    this.checkMs = opts.checkMs ?? 5000;
    this.heapGrowthPercent = opts.heapGrowthPercent ?? 0;
    this.idleTrim = opts.idleTrim ?? true;
  }

  /** Sets the heap growth now; the idle checks run as a job of the node's scheduler. */
  start(scheduler: Scheduler): void {
    if (this.heapGrowthPercent > 0) setFlagsFromString(`--heap-growing-percent=${this.heapGrowthPercent}`);
    if (!this.idleTrim) return;
    this.gc ??= memoryReducingGc();
    if (!this.gc) return;
    // Start-up is the first busy spell: trim as soon as the node has settled.
    scheduler.clock.setTimeout(() => this.trim(), 100);
    this.last = performance.eventLoopUtilization();
    scheduler.every('memory', this.checkMs, () => this.check());
  }

  private check(): void {
    const now = performance.eventLoopUtilization();
    const window = performance.eventLoopUtilization(now, this.last);
    this.last = now;
    if (this.ignoreNextWindow) {
      this.ignoreNextWindow = false;
      return;
    }
    if (window.utilization >= BUSY_UTILIZATION) this.busySinceTrim = true;
    else if (window.utilization < IDLE_UTILIZATION && this.busySinceTrim) this.trim();
  }

  private trim(): void {
    if (!this.gc) return;
    this.gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    this.busySinceTrim = false;
    this.trims++;
    this.ignoreNextWindow = true;
  }
}
