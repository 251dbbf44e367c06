// What the "floor" servers share (bench/floors/floor-server.ts for bench:mailbox, bench/floors/federation-floor-node.ts
// for bench:federation): the signed prefix, and the durable store, the node's own mechanisms and nothing else. Every message received in one
// event-loop turn goes into one SQLite commit (WAL, synchronous=NORMAL, 16 KiB pages like the node's
// store); it is reported stored once gateway/store/wal-sync.ts has fdatasync()ed the WAL off the event loop;
// checkpoints run on a worker. Delivery marks (the acked state) are batched per turn the same way.
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { FALLBACK_AUTOCHECKPOINT_PAGES, WalCheckpointer, WalSyncer } from '../../gateway/store/index.ts';

/**
 * The client signs this prefix of each message and the floors verify it: the node's outer signature
 * covers the envelope's header (PROTOCOL §2.3), not its ciphertext, so a floor must not hash the whole message.
 */
export const SIGNED_BYTES = 256;

interface PendingInsert { ref: number; data: Uint8Array; seq: number; done: (err: Error | null, seq: number) => void }

export class FloorStore {
  private readonly db: DatabaseSync;
  private readonly insert;
  private readonly markDelivered;
  private readonly syncer: WalSyncer;
  private readonly checkpointer: WalCheckpointer;
  private inserts: PendingInsert[] = [];
  private marks: number[] = [];

  constructor(dir: string, name = 'floor.db') {
    const file = join(dir, name);
    this.db = new DatabaseSync(file);
    this.db.exec(`PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=${FALLBACK_AUTOCHECKPOINT_PAGES};`);
    this.db.exec('CREATE TABLE IF NOT EXISTS blobs (seq INTEGER PRIMARY KEY, ref INTEGER NOT NULL, delivered INTEGER NOT NULL DEFAULT 0, data BLOB NOT NULL)');
    this.insert = this.db.prepare('INSERT INTO blobs (ref, data) VALUES (?, ?)');
    this.markDelivered = this.db.prepare('UPDATE blobs SET delivered = 1 WHERE seq = ?');
    this.syncer = new WalSyncer(file);
    this.checkpointer = new WalCheckpointer(file);
  }

  /** Stores `data` (with the caller's `ref`); resolves with its row number once it is on stable storage. */
  store(ref: number, data: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.inserts.length === 0) setImmediate(() => this.commitInserts());
      this.inserts.push({ ref, data, seq: 0, done: (err, seq) => (err ? reject(err) : resolve(seq)) });
    });
  }

  /** Marks row `seq` delivered (the next sync makes it durable; nobody waits for it). */
  delivered(seq: number): void {
    if (this.marks.length === 0) setImmediate(() => this.commitMarks());
    this.marks.push(seq);
  }

  private commitInserts(): void {
    const items = this.inserts;
    this.inserts = [];
    try {
      this.transaction(() => { for (const p of items) p.seq = Number(this.insert.run(p.ref, p.data).lastInsertRowid); });
    } catch (err) {
      for (const p of items) p.done(err as Error, 0);
      return;
    }
    this.syncer.sync().then(() => { for (const p of items) p.done(null, p.seq); }, (err: Error) => { for (const p of items) p.done(err, 0); });
  }

  private commitMarks(): void {
    const seqs = this.marks;
    this.marks = [];
    this.transaction(() => { for (const seq of seqs) this.markDelivered.run(seq); });
  }

  private transaction(body: () => void): void {
    try {
      this.db.exec('BEGIN');
      body();
      this.db.exec('COMMIT');
    } catch (err) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK');
      throw err;
    }
    this.checkpointer.committed();
  }

  async close(): Promise<void> {
    await Promise.all([this.syncer.close(), this.checkpointer.close()]);
    this.db.close();
  }
}
