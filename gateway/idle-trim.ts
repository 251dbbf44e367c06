// Giving memory back when the node goes quiet. V8 keeps the young generation and old-space pages it
// grew under load (30-50 MB of RSS at the default young-generation size) although an idle node needs
// none of it. Shrinking the young generation for good (--max-semi-space-size=1) costs 15-20% of
// federation throughput here, so instead the node runs one memory-reducing full GC after start-up and
// again whenever it turns idle after a busy spell (docs/DECISIONS.md 14). Idle = the event loop was
// active less than IDLE_UTILIZATION of the last check interval.
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

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

export class IdleMemoryTrimmer {
  private readonly checkMs: number;
  private timer?: NodeJS.Timeout;
  private last?: EventLoopUtilization;
  private busySinceTrim = false;
  /** The check window that holds a trim's own GC time says nothing about traffic. */
  private ignoreNextWindow = false;
  private gc?: GcFunction;
  /** Trims done (diagnostics, tests). */
  trims = 0;

  constructor(opts: { checkMs?: number } = {}) {
    this.checkMs = opts.checkMs ?? 5000;
  }

  start(): void {
    this.gc ??= memoryReducingGc();
    if (!this.gc || this.timer) return;
    // Start-up is the first busy spell: trim as soon as the node has settled.
    setTimeout(() => this.trim(), 100).unref();
    this.last = performance.eventLoopUtilization();
    this.timer = setInterval(() => this.check(), this.checkMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
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
