// The node's store: group commits (one write failing alone), checkpoints on a worker thread, and what a
// fresh connection reads after close (everything acknowledged).
import { describe, it, expect, afterAll } from 'vitest';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Storage, ROUTE_REREAD_MS } from '../../gateway/storage.ts';
import { tempDir } from '../helpers.ts';

const id = (n: number) => { const b = new Uint8Array(16); new DataView(b.buffer).setUint32(0, n); return b; };

describe('storage', () => {
  const dir = tempDir();
  afterAll(() => dir.cleanup());

  it('commits concurrent writes together; a failing write fails alone', async () => {
    const storage = new Storage(join(dir.path, 'group.db'), { durability: 'deferred' });
    const envelope = new Uint8Array(100).fill(1);
    const results = await Promise.allSettled([
      storage.storeEnvelope({ messageId: id(1), expiresMs: Date.now() + 60_000, envelope, mailboxes: ['a@x.test'] }),
      storage.storeEnvelope({ messageId: id(1), expiresMs: Date.now() + 60_000, envelope, mailboxes: ['a@x.test'] }), // replay
      storage.storeEnvelope({ messageId: id(2), expiresMs: Date.now() + 60_000, envelope, mailboxes: ['a@x.test'] }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason.code).toBe('REPLAY');
    // Alone in its commit, a failing write fails alone too.
    await expect(storage.storeEnvelope({ messageId: id(2), expiresMs: Date.now() + 60_000, envelope, mailboxes: ['a@x.test'] })).rejects.toMatchObject({ code: 'REPLAY' });
    expect(storage.pendingDeliveries('a@x.test', 0, 10).map((d) => d.seq)).toEqual([1, 2]);
    // The replayed write was rolled back with its seq: the next message takes seq 3, not 4.
    await storage.storeEnvelope({ messageId: id(3), expiresMs: Date.now() + 60_000, envelope, mailboxes: ['a@x.test'] });
    expect(storage.pendingDeliveries('a@x.test', 0, 10).map((d) => d.seq)).toEqual([1, 2, 3]);
    // A new store takes 16 KiB pages, so a 10 KB envelope fits one page.
    expect((storage.db.prepare('PRAGMA page_size').get() as { page_size: number }).page_size).toBe(16384);
    await storage.close();
  });

  it('applies its own route changes at once, and those of another process (the CLI) within ROUTE_REREAD_MS', async () => {
    const file = join(dir.path, 'routes.db');
    const node = new Storage(file, { durability: 'deferred' });
    const cli = new Storage(file, { durability: 'deferred' });
    const route = (endpoint: string) => ({ domain: 'b.test', did: 'did:key:z6MkRoute', endpoint });
    expect(node.routeFor('b.test')).toBeUndefined();
    await cli.setRoute(route('quic://127.0.0.1:1001'));
    await new Promise((r) => setTimeout(r, ROUTE_REREAD_MS + 50));
    expect(node.routeFor('b.test')?.endpoint).toBe('quic://127.0.0.1:1001');
    await node.setRoute(route('quic://127.0.0.1:1002'));
    expect(node.routeFor('b.test')?.endpoint).toBe('quic://127.0.0.1:1002');
    await node.deleteRoute('b.test');
    expect(node.routeFor('b.test')).toBeUndefined();
    await cli.close();
    await node.close();
  });

  it('checkpoints on its worker thread, and a fresh connection reads every acknowledged write after close', async () => {
    const file = join(dir.path, 'checkpoint.db');
    const storage = new Storage(file, { durability: 'deferred' });
    const envelope = new Uint8Array(40_000).fill(7);
    for (let i = 0; i < 40; i++) {
      await Promise.all(Array.from({ length: 5 }, (_, j) => storage.storeEnvelope({ messageId: id(i * 5 + j), expiresMs: Date.now() + 60_000, envelope, mailboxes: ['b@x.test'] })));
    }
    const deadline = Date.now() + 5000;
    while (storage.checkpointer!.stats.checkpoints === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(storage.checkpointer!.stats).toMatchObject({ lastError: '' });
    expect(storage.checkpointer!.stats.checkpoints).toBeGreaterThan(0);
    await storage.close();
    const db = new DatabaseSync(file, { readOnly: true });
    expect((db.prepare('SELECT count(*) AS n FROM deliveries').get() as { n: number }).n).toBe(200);
    db.close();
  });
});
