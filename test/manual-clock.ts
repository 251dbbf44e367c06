// A clock for what the node times (intervals, backoff): the test moves it, so what it asserts does not
// depend on how fast the machine is.
import type { AnchorClock } from '../ledger/index.ts';

/** A clock the test moves by hand: timers fire when advance() passes their due time, in order. */
export class ManualClock implements AnchorClock {
  readonly startMs = 1_700_000_000_000;
  #now = this.startMs;
  #timers = new Map<number, { dueMs: number; callback: () => void }>();
  #nextId = 1;
  now(): number { return this.#now; }
  setTimeout(callback: () => void, delayMs: number): unknown {
    const id = this.#nextId++;
    this.#timers.set(id, { dueMs: this.#now + Math.max(0, delayMs), callback });
    return id;
  }
  clearTimeout(handle: unknown): void { this.#timers.delete(handle as number); }
  /** Timers set and not yet fired or cleared. */
  get pending(): number { return this.#timers.size; }
  advance(ms: number): void {
    const until = this.#now + ms;
    for (;;) {
      const due = [...this.#timers.entries()].filter(([, t]) => t.dueMs <= until).sort((x, y) => x[1].dueMs - y[1].dueMs)[0];
      if (!due) break;
      this.#timers.delete(due[0]);
      this.#now = Math.max(this.#now, due[1].dueMs);
      due[1].callback();
    }
    this.#now = until;
  }
}
