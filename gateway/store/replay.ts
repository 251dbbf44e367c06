// The replay set (table seen_messages, PROTOCOL §5): every message accepted, until it expires, with its
// log index, keyed on (message id, message hash). It is the node's only index by message id: proofs and
// re-sent messages find their leaf through it. A row from before layout 4 holds an empty hash and
// stands for every hash.
import type { StoreEngine, Statement } from './engine.ts';

const EMPTY = new Uint8Array(0);

export class ReplayRepository {
  private readonly engine: StoreEngine;
  private readonly stmts: {
    add: Statement<[Uint8Array, Uint8Array, number, number | null]>;
    seenAs: Statement<[Uint8Array, Uint8Array], { log_index: number | null }>;
    rows: Statement<[Uint8Array], { log_index: number | null }>;
    prune: Statement<[number]>;
    fromLogIndex: Statement<[number], { message_id: Uint8Array; message_hash: Uint8Array; log_index: number }>;
    setLogIndex: Statement<[number | null, Uint8Array, Uint8Array]>;
  };

  constructor(engine: StoreEngine) {
    this.engine = engine;
    this.stmts = {
      add: engine.prepare(`INSERT INTO seen_messages (message_id, message_hash, expires_ms, log_index) VALUES (?, ?, ?, ?)`),
      seenAs: engine.prepare(`SELECT log_index FROM seen_messages WHERE message_id = ? AND message_hash IN (?, x'')`),
      rows: engine.prepare(`SELECT log_index FROM seen_messages WHERE message_id = ?`),
      prune: engine.prepare(`DELETE FROM seen_messages WHERE expires_ms < ?`),
      // Repair after a crash (startup): scans, since nothing indexes log_index.
      fromLogIndex: engine.prepare(`SELECT message_id, message_hash, log_index FROM seen_messages WHERE log_index >= ?`),
      setLogIndex: engine.prepare(`UPDATE seen_messages SET log_index = ? WHERE message_id = ? AND message_hash = ?`),
    };
  }

  /**
   * Records an accepted message (inside a write). The primary key is the replay check: a message
   * already recorded throws SQLite's primary-key error (see Store.storeEnvelope). Without a hash the id
   * alone is recorded, blocking every hash.
   */
  add(messageId: Uint8Array, messageHash: Uint8Array | undefined, expiresMs: number, logIndex: number | null): void {
    this.stmts.add.run(messageId, messageHash ?? EMPTY, expiresMs, logIndex);
  }

  /**
   * True when this message (id and hash) was already accepted, or its id before layout 4 (then any
   * hash). A fast pre-check; the store re-checks atomically.
   */
  has(messageId: Uint8Array, messageHash: Uint8Array): boolean {
    return this.stmts.seenAs.get(messageId, messageHash) !== undefined;
  }

  /**
   * The log index of the message accepted under this id and hash: a number, null if the replay set
   * holds it without its leaf (accepted before layout 3), undefined if it holds no such message. For a
   * row from before layout 4 (id alone) the caller checks the leaf's hash itself.
   */
  logIndexOf(messageId: Uint8Array, messageHash: Uint8Array): number | null | undefined {
    const seen = this.stmts.seenAs.get(messageId, messageHash);
    if (!seen) return undefined;
    return seen.log_index === null ? null : Number(seen.log_index);
  }

  /** The log indexes of every message accepted under this id (null: accepted before layout 3). */
  logIndexesOfId(messageId: Uint8Array): (number | null)[] {
    return this.stmts.rows.all(messageId).map((r) => (r.log_index === null ? null : Number(r.log_index)));
  }

  /** Forgets the messages expired before `nowMs`. */
  prune(nowMs: number): Promise<void> {
    return this.engine.write(() => { this.stmts.prune.run(nowMs); });
  }

  /** Messages whose log index is at or past `size` (crash repair). */
  fromLogIndex(size: number): { messageId: Uint8Array; messageHash: Uint8Array; logIndex: number }[] {
    return this.stmts.fromLogIndex.all(size).map((r) => ({ messageId: r.message_id, messageHash: r.message_hash, logIndex: Number(r.log_index) }));
  }

  /** Sets a message's log index (inside a write; crash repair). */
  setLogIndex(messageId: Uint8Array, messageHash: Uint8Array, logIndex: number | null): void {
    this.stmts.setLogIndex.run(logIndex, messageId, messageHash);
  }
}
