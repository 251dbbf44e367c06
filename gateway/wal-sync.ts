// Group commit without blocking the event loop. SQLite runs with synchronous=NORMAL, so a COMMIT only
// write()s its frames to the WAL; this syncer then fdatasync()s the WAL file on libuv's thread pool.
// Once that resolves, every commit made before the sync started is durable (SQLite itself syncs the
// WAL before any checkpoint copies it into the database, so a WAL restart never loses synced frames).
// Callers that arrive while a sync runs share the next one.
import { open, type FileHandle } from 'node:fs/promises';

export class WalSyncer {
  private readonly walPath: string;
  private handle?: Promise<FileHandle>;
  private running?: Promise<void>;
  private next?: Promise<void>;

  constructor(databaseFile: string) {
    this.walPath = `${databaseFile}-wal`;
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
    await (await this.handle).datasync();
  }

  async close(): Promise<void> {
    await this.running?.catch(() => {});
    await this.next?.catch(() => {});
    const handle = await this.handle?.catch(() => undefined);
    this.handle = undefined;
    await handle?.close();
  }
}
