import { describe, expect, it } from 'vitest';
import { IdentityError, MemoryReplayStore, ReplayGuard, randomBytes, toHex } from '../../identity/index.ts';
import type { ReplayStore } from '../../identity/index.ts';

describe('ReplayGuard', () => {
  it('first sight records and returns false; a repeat returns true', () => {
    const g = new ReplayGuard({ now: () => 1000 });
    const id = randomBytes(16);
    expect(g.has(id)).toBe(false);
    expect(g.seen(id, 5000)).toBe(false);
    expect(g.has(id)).toBe(true);
    expect(g.seen(id, 5000)).toBe(true);
    expect(g.seen(randomBytes(16), 5000)).toBe(false);
  });

  it('keeps ids until expires + slack, then prunes them', () => {
    let now = 0;
    const store = new MemoryReplayStore();
    const g = new ReplayGuard({ store, now: () => now, retentionSlackMs: 100, pruneIntervalMs: 0 });
    const a = randomBytes(16);
    const b = randomBytes(16);
    g.seen(a, 1000);
    g.seen(b, 2000);
    now = 1100; // a is kept until 1000 + 100
    g.prune();
    expect([g.has(a), g.has(b)]).toEqual([true, true]);
    now = 1101;
    g.prune();
    expect([g.has(a), g.has(b)]).toEqual([false, true]);
    expect(store.size).toBe(1);
    now = 5000;
    g.seen(randomBytes(16), 9000); // pruning also happens on seen()
    expect(g.has(b)).toBe(false);
  });

  it('the memory store prunes in expiry order and honours an extended expiry', () => {
    const s = new MemoryReplayStore();
    const expiries = [50, 10, 40, 30, 20, 60, 5, 45];
    expiries.forEach((e, i) => s.add(`id${i}`, e));
    s.add('id1', 100); // extended: survives pruning at 35
    s.prune(35);
    const alive = expiries.map((_, i) => s.has(`id${i}`));
    expect(alive).toEqual([true, true, true, false, false, true, false, true]);
    s.prune(1000);
    expect(s.size).toBe(0);
  });

  it('works with a pluggable store (what the node backs with SQLite)', () => {
    const calls: string[] = [];
    const rows = new Map<string, number>();
    const store: ReplayStore = {
      has: (id) => (calls.push(`has ${id}`), rows.has(id)),
      add: (id, e) => (calls.push(`add ${id} ${e}`), void rows.set(id, e)),
      prune: (t) => (calls.push(`prune ${t}`), undefined),
    };
    const g = new ReplayGuard({ store, now: () => 7, retentionSlackMs: 3 });
    const id = randomBytes(16);
    expect(g.seen(id, 10)).toBe(false);
    expect(g.seen(id, 10)).toBe(true);
    expect(calls).toEqual([`prune 7`, `has ${toHex(id)}`, `add ${toHex(id)} 13`, `has ${toHex(id)}`]);
  });

  it('rejects message ids that are not 16 bytes', () => {
    expect(() => new ReplayGuard().seen(new Uint8Array(15), 1)).toThrow(IdentityError);
  });
});
