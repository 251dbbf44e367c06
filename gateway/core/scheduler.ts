// The node's periodic work (checkpoints, anchoring, witnessing, pruning, the memory policy) runs through
// one scheduler, so that one start and one stop govern all of it, a slow run never overlaps the next, a
// failing job is logged and tried again at its next time, and a test can drive every timer of the node
// with its own clock.
import type { AnchorClock } from '../../ledger/index.ts';

/** Time and timers (the shape ledger's anchoring takes as its clock). */
export type Clock = AnchorClock;

export const systemClock: Clock = {
  now: () => Date.now(),
  // Periodic work never keeps the process alive by itself.
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs).unref(),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface SchedulerLogger {
  warn(obj: object, msg?: string): void;
}

export interface JobOptions {
  /** Time between the end of one run and the start of the next. */
  intervalMs: number;
  /** Time from start() to the first run (default: intervalMs). */
  firstRunAfterMs?: number;
}

export type Job = (signal: AbortSignal) => unknown;

export interface JobStatus {
  name: string;
  runs: number;
  failures: number;
  running: boolean;
  lastError: string | null;
  nextRunAtMs: number | null;
}

interface Entry extends JobStatus { options: JobOptions; job: Job; timer: unknown; current: Promise<void> | null }

export class Scheduler {
  readonly #clock: Clock;
  readonly #log: SchedulerLogger | undefined;
  readonly #jobs = new Map<string, Entry>();
  /** Timers handed out through `clock`, cancelled by stop(). */
  readonly #lent = new Set<unknown>();
  #running = false;
  #stopping = new AbortController();

  /**
   * A clock for loops that pace themselves (anchoring backs off after failures): its timers belong to
   * this scheduler, follow its clock, and are cancelled by stop().
   */
  readonly clock: Clock;

  constructor(opts: { clock?: Clock; log?: SchedulerLogger } = {}) {
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.log;
    this.clock = {
      now: () => this.#clock.now(),
      setTimeout: (callback, delayMs) => {
        const handle: unknown = this.#clock.setTimeout(() => { this.#lent.delete(handle); callback(); }, delayMs);
        this.#lent.add(handle);
        return handle;
      },
      clearTimeout: (handle) => {
        this.#lent.delete(handle);
        this.#clock.clearTimeout(handle);
      },
    };
  }

  /** Registers a periodic job; registering a name twice is a programming error. */
  every(name: string, options: JobOptions | number, job: Job): void {
    if (this.#jobs.has(name)) throw new Error(`job ${name} is already scheduled`);
    const opts = typeof options === 'number' ? { intervalMs: options } : options;
    if (!(opts.intervalMs > 0)) throw new Error(`job ${name} needs a positive interval`);
    const entry: Entry = { name, options: opts, job, timer: null, current: null, runs: 0, failures: 0, running: false, lastError: null, nextRunAtMs: null };
    this.#jobs.set(name, entry);
    if (this.#running) this.#plan(entry, opts.firstRunAfterMs ?? opts.intervalMs);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#stopping = new AbortController();
    for (const entry of this.#jobs.values()) this.#plan(entry, entry.options.firstRunAfterMs ?? entry.options.intervalMs);
  }

  /** No new runs; the running ones see their signal aborted and are waited for; lent timers are cancelled. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#stopping.abort();
    for (const entry of this.#jobs.values()) {
      if (entry.timer !== null) this.#clock.clearTimeout(entry.timer);
      entry.timer = null;
      entry.nextRunAtMs = null;
    }
    for (const handle of this.#lent) this.#clock.clearTimeout(handle);
    this.#lent.clear();
    await Promise.all([...this.#jobs.values()].map((entry) => entry.current));
  }

  status(): JobStatus[] {
    return [...this.#jobs.values()].map(({ name, runs, failures, running, lastError, nextRunAtMs }) => ({ name, runs, failures, running, lastError, nextRunAtMs }));
  }

  #plan(entry: Entry, delayMs: number): void {
    entry.nextRunAtMs = this.#clock.now() + delayMs;
    entry.timer = this.#clock.setTimeout(() => {
      entry.timer = null;
      entry.current = this.#run(entry);
    }, delayMs);
  }

  async #run(entry: Entry): Promise<void> {
    entry.running = true;
    entry.nextRunAtMs = null;
    try {
      await entry.job(this.#stopping.signal);
      entry.lastError = null;
    } catch (err) {
      entry.failures++;
      entry.lastError = err instanceof Error ? err.message : String(err);
      if (this.#running) this.#log?.warn({ job: entry.name, err: entry.lastError }, 'periodic job failed; it runs again at its next time');
    } finally {
      entry.runs++;
      entry.running = false;
      entry.current = null;
      if (this.#running) this.#plan(entry, entry.options.intervalMs);
    }
  }
}
