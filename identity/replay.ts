/**
 * Replay protection (PROTOCOL §5): a receiver remembers every accepted message_id until the
 * message could no longer pass the time check (expires_ms + allowed skew), and rejects repeats.
 * The store is pluggable; the node backs it with SQLite.
 */
import { IdentityError } from './errors.ts';
import { toHex } from './encoding.ts';
import { DEFAULT_SKEW_MS, MESSAGE_ID_BYTES } from './protocol.ts';

/** Minimal persistence interface; ids are lowercase hex of the 16-byte message_id. */
export interface ReplayStore {
  has(id: string): boolean;
  add(id: string, expiresMs: number): void;
  /** Forget every id whose expiry is before nowMs. */
  prune(nowMs: number): void;
}

/** In-memory store: a Map plus an expiry-ordered min-heap for cheap pruning. */
export class MemoryReplayStore implements ReplayStore {
  readonly #ids = new Map<string, number>();
  readonly #heap: Array<{ id: string; expiresMs: number }> = [];

  get size(): number {
    return this.#ids.size;
  }

  has(id: string): boolean {
    return this.#ids.has(id);
  }

  add(id: string, expiresMs: number): void {
    const prev = this.#ids.get(id);
    if (prev !== undefined && prev >= expiresMs) return;
    this.#ids.set(id, expiresMs);
    this.#push({ id, expiresMs });
  }

  prune(nowMs: number): void {
    while (this.#heap.length > 0 && this.#heap[0]!.expiresMs < nowMs) {
      const top = this.#pop();
      // A later add() may have extended this id's expiry: only the latest entry counts.
      if (this.#ids.get(top.id) === top.expiresMs) this.#ids.delete(top.id);
    }
  }

  #push(e: { id: string; expiresMs: number }): void {
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.expiresMs <= h[i]!.expiresMs) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }

  #pop(): { id: string; expiresMs: number } {
    const h = this.#heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const a = 2 * i + 1;
        const b = a + 1;
        let m = i;
        if (a < h.length && h[a]!.expiresMs < h[m]!.expiresMs) m = a;
        if (b < h.length && h[b]!.expiresMs < h[m]!.expiresMs) m = b;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}

export interface ReplayGuardOptions {
  store?: ReplayStore;
  /** Extra retention beyond expires_ms, covering clock skew. Default 5 minutes. */
  retentionSlackMs?: number;
  /** Prune at most this often (on calls to seen). Default 60 s. */
  pruneIntervalMs?: number;
  now?: () => number;
}

export class ReplayGuard {
  readonly store: ReplayStore;
  readonly #slack: number;
  readonly #pruneInterval: number;
  readonly #now: () => number;
  #lastPrune = Number.NEGATIVE_INFINITY;

  constructor(opts: ReplayGuardOptions = {}) {
    this.store = opts.store ?? new MemoryReplayStore();
    this.#slack = opts.retentionSlackMs ?? DEFAULT_SKEW_MS;
    this.#pruneInterval = opts.pruneIntervalMs ?? 60_000;
    this.#now = opts.now ?? Date.now;
  }

  static idOf(messageId: Uint8Array): string {
    if (!(messageId instanceof Uint8Array) || messageId.length !== MESSAGE_ID_BYTES) {
      throw new IdentityError('INVALID_ARGUMENT', `message_id must be ${MESSAGE_ID_BYTES} bytes`);
    }
    return toHex(messageId);
  }

  /** True if this message_id was already recorded (does not record). */
  has(messageId: Uint8Array): boolean {
    return this.store.has(ReplayGuard.idOf(messageId));
  }

  /**
   * First sight: records the id (until expiresMs + slack) and returns false.
   * Repeat: returns true.
   */
  seen(messageId: Uint8Array, expiresMs: number): boolean {
    const id = ReplayGuard.idOf(messageId);
    const now = this.#now();
    if (now - this.#lastPrune >= this.#pruneInterval) {
      this.#lastPrune = now;
      this.store.prune(now);
    }
    if (this.store.has(id)) return true;
    this.store.add(id, expiresMs + this.#slack);
    return false;
  }

  prune(): void {
    this.#lastPrune = this.#now();
    this.store.prune(this.#lastPrune);
  }
}
