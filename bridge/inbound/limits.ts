// Bounded per-key counters and caches of the listeners: an anonymous client must not be able to grow them
// without limit (DESIGN §7a), so each holds at most `maxKeys` entries and drops the oldest first.

/** Events per key in fixed windows of `windowMs` (AUTH failures per IP, submissions per mailbox). */
export class WindowCounter {
  private readonly entries = new Map<string, { start: number; count: number }>();
  private readonly windowMs: number;
  private readonly maxKeys: number;
  private readonly now: () => number;

  constructor(windowMs: number, maxKeys = 100_000, now: () => number = Date.now) {
    this.windowMs = windowMs;
    this.maxKeys = maxKeys;
    this.now = now;
  }

  count(key: string): number {
    const entry = this.entries.get(key);
    if (!entry || this.now() - entry.start >= this.windowMs) return 0;
    return entry.count;
  }

  add(key: string): number {
    const now = this.now();
    let entry = this.entries.get(key);
    if (!entry || now - entry.start >= this.windowMs) {
      this.entries.delete(key);
      entry = { start: now, count: 0 };
      if (this.entries.size >= this.maxKeys) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(key, entry);
    }
    return ++entry.count;
  }
}

/** Recently accepted (message, recipient) pairs and the id their 250 named: a least-recently-used map with expiry. */
export class DuplicateCache {
  private readonly entries = new Map<string, { id: string; expires: number }>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(ttlMs: number, maxEntries: number, now: () => number = Date.now) {
    this.ttlMs = ttlMs;
    this.maxEntries = maxEntries;
    this.now = now;
  }

  get(key: string): string | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    if (entry.expires <= this.now()) return undefined;
    this.entries.set(key, entry);
    return entry.id;
  }

  set(key: string, id: string): void {
    this.entries.delete(key);
    while (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { id, expires: this.now() + this.ttlMs });
  }
}
