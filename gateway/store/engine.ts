// The store's commit engine: the one SQLite connection (node:sqlite, WAL mode), its group commit and
// its room checks. The node runs it 'deferred' (docs/DECISIONS.md 7): COMMIT writes the WAL, the
// fdatasync runs on the thread pool, checkpoints on a worker thread (wal-sync.ts).
// Writes go through a group-commit queue: every write requested in the same turn of the event loop
// shares one transaction and one fsync, and each caller's promise resolves only after that COMMIT.
// Repositories prepare their statements here (typed, once) and queue their writes with write().
import { DatabaseSync, type SQLInputValue, type StatementResultingChanges } from 'node:sqlite';
import { statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { GatewayError, openingFile, isStorageFull, storageFailure, createPrivateFile } from '../core/index.ts';
import { WalSyncer, WalCheckpointer, FALLBACK_AUTOCHECKPOINT_PAGES } from './wal-sync.ts';
import { migrate } from './migrations.ts';

/**
 * A prepared statement with the shape of its parameters and of its rows. Only a type over node:sqlite's
 * StatementSync (no wrapper on the hot path): `Row` is what SQLite returns, numbers as numbers.
 */
export interface Statement<Params extends SQLInputValue[] = [], Row = never> {
  get(...params: Params): Row | undefined;
  all(...params: Params): Row[];
  run(...params: Params): StatementResultingChanges;
}

export interface EngineOptions {
  maxBatch?: number;
  /**
   * 'full': SQLite fsyncs each COMMIT (blocking; fine for the CLI's one-off writes). 'deferred' (the
   * node): COMMIT writes the WAL and the fsync runs off the event loop (WalSyncer); write() promises
   * still resolve only once their commit is durable.
   */
  durability?: 'full' | 'deferred';
  /** storage.maxBytes (0 = no cap): new mail is refused beyond it; acks and deletions still work. */
  maxBytes?: number;
  /** storage.minFreeBytes (0 = none): new mail is refused while the store's disk has less free. */
  minFreeBytes?: number;
  /** Wraps each WAL fdatasync of a 'deferred' store (tests: a slow disk). */
  aroundWalSync?: (fdatasync: () => Promise<void>) => Promise<void>;
}

type Write = () => void;

const PAGE_SIZE = 16384;
/**
 * After a write failed because the store or its disk is full, new mail is refused at once for this
 * long (no verification, no log leaf for a message that cannot be stored); then writes are tried again.
 */
export const FULL_RECHECK_MS = 1000;
/** How often, at most, a store with storage.maxBytes re-reads its size after commits (a soft cap). */
const USAGE_REFRESH_MS = 100;

export class StoreEngine {
  /** The connection; only this folder's modules see it (index.ts exports no way to it but the test hook). */
  readonly db: DatabaseSync;
  private readonly maxBatch: number;
  private pending: { write: Write; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private flushScheduled = false;
  private closed = false;
  /** Group commits made and the writes they carried, since open (writes per commit: how well commits group). */
  readonly commitStats = { commits: 0, writes: 0 };
  /** Run when a transaction is rolled back: in-memory state kept ahead of the rows (seq counters) is dropped. */
  private readonly rollbackListeners: (() => void)[] = [];
  /** The disk was full at the last write: new mail gets this error without trying, until `until`. */
  private full?: { error: GatewayError; until: number };
  private readonly maxBytes: number;
  private readonly minFreeBytes: number;
  private readonly directory: string;
  /** The store's page size (fixed when the file was created). */
  private readonly pageBytes: number;
  /** Bytes the store's pages hold (free pages excluded) and free on its disk, as of `usedAt`. */
  private usedBytes = 0;
  private freeBytes = Infinity;
  private usedAt = 0;
  private readonly walSyncer?: WalSyncer;
  readonly checkpointer?: WalCheckpointer;
  /** Transaction control, prepared once (exec() would parse the SQL on every commit). */
  private readonly tx: Record<'begin' | 'commit' | 'rollback' | 'savepoint' | 'release' | 'rollbackTo', Statement>;
  private readonly pageCount: Statement<[], { n: number }>;
  private readonly freePages: Statement<[], { n: number }>;

  constructor(file: string, opts: EngineOptions = {}) {
    this.maxBatch = opts.maxBatch ?? 256;
    const deferred = opts.durability === 'deferred';
    this.db = openingFile('the store', file, () => {
      createPrivateFile(file); // SQLite would create it 0644 (minus the umask); its -wal/-shm take its mode
      const db = new DatabaseSync(file);
      try {
        // A 10 KB envelope fits one 16 KiB page instead of spilling over three 4 KiB ones: half the cost
        // of an insert (docs/DECISIONS.md 14). Takes effect only on a new file; older stores keep theirs.
        db.exec(`PRAGMA page_size=${PAGE_SIZE}`);
        db.exec(`PRAGMA journal_mode=WAL; PRAGMA synchronous=${deferred ? 'NORMAL' : 'FULL'}; PRAGMA busy_timeout=5000;`);
        migrate(db);
        return db;
      } catch (err) {
        db.close();
        throw err;
      }
    });
    if (deferred) {
      this.walSyncer = new WalSyncer(file, opts.aroundWalSync);
      // Checkpoints run on a worker thread (see wal-sync.ts); this connection checkpoints only as a fallback.
      this.db.exec(`PRAGMA wal_autocheckpoint=${FALLBACK_AUTOCHECKPOINT_PAGES}`);
      this.checkpointer = new WalCheckpointer(file);
    }
    this.maxBytes = opts.maxBytes ?? 0;
    this.minFreeBytes = opts.minFreeBytes ?? 0;
    this.directory = dirname(file);
    this.pageBytes = Number(this.prepare<[], { page_size: number }>('PRAGMA page_size').get()!.page_size);
    this.tx = {
      begin: this.prepare('BEGIN IMMEDIATE'),
      commit: this.prepare('COMMIT'),
      rollback: this.prepare('ROLLBACK'),
      savepoint: this.prepare('SAVEPOINT w'),
      release: this.prepare('RELEASE w'),
      rollbackTo: this.prepare('ROLLBACK TO w'),
    };
    this.pageCount = this.prepare('SELECT page_count AS n FROM pragma_page_count()');
    this.freePages = this.prepare('SELECT freelist_count AS n FROM pragma_freelist_count()');
  }

  /** Prepares a statement once, typed with its parameters and its row shape. */
  prepare<Params extends SQLInputValue[] = [], Row = never>(sql: string): Statement<Params, Row> {
    return this.db.prepare(sql) as unknown as Statement<Params, Row>;
  }

  /** `listener` runs whenever a commit is rolled back (state a repository keeps ahead of its rows). */
  onRollback(listener: () => void): void {
    this.rollbackListeners.push(listener);
  }

  private rolledBack(): void {
    for (const listener of this.rollbackListeners) listener();
  }

  /** Queues a write for the next group commit; resolves once it is durable. */
  write(write: Write): Promise<void> {
    if (this.closed) return Promise.reject(new GatewayError('SHUTTING_DOWN', 'storage is closed'));
    return new Promise((resolve, reject) => {
      this.pending.push({ write, resolve, reject });
      if (this.pending.length >= this.maxBatch) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flushOnceSynced());
      }
    });
  }

  /**
   * Runs `work` in its own transaction now, outside the group commit (the CLI's one-off changes, which
   * read and decide under the lock); rolled back if it throws.
   */
  transaction<T>(work: () => T): T {
    this.tx.begin.run();
    try {
      const result = work();
      this.tx.commit.run();
      return result;
    } catch (err) {
      if (this.db.isTransaction) this.tx.rollback.run();
      throw err;
    }
  }

  /**
   * Commits now, or, while the WAL is being synced, as soon as that sync ends: a commit made meanwhile
   * would wait for the next sync anyway, and holding it lets the writes of the next turns share it
   * (each commit writes the pages it touches whole; docs/DECISIONS.md 30).
   */
  private flushOnceSynced(): void {
    if (this.walSyncer?.busy) void this.walSyncer.idle().then(() => this.flush());
    else this.flush();
  }

  /**
   * Commits everything queued in one transaction. A write that throws fails alone: the batch is first
   * tried whole (the common case, no savepoint per write); if any write throws, it is rolled back and
   * replayed with a savepoint around each write. Writes therefore keep their side effects idempotent.
   */
  flush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    const failed = new Map<number, unknown>();
    const tx = this.tx;
    try {
      tx.begin.run();
      try {
        for (const item of batch) item.write();
      } catch (err) {
        // Some errors (a full disk) make SQLite roll the whole transaction back itself.
        if (this.db.isTransaction) tx.rollback.run();
        this.rolledBack();
        if (batch.length === 1 || isStorageFull(err)) {
          // A full disk fails every write that needs a page, so no write is tried alone.
          const failure = this.noteFull(err);
          for (const item of batch) item.reject(failure);
          return;
        }
        tx.begin.run();
        batch.forEach((item, i) => {
          tx.savepoint.run();
          try {
            item.write();
            tx.release.run();
          } catch (err) {
            if (!this.db.isTransaction) throw err; // rolled back whole by SQLite: the batch fails (below)
            tx.rollbackTo.run();
            tx.release.run();
            this.rolledBack();
            failed.set(i, this.noteFull(err));
          }
        });
      }
      tx.commit.run();
      this.commitStats.commits++;
      this.commitStats.writes += batch.length - failed.size;
    } catch (err) {
      try { this.db.exec('ROLLBACK'); } catch { /* no transaction left */ }
      this.rolledBack();
      const storageError = storageFailure('storage commit', this.noteFull(err));
      for (const item of batch) item.reject(storageError);
      return;
    }
    this.checkpointer?.committed();
    if ((this.maxBytes || this.minFreeBytes) && Date.now() - this.usedAt >= USAGE_REFRESH_MS) this.refreshUsage();
    const settle = () => batch.forEach((item, i) => (failed.has(i) ? item.reject(failed.get(i)) : item.resolve()));
    if (!this.walSyncer) {
      settle();
      return;
    }
    this.walSyncer.sync().then(settle, (err: Error) => {
      const storageError = new GatewayError('STORAGE', `storage sync failed: ${err.message}`, { cause: err });
      for (const item of batch) item.reject(storageError);
    });
  }

  /**
   * A write's error as its caller gets it: a full disk becomes STORAGE_FULL, and new mail is then
   * refused with that same error for FULL_RECHECK_MS (assertRoom); any other error is returned as it is.
   */
  private noteFull(err: unknown): unknown {
    if (!isStorageFull(err)) return err;
    this.full = { error: storageFailure('storing', err), until: Date.now() + FULL_RECHECK_MS };
    return this.full.error;
  }

  /** Rows were deleted: a store refused as full may take mail again at once. */
  freed(): void {
    this.full = undefined;
    this.refreshUsage();
  }

  /**
   * Throws STORAGE_FULL while the store was full at its last write (for FULL_RECHECK_MS), so mail that
   * cannot be stored is refused before it is verified or logged.
   */
  assertRoom(): void {
    if (this.full && this.full.until > Date.now()) throw this.full.error;
    if (!this.maxBytes && !this.minFreeBytes) return;
    // Refreshed here too: while mail is refused nothing commits, and room may come from elsewhere.
    if (Date.now() - this.usedAt >= USAGE_REFRESH_MS) this.refreshUsage();
    if (this.maxBytes && this.usedBytes >= this.maxBytes) {
      throw new GatewayError('STORAGE_FULL', `the node's store holds ${this.usedBytes} bytes, its limit storage.maxBytes is ${this.maxBytes}; nothing was stored, send again later`);
    }
    if (this.freeBytes < this.minFreeBytes) {
      throw new GatewayError('STORAGE_FULL', `the disk of ${this.directory} has ${this.freeBytes} bytes free, less than storage.minFreeBytes (${this.minFreeBytes}); nothing was stored, send again later`);
    }
  }

  /** Bytes in use by the store: its pages less the free ones (from the file header, cheap). */
  private refreshUsage(): void {
    const pages = Number(this.pageCount.get()!.n);
    const free = Number(this.freePages.get()!.n);
    this.usedBytes = (pages - free) * this.pageBytes;
    // Unknown (statfs failed) counts as room: SQLite still reports a full disk itself.
    if (this.minFreeBytes) this.freeBytes = this.statFree() ?? Infinity;
    this.usedAt = Date.now();
  }

  /** Bytes in use by the store (free pages excluded). */
  usage(): number {
    this.refreshUsage();
    return this.usedBytes;
  }

  /** Bytes free on the disk holding the store (for status and metrics; 0 when it cannot be read). */
  diskFree(): number {
    return this.statFree() ?? 0;
  }

  private statFree(): number | undefined {
    try {
      const disk = statfsSync(this.directory);
      return disk.bavail * disk.bsize;
    } catch {
      return undefined;
    }
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.flush();
    this.closed = true;
    const syncer = this.walSyncer;
    if (!syncer) {
      this.db.close();
      return Promise.resolve();
    }
    const checkpointer = this.checkpointer;
    return syncer.sync().catch(() => {})
      .then(() => checkpointer?.close())
      .then(() => syncer.close())
      .then(() => this.db.close());
  }
}
