// Group commit without blocking the event loop. SQLite runs with synchronous=NORMAL, so a COMMIT only
// write()s its frames to the WAL; this syncer then fdatasync()s the WAL file on libuv's thread pool.
// Once that resolves, every commit made before the sync started is durable (SQLite itself syncs the
// WAL before any checkpoint copies it into the database, so a WAL restart never loses synced frames).
// Callers that arrive while a sync runs share the next one; the store goes further and holds its
// commits while a sync runs (`busy`, `idle()`), so the writes of those turns share one commit too.
import { open, type FileHandle } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';

export class WalSyncer {
  private readonly walPath: string;
  private readonly around?: (fdatasync: () => Promise<void>) => Promise<void>;
  private handle?: Promise<FileHandle>;
  private running?: Promise<void>;
  private next?: Promise<void>;

  /** `around` wraps each fdatasync (tests use it to play a slow disk). */
  constructor(databaseFile: string, around?: (fdatasync: () => Promise<void>) => Promise<void>) {
    this.walPath = `${databaseFile}-wal`;
    this.around = around;
  }

  /** True while a sync runs. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Resolves once no sync runs (at once if none does); never rejects. */
  idle(): Promise<void> {
    return this.running ? this.running.then(() => {}, () => {}) : Promise.resolve();
  }

  /** Resolves once everything committed before this call is on stable storage. */
  sync(): Promise<void> {
    if (!this.running) {
      this.running = this.syncOnce().finally(() => { this.running = undefined; });
      return this.running;
    }
    // A sync is under way but may have started before our commit: wait for the one after it.
    this.next ??= this.running.catch(() => {}).then(() => {
      this.next = undefined;
      return this.sync();
    });
    return this.next;
  }

  private async syncOnce(): Promise<void> {
    this.handle ??= open(this.walPath, 'r+');
    const fdatasync = async () => (await this.handle!).datasync();
    await (this.around ? this.around(fdatasync) : fdatasync());
  }

  async close(): Promise<void> {
    await this.running?.catch(() => {});
    await this.next?.catch(() => {});
    const handle = await this.handle?.catch(() => undefined);
    this.handle = undefined;
    await handle?.close();
  }
}

// Checkpoints (copying the WAL into the database file, with its fsyncs) run on a worker thread with its
// own connection, so they never stall the event loop. PASSIVE mode never blocks the node's writer; the
// main connection keeps a high autocheckpoint threshold as a fallback should the worker fall behind.
const CHECKPOINT_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { DatabaseSync } = require('node:sqlite');
const db = new DatabaseSync(workerData.file);
db.exec('PRAGMA busy_timeout=0; PRAGMA synchronous=NORMAL;');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
parentPort.on('message', (m) => {
  if (m === 'close') { db.close(); process.exit(0); }
  let reply;
  try { reply = { ok: true, ...checkpoint.get() }; } catch (err) { reply = { ok: false, error: String(err && err.message) }; }
  parentPort.postMessage(reply);
});
`;

/** Pages the main connection lets the WAL reach before it checkpoints itself (the fallback). */
export const FALLBACK_AUTOCHECKPOINT_PAGES = 4000;

export class WalCheckpointer {
  private readonly file: string;
  /** Started with the first commit: a node that writes nothing needs no checkpointer. */
  private worker?: Worker;
  private readonly intervalMs: number;
  private timer?: NodeJS.Timeout;
  private running = false;
  private dirty = false;
  private failed = false;
  private idle?: () => void;
  /** Checkpoints done and the last error (for tests and diagnostics). */
  readonly stats = { checkpoints: 0, lastError: '' };

  constructor(databaseFile: string, intervalMs = 200) {
    this.file = databaseFile;
    this.intervalMs = intervalMs;
  }

  private start(): Worker {
    const worker = new Worker(CHECKPOINT_WORKER, { eval: true, workerData: { file: this.file } });
    worker.unref();
    worker.on('message', (reply: { ok: boolean; error?: string }) => {
      this.running = false;
      if (reply.ok) this.stats.checkpoints++;
      else this.stats.lastError = reply.error ?? 'checkpoint failed';
      if (this.dirty) this.schedule();
      else this.idle?.();
    });
    worker.on('error', (err) => {
      // The main connection's autocheckpoint still keeps the WAL bounded.
      this.failed = true;
      this.running = false;
      this.stats.lastError = err.message;
      this.idle?.();
    });
    return worker;
  }

  /** Called after each commit: a checkpoint follows within intervalMs. */
  committed(): void {
    if (this.failed) return;
    this.dirty = true;
    if (!this.running && !this.timer) this.schedule();
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.failed || this.running) return;
      this.dirty = false;
      this.running = true;
      this.worker ??= this.start();
      this.worker.postMessage('checkpoint');
    }, this.intervalMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.dirty = false;
    const worker = this.worker;
    if (!worker) return;
    worker.ref(); // keep the process alive until the worker has answered and closed its connection
    if (this.running) await new Promise<void>((resolve) => { this.idle = resolve; });
    if (this.failed) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage('close');
    await exited;
  }
}
