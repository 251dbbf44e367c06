// The node's durable store: node:sqlite in WAL mode. The node runs it 'deferred' (docs/DECISIONS.md 7):
// COMMIT writes the WAL, the fdatasync runs on the thread pool, checkpoints on a worker thread.
// Writes go through a group-commit queue: every write requested in the same turn of the event loop
// shares one transaction and one fsync, and each caller's promise resolves only after that COMMIT.
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { EventEmitter } from 'node:events';
import { statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { GatewayError, openingFile, isStorageFull, storageFailure } from './errors.ts';
import { WalSyncer, WalCheckpointer, FALLBACK_AUTOCHECKPOINT_PAGES } from './wal-sync.ts';
import { createPrivateFile } from './private-files.ts';

export interface MailboxRecord {
  address: string;
  did: string;
  signingKeyId: string;
  signingPublicKey: Uint8Array;
  agreementKeyId: string;
  agreementPublicKey: Uint8Array;
  tokenSha256: string;
  documentJson: string;
  createdMs: number;
}

export type OutboundState = 'queued' | 'deferred' | 'held' | 'delivered' | 'failed';

export interface OutboundItem {
  messageId: Uint8Array;
  recipient: string;
  domain: string;
  state: OutboundState;
  attempts: number;
  nextAttemptMs: number;
  expiresMs: number;
  lastError: string;
  receipt: string;
  updatedMs: number;
}

/**
 * An accepted message whose log leaf was lost in a crash (see messagesFromLogIndex). `messageHash` is
 * empty for one accepted before layout 4 (its replay-set row holds the id alone).
 */
export interface LostLeaf { logIndex: number; messageId: Uint8Array; messageHash: Uint8Array; envelope?: Uint8Array; deliveryRows: number[] }
/** A queued envelope as the outbound queue holds it (one row per message, whatever its recipients). */
export interface HeldEnvelope { envelope: Uint8Array; sender: string; senderDomain: string; logIndex: number | null }

export interface RouteRecord { domain: string; did: string; endpoint: string }

export interface StoredDelivery {
  mailbox: string;
  seq: number;
  messageId: Uint8Array;
  envelope: Uint8Array;
  receivedMs: number;
  logIndex: number | null;
  /**
   * Who vouched for the sender (docs/PROTOCOL.md §4 "Sender binding"): the address this node
   * authenticated or the sending node vouched for ('' if none did), and the vouched-for domain ('' if
   * none; also for deliveries stored before layout 4).
   */
  authenticatedSender: string;
  senderDomain: string;
}

/** Who vouched for a message's sender, as stored with its deliveries (see StoredDelivery). */
export interface VouchedSender { address: string; domain: string }

type Write = () => void;
type CachedMailbox = { mailbox: MailboxRecord; until: number };

const PAGE_SIZE = 16384;
/**
 * A static route row read from the store is reused this long. The CLI changes routes from its own
 * process, so the node cannot be told; a node under load looks a route up two or three times per
 * message, and one indexed read through node:sqlite costs 7-20 us (3-4% of the sender's main thread).
 * Changes made through this store apply at once.
 */
export const ROUTE_REREAD_MS = 200;
const EMPTY = new Uint8Array(0);
/** SQLite's extended result code for a duplicate primary key. */
const SQLITE_CONSTRAINT_PRIMARYKEY = 1555;
const MAX_ROUTE_ROWS = 1024;
const MAILBOX_CACHE_MAX = 10_000;
const TOKEN_CACHE_MS = 10_000;
/** How long a running node may still use a mailbox record it read (the CLI changes them from its own process). */
export const MAILBOX_REREAD_MS = TOKEN_CACHE_MS;
/**
 * After a write failed because the store or its disk is full, new mail is refused at once for this
 * long (no verification, no log leaf for a message that cannot be stored); then writes are tried again.
 */
export const FULL_RECHECK_MS = 1000;
/** How often, at most, a store with storage.maxBytes re-reads its size after commits (a soft cap). */
const USAGE_REFRESH_MS = 100;
/**
 * Store layout version (PRAGMA user_version). 1: deliveries.acked holds the ack time (ms), not 1.
 * 2: the outbound tables are rowid tables (they were WITHOUT ROWID).
 * 3: delivered envelopes live in delivery_envelopes, apart from their delivery rows; the replay set
 *    keeps each message's log index, and deliveries have no index by message id (DECISIONS 29).
 * 4: the replay set is keyed on (message id, message hash), so that another message reusing an id
 *    cannot block the genuine one (rows from before hold an empty hash: the id alone, whatever the
 *    hash); delivered envelopes keep who vouched for their sender (empty before: nobody).
 */
export const STORE_VERSION = 4;

// The outbound queue's tables are ordinary rowid tables, their keys unique indexes: rows are appended in
// arrival order, while message ids are random. Clustered on the random id (WITHOUT ROWID), every insert
// and every update landed on its own page of large rows (envelopes, receipts): measured on A's pattern,
// that wrote ~88 KiB and cost ~150 us of CPU per relayed message, and ~240 us while a backlog
// grows (docs/DECISIONS.md 28).
const OUTBOUND_ENVELOPES_COLUMNS = `(
  message_id BLOB NOT NULL PRIMARY KEY,
  envelope BLOB NOT NULL,
  sender TEXT NOT NULL,
  sender_domain TEXT NOT NULL,
  log_index INTEGER
) STRICT`;
const OUTBOUND_COLUMNS = `(
  message_id BLOB NOT NULL,
  recipient TEXT NOT NULL,
  domain TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL,
  last_error TEXT NOT NULL DEFAULT '',
  receipt TEXT NOT NULL DEFAULT '',
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (message_id, recipient)
) STRICT`;
const OUTBOUND_DUE_INDEX = 'CREATE INDEX IF NOT EXISTS outbound_due ON outbound (state, next_attempt_ms)';

// The replay set: every message accepted, until it expires, with its log index. It is the node's only
// index by message id (proofs and re-sent messages find their leaf through it). Keyed on id and hash:
// the id alone would let anyone who learns an id (a co-recipient) block the genuine message by sending
// another one under it first. An empty hash (a row from before layout 4) stands for every hash.
const SEEN_COLUMNS = `(
  message_id BLOB NOT NULL,
  message_hash BLOB NOT NULL,
  expires_ms INTEGER NOT NULL,
  log_index INTEGER, -- null: accepted before layout 3 kept it
  PRIMARY KEY (message_id, message_hash)
) STRICT, WITHOUT ROWID`;
const SEEN_EXPIRY_INDEX = 'CREATE INDEX IF NOT EXISTS seen_messages_expiry ON seen_messages (expires_ms)';
/** Who vouched for a delivered message's sender (StoredDelivery.authenticatedSender, senderDomain). */
const DELIVERY_SENDER_COLUMNS = `sender TEXT NOT NULL DEFAULT '',
  sender_domain TEXT NOT NULL DEFAULT ''`;

/** A delivery row with its envelope: `SELECT ${DELIVERY_FIELDS} ${DELIVERY_ROWS} WHERE ...`. */
const DELIVERY_FIELDS = 'mailbox, seq, message_id, envelope, received_ms, log_index, sender, sender_domain';
const DELIVERY_ROWS = 'FROM deliveries JOIN delivery_envelopes ON delivery_envelopes.id = deliveries.rowid';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS mailboxes (
  address TEXT PRIMARY KEY,
  did TEXT NOT NULL UNIQUE,
  signing_key_id TEXT NOT NULL,
  signing_public_key BLOB NOT NULL,
  agreement_key_id TEXT NOT NULL,
  agreement_public_key BLOB NOT NULL,
  token_sha256 TEXT NOT NULL UNIQUE,
  document_json TEXT NOT NULL,
  created_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS deliveries (
  mailbox TEXT NOT NULL,
  seq INTEGER NOT NULL,
  message_id BLOB NOT NULL,
  received_ms INTEGER NOT NULL,
  log_index INTEGER,
  acked INTEGER NOT NULL DEFAULT 0, -- 0 = waiting; else when the mailbox acknowledged it (ms)
  PRIMARY KEY (mailbox, seq)
) STRICT;
-- A delivery's envelope, keyed by the delivery's rowid. Apart from the small delivery rows, so that an
-- ack rewrites a page of those, not the envelope's own page(s) (docs/DECISIONS.md 29); deleting a
-- delivery deletes its envelope, whichever statement deletes it.
CREATE TABLE IF NOT EXISTS delivery_envelopes (
  id INTEGER PRIMARY KEY,
  envelope BLOB NOT NULL,
  ${DELIVERY_SENDER_COLUMNS}
) STRICT;
CREATE TRIGGER IF NOT EXISTS delivery_envelope_deleted AFTER DELETE ON deliveries
  BEGIN DELETE FROM delivery_envelopes WHERE id = OLD.rowid; END;
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (mailbox, acked, seq);
CREATE TABLE IF NOT EXISTS outbound_envelopes ${OUTBOUND_ENVELOPES_COLUMNS};
CREATE TABLE IF NOT EXISTS outbound ${OUTBOUND_COLUMNS};
${OUTBOUND_DUE_INDEX};
CREATE TABLE IF NOT EXISTS routes (
  domain TEXT PRIMARY KEY,
  did TEXT NOT NULL,
  endpoint TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS seen_messages ${SEEN_COLUMNS};
${SEEN_EXPIRY_INDEX};
`;

export class Storage extends EventEmitter {
  readonly db: DatabaseSync;
  private readonly maxBatch: number;
  private pending: { write: Write; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private flushScheduled = false;
  private closed = false;
  private readonly nextSeq = new Map<string, number>();
  /** Group commits made and the writes they carried, since open (writes per commit: how well commits group). */
  readonly commitStats = { commits: 0, writes: 0 };
  private readonly routeRows = new Map<string, { row: RouteRecord | undefined; at: number }>();
  private readonly mailboxCache = new Map<string, CachedMailbox>();
  private readonly tokenCache = new Map<string, CachedMailbox>();
  private readonly stmts: Record<string, StatementSync>;
  /** The disk was full at the last write: new mail gets this error without trying, until `until`. */
  private full?: { error: GatewayError; until: number };
  /** storage.maxBytes (0 = no cap): new mail is refused beyond it; acks and deletions still work. */
  private readonly maxBytes: number;
  /** storage.minFreeBytes (0 = none): new mail is refused while the store's disk has less free. */
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
  private readonly tx: Record<'begin' | 'commit' | 'rollback' | 'savepoint' | 'release' | 'rollbackTo', StatementSync>;

  /**
   * durability 'full': SQLite fsyncs each COMMIT (blocking; fine for the CLI's one-off writes).
   * 'deferred' (the node): COMMIT writes the WAL and the fsync runs off the event loop (WalSyncer);
   * write() promises still resolve only once their commit is durable.
   */
  constructor(file: string, opts: {
    maxBatch?: number; durability?: 'full' | 'deferred'; maxBytes?: number; minFreeBytes?: number;
    /** Wraps each WAL fdatasync of a 'deferred' store (tests: a slow disk). */
    aroundWalSync?: (fdatasync: () => Promise<void>) => Promise<void>;
  } = {}) {
    super();
    this.setMaxListeners(0); // one listener pair per open subscription
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
        db.exec(SCHEMA);
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
    this.pageBytes = Number((this.db.prepare('PRAGMA page_size').get() as { page_size: number }).page_size);
    const prepare = (sql: string) => this.db.prepare(sql);
    this.tx = {
      begin: prepare('BEGIN IMMEDIATE'),
      commit: prepare('COMMIT'),
      rollback: prepare('ROLLBACK'),
      savepoint: prepare('SAVEPOINT w'),
      release: prepare('RELEASE w'),
      rollbackTo: prepare('ROLLBACK TO w'),
    };
    this.stmts = {
      insertMailbox: prepare(`INSERT INTO mailboxes VALUES (?,?,?,?,?,?,?,?,?)`),
      setMailboxToken: prepare(`UPDATE mailboxes SET token_sha256 = ? WHERE address = ?`),
      mailboxByAddress: prepare(`SELECT * FROM mailboxes WHERE address = ?`),
      mailboxByToken: prepare(`SELECT * FROM mailboxes WHERE token_sha256 = ?`),
      mailboxByDid: prepare(`SELECT * FROM mailboxes WHERE did = ?`),
      countMailboxes: prepare(`SELECT count(*) AS n FROM mailboxes`),
      listMailboxes: prepare(`SELECT * FROM mailboxes ORDER BY address`),
      maxSeq: prepare(`SELECT coalesce(max(seq), 0) AS s FROM deliveries WHERE mailbox = ?`),
      insertDelivery: prepare(`INSERT INTO deliveries (mailbox, seq, message_id, received_ms, log_index) VALUES (?,?,?,?,?)`),
      insertDeliveryEnvelope: prepare(`INSERT INTO delivery_envelopes (id, envelope, sender, sender_domain) VALUES (last_insert_rowid(), ?, ?, ?)`),
      pending: prepare(`SELECT ${DELIVERY_FIELDS} ${DELIVERY_ROWS} WHERE mailbox = ? AND acked = 0 AND seq > ? ORDER BY seq LIMIT ?`),
      ack: prepare(`UPDATE deliveries SET acked = ? WHERE mailbox = ? AND seq = ? AND acked = 0`),
      pageCount: prepare('SELECT page_count AS n FROM pragma_page_count()'),
      freePages: prepare('SELECT freelist_count AS n FROM pragma_freelist_count()'),
      countUnacked: prepare(`SELECT count(*) AS n FROM deliveries WHERE mailbox = ? AND acked = 0`),
      deleteMailbox: prepare(`DELETE FROM mailboxes WHERE address = ?`),
      deleteMailboxDeliveries: prepare(`DELETE FROM deliveries WHERE rowid IN (SELECT rowid FROM deliveries WHERE mailbox = ? LIMIT ?)`),
      mailboxAddresses: prepare(`SELECT address FROM mailboxes ORDER BY address`),
      // Through the (mailbox, acked, seq) index. The mailbox's newest row stays: its seq is where the
      // mailbox's numbering resumes after a restart, so a subscriber's cursor never sees a seq twice.
      pruneAcked: prepare(`DELETE FROM deliveries WHERE rowid IN (SELECT rowid FROM deliveries
                           WHERE mailbox = ? AND acked > 0 AND acked < ? AND seq < ? LIMIT ?)`),
      // Repair after a crash (startup): scans, since nothing indexes log_index; the deliveries are read
      // only when the replay set names a lost leaf.
      seenFromLogIndex: prepare(`SELECT message_id, message_hash, log_index FROM seen_messages WHERE log_index >= ?`),
      deliveriesFromLogIndex: prepare(`SELECT deliveries.rowid AS id, log_index, envelope ${DELIVERY_ROWS} WHERE log_index >= ?`),
      setDeliveryLogIndex: prepare(`UPDATE deliveries SET log_index = ? WHERE rowid = ?`),
      setOutboundLogIndex: prepare(`UPDATE outbound_envelopes SET log_index = ? WHERE message_id = ?`),
      setSeenLogIndex: prepare(`UPDATE seen_messages SET log_index = ? WHERE message_id = ? AND message_hash = ?`),
      insertOutboundEnvelope: prepare(`INSERT INTO outbound_envelopes VALUES (?,?,?,?,?)`),
      insertOutbound: prepare(`INSERT INTO outbound (message_id, recipient, domain, state, next_attempt_ms, expires_ms, updated_ms) VALUES (?,?,?,'queued',?,?,?)`),
      dueOutbound: prepare(`SELECT * FROM outbound WHERE state IN ('queued','deferred') AND next_attempt_ms <= ? ORDER BY next_attempt_ms LIMIT ?`),
      nextDueAfter: prepare(`SELECT min(next_attempt_ms) AS t FROM outbound WHERE state IN ('queued','deferred') AND next_attempt_ms > ?`),
      nextDue: prepare(`SELECT min(next_attempt_ms) AS t FROM outbound WHERE state IN ('queued','deferred')`),
      outboundEnvelope: prepare(`SELECT * FROM outbound_envelopes WHERE message_id = ?`),
      updateOutbound: prepare(`UPDATE outbound SET state = ?, attempts = ?, next_attempt_ms = ?, last_error = ?, receipt = ?, updated_ms = ? WHERE message_id = ? AND recipient = ?`),
      outboundCounts: prepare(`SELECT state, count(*) AS n FROM outbound WHERE state IN ('queued','deferred','held','failed') GROUP BY state`),
      listOutbound: prepare(`SELECT * FROM outbound WHERE (? = '' OR state = ?) ORDER BY updated_ms DESC LIMIT 1000`),
      outboundOf: prepare(`SELECT * FROM outbound WHERE message_id = ? AND (? = '' OR recipient = ?)`),
      waitingFor: prepare(`SELECT * FROM outbound WHERE state IN ('queued','deferred','held') AND (? = '*' OR domain = ?)`),
      deleteOutbound: prepare(`DELETE FROM outbound WHERE message_id = ? AND recipient = ?`),
      deleteOutboundEnvelopeIfDone: prepare(`DELETE FROM outbound_envelopes WHERE message_id = ? AND NOT EXISTS (SELECT 1 FROM outbound WHERE message_id = ? AND state NOT IN ('delivered','failed'))`),
      upsertRoute: prepare(`INSERT INTO routes VALUES (?,?,?) ON CONFLICT(domain) DO UPDATE SET did = excluded.did, endpoint = excluded.endpoint`),
      routes: prepare(`SELECT * FROM routes ORDER BY domain`),
      routeFor: prepare(`SELECT * FROM routes WHERE domain = ?`),
      deleteRoute: prepare(`DELETE FROM routes WHERE domain = ?`),
      countDeliveries: prepare(`SELECT count(*) AS n FROM deliveries`),
      seenRows: prepare(`SELECT log_index FROM seen_messages WHERE message_id = ?`),
      seenAs: prepare(`SELECT log_index FROM seen_messages WHERE message_id = ? AND message_hash IN (?, x'')`),
      heldLogIndex: prepare(`SELECT DISTINCT log_index FROM deliveries WHERE mailbox = ? AND message_id = ? AND log_index IS NOT NULL LIMIT 2`),
      addSeen: prepare(`INSERT INTO seen_messages (message_id, message_hash, expires_ms, log_index) VALUES (?, ?, ?, ?)`),
      pruneSeen: prepare(`DELETE FROM seen_messages WHERE expires_ms < ?`),
      // For a delivered or failed recipient next_attempt_ms is when it finished (updateOutboundMany), so
      // the (state, next_attempt_ms) index finds the oldest records first.
      pruneFinished: prepare(`DELETE FROM outbound WHERE (message_id, recipient) IN
                              (SELECT message_id, recipient FROM outbound WHERE state = ? AND next_attempt_ms < ? LIMIT ?)`),
    };
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
        this.nextSeq.clear(); // counters may be ahead of what was rolled back
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
            this.nextSeq.clear();
            failed.set(i, this.noteFull(err));
          }
        });
      }
      tx.commit.run();
      this.commitStats.commits++;
      this.commitStats.writes += batch.length - failed.size;
    } catch (err) {
      try { this.db.exec('ROLLBACK'); } catch { /* no transaction left */ }
      this.nextSeq.clear(); // in-memory counters may be ahead of what was rolled back
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
    const pages = Number((this.stmts.pageCount.get() as { n: number }).n);
    const free = Number((this.stmts.freePages.get() as { n: number }).n);
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

  // --- mailboxes ---------------------------------------------------------------------------------------

  listMailboxes(): MailboxRecord[] {
    return (this.stmts.listMailboxes.all() as unknown[]).map((row) => toMailbox(row)!);
  }

  /** Replaces a mailbox's API token (its hash); a running node stops accepting the old one within TOKEN_CACHE_MS. */
  setMailboxToken(address: string, tokenSha256: string): void {
    const changed = Number(this.stmts.setMailboxToken.run(tokenSha256, address.toLowerCase()).changes);
    if (changed === 0) throw new GatewayError('NOT_FOUND', `no mailbox ${address} on this node`);
  }

  addMailbox(m: MailboxRecord): void {
    if (this.mailboxByAddress(m.address)) throw new GatewayError('MAILBOX_EXISTS', `mailbox ${m.address} already exists`);
    this.stmts.insertMailbox.run(m.address, m.did, m.signingKeyId, m.signingPublicKey, m.agreementKeyId,
      m.agreementPublicKey, m.tokenSha256, m.documentJson, m.createdMs);
  }

  /**
   * A mailbox by address. Found records are reused for TOKEN_CACHE_MS (every message looks its
   * recipients up): the CLI adds and removes mailboxes from its own process, so misses are not cached
   * and a removed mailbox stops receiving within that time.
   */
  mailboxByAddress(address: string): MailboxRecord | undefined {
    return this.cachedMailbox(this.mailboxCache, address.toLowerCase(), this.stmts.mailboxByAddress);
  }

  /**
   * Removes a mailbox's record (new mail is refused, its token and DID document stop working within
   * MAILBOX_REREAD_MS on a running node); its mail goes with deleteMailboxMail. Refused while the mailbox
   * holds unacknowledged mail, unless `force`. A record already gone with mail left behind (a removal
   * cut short) passes, so the removal can be finished. Returns how much mail was unacknowledged.
   */
  removeMailbox(address: string, opts: { force?: boolean } = {}): { unacknowledged: number } {
    const key = address.toLowerCase();
    this.tx.begin.run();
    let unacknowledged: number;
    try {
      unacknowledged = Number((this.stmts.countUnacked.get(key) as { n: number }).n);
      if (this.stmts.mailboxByAddress.get(key)) {
        if (unacknowledged > 0 && !opts.force) {
          throw new GatewayError('CONFLICT', `${key} has ${unacknowledged} message(s) its app has not acknowledged; they would be deleted with it (--force)`);
        }
        this.stmts.deleteMailbox.run(key);
      } else if (Number((this.stmts.maxSeq.get(key) as { s: number }).s) === 0) {
        throw new GatewayError('NOT_FOUND', `no mailbox ${key} on this node`);
      } // else a removal that was interrupted after the record went: its mail is deleted now
      this.tx.commit.run();
    } catch (err) {
      if (this.db.isTransaction) this.tx.rollback.run();
      throw err;
    }
    this.mailboxCache.delete(key);
    this.nextSeq.delete(key);
    return { unacknowledged };
  }

  /** Deletes the stored mail of a removed mailbox, `chunk` rows per commit; returns how many. */
  deleteMailboxMail(address: string, chunk = 1000): number {
    let deleted = 0;
    for (;;) {
      const n = Number(this.stmts.deleteMailboxDeliveries.run(address.toLowerCase(), chunk).changes);
      deleted += n;
      if (n === 0) return deleted;
    }
  }

  /**
   * The mailbox a token hash belongs to. Hits are cached for TOKEN_CACHE_MS (every unary call
   * authenticates): a token removed from the store stops working within that time.
   */
  mailboxByToken(tokenSha256: string): MailboxRecord | undefined {
    return this.cachedMailbox(this.tokenCache, tokenSha256, this.stmts.mailboxByToken);
  }

  /** A mailbox found by `lookup`, reused for TOKEN_CACHE_MS; misses are not cached. */
  private cachedMailbox(cache: Map<string, CachedMailbox>, key: string, lookup: StatementSync): MailboxRecord | undefined {
    const now = Date.now();
    const cached = cache.get(key);
    if (cached && cached.until > now) return cached.mailbox;
    const found = toMailbox(lookup.get(key));
    cache.delete(key);
    if (found) remember(cache, key, { mailbox: found, until: now + TOKEN_CACHE_MS });
    return found;
  }

  mailboxByDid(did: string): MailboxRecord | undefined {
    return toMailbox(this.stmts.mailboxByDid.get(did));
  }

  countMailboxes(): number {
    return Number((this.stmts.countMailboxes.get() as { n: number }).n);
  }

  // --- deliveries --------------------------------------------------------------------------------------

  /** Allocates the next per-mailbox seq (to be used inside a write). */
  private allocateSeq(mailbox: string): number {
    let next = this.nextSeq.get(mailbox);
    if (next === undefined) next = Number((this.stmts.maxSeq.get(mailbox) as { s: number }).s) + 1;
    this.nextSeq.set(mailbox, next + 1);
    return next;
  }

  /**
   * Durably stores one envelope for every local recipient mailbox and records its message id against
   * replay, atomically. Resolves with the seq per mailbox; emits 'delivery' (mailbox, seq, StoredDelivery)
   * for each after the commit.
   */
  async storeEnvelope(args: {
    messageId: Uint8Array; expiresMs: number; envelope: Uint8Array; mailboxes: string[]; logIndex?: number;
    /** The replay set's key with the id; without it the id alone is recorded (blocking every hash). */
    messageHash?: Uint8Array;
    /** Who vouched for the sender, kept with each delivery; default: nobody. */
    sender?: VouchedSender;
    /** Remote recipients, queued for relay in the same transaction. */
    remote?: { recipients: { address: string; domain: string }[]; sender: string; senderDomain: string };
  }): Promise<Map<string, number>> {
    const seqs = new Map<string, number>();
    const receivedMs = Date.now();
    const sender = args.sender ?? { address: '', domain: '' };
    await this.write(() => {
      // The primary key is the replay check: no separate read of the id inside the commit. The outbound
      // queue names a message by its id: a second message under a queued id is refused as a replay too
      // (only a local sender queues, and it cannot learn an id before the message it belongs to).
      const replay = (run: () => void) => {
        try {
          run();
        } catch (err) {
          if ((err as { errcode?: number }).errcode === SQLITE_CONSTRAINT_PRIMARYKEY) throw new GatewayError('REPLAY', 'message id already accepted (replay)');
          throw err;
        }
      };
      replay(() => this.stmts.addSeen.run(args.messageId, args.messageHash ?? EMPTY, args.expiresMs, args.logIndex ?? null));
      if (args.remote && args.remote.recipients.length) {
        const remote = args.remote;
        replay(() => this.stmts.insertOutboundEnvelope.run(args.messageId, args.envelope, remote.sender, remote.senderDomain, args.logIndex ?? null));
        for (const r of args.remote.recipients) {
          this.stmts.insertOutbound.run(args.messageId, r.address, r.domain, receivedMs, args.expiresMs, receivedMs);
        }
      }
      for (const mailbox of args.mailboxes) {
        const seq = this.allocateSeq(mailbox);
        this.stmts.insertDelivery.run(mailbox, seq, args.messageId, receivedMs, args.logIndex ?? null);
        this.stmts.insertDeliveryEnvelope.run(args.envelope, sender.address, sender.domain);
        seqs.set(mailbox, seq);
      }
    }); // on failure, flush() has reset the seq counters
    // Listeners get the stored delivery itself, so a subscriber that is caught up need not read it back.
    for (const [mailbox, seq] of seqs) {
      const delivery: StoredDelivery = {
        mailbox, seq, messageId: args.messageId, envelope: args.envelope, receivedMs, logIndex: args.logIndex ?? null,
        authenticatedSender: sender.address, senderDomain: sender.domain,
      };
      this.emit('delivery', mailbox, seq, delivery);
    }
    if (args.remote?.recipients.length) {
      // Listeners get the new queue items themselves, so the outbound loop need not scan for them.
      const items: OutboundItem[] = args.remote.recipients.map((r) => ({
        messageId: args.messageId, recipient: r.address, domain: r.domain, state: 'queued', attempts: 0,
        nextAttemptMs: receivedMs, expiresMs: args.expiresMs, lastError: '', receipt: '', updatedMs: receivedMs,
      }));
      const held: HeldEnvelope = { envelope: args.envelope, sender: args.remote.sender, senderDomain: args.remote.senderDomain, logIndex: args.logIndex ?? null };
      this.emit('outbound', items, held);
    }
    return seqs;
  }

  // --- outbound queue ----------------------------------------------------------------------------------

  dueOutbound(nowMs: number, limit: number): OutboundItem[] {
    return (this.stmts.dueOutbound.all(nowMs, limit) as Record<string, unknown>[]).map(toOutbound);
  }

  /** When the next queued item due strictly after `afterMs` falls due (ms), or undefined. */
  nextOutboundDueAfter(afterMs: number): number | undefined {
    const t = (this.stmts.nextDueAfter.get(afterMs) as { t: number | null }).t;
    return t === null ? undefined : Number(t);
  }

  /** When the next queued item falls due (ms), or undefined when nothing waits. */
  nextOutboundDue(): number | undefined {
    const t = (this.stmts.nextDue.get() as { t: number | null }).t;
    return t === null ? undefined : Number(t);
  }

  outboundEnvelope(messageId: Uint8Array): HeldEnvelope | undefined {
    const r = this.stmts.outboundEnvelope.get(messageId) as Record<string, unknown> | undefined;
    if (!r) return undefined;
    return { envelope: r.envelope as Uint8Array, sender: r.sender as string, senderDomain: r.sender_domain as string, logIndex: r.log_index === null ? null : Number(r.log_index) };
  }

  /**
   * Recipients waiting in the outbound queue, by state. Delivered ones (kept with their receipts) are not
   * counted: each state is a range of the (state, next_attempt_ms) index, so this costs what is waiting.
   */
  outboundCounts(): Record<'queued' | 'deferred' | 'held' | 'failed', number> {
    const counts = { queued: 0, deferred: 0, held: 0, failed: 0 };
    for (const row of this.stmts.outboundCounts.all() as { state: keyof typeof counts; n: number }[]) counts[row.state] = Number(row.n);
    return counts;
  }

  listOutbound(state = ''): OutboundItem[] {
    return (this.stmts.listOutbound.all(state, state) as Record<string, unknown>[]).map(toOutbound);
  }

  /** Recipients still waiting (queued, deferred, held) for `domain`, or for every domain with "*". */
  waitingOutbound(domain: string): OutboundItem[] {
    const d = domain === '*' ? '*' : domain.toLowerCase();
    return (this.stmts.waitingFor.all(d, d) as Record<string, unknown>[]).map(toOutbound);
  }

  outboundOf(messageId: Uint8Array, recipient = ''): OutboundItem[] {
    return (this.stmts.outboundOf.all(messageId, recipient, recipient) as Record<string, unknown>[]).map(toOutbound);
  }

  /** Updates one queue item durably; the envelope is dropped once no recipient still needs it. */
  updateOutbound(item: OutboundItem): Promise<void> {
    return this.updateOutboundMany([item]);
  }

  /** Updates queue items in one durable write (all or none). */
  updateOutboundMany(items: OutboundItem[]): Promise<void> {
    return this.write(() => {
      const now = Date.now();
      const done = new Map<string, Uint8Array>();
      for (const item of items) {
        const finished = item.state === 'delivered' || item.state === 'failed';
        this.stmts.updateOutbound.run(item.state, item.attempts, finished ? now : item.nextAttemptMs, item.lastError, item.receipt, now, item.messageId, item.recipient);
        if (finished) done.set(Buffer.from(item.messageId).toString('hex'), item.messageId);
      }
      for (const messageId of done.values()) this.stmts.deleteOutboundEnvelopeIfDone.run(messageId, messageId);
    });
  }

  /** Removes one queue item (operator purge). */
  purgeOutbound(messageId: Uint8Array, recipient: string): Promise<void> {
    return this.write(() => {
      this.stmts.deleteOutbound.run(messageId, recipient);
      this.stmts.deleteOutboundEnvelopeIfDone.run(messageId, messageId);
    });
  }

  // --- static routes -----------------------------------------------------------------------------------

  setRoute(route: RouteRecord): Promise<void> {
    return this.write(() => {
      this.stmts.upsertRoute.run(route.domain, route.did, route.endpoint);
      this.routeRows.delete(route.domain);
    });
  }

  routes(): RouteRecord[] {
    return this.stmts.routes.all() as unknown as RouteRecord[];
  }

  /**
   * The static route of one domain (lower case). The CLI may change routes while the node runs: a row
   * is re-read when it is older than ROUTE_REREAD_MS.
   */
  routeFor(domain: string): RouteRecord | undefined {
    const now = performance.now();
    const held = this.routeRows.get(domain);
    if (held && now - held.at < ROUTE_REREAD_MS) return held.row;
    const row = this.stmts.routeFor.get(domain) as unknown as RouteRecord | undefined;
    if (this.routeRows.size >= MAX_ROUTE_ROWS) this.routeRows.clear();
    this.routeRows.set(domain, { row, at: now });
    return row;
  }

  deleteRoute(domain: string): Promise<void> {
    return this.write(() => {
      this.stmts.deleteRoute.run(domain);
      this.routeRows.delete(domain);
    });
  }

  /**
   * True when this message (id and hash) was already accepted, or its id before layout 4 (then any
   * hash). A fast pre-check; the store re-checks atomically.
   */
  hasSeen(messageId: Uint8Array, messageHash: Uint8Array): boolean {
    return this.stmts.seenAs.get(messageId, messageHash) !== undefined;
  }

  /**
   * The log index of the message accepted under this id and hash: a number, null if the replay set
   * holds it without its leaf (accepted before layout 3), undefined if it holds no such message. For a
   * row from before layout 4 (id alone) the caller checks the leaf's hash itself.
   */
  seenLogIndex(messageId: Uint8Array, messageHash: Uint8Array): number | null | undefined {
    const seen = this.stmts.seenAs.get(messageId, messageHash) as { log_index: number | null } | undefined;
    if (!seen) return undefined;
    return seen.log_index === null ? null : Number(seen.log_index);
  }

  pendingDeliveries(mailbox: string, afterSeq: number, limit: number): StoredDelivery[] {
    return (this.stmts.pending.all(mailbox, afterSeq, limit) as Record<string, unknown>[]).map(toDelivery);
  }

  /**
   * The log index of an accepted message, by its id: from the replay set, which holds the id until the
   * message expires; past that, for an id accepted before layout 3, or for an id that several messages
   * share (docs/PROTOCOL.md §5), from the delivery the mailbox `heldBy` holds (a scan of that mailbox's
   * rows: no index by message id). Undefined if neither knows it; null if the id names no single leaf
   * (accepted before layout 3, or several messages under it and `heldBy` holds none or several).
   */
  logIndexOf(messageId: Uint8Array, heldBy?: string): number | null | undefined {
    const seen = this.stmts.seenRows.all(messageId) as { log_index: number | null }[];
    if (seen.length === 1 && seen[0]!.log_index !== null) return Number(seen[0]!.log_index);
    const held = heldBy === undefined ? [] : this.stmts.heldLogIndex.all(heldBy, messageId) as { log_index: number }[];
    if (held.length === 1) return Number(held[0]!.log_index);
    return seen.length || held.length ? null : undefined;
  }

  /** Marks deliveries acknowledged (recording when, for retention); resolves once durable. */
  ack(mailbox: string, seqs: number[], nowMs = Date.now()): Promise<void> {
    return this.write(() => {
      for (const seq of seqs) this.stmts.ack.run(nowMs, mailbox, seq);
    });
  }

  /**
   * Deletes deliveries acknowledged before `beforeMs`, at most `limit` in one commit (a large backlog
   * goes in several, so other writes interleave); each mailbox keeps its newest row. Resolves with how
   * many were deleted. Frees room in a full store at once.
   */
  pruneAcked(beforeMs: number, limit = 1000): Promise<number> {
    let deleted = 0;
    return this.write(() => {
      deleted = 0;
      for (const { address } of this.stmts.mailboxAddresses.all() as { address: string }[]) {
        if (deleted >= limit) break;
        const newest = Number((this.stmts.maxSeq.get(address) as { s: number }).s);
        deleted += Number(this.stmts.pruneAcked.run(address, beforeMs, newest, limit - deleted).changes);
      }
    }).then(() => {
      if (deleted > 0) {
        this.full = undefined;
        this.refreshUsage();
      }
      return deleted;
    });
  }

  /**
   * Accepted messages whose log index is at or past `size`: their leaves were lost in a crash. Oldest
   * index first, one entry per message, with its envelope if the store still holds it (for a mailbox or
   * queued for a peer). Read from the replay set's small rows, so a start with nothing lost (the common
   * case) reads no envelope.
   */
  messagesFromLogIndex(size: number): LostLeaf[] {
    const lost = new Map<number, LostLeaf>();
    for (const r of this.stmts.seenFromLogIndex.all(size) as Record<string, unknown>[]) {
      lost.set(Number(r.log_index), { logIndex: Number(r.log_index), messageId: r.message_id as Uint8Array, messageHash: r.message_hash as Uint8Array, deliveryRows: [] });
    }
    if (lost.size === 0) return [];
    for (const r of this.stmts.deliveriesFromLogIndex.all(size) as Record<string, unknown>[]) {
      const message = lost.get(Number(r.log_index));
      if (!message) continue;
      message.envelope = r.envelope as Uint8Array;
      message.deliveryRows.push(Number(r.id));
    }
    for (const message of lost.values()) message.envelope ??= this.outboundEnvelope(message.messageId)?.envelope;
    return [...lost.values()].sort((a, b) => a.logIndex - b.logIndex);
  }

  /**
   * Records the new leaves of messages from messagesFromLogIndex, in one commit; null for a message
   * whose leaf cannot be restored (no envelope left), so that its id no longer points at another's leaf.
   */
  setLogIndexes(moves: { message: LostLeaf; logIndex: number | null }[]): Promise<void> {
    return this.write(() => {
      for (const { message, logIndex } of moves) {
        for (const row of message.deliveryRows) this.stmts.setDeliveryLogIndex.run(logIndex, row);
        this.stmts.setOutboundLogIndex.run(logIndex, message.messageId);
        this.stmts.setSeenLogIndex.run(logIndex, message.messageId, message.messageHash);
      }
    });
  }

  countDeliveries(): number {
    return Number((this.stmts.countDeliveries.get() as { n: number }).n);
  }

  pruneSeen(nowMs: number): Promise<void> {
    return this.write(() => { this.stmts.pruneSeen.run(nowMs); });
  }

  /**
   * Deletes the queue records of recipients delivered or failed before `beforeMs`, at most `limit` per
   * state in one commit (a large backlog is pruned in several, so other writes interleave). Resolves
   * with how many were deleted.
   */
  pruneFinishedOutbound(beforeMs: number, limit = 1000): Promise<number> {
    let deleted = 0;
    return this.write(() => {
      deleted = 0;
      for (const state of ['delivered', 'failed']) deleted += Number(this.stmts.pruneFinished.run(state, beforeMs, limit).changes);
    }).then(() => deleted);
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

/** Brings an older store's layout up to STORE_VERSION (once: the version is recorded in the file). */
function migrate(db: DatabaseSync): void {
  const versionOf = () => Number((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version);
  if (versionOf() >= STORE_VERSION) return;
  // Another process (a CLI command beside the node) may be upgrading the same file: decide under the lock.
  db.exec('BEGIN IMMEDIATE');
  try {
    const version = versionOf();
    if (version < 1) {
      // Acks made before ack times were kept count from now: their retention starts with this version.
      db.prepare('UPDATE deliveries SET acked = ? WHERE acked = 1').run(Date.now());
    }
    if (version < 2) {
      for (const [table, columns] of [['outbound_envelopes', OUTBOUND_ENVELOPES_COLUMNS], ['outbound', OUTBOUND_COLUMNS]] as const) {
        const { sql } = db.prepare(`SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?`).get(table) as { sql: string };
        if (!/WITHOUT ROWID/i.test(sql)) continue;
        db.exec(`CREATE TABLE ${table}_rowid ${columns}; INSERT INTO ${table}_rowid SELECT * FROM ${table}; DROP TABLE ${table}; ALTER TABLE ${table}_rowid RENAME TO ${table};`);
      }
      db.exec(OUTBOUND_DUE_INDEX); // dropped with the old table
    }
    const hasColumn = (table: string, column: string) => db.prepare(`SELECT 1 FROM pragma_table_info(?) WHERE name = ?`).get(table, column) !== undefined;
    if (version < 3) {
      if (hasColumn('deliveries', 'envelope')) {
        // DROP COLUMN rewrites each row in place, under the same rowid: the envelopes stay matched.
        db.exec('INSERT INTO delivery_envelopes (id, envelope) SELECT rowid, envelope FROM deliveries; ALTER TABLE deliveries DROP COLUMN envelope;');
      }
      if (!hasColumn('seen_messages', 'log_index')) {
        // The replay set takes over the index by message id: each id gets its message's leaf, found
        // through that index (dropped next) or the outbound queue's key.
        db.exec(`ALTER TABLE seen_messages ADD COLUMN log_index INTEGER;
          UPDATE seen_messages SET log_index = coalesce(
            (SELECT log_index FROM deliveries WHERE deliveries.message_id = seen_messages.message_id AND log_index IS NOT NULL LIMIT 1),
            (SELECT log_index FROM outbound_envelopes WHERE outbound_envelopes.message_id = seen_messages.message_id));`);
      }
      db.exec('DROP INDEX IF EXISTS deliveries_message');
    }
    if (version < 4) {
      if (!hasColumn('seen_messages', 'message_hash')) {
        // Rows of ids accepted before keep blocking their id whatever the hash (empty), until they expire.
        db.exec(`CREATE TABLE seen_messages_v4 ${SEEN_COLUMNS};
          INSERT INTO seen_messages_v4 (message_id, message_hash, expires_ms, log_index) SELECT message_id, x'', expires_ms, log_index FROM seen_messages;
          DROP TABLE seen_messages; ALTER TABLE seen_messages_v4 RENAME TO seen_messages; ${SEEN_EXPIRY_INDEX};`);
      }
      // Deliveries stored before were vouched for by nobody (empty): their clients show them unverified.
      if (!hasColumn('delivery_envelopes', 'sender')) {
        db.exec(`ALTER TABLE delivery_envelopes ADD COLUMN sender TEXT NOT NULL DEFAULT '';
          ALTER TABLE delivery_envelopes ADD COLUMN sender_domain TEXT NOT NULL DEFAULT '';`);
      }
    }
    db.exec(`PRAGMA user_version=${STORE_VERSION}`);
    db.exec('COMMIT');
  } catch (err) {
    db.exec('ROLLBACK');
    throw err;
  }
}

/** Sets `key` in a cache bounded to MAILBOX_CACHE_MAX entries (the oldest goes first). */
function remember<V>(cache: Map<string, V>, key: string, value: V): void {
  if (cache.size >= MAILBOX_CACHE_MAX) cache.delete(cache.keys().next().value!);
  cache.set(key, value);
}

function toOutbound(r: Record<string, unknown>): OutboundItem {
  return {
    messageId: r.message_id as Uint8Array,
    recipient: r.recipient as string,
    domain: r.domain as string,
    state: r.state as OutboundState,
    attempts: Number(r.attempts),
    nextAttemptMs: Number(r.next_attempt_ms),
    expiresMs: Number(r.expires_ms),
    lastError: r.last_error as string,
    receipt: r.receipt as string,
    updatedMs: Number(r.updated_ms),
  };
}

function toDelivery(r: Record<string, unknown>): StoredDelivery {
  return {
    mailbox: r.mailbox as string,
    seq: Number(r.seq),
    messageId: r.message_id as Uint8Array,
    envelope: r.envelope as Uint8Array,
    receivedMs: Number(r.received_ms),
    logIndex: r.log_index === null ? null : Number(r.log_index),
    authenticatedSender: r.sender as string,
    senderDomain: r.sender_domain as string,
  };
}

function toMailbox(row: unknown): MailboxRecord | undefined {
  if (!row) return undefined;
  const r = row as Record<string, unknown>;
  return {
    address: r.address as string,
    did: r.did as string,
    signingKeyId: r.signing_key_id as string,
    signingPublicKey: r.signing_public_key as Uint8Array,
    agreementKeyId: r.agreement_key_id as string,
    agreementPublicKey: r.agreement_public_key as Uint8Array,
    tokenSha256: r.token_sha256 as string,
    documentJson: r.document_json as string,
    createdMs: Number(r.created_ms),
  };
}
