// The node's store: group commits (one write failing alone), checkpoints on a worker thread, and what a
// fresh connection reads after close (everything acknowledged).
import { describe, it, expect, afterAll } from 'vitest';
import { join } from 'node:path';
import { statfsSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { Store, ROUTE_REREAD_MS, STORE_VERSION, databaseForTests } from '../../gateway/store/index.ts';
import { tempDir } from '../helpers.ts';

const mailbox = (address: string) => ({
  address, did: `did:key:z${address}`, signingKeyId: 'k1', signingPublicKey: new Uint8Array(32), agreementKeyId: `${address}#x`,
  agreementPublicKey: new Uint8Array(32), tokenSha256: address.padEnd(64, '0'), documentJson: '{}', createdMs: 0,
});
const id = (n: number) => { const b = new Uint8Array(16); new DataView(b.buffer).setUint32(0, n); return b; };
/** A new store, opened as the node opens it, with the mailboxes a@x.test and b@x.test. */
const withTwoMailboxes = (file: string) => {
  const storage = new Store(file, { durability: 'deferred' });
  storage.mailboxes.add(mailbox('a@x.test'));
  storage.mailboxes.add(mailbox('b@x.test'));
  return storage;
};

describe('storage', () => {
  const dir = tempDir();
  afterAll(() => dir.cleanup());

  it('commits concurrent writes together; a failing write fails alone', async () => {
    const storage = new Store(join(dir.path, 'group.db'), { durability: 'deferred' });
    const envelope = new Uint8Array(100).fill(1);
    const results = await Promise.allSettled([
      storage.storeEnvelope({ messageId: id(1), expiresMs: Date.now() + 60_000, envelope, mailboxes: ['a@x.test'] }),
      storage.storeEnvelope({ messageId: id(1), expiresMs: Date.now() + 60_000, envelope, mailboxes: ['a@x.test'] }), // replay
      storage.storeEnvelope({ messageId: id(2), expiresMs: Date.now() + 60_000, envelope, mailboxes: ['a@x.test'] }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason.code).toBe('REPLAY');
    expect(storage.commitStats).toEqual({ commits: 1, writes: 2 }); // one commit; the failed write not counted
    // Alone in its commit, a failing write fails alone too.
    await expect(storage.storeEnvelope({ messageId: id(2), expiresMs: Date.now() + 60_000, envelope, mailboxes: ['a@x.test'] })).rejects.toMatchObject({ code: 'REPLAY' });
    expect(storage.deliveries.pending('a@x.test', 0, 10).map((d) => d.seq)).toEqual([1, 2]);
    // The replayed write was rolled back with its seq: the next message takes seq 3, not 4.
    await storage.storeEnvelope({ messageId: id(3), expiresMs: Date.now() + 60_000, envelope, mailboxes: ['a@x.test'] });
    expect(storage.deliveries.pending('a@x.test', 0, 10).map((d) => d.seq)).toEqual([1, 2, 3]);
    // A new store takes 16 KiB pages, so a 10 KB envelope fits one page.
    expect((databaseForTests(storage).prepare('PRAGMA page_size').get() as { page_size: number }).page_size).toBe(16384);
    await storage.close();
  });

  it('holds commits while the WAL is being synced, so writes of several turns share the next commit and sync', async () => {
    let diskFree!: () => void;
    const slowDisk = new Promise<void>((resolve) => { diskFree = resolve; });
    const storage = new Store(join(dir.path, 'held.db'), { durability: 'deferred', aroundWalSync: async (fdatasync) => { await slowDisk; await fdatasync(); } });
    const store = (n: number) => storage.storeEnvelope({ messageId: id(n), expiresMs: Date.now() + 60_000, envelope: new Uint8Array(100), mailboxes: ['a@x.test'] });
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    const first = store(1);
    await turn();
    expect(storage.commitStats).toEqual({ commits: 1, writes: 1 }); // committed; its sync waits for the disk
    const later: Promise<unknown>[] = [];
    for (let n = 2; n <= 5; n++) {
      later.push(store(n));
      await turn(); // one write per turn of the event loop
    }
    expect(storage.commitStats.commits).toBe(1); // held while the sync runs
    diskFree();
    await Promise.all([first, ...later]);
    expect(storage.commitStats).toEqual({ commits: 2, writes: 5 });
    expect(storage.deliveries.pending('a@x.test', 0, 10).map((d) => d.seq)).toEqual([1, 2, 3, 4, 5]);
    await storage.close();
  });

  it('applies its own route changes at once, and those of another process (the CLI) within ROUTE_REREAD_MS', async () => {
    const file = join(dir.path, 'routes.db');
    const node = new Store(file, { durability: 'deferred' });
    const cli = new Store(file, { durability: 'deferred' });
    const route = (endpoint: string) => ({ domain: 'b.test', did: 'did:key:z6MkRoute', endpoint });
    expect(node.routes.for('b.test')).toBeUndefined();
    await cli.routes.set(route('quic://127.0.0.1:1001'));
    await new Promise((r) => setTimeout(r, ROUTE_REREAD_MS + 50));
    expect(node.routes.for('b.test')?.endpoint).toBe('quic://127.0.0.1:1001');
    await node.routes.set(route('quic://127.0.0.1:1002'));
    expect(node.routes.for('b.test')?.endpoint).toBe('quic://127.0.0.1:1002');
    await node.routes.delete('b.test');
    expect(node.routes.for('b.test')).toBeUndefined();
    await cli.close();
    await node.close();
  });

  it('checkpoints on its worker thread, and a fresh connection reads every acknowledged write after close', async () => {
    const file = join(dir.path, 'checkpoint.db');
    const storage = new Store(file, { durability: 'deferred' });
    const envelope = new Uint8Array(40_000).fill(7);
    for (let i = 0; i < 40; i++) {
      await Promise.all(Array.from({ length: 5 }, (_, j) => storage.storeEnvelope({ messageId: id(i * 5 + j), expiresMs: Date.now() + 60_000, envelope, mailboxes: ['b@x.test'] })));
    }
    const deadline = Date.now() + 5000;
    while (storage.checkpoints!.checkpoints === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(storage.checkpoints!).toMatchObject({ lastError: '' });
    expect(storage.checkpoints!.checkpoints).toBeGreaterThan(0);
    await storage.close();
    const db = new DatabaseSync(file, { readOnly: true });
    expect((db.prepare('SELECT count(*) AS n FROM deliveries').get() as { n: number }).n).toBe(200);
    db.close();
  });

  it('prunes the queue records of recipients finished before a cutoff, in bounded chunks, and nothing that still waits', async () => {
    const storage = new Store(join(dir.path, 'prune.db'), { durability: 'deferred' });
    const envelope = new Uint8Array(100).fill(2);
    const remote = (address: string) => ({ recipients: [{ address, domain: 'far.test', transport: 'relay' as const }], sender: 'a@x.test', senderDomain: 'x.test' });
    for (let n = 10; n < 16; n++) {
      await storage.storeEnvelope({ messageId: id(n), expiresMs: Date.now() + 60_000, envelope, mailboxes: [], remote: remote(`r${n}@far.test`) });
    }
    const item = (n: number) => storage.outbound.of(id(n))[0]!;
    // 10 and 11 delivered, 12 failed, 13 held, 14 deferred, 15 still queued.
    await storage.outbound.updateMany([{ ...item(10), state: 'delivered' }, { ...item(11), state: 'delivered' }, { ...item(12), state: 'failed', lastError: 'expired' }]);
    await storage.outbound.updateMany([{ ...item(13), state: 'held' }, { ...item(14), state: 'deferred', nextAttemptMs: 0 }]);
    const states = () => [10, 11, 12, 13, 14, 15].map((n): string => storage.outbound.of(id(n))[0]?.state ?? 'gone');

    expect(await storage.outbound.pruneFinished(Date.now() - 60_000)).toBe(0); // finished just now: kept
    // 12 failed and its notice is not stored yet: neither its record nor its envelope goes.
    expect(await storage.outbound.pruneFinished(Date.now() + 1, 1)).toBe(1); // one delivered
    expect(await storage.outbound.pruneFinished(Date.now() + 1, 1)).toBe(1);
    expect(await storage.outbound.pruneFinished(Date.now() + 1, 1)).toBe(0);
    expect(storage.outbound.envelope(id(12))).toBeDefined();
    expect(storage.outbound.unnoticedMessages(new Uint8Array(0), 10)).toEqual([id(12)]);
    expect(storage.outbound.unnoticed(id(12)).map((i) => i.recipient)).toEqual(['r12@far.test']);
    await storage.outbound.markNoticed(id(12), ['r12@far.test']);
    expect(storage.outbound.envelope(id(12))).toBeUndefined();
    expect(storage.outbound.unnoticedMessages(new Uint8Array(0), 10)).toEqual([]);
    expect(await storage.outbound.pruneFinished(Date.now() + 1, 1)).toBe(1);
    // Whatever still waits is never pruned, however old its due time (14's is 1970).
    expect(states()).toEqual(['gone', 'gone', 'gone', 'held', 'deferred', 'queued']);
    await storage.close();
  });

  it('deletes mail acknowledged before the retention cutoff, never mail still waiting, and keeps each mailbox numbering on', async () => {
    const file = join(dir.path, 'acked.db');
    let storage = withTwoMailboxes(file);
    const envelope = new Uint8Array(100).fill(3);
    const store = (n: number, to: string) => storage.storeEnvelope({ messageId: id(n), expiresMs: Date.now() + 60_000, envelope, mailboxes: [to] });
    for (let n = 1; n <= 5; n++) await store(n, 'a@x.test');
    for (let n = 6; n <= 7; n++) await store(n, 'b@x.test');
    const ackedAt = Date.now();
    await storage.deliveries.ack('a@x.test', [1, 2, 3, 5], ackedAt);
    await storage.deliveries.ack('b@x.test', [1, 2], ackedAt);
    await storage.deliveries.ack('a@x.test', [1], ackedAt + 50_000); // a repeated ack keeps the first time
    const rows = () => (databaseForTests(storage).prepare('SELECT mailbox, seq FROM deliveries ORDER BY mailbox, seq').all() as { mailbox: string; seq: number }[])
      .map((r) => `${r.mailbox[0]}${r.seq}`);

    expect(await storage.deliveries.pruneAcked(ackedAt)).toBe(0); // acknowledged at the cutoff, not before it
    expect(await storage.deliveries.pruneAcked(ackedAt + 1, 2)).toBe(2); // bounded chunks
    expect(await storage.deliveries.pruneAcked(ackedAt + 1, 2)).toBe(2);
    expect(await storage.deliveries.pruneAcked(ackedAt + 1, 2)).toBe(0);
    // a4 still waits for its ack; a5 and b2 are acknowledged but each mailbox's newest row stays.
    expect(rows()).toEqual(['a4', 'a5', 'b2']);
    expect(storage.deliveries.pending('a@x.test', 0, 10).map((d) => d.seq)).toEqual([4]);

    // Numbering goes on where it was, in this process and after a restart, so no cursor sees a seq twice.
    await store(8, 'a@x.test');
    await storage.close();
    storage = new Store(file, { durability: 'deferred' });
    await store(9, 'a@x.test');
    expect(storage.deliveries.pending('a@x.test', 0, 10).map((d) => d.seq)).toEqual([4, 6, 7]);
    await storage.close();
  });

  it('upgrades an older store once: acknowledgements made before ack times were kept count from the upgrade', async () => {
    const file = join(dir.path, 'upgrade.db');
    let storage = new Store(file, { durability: 'deferred' });
    storage.mailboxes.add(mailbox('a@x.test'));
    for (let n = 1; n <= 3; n++) await storage.storeEnvelope({ messageId: id(n), expiresMs: Date.now() + 60_000, envelope: new Uint8Array(10), mailboxes: ['a@x.test'] });
    await storage.close();
    // As the previous layout left it: acked = 1, no layout version.
    const old = new DatabaseSync(file);
    old.exec('UPDATE deliveries SET acked = 1 WHERE seq < 3; PRAGMA user_version = 0;');
    old.close();

    const upgradedAt = Date.now();
    storage = new Store(file, { durability: 'deferred' });
    const acked = (databaseForTests(storage).prepare('SELECT acked FROM deliveries ORDER BY seq').all() as { acked: number }[]).map((r) => r.acked);
    expect(acked[0]).toBeGreaterThanOrEqual(upgradedAt);
    expect(acked[1]).toBe(acked[0]);
    expect(acked[2]).toBe(0);
    expect(await storage.deliveries.pruneAcked(upgradedAt - 1)).toBe(0);
    expect(await storage.deliveries.pruneAcked(Date.now() + 1)).toBe(2);
    expect((databaseForTests(storage).prepare('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(STORE_VERSION);
    await storage.close();
  });

  it('upgrades a version 1 store: the outbound queue moves to rowid tables with every item, envelope and receipt intact', async () => {
    const file = join(dir.path, 'upgrade-outbound.db');
    let storage = new Store(file, { durability: 'deferred' });
    const remote = (n: number) => ({ recipients: [{ address: `r${n}@far.test`, domain: 'far.test', transport: 'relay' as const }, { address: `s${n}@far.test`, domain: 'far.test', transport: 'relay' as const }], sender: 'a@x.test', senderDomain: 'x.test' });
    for (let n = 1; n <= 3; n++) {
      await storage.storeEnvelope({ messageId: id(n), expiresMs: Date.now() + 60_000, envelope: new Uint8Array(3000).fill(n), mailboxes: [], logIndex: n, remote: remote(n) });
    }
    const [delivered] = storage.outbound.of(id(2), 'r2@far.test');
    await storage.outbound.update({ ...delivered!, state: 'delivered', attempts: 1, receipt: '{"leafIndex":7}' });
    const before = [1, 2, 3].map((n) => ({ items: storage.outbound.of(id(n)), held: storage.outbound.envelope(id(n)) }));
    await storage.close();
    // Rewrite the outbound tables as version 1 laid them out: clustered on the random key (WITHOUT ROWID).
    const old = new DatabaseSync(file);
    old.exec('ALTER TABLE outbound DROP COLUMN transport; DROP INDEX outbound_unnoticed; ALTER TABLE outbound DROP COLUMN noticed'); // layouts 7 and 10
    for (const table of ['outbound_envelopes', 'outbound']) {
      const { sql } = old.prepare(`SELECT sql FROM sqlite_schema WHERE name = ?`).get(table) as { sql: string };
      old.exec(`CREATE TABLE ${table}_v1 ${sql.slice(sql.indexOf('('))}, WITHOUT ROWID; INSERT INTO ${table}_v1 SELECT * FROM ${table}; DROP TABLE ${table}; ALTER TABLE ${table}_v1 RENAME TO ${table};`);
    }
    old.exec('CREATE INDEX outbound_due ON outbound (state, next_attempt_ms); PRAGMA user_version = 1;');
    expect((old.prepare(`SELECT sql FROM sqlite_schema WHERE name = 'outbound'`).get() as { sql: string }).sql).toMatch(/WITHOUT ROWID/);
    old.close();

    storage = new Store(file, { durability: 'deferred' });
    for (const table of ['outbound_envelopes', 'outbound']) {
      expect((databaseForTests(storage).prepare(`SELECT sql FROM sqlite_schema WHERE name = ?`).get(table) as { sql: string }).sql).not.toMatch(/WITHOUT ROWID/);
    }
    expect(databaseForTests(storage).prepare(`SELECT name FROM sqlite_schema WHERE type = 'index' AND name = 'outbound_due'`).get()).toBeDefined();
    expect((databaseForTests(storage).prepare('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(STORE_VERSION);
    expect([1, 2, 3].map((n) => ({ items: storage.outbound.of(id(n)), held: storage.outbound.envelope(id(n)) }))).toEqual(before);
    expect(storage.outbound.due(Date.now() + 1, 10).map((i) => i.recipient).sort()).toEqual(['r1@far.test', 'r3@far.test', 's1@far.test', 's2@far.test', 's3@far.test']);
    // The keys are still unique: a second copy of a queued item is refused, the queue keeps working.
    await expect(storage.storeEnvelope({ messageId: id(1), expiresMs: Date.now() + 60_000, envelope: new Uint8Array(10), mailboxes: [], remote: remote(1) })).rejects.toMatchObject({ code: 'REPLAY' });
    expect(() => databaseForTests(storage).prepare('INSERT INTO outbound_envelopes VALUES (?,?,?,?,?)').run(id(1), new Uint8Array(1), 'a', 'b', null)).toThrow(/UNIQUE/);
    await storage.storeEnvelope({ messageId: id(4), expiresMs: Date.now() + 60_000, envelope: new Uint8Array(10), mailboxes: [], remote: remote(4) });
    expect(storage.outbound.of(id(4)).length).toBe(2);
    await storage.close();
  });

  it('refuses new mail while its disk has less free space than minFreeBytes, and names the directory and the setting', async () => {
    const file = join(dir.path, 'minfree.db');
    const { bavail, bsize } = statfsSync(dir.path);
    const free = bavail * bsize;
    const crowded = new Store(file, { durability: 'deferred', minFreeBytes: free * 4 }); // more than this disk has
    expect(() => crowded.assertRoom()).toThrow(expect.objectContaining({
      code: 'STORAGE_FULL',
      message: expect.stringMatching(new RegExp(`^the disk of ${dir.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} has \\d+ bytes free, less than storage\\.minFreeBytes \\(${free * 4}\\); nothing was stored`)),
    }));
    await crowded.close();
    const roomy = new Store(file, { durability: 'deferred', minFreeBytes: 1024 });
    expect(() => roomy.assertRoom()).not.toThrow();
    await roomy.close();
  });

  it('removes a mailbox with its mail, and finishes a removal that was interrupted after the record went', async () => {
    const storage = withTwoMailboxes(join(dir.path, 'remove.db'));
    for (let n = 1; n <= 5; n++) await storage.storeEnvelope({ messageId: id(100 + n), expiresMs: Date.now() + 60_000, envelope: new Uint8Array(10), mailboxes: [n <= 3 ? 'a@x.test' : 'b@x.test'] });
    await storage.deliveries.ack('a@x.test', [1]);
    expect(() => storage.removeMailbox('a@x.test')).toThrow(expect.objectContaining({ code: 'CONFLICT' }));
    expect(storage.removeMailbox('A@x.test', { force: true })).toEqual({ unacknowledged: 2 });
    expect(storage.deliveries.deleteMailboxMail('a@x.test', 2)).toBe(3);
    expect(storage.mailboxes.byAddress('a@x.test')).toBeUndefined();
    expect(() => storage.removeMailbox('a@x.test')).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));

    // The process died between the record and the last chunk of b's mail: removing again finishes it.
    databaseForTests(storage).prepare('DELETE FROM mailboxes WHERE address = ?').run('b@x.test');
    expect(storage.removeMailbox('b@x.test')).toEqual({ unacknowledged: 2 });
    expect(storage.deliveries.deleteMailboxMail('b@x.test')).toBe(2);
    expect(databaseForTests(storage).prepare('SELECT count(*) AS n FROM deliveries').get()).toEqual({ n: 0 });
    expect(databaseForTests(storage).prepare('SELECT count(*) AS n FROM delivery_envelopes').get()).toEqual({ n: 0 }); // none left behind
    await storage.close();
  });

  it('finds the messages whose log leaves a crash lost, queued ones included, and gives each its new leaf everywhere; finds leaves by id', async () => {
    const storage = withTwoMailboxes(join(dir.path, 'lost-leaves.db'));
    const remote = { recipients: [{ address: 'r@far.test', domain: 'far.test', transport: 'relay' as const }], sender: 'a@x.test', senderDomain: 'x.test' };
    const store = (n: number, mailboxes: string[], logIndex: number, far?: typeof remote) =>
      storage.storeEnvelope({ messageId: id(n), expiresMs: Date.now() + 60_000, envelope: new Uint8Array(50).fill(n), mailboxes, logIndex, ...(far ? { remote: far } : {}) });
    await store(1, ['a@x.test'], 4);
    await store(2, ['a@x.test', 'b@x.test'], 5, remote); // two mailboxes and a peer
    await store(3, [], 6, remote); // a peer only
    await store(4, [], 7, remote); // a peer only, since delivered: its envelope is gone
    databaseForTests(storage).prepare('DELETE FROM outbound_envelopes WHERE message_id = ?').run(id(4));

    const lost = storage.messagesFromLogIndex(5);
    expect(lost.map((m) => [m.logIndex, m.deliveryRows.length, m.envelope?.[0]])).toEqual([[5, 2, 2], [6, 0, 3], [7, 0, undefined]]);
    await storage.setLogIndexes(lost.map((message, i) => ({ message, logIndex: message.envelope ? 10 + i : null })));
    expect([1, 2, 3, 4].map((n) => storage.logIndexOf(id(n)))).toEqual([4, 10, 11, null]);
    expect(storage.deliveries.pending('a@x.test', 0, 10).map((d) => d.logIndex)).toEqual([4, 10]);
    expect(storage.deliveries.pending('b@x.test', 0, 10).map((d) => d.logIndex)).toEqual([10]);
    expect([2, 3].map((n) => storage.outbound.envelope(id(n))?.logIndex)).toEqual([10, 11]);
    expect(storage.messagesFromLogIndex(12)).toEqual([]);

    // Once the ids expire from the replay set, a mailbox still holding a message finds it, no one else.
    await storage.replay.prune(Date.now() + 120_000);
    expect([1, 2, 3].map((n) => storage.logIndexOf(id(n)))).toEqual([undefined, undefined, undefined]);
    expect([1, 2, 3].map((n) => storage.logIndexOf(id(n), 'a@x.test'))).toEqual([4, 10, undefined]);
    expect([1, 2].map((n) => storage.logIndexOf(id(n), 'b@x.test'))).toEqual([undefined, 10]);
    await storage.close();
  });

  it('upgrades a version 2 store: envelopes move out of the delivery rows, the replay set takes over the index by message id', async () => {
    const file = join(dir.path, 'upgrade-deliveries.db');
    let storage = withTwoMailboxes(file);
    const envelope = (n: number) => new Uint8Array(2000 + n).fill(n);
    for (let n = 1; n <= 6; n++) {
      await storage.storeEnvelope({ messageId: id(n), expiresMs: Date.now() + 60_000, envelope: envelope(n), mailboxes: n === 3 ? ['a@x.test', 'b@x.test'] : [n % 2 ? 'a@x.test' : 'b@x.test'], logIndex: n });
    }
    await storage.storeEnvelope({ messageId: id(8), expiresMs: Date.now() + 60_000, envelope: envelope(8), mailboxes: [], logIndex: 8,
      remote: { recipients: [{ address: 'r@far.test', domain: 'far.test', transport: 'relay' as const }], sender: 'a@x.test', senderDomain: 'x.test' } });
    const ackedAt = Date.now();
    await storage.deliveries.ack('a@x.test', [1], ackedAt);
    await storage.close();
    // Lay deliveries out as version 2 did: the envelope a column of each delivery row, indexed by message
    // id, and a replay set of ids only.
    const old = new DatabaseSync(file);
    old.exec(`DROP TRIGGER delivery_envelope_deleted;
      CREATE TABLE seen_v2 (message_id BLOB PRIMARY KEY, expires_ms INTEGER NOT NULL) STRICT, WITHOUT ROWID;
      INSERT INTO seen_v2 SELECT message_id, expires_ms FROM seen_messages; DROP TABLE seen_messages; ALTER TABLE seen_v2 RENAME TO seen_messages;
      CREATE TABLE deliveries_v2 (mailbox TEXT NOT NULL, seq INTEGER NOT NULL, message_id BLOB NOT NULL, envelope BLOB NOT NULL,
        received_ms INTEGER NOT NULL, log_index INTEGER, acked INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (mailbox, seq)) STRICT;
      INSERT INTO deliveries_v2 SELECT mailbox, seq, message_id, envelope, received_ms, log_index, acked FROM deliveries JOIN delivery_envelopes ON id = deliveries.rowid ORDER BY received_ms DESC;
      DROP TABLE deliveries; DROP TABLE delivery_envelopes; ALTER TABLE deliveries_v2 RENAME TO deliveries;
      CREATE INDEX deliveries_pending ON deliveries (mailbox, acked, seq); CREATE INDEX deliveries_message ON deliveries (message_id);
      PRAGMA user_version = 2;`);
    old.close();

    storage = new Store(file, { durability: 'deferred' });
    expect((databaseForTests(storage).prepare('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(STORE_VERSION);
    expect(databaseForTests(storage).prepare(`SELECT 1 FROM pragma_table_info('deliveries') WHERE name = 'envelope'`).get()).toBeUndefined();
    const held = (address: string) => storage.deliveries.pending(address, 0, 10).map((d) => [d.seq, d.envelope.length, d.envelope[0], d.logIndex]);
    expect(held('a@x.test')).toEqual([[2, 2003, 3, 3], [3, 2005, 5, 5]]); // a1 was acknowledged
    expect(held('b@x.test')).toEqual([[1, 2002, 2, 2], [2, 2003, 3, 3], [3, 2004, 4, 4], [4, 2006, 6, 6]]);
    // Every id finds its message's leaf, whether held for a mailbox (even acknowledged) or queued for a peer.
    expect([1, 2, 3, 4, 5, 6, 8].map((n) => storage.logIndexOf(id(n)))).toEqual([1, 2, 3, 4, 5, 6, 8]);
    expect(storage.logIndexOf(id(9))).toBeUndefined();
    expect(databaseForTests(storage).prepare(`SELECT name FROM sqlite_schema WHERE name = 'deliveries_message'`).get()).toBeUndefined();
    // Numbering goes on; deleting a delivery deletes its envelope.
    await storage.storeEnvelope({ messageId: id(7), expiresMs: Date.now() + 60_000, envelope: envelope(7), mailboxes: ['a@x.test'] });
    expect(held('a@x.test').at(-1)).toEqual([4, 2007, 7, null]);
    expect(storage.logIndexOf(id(7))).toBeNull(); // stored without a leaf
    expect(await storage.deliveries.pruneAcked(ackedAt + 1)).toBe(1);
    expect(databaseForTests(storage).prepare('SELECT count(*) AS n FROM delivery_envelopes').get()).toEqual(databaseForTests(storage).prepare('SELECT count(*) AS n FROM deliveries').get());
    await storage.close();
  });

  it('upgrades a version 4 store in place: the witness tables join its layout (a node created them at start), every row stays', async () => {
    const file = join(dir.path, 'upgrade-v4.db');
    let storage = withTwoMailboxes(file);
    await storage.storeEnvelope({ messageId: id(1), expiresMs: Date.now() + 60_000, envelope: new Uint8Array(10).fill(1), mailboxes: ['a@x.test'], logIndex: 0 });
    await storage.close();
    // A store of layout 4 that no node has served federation from: no witness tables yet.
    const old = new DatabaseSync(file);
    old.exec('DROP TABLE witnessed_logs; DROP TABLE split_views; DROP TABLE checkpoint_cosignatures; DROP TABLE witness_progress; PRAGMA user_version = 4;');
    old.close();
    storage = new Store(file, { durability: 'deferred' });
    expect((databaseForTests(storage).prepare('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(STORE_VERSION);
    expect(storage.witness.countWitnessedLogs()).toBe(0);
    expect(storage.witness.knownSize('did:key:z6MkWitness')).toBe(0);
    expect(storage.deliveries.pending('a@x.test', 0, 10).map((d) => [d.seq, d.logIndex])).toEqual([[1, 0]]);
    expect(storage.logIndexOf(id(1))).toBe(0);
    await storage.close();
  });

  it('queues a delivery for the webhook of its mailbox in the commit that stores it; a replay queues nothing; an ack or a 2xx settles it', async () => {
    const file = join(dir.path, 'webhooks.db');
    const storage = withTwoMailboxes(file);
    await storage.webhooks.set('a@x.test', 'https://hooks.test/in', 'whsec_AAAA');
    const envelope = new Uint8Array(64).fill(7);
    await storage.storeEnvelope({ messageId: id(1), expiresMs: Date.now() + 60_000, envelope, mailboxes: ['a@x.test', 'b@x.test'] });
    await expect(storage.storeEnvelope({ messageId: id(1), expiresMs: Date.now() + 60_000, envelope, mailboxes: ['a@x.test'] })).rejects.toMatchObject({ code: 'REPLAY' });
    await storage.storeEnvelope({ messageId: id(2), expiresMs: Date.now() + 60_000, envelope, mailboxes: ['a@x.test'] });
    // One row per stored delivery of the hooked mailbox (none for b@), and the rolled-back replay left none.
    expect(storage.webhooks.counts('b@x.test')).toEqual({ queued: 0, delivered: 0, acked: 0, dead: 0 });
    expect(storage.webhooks.dueOf('a@x.test', Date.now(), 10).map((r) => [r.mailbox, r.seq, r.state])).toEqual([['a@x.test', 1, 'queued'], ['a@x.test', 2, 'queued']]);
    await storage.close();

    // Durable with the delivery: a store opened again (a restarted node) finds both.
    const again = new Store(file, { durability: 'deferred' });
    expect(again.webhooks.counts('a@x.test')).toMatchObject({ queued: 2 });
    await again.deliveries.ack('a@x.test', [1]); // a subscriber took seq 1 first
    await again.webhookDelivered('a@x.test', 2); // the hook took seq 2
    expect(again.webhooks.get('a@x.test', 1)?.state).toBe('acked');
    expect(again.webhooks.get('a@x.test', 2)?.state).toBe('delivered');
    expect(again.deliveries.pending('a@x.test', 0, 10)).toEqual([]); // a subscriber gets neither
    expect(again.webhooks.dueOf('a@x.test', Date.now(), 10)).toEqual([]);
    again.removeMailbox('a@x.test');
    expect(again.webhooks.of('a@x.test')).toBeUndefined();
    await again.close();
  });

  it('a hook\'s payload form: inline for a new hook unless given, kept when the hook is set again without one, changed with one', async () => {
    const storage = withTwoMailboxes(join(dir.path, 'webhook-forms.db'));
    const formAfter = async (payload?: 'inline' | 'link') => {
      await storage.webhooks.set('a@x.test', 'https://hooks.test/in', 'whsec_AAAA', payload);
      return storage.webhooks.of('a@x.test')!.payload;
    };
    expect(await formAfter()).toBe('inline');
    expect(await formAfter('link')).toBe('link');
    expect(await formAfter()).toBe('link');
    expect(storage.webhooks.list().map((h) => [h.mailbox, h.payload])).toEqual([['a@x.test', 'link']]);
    expect(await formAfter('inline')).toBe('inline');
    await storage.webhooks.set('b@x.test', 'https://hooks.test/b', 'whsec_BBBB', 'link');
    expect(storage.webhooks.of('b@x.test')!.payload).toBe('link');
    await storage.close();
  });
  it('keeps a received report once; a copy whose signature passed replaces an unsigned one, never the other way round', async () => {
    const storage = new Store(join(dir.path, 'reports.db'), { durability: 'deferred' });
    const report = (successes: number, via: 'mail' | 'https', signedBy: string) => ({
      kind: 'tlsrpt' as const, organization: 'a.test', reportId: 'r1', beginMs: 0, endMs: 1, summary: { 'b.test': { successes, failures: {} } }, via, signedBy,
    });
    const kept = () => storage.receivedReports.since('tlsrpt', 0).map((r) => [r.summary['b.test']!.successes, r.via, r.signedBy]);
    expect(await storage.receivedReports.add(report(666, 'https', ''))).toBe(true); // anyone's, first under the name
    expect(await storage.receivedReports.add(report(667, 'mail', ''))).toBe(false);
    expect(kept()).toEqual([[666, 'https', '']]);
    expect(await storage.receivedReports.add(report(4, 'mail', 'a.test'))).toBe(true);
    expect(kept()).toEqual([[4, 'mail', 'a.test']]);
    // Once signed, neither an unsigned copy nor another signer's takes its place.
    expect(await storage.receivedReports.add(report(666, 'https', ''))).toBe(false);
    expect(await storage.receivedReports.add(report(666, 'mail', 'evil.test'))).toBe(false);
    expect(kept()).toEqual([[4, 'mail', 'a.test']]);
    await storage.close();
  });
});
