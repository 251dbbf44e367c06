/**
 * The durable transparency log: RFC 9162 Merkle tree stored in SQLite in C2SP tlog-tiles shape,
 * with signed checkpoints. See docs/LEDGER.md for the storage layout and its invariants.
 *
 * In memory the log keeps, for every tile level, the rightmost (partial) tile together with the
 * interior nodes of its 8-level subtree. Appending a leaf writes its hash into the level-0 edge tile
 * and hashes upwards; when a tile fills up, its root becomes the next entry of the level above and
 * the full tile is written once, immutable from then on. That is O(1) amortised hashing per leaf and
 * O(log n) worst case, and the root of any size is a fold of at most log2(n) subtree hashes.
 *
 * One process writes a log file at a time (the gateway); other processes may read it. Every write
 * transaction re-reads the stored size first and refuses to continue if another writer moved it.
 */
import { DatabaseSync } from 'node:sqlite';
import type { StatementSync } from 'node:sqlite';
import { formatCheckpoint, signCheckpointNote } from './checkpoint.ts';
import type { Checkpoint } from './checkpoint.ts';
import { LedgerError } from './errors.ts';
import { HASH_SIZE, bytesEqual, leafHash, nodeHash, hashAdjacentInto, toHex } from './hash.ts';
import type { Ed25519KeyPair } from './keys.ts';
import { leafLookupKey } from './leaf.ts';
import type { NoteSigner, NoteVerifier } from './note.ts';
import { SIG_TYPE_ED25519, ed25519NoteSigner, ed25519NoteVerifier, isValidKeyName } from './note.ts';
import type { HashSource } from './proof.ts';
import { consistencyProof, inclusionProof, rootHash, verifyConsistency } from './proof.ts';
import { MAX_TILE_LEVEL, TILE_HEIGHT, TILE_WIDTH, parseTilePath } from './tiles.ts';
import { formatVerifierKey } from './vkey.ts';

/** Largest leaf accepted: entry bundles length-prefix entries with a uint16. */
export const MAX_LEAF_BYTES = 0xffff;

/**
 * The lookup index (key -> first leaf index) is written as one sorted run per INDEX_RUN leaves.
 * Random-key B-tree inserts would dirty about one page per leaf in every commit; sorted runs are
 * written sequentially, a few rows per append, and the leaves not yet in a run are looked up in memory.
 */
const INDEX_RUN = 65_536;

const SCHEMA_VERSION = 1;

export interface TransparencyLogOptions {
  /** Checkpoint origin line, e.g. "mail.example.org/ledger". */
  origin: string;
  /** The node's Ed25519 key that signs checkpoints. */
  signingKey: Ed25519KeyPair;
  /** Note key name of the signature line (default: the origin, as tlog-checkpoint recommends). */
  keyName?: string;
  /** Lookup key for leafIndexOf (default: the hash carried by a ledger leaf; other data is not indexed). */
  indexKey?: (leaf: Uint8Array) => Uint8Array | undefined;
  /** Full tiles kept expanded (all interior nodes) in memory for proofs; default 256 (~4 MiB). */
  tileCacheSize?: number;
  /**
   * 'full' (default): every commit is fsync'd by SQLite before append/signCheckpoint return.
   * 'deferred': commits only write the WAL; the caller makes them durable by syncing `walPath` itself
   * (off the event loop) and must not publish anything before that sync completes.
   */
  durability?: 'full' | 'deferred';
  /** SQLite page cache in KiB; default 32768. */
  sqliteCacheKiB?: number;
}

export interface StoredCheckpoint {
  /** Order of signing (1, 2, ...). */
  seq: number;
  size: number;
  root: Uint8Array;
  /** The signed note, as published. */
  note: string;
  /** Signing time, ms since the epoch. */
  signedAt: number;
}

export interface SignCheckpointOptions {
  /** Tree size to sign (default: the current size). */
  size?: number;
  /** Extension lines (NOT RECOMMENDED by tlog-checkpoint). */
  extensions?: readonly string[];
}

/** Rightmost tile of a level plus the interior nodes of its subtree. */
interface EdgeTile {
  index: number;
  width: number;
  /** nodes[s] holds (256 >> s) slots of 32 bytes; the first floor(width / 2^s) are valid. */
  nodes: Buffer[];
}

function newNodes(): Buffer[] {
  const nodes: Buffer[] = [];
  for (let s = 0; s < TILE_HEIGHT; s++) nodes.push(Buffer.alloc((TILE_WIDTH >> s) * HASH_SIZE));
  return nodes;
}

function slot(buf: Buffer, i: number): Buffer {
  return buf.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE);
}

/** Fills nodes[1..7] from the `width` entries in nodes[0]. */
function expandNodes(nodes: Buffer[], width: number): void {
  for (let s = 1; s < TILE_HEIGHT; s++) {
    const count = Math.floor(width / 2 ** s);
    const below = nodes[s - 1]!;
    const here = nodes[s]!;
    for (let j = 0; j < count; j++) hashAdjacentInto(below, 2 * j * HASH_SIZE, here, j * HASH_SIZE);
  }
}

/** Appends one hash to an edge tile; returns the tile's root hash when the tile became full. */
function pushEntry(tile: EdgeTile, h: Uint8Array): Uint8Array | undefined {
  const w = tile.width;
  tile.nodes[0]!.set(h, w * HASH_SIZE);
  tile.width = w + 1;
  let idx = w;
  for (let s = 1; s < TILE_HEIGHT && idx % 2 === 1; s++) {
    const below = tile.nodes[s - 1]!;
    hashAdjacentInto(below, (idx - 1) * HASH_SIZE, tile.nodes[s]!, (idx >> 1) * HASH_SIZE);
    idx >>= 1;
  }
  if (tile.width < TILE_WIDTH) return undefined;
  const top = tile.nodes[TILE_HEIGHT - 1]!;
  return nodeHash(slot(top, 0), slot(top, 1));
}

interface PendingRun {
  run: number;
  /** Distinct keys as latin1 strings, sorted (latin1 string order is byte order). */
  keys: string[];
  /** key -> first leaf index. */
  byKey: Map<string, number>;
  /** Rows written (in the current or earlier transactions). */
  written: number;
}

function freezeRun(run: number, tail: Map<string, number>): PendingRun {
  return { run, keys: [...tail.keys()].sort(), byKey: tail, written: 0 };
}

interface Statements {
  getMeta: StatementSync;
  setMeta: StatementSync;
  insEntry: StatementSync;
  getEntry: StatementSync;
  getEntries: StatementSync;
  maxEntry: StatementSync;
  insRun: StatementSync;
  getRun: StatementSync;
  getEntriesFrom: StatementSync;
  putTile: StatementSync;
  getTile: StatementSync;
  insCheckpoint: StatementSync;
  latestCheckpoint: StatementSync;
  largestCheckpoint: StatementSync;
  allCheckpoints: StatementSync;
}

interface CheckpointRow {
  seq: number;
  size: number;
  root: Uint8Array;
  note: string;
  signed_at: number;
}

function rowToCheckpoint(r: CheckpointRow): StoredCheckpoint {
  return { seq: r.seq, size: r.size, root: r.root, note: r.note, signedAt: r.signed_at };
}

function checkNonNegInt(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new LedgerError('BAD_ARGUMENT', `${name} must be a non-negative safe integer, got ${v}`);
}

export class TransparencyLog implements HashSource {
  readonly origin: string;
  readonly keyName: string;
  readonly publicKey: Uint8Array;
  /** Verifier of this log's checkpoint signatures. */
  readonly noteVerifier: NoteVerifier;
  /** The same key as a vkey string (<name>+<id>+<base64(0x01 || key)>). */
  readonly verifierKey: string;

  readonly #db: DatabaseSync;
  readonly #st: Statements;
  readonly #signer: NoteSigner;
  readonly #indexKey: (leaf: Uint8Array) => Uint8Array | undefined;
  readonly #tileCacheMax: number;
  readonly #tileCache = new Map<string, Buffer[]>();
  #size = 0;
  #edges: EdgeTile[] = [];
  /** Runs [0, #indexRuns) are complete in index_runs. */
  #indexRuns = 0;
  /** Complete runs not yet (fully) written to index_runs, oldest first. */
  #pendingRuns: PendingRun[] = [];
  /** Keys of the leaves after the last complete run (latin1 key -> first index). */
  #tail = new Map<string, number>();
  #root: Uint8Array | undefined;
  #closed = false;

  private constructor(db: DatabaseSync, opts: TransparencyLogOptions) {
    this.#db = db;
    this.origin = opts.origin;
    this.keyName = opts.keyName ?? opts.origin;
    this.#signer = ed25519NoteSigner(this.keyName, opts.signingKey);
    this.publicKey = Uint8Array.from(opts.signingKey.publicKey);
    this.noteVerifier = ed25519NoteVerifier(this.keyName, this.publicKey);
    this.verifierKey = formatVerifierKey(this.keyName, SIG_TYPE_ED25519, this.publicKey);
    this.#indexKey = opts.indexKey ?? leafLookupKey;
    this.#tileCacheMax = Math.max(1, opts.tileCacheSize ?? 256);
    const p = (sql: string): StatementSync => db.prepare(sql);
    this.#st = {
      getMeta: p('SELECT value FROM meta WHERE key = ?'),
      setMeta: p('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      insEntry: p('INSERT INTO entries (idx, data) VALUES (?, ?)'),
      getEntry: p('SELECT data FROM entries WHERE idx = ?'),
      getEntries: p('SELECT data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx'),
      maxEntry: p('SELECT max(idx) AS m FROM entries'),
      insRun: p('INSERT OR IGNORE INTO index_runs (run, key, idx) VALUES (?, ?, ?)'),
      getRun: p('SELECT idx FROM index_runs WHERE run = ? AND key = ?'),
      getEntriesFrom: p('SELECT idx, data FROM entries WHERE idx >= ? ORDER BY idx'),
      putTile: p('INSERT OR REPLACE INTO tiles (level, idx, width, data) VALUES (?, ?, ?, ?)'),
      getTile: p('SELECT width, data FROM tiles WHERE level = ? AND idx = ?'),
      insCheckpoint: p('INSERT INTO checkpoints (size, root, note, signed_at) VALUES (?, ?, ?, ?)'),
      latestCheckpoint: p('SELECT seq, size, root, note, signed_at FROM checkpoints ORDER BY seq DESC LIMIT 1'),
      largestCheckpoint: p('SELECT seq, size, root, note, signed_at FROM checkpoints ORDER BY size DESC, seq DESC LIMIT 1'),
      allCheckpoints: p('SELECT seq, size, root, note, signed_at FROM checkpoints ORDER BY seq'),
    };
  }

  /**
   * Opens (creating if needed) the log stored at `path`. Rebuilds the in-memory right edge from the
   * stored tiles and checks the tree against the checkpoints already signed: a tree that lost or
   * changed signed entries is refused (INCONSISTENT_CHECKPOINT), a damaged store is CORRUPT.
   */
  static open(path: string, opts: TransparencyLogOptions): TransparencyLog {
    if (typeof opts.origin !== 'string' || opts.origin.length === 0 || /[\u0000-\u001f]/.test(opts.origin)) {
      throw new LedgerError('BAD_ARGUMENT', 'origin must be a non-empty single line');
    }
    if (opts.keyName !== undefined && !isValidKeyName(opts.keyName)) {
      throw new LedgerError('BAD_KEY', `invalid key name ${JSON.stringify(opts.keyName)}`);
    }
    if (opts.keyName === undefined && !isValidKeyName(opts.origin)) {
      throw new LedgerError('BAD_KEY', 'origin is not a valid note key name (contains spaces or "+"): pass keyName');
    }
    const db = new DatabaseSync(path, { timeout: 10_000 });
    let log: TransparencyLog;
    try {
      const mode = (db.prepare('PRAGMA journal_mode = WAL').get() as { journal_mode: string }).journal_mode;
      if (mode !== 'wal' && path !== ':memory:') throw new LedgerError('CORRUPT', `cannot enable WAL (journal_mode=${mode})`);
      db.exec(`PRAGMA synchronous = ${opts.durability === 'deferred' ? 'NORMAL' : 'FULL'}; PRAGMA cache_size = -${Math.max(1024, opts.sqliteCacheKiB ?? 32768)};`);
      db.exec(`
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, data BLOB NOT NULL);
        CREATE TABLE IF NOT EXISTS index_runs (
          run INTEGER NOT NULL, key BLOB NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (run, key)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS tiles (
          level INTEGER NOT NULL, idx INTEGER NOT NULL, width INTEGER NOT NULL, data BLOB NOT NULL,
          PRIMARY KEY (level, idx));
        CREATE TABLE IF NOT EXISTS checkpoints (
          seq INTEGER PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL,
          signed_at INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS checkpoints_by_size ON checkpoints (size);
      `);
      log = new TransparencyLog(db, opts);
      log.#init();
    } catch (err) {
      db.close();
      throw err;
    }
    return log;
  }

  #init(): void {
    const db = this.#db;
    db.exec('BEGIN IMMEDIATE');
    try {
      const schema = this.#meta('schema');
      if (schema === undefined) {
        this.#st.setMeta.run('schema', SCHEMA_VERSION);
        this.#st.setMeta.run('origin', this.origin);
        this.#st.setMeta.run('size', 0);
      } else if (schema !== SCHEMA_VERSION) {
        throw new LedgerError('CONFIG_MISMATCH', `unsupported ledger schema ${String(schema)}`);
      } else if (this.#meta('origin') !== this.origin) {
        throw new LedgerError('CONFIG_MISMATCH', `log origin is ${JSON.stringify(this.#meta('origin'))}, not ${JSON.stringify(this.origin)}`);
      }
      db.exec('COMMIT');
    } catch (err) {
      db.exec('ROLLBACK');
      throw err;
    }
    this.#reload();
    const max = (this.#st.maxEntry.get() as { m: number | null }).m;
    if ((max ?? -1) + 1 !== this.#size) throw new LedgerError('CORRUPT', `tree size ${this.#size} but entries end at ${max ?? -1}`);
    for (const [level, edge] of this.#edges.entries()) {
      if (edge.index > 0) this.#fullTile(level, edge.index - 1);
    }
    const seen = new Set<number>();
    for (const stmt of [this.#st.largestCheckpoint, this.#st.latestCheckpoint]) {
      const row = stmt.get() as CheckpointRow | undefined;
      if (row === undefined || seen.has(row.seq)) continue;
      seen.add(row.seq);
      if (row.size > this.#size) {
        throw new LedgerError('INCONSISTENT_CHECKPOINT', `checkpoint ${row.seq} was signed at size ${row.size} but the tree has ${this.#size} leaves`);
      }
      if (!bytesEqual(this.rootAt(row.size), row.root)) {
        throw new LedgerError('INCONSISTENT_CHECKPOINT', `tree root at size ${row.size} differs from signed checkpoint ${row.seq}`);
      }
    }
  }

  #meta(key: string): unknown {
    return (this.#st.getMeta.get(key) as { value: unknown } | undefined)?.value;
  }

  #storedSize(): number {
    const v = this.#meta('size');
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new LedgerError('CORRUPT', 'stored tree size is missing or invalid');
    return v;
  }

  /** Rebuilds the in-memory edge from the stored tiles. */
  #reload(): void {
    this.#tileCache.clear();
    this.#root = undefined;
    const size = this.#storedSize();
    const edges: EdgeTile[] = [];
    for (let level = 0; level <= MAX_TILE_LEVEL; level++) {
      const count = Math.floor(size / TILE_WIDTH ** level);
      if (level > 0 && count === 0) break;
      const edge: EdgeTile = { index: Math.floor(count / TILE_WIDTH), width: count % TILE_WIDTH, nodes: newNodes() };
      if (edge.width > 0) {
        const row = this.#st.getTile.get(level, edge.index) as { width: number; data: Uint8Array } | undefined;
        if (row === undefined || row.width !== edge.width || row.data.length !== edge.width * HASH_SIZE) {
          throw new LedgerError('CORRUPT', `partial tile ${level}/${edge.index} missing or not ${edge.width} wide`);
        }
        edge.nodes[0]!.set(row.data);
        expandNodes(edge.nodes, edge.width);
      }
      edges.push(edge);
    }
    this.#edges = edges;
    this.#size = size;
    this.#loadIndexState();
  }

  /** Rebuilds the pending runs and the tail from the entries after the last complete run. */
  #loadIndexState(): void {
    const runs = this.#meta('index_runs') ?? 0;
    if (typeof runs !== 'number' || !Number.isSafeInteger(runs) || runs < 0 || runs * INDEX_RUN > this.#size) {
      throw new LedgerError('CORRUPT', `invalid index run count ${String(runs)}`);
    }
    this.#indexRuns = runs;
    this.#pendingRuns = [];
    this.#tail = new Map();
    let expected = runs * INDEX_RUN;
    for (const row of this.#st.getEntriesFrom.iterate(expected) as Iterable<{ idx: number; data: Uint8Array }>) {
      if (row.idx !== expected) throw new LedgerError('CORRUPT', `entry ${expected} is missing`);
      this.#indexLeaf(row.data, row.idx);
      expected++;
    }
  }

  /** Adds a committed leaf to the in-memory tail; freezes the tail into a pending run at a run boundary. */
  #indexLeaf(data: Uint8Array, idx: number): void {
    const key = this.#indexKey(data);
    if (key !== undefined) {
      const k = Buffer.from(key.buffer, key.byteOffset, key.length).toString('latin1');
      if (!this.#tail.has(k)) this.#tail.set(k, idx);
    }
    if ((idx + 1) % INDEX_RUN === 0) {
      this.#pendingRuns.push(freezeRun((idx + 1) / INDEX_RUN - 1, this.#tail));
      this.#tail = new Map();
    }
  }

  /**
   * Writes up to `budget` rows of the pending runs (inside the caller's transaction) and returns
   * how many runs that completes. Rows go in key order, so each run is written sequentially.
   */
  #writeIndexRows(budget: number): number {
    let left = budget;
    let completed = 0;
    for (const p of this.#pendingRuns) {
      while (p.written < p.keys.length && left > 0) {
        const k = p.keys[p.written]!;
        this.#st.insRun.run(p.run, Buffer.from(k, 'latin1'), p.byKey.get(k)!);
        p.written++;
        left--;
      }
      if (p.written < p.keys.length) break;
      completed++;
      this.#st.setMeta.run('index_runs', p.run + 1);
    }
    return completed;
  }

  #fullTile(level: number, index: number): Buffer[] {
    const key = `${level}/${index}`;
    const hit = this.#tileCache.get(key);
    if (hit !== undefined) {
      this.#tileCache.delete(key);
      this.#tileCache.set(key, hit);
      return hit;
    }
    const row = this.#st.getTile.get(level, index) as { width: number; data: Uint8Array } | undefined;
    if (row === undefined || row.width !== TILE_WIDTH || row.data.length !== TILE_WIDTH * HASH_SIZE) {
      throw new LedgerError('CORRUPT', `full tile ${level}/${index} is missing or incomplete`);
    }
    const nodes = newNodes();
    nodes[0]!.set(row.data);
    expandNodes(nodes, TILE_WIDTH);
    // Authenticate the tile against its entry in the level above (ultimately: the edge tiles, whose
    // root is checked against the signed checkpoints on open).
    const top = nodes[TILE_HEIGHT - 1]!;
    if (!bytesEqual(nodeHash(slot(top, 0), slot(top, 1)), this.#entryAt(level + 1, index))) {
      throw new LedgerError('CORRUPT', `full tile ${level}/${index} does not hash to its entry in level ${level + 1}`);
    }
    this.#cachePut(key, nodes);
    return nodes;
  }

  /** The hash at position `pos` of tile level `level` (a view; do not leak). */
  #entryAt(level: number, pos: number): Buffer {
    const edge = this.#edges[level];
    const tileIndex = Math.floor(pos / TILE_WIDTH);
    if (edge !== undefined) {
      if (tileIndex === edge.index && pos % TILE_WIDTH < edge.width) return slot(edge.nodes[0]!, pos % TILE_WIDTH);
      if (tileIndex < edge.index) return slot(this.#fullTile(level, tileIndex)[0]!, pos % TILE_WIDTH);
    }
    throw new LedgerError('CORRUPT', `no hash at tile level ${level} position ${pos}`);
  }

  #cachePut(key: string, nodes: Buffer[]): void {
    this.#tileCache.set(key, nodes);
    while (this.#tileCache.size > this.#tileCacheMax) this.#tileCache.delete(this.#tileCache.keys().next().value!);
  }

  #checkOpen(): void {
    if (this.#closed) throw new LedgerError('BAD_ARGUMENT', 'the log is closed');
  }

  /** Number of leaves. */
  get size(): number {
    return this.#size;
  }

  /**
   * HashSource: hash of the perfect subtree of height `level` at `index`, read from the edge tiles
   * (in memory) or the full tiles (cache, else SQLite). Returns a copy.
   */
  subtreeHash(level: number, index: number): Uint8Array {
    const tileLevel = Math.floor(level / TILE_HEIGHT);
    const s = level % TILE_HEIGHT;
    const span = 2 ** s;
    const pos = index * span;
    const tileIndex = Math.floor(pos / TILE_WIDTH);
    const within = (pos % TILE_WIDTH) / span;
    const edge = this.#edges[tileLevel];
    if (edge !== undefined && Number.isSafeInteger(pos)) {
      if (tileIndex === edge.index && (within + 1) * span <= edge.width) return Uint8Array.from(slot(edge.nodes[s]!, within));
      if (tileIndex < edge.index) return Uint8Array.from(slot(this.#fullTile(tileLevel, tileIndex)[s]!, within));
    }
    throw new LedgerError('NOT_FOUND', `no complete subtree at level ${level} index ${index} in a tree of ${this.#size}`);
  }

  /** Root hash at the current size. */
  root(): Uint8Array {
    this.#checkOpen();
    this.#root ??= rootHash(this, this.#size);
    return Uint8Array.from(this.#root);
  }

  /** Root hash of the tree as it was at `size` (0 <= size <= current size). */
  rootAt(size: number): Uint8Array {
    this.#checkOpen();
    checkNonNegInt('size', size);
    if (size > this.#size) throw new LedgerError('NOT_FOUND', `size ${size} is beyond the tree size ${this.#size}`);
    return size === this.#size ? this.root() : rootHash(this, size);
  }

  /**
   * Appends leaves in ONE transaction (one fsync) and returns the index of the first. The caller
   * batches concurrent submissions (group commit). On any failure nothing is appended.
   */
  append(leaves: readonly Uint8Array[]): number {
    this.#checkOpen();
    for (const l of leaves) {
      if (!(l instanceof Uint8Array)) throw new LedgerError('BAD_ARGUMENT', 'leaves must be Uint8Arrays');
      if (l.length > MAX_LEAF_BYTES) throw new LedgerError('BAD_ARGUMENT', `leaf of ${l.length} bytes exceeds ${MAX_LEAF_BYTES}`);
    }
    const first = this.#size;
    if (leaves.length === 0) return first;
    const st = this.#st;
    const db = this.#db;
    db.exec('BEGIN IMMEDIATE');
    try {
      const stored = this.#storedSize();
      if (stored !== first) throw new LedgerError('CORRUPT', `stored size ${stored} differs from ${first}: another writer?`);
      const full: { level: number; index: number; data: Uint8Array }[] = [];
      const touched = new Set<number>();
      for (let i = 0; i < leaves.length; i++) {
        const data = leaves[i]!;
        st.insEntry.run(first + i, data);
        this.#push(leafHash(data), full, touched);
      }
      for (const f of full) st.putTile.run(f.level, f.index, TILE_WIDTH, f.data);
      for (const level of touched) {
        const edge = this.#edges[level]!;
        if (edge.width > 0) st.putTile.run(level, edge.index, edge.width, edge.nodes[0]!.subarray(0, edge.width * HASH_SIZE));
      }
      st.setMeta.run('size', first + leaves.length);
      // Pay down the pending index runs at 2 rows per leaf (at least 64): twice as fast as runs fill up.
      const completed = this.#pendingRuns.length > 0 ? this.#writeIndexRows(Math.max(64, 2 * leaves.length)) : 0;
      db.exec('COMMIT');
      this.#pendingRuns.splice(0, completed);
      this.#indexRuns += completed;
    } catch (err) {
      this.#recover();
      throw err;
    }
    this.#size = first + leaves.length;
    this.#root = undefined;
    for (let i = 0; i < leaves.length; i++) this.#indexLeaf(leaves[i]!, first + i);
    return first;
  }

  /** After a failed write: roll back and rebuild memory from what is stored; if even that fails, close. */
  #recover(): void {
    try {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      this.#reload();
    } catch {
      this.close();
    }
  }

  #push(h: Uint8Array, full: { level: number; index: number; data: Uint8Array }[], touched: Set<number>): void {
    let level = 0;
    let hash: Uint8Array | undefined = h;
    while (hash !== undefined) {
      if (level > MAX_TILE_LEVEL) throw new LedgerError('BAD_ARGUMENT', 'tree too large');
      const edge = (this.#edges[level] ??= { index: 0, width: 0, nodes: newNodes() });
      touched.add(level);
      const tileRoot = pushEntry(edge, hash);
      if (tileRoot !== undefined) {
        full.push({ level, index: edge.index, data: edge.nodes[0]! });
        this.#cachePut(`${level}/${edge.index}`, edge.nodes);
        this.#edges[level] = { index: edge.index + 1, width: 0, nodes: newNodes() };
      }
      hash = tileRoot;
      level++;
    }
  }

  /** Leaf data at `index`. */
  leaf(index: number): Uint8Array {
    this.#checkOpen();
    checkNonNegInt('index', index);
    const row = index < this.#size ? (this.#st.getEntry.get(index) as { data: Uint8Array } | undefined) : undefined;
    if (row === undefined) throw new LedgerError('NOT_FOUND', `no leaf ${index} (size ${this.#size})`);
    return row.data;
  }

  /** RFC 9162 leaf hash of leaf `index` (from the level-0 tiles). */
  leafHash(index: number): Uint8Array {
    this.#checkOpen();
    checkNonNegInt('index', index);
    if (index >= this.#size) throw new LedgerError('NOT_FOUND', `no leaf ${index} (size ${this.#size})`);
    return this.subtreeHash(0, index);
  }

  /**
   * Index of the first leaf whose lookup key (by default: the message hash) is `key`. Probes the
   * complete runs oldest first (one B-tree lookup each), then the runs and tail held in memory.
   */
  leafIndexOf(key: Uint8Array): number | undefined {
    this.#checkOpen();
    for (let run = 0; run < this.#indexRuns; run++) {
      const row = this.#st.getRun.get(run, key) as { idx: number } | undefined;
      if (row !== undefined) return row.idx;
    }
    const k = Buffer.from(key.buffer, key.byteOffset, key.length).toString('latin1');
    for (const p of this.#pendingRuns) {
      const idx = p.byKey.get(k);
      if (idx !== undefined) return idx;
    }
    return this.#tail.get(k);
  }

  /** RFC 9162 inclusion proof of leaf `index` in the tree of `size` (default: current). */
  inclusionProof(index: number, size: number = this.#size): Uint8Array[] {
    this.#checkOpen();
    checkNonNegInt('size', size);
    if (size > this.#size) throw new LedgerError('NOT_FOUND', `size ${size} is beyond the tree size ${this.#size}`);
    return inclusionProof(this, index, size);
  }

  /** RFC 9162 consistency proof from `size1` to `size2` (default: current). */
  consistencyProof(size1: number, size2: number = this.#size): Uint8Array[] {
    this.#checkOpen();
    checkNonNegInt('size2', size2);
    if (size2 > this.#size) throw new LedgerError('NOT_FOUND', `size ${size2} is beyond the tree size ${this.#size}`);
    return consistencyProof(this, size1, size2);
  }

  /**
   * Tile bytes as tlog-tiles serves them: `width` hashes (full tile: 256 = 8192 bytes). A partial
   * width is served for the rightmost tile when it is at least that wide, and for full tiles as a
   * prefix. NOT_FOUND otherwise (e.g. the full version of a tile that is still partial).
   */
  tile(level: number, index: number, width?: number): Uint8Array {
    this.#checkOpen();
    if (!Number.isInteger(level) || level < 0 || level > MAX_TILE_LEVEL) throw new LedgerError('BAD_ARGUMENT', `invalid tile level ${level}`);
    checkNonNegInt('index', index);
    if (width !== undefined && (!Number.isInteger(width) || width < 1 || width > TILE_WIDTH)) {
      throw new LedgerError('BAD_ARGUMENT', `invalid tile width ${width}`);
    }
    const w = width ?? TILE_WIDTH;
    const edge = this.#edges[level];
    if (edge !== undefined) {
      if (index === edge.index && w <= edge.width) return Uint8Array.from(edge.nodes[0]!.subarray(0, w * HASH_SIZE));
      if (index < edge.index) return Uint8Array.from(this.#fullTile(level, index)[0]!.subarray(0, w * HASH_SIZE));
    }
    throw new LedgerError('NOT_FOUND', `tile ${level}/${index}${width === undefined ? '' : `.p/${width}`} does not exist at size ${this.#size}`);
  }

  /** Entry bundle `index` (uint16 big-endian length-prefixed leaf data), full or of `width` entries. */
  entryBundle(index: number, width?: number): Uint8Array {
    this.#checkOpen();
    checkNonNegInt('index', index);
    if (width !== undefined && (!Number.isInteger(width) || width < 1 || width > TILE_WIDTH)) {
      throw new LedgerError('BAD_ARGUMENT', `invalid bundle width ${width}`);
    }
    const start = index * TILE_WIDTH;
    const end = start + (width ?? TILE_WIDTH);
    if (end > this.#size) throw new LedgerError('NOT_FOUND', `entry bundle ${index} (${end - start} entries) does not exist at size ${this.#size}`);
    const parts: Uint8Array[] = [];
    for (const row of this.#st.getEntries.iterate(start, end) as Iterable<{ data: Uint8Array }>) {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(row.data.length, 0);
      parts.push(len, row.data);
    }
    if (parts.length !== 2 * (end - start)) throw new LedgerError('CORRUPT', `entries ${start}..${end - 1} are incomplete`);
    return Buffer.concat(parts);
  }

  /** Serves a tlog-tiles resource path relative to the log prefix ("tile/0/x001/234", "tile/entries/000.p/5", "checkpoint"). */
  resource(path: string): Uint8Array {
    if (path === 'checkpoint') {
      const cp = this.latestCheckpoint();
      if (cp === undefined) throw new LedgerError('NOT_FOUND', 'no checkpoint signed yet');
      return Buffer.from(cp.note, 'utf8');
    }
    const p = parseTilePath(path);
    if (p === null) throw new LedgerError('NOT_FOUND', `not a tlog-tiles path: ${path}`);
    return p.kind === 'entries' ? this.entryBundle(p.index, p.width) : this.tile(p.level, p.index, p.width);
  }

  /**
   * Signs a checkpoint of the tree at `opts.size` (default: current size), persists it, and returns
   * it. Refuses with INCONSISTENT_CHECKPOINT if it is not consistent with the most recent and with
   * the largest checkpoint signed before: same size with another root, a smaller tree that is not a
   * prefix of it, or a larger tree whose consistency proof from it does not verify.
   */
  signCheckpoint(opts: SignCheckpointOptions = {}): StoredCheckpoint {
    this.#checkOpen();
    const size = opts.size ?? this.#size;
    checkNonNegInt('size', size);
    if (size > this.#size) throw new LedgerError('BAD_ARGUMENT', `cannot sign size ${size} beyond the tree size ${this.#size}`);
    const db = this.#db;
    const st = this.#st;
    db.exec('BEGIN IMMEDIATE');
    try {
      const stored = this.#storedSize();
      if (stored !== this.#size) throw new LedgerError('CORRUPT', `stored size ${stored} differs from ${this.#size}: another writer?`);
      const root = this.rootAt(size);
      const latest = st.latestCheckpoint.get() as CheckpointRow | undefined;
      const largest = st.largestCheckpoint.get() as CheckpointRow | undefined;
      for (const ref of [latest, largest]) if (ref !== undefined) this.#assertConsistent(ref, size, root);
      const cp: Checkpoint = opts.extensions?.length ? { origin: this.origin, size, root, extensions: opts.extensions } : { origin: this.origin, size, root };
      const note = signCheckpointNote(cp, this.#signer);
      let result: StoredCheckpoint;
      if (latest !== undefined && latest.note === note) {
        result = rowToCheckpoint(latest);
      } else {
        const signedAt = Date.now();
        const info = st.insCheckpoint.run(size, root, note, signedAt);
        result = { seq: Number(info.lastInsertRowid), size, root, note, signedAt };
      }
      db.exec('COMMIT');
      return result;
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK');
      throw err;
    }
  }

  #assertConsistent(ref: CheckpointRow, size: number, root: Uint8Array): void {
    const what = `checkpoint ${ref.seq} (size ${ref.size}, root ${toHex(ref.root)})`;
    if (ref.size === size) {
      if (!bytesEqual(ref.root, root)) throw new LedgerError('INCONSISTENT_CHECKPOINT', `refusing to sign size ${size} with root ${toHex(root)}: ${what} has another root`);
    } else if (ref.size < size) {
      if (!verifyConsistency(ref.size, size, this.consistencyProof(ref.size, size), ref.root, root)) {
        throw new LedgerError('INCONSISTENT_CHECKPOINT', `refusing to sign size ${size}: not an extension of ${what}`);
      }
    } else {
      if (ref.size > this.#size) {
        throw new LedgerError('INCONSISTENT_CHECKPOINT', `refusing to sign: ${what} is larger than the tree (${this.#size}); the log was rolled back`);
      }
      if (!verifyConsistency(size, ref.size, this.consistencyProof(size, ref.size), root, ref.root)) {
        throw new LedgerError('INCONSISTENT_CHECKPOINT', `refusing to sign size ${size}: not a prefix of ${what}`);
      }
    }
  }

  /** The most recently signed checkpoint. */
  latestCheckpoint(): StoredCheckpoint | undefined {
    this.#checkOpen();
    const row = this.#st.latestCheckpoint.get() as CheckpointRow | undefined;
    return row === undefined ? undefined : rowToCheckpoint(row);
  }

  /** Every checkpoint signed, in signing order. */
  checkpoints(): StoredCheckpoint[] {
    this.#checkOpen();
    return (this.#st.allCheckpoints.all() as unknown as CheckpointRow[]).map(rowToCheckpoint);
  }

  /** The checkpoint body (unsigned note text) of the current tree. */
  checkpointBody(size: number = this.#size): string {
    return formatCheckpoint({ origin: this.origin, size, root: this.rootAt(size) });
  }

  /**
   * Full audit, O(n): recomputes every leaf hash from the stored entries and every tile from the
   * level below, and checks every stored checkpoint against the tree. Throws CORRUPT or
   * INCONSISTENT_CHECKPOINT.
   */
  verifyStorage(): void {
    this.#checkOpen();
    let below: Uint8Array[] = [];
    const batch = 4096;
    for (let start = 0; start < this.#size; start += batch) {
      const end = Math.min(this.#size, start + batch);
      let i = start;
      for (const row of this.#st.getEntries.iterate(start, end) as Iterable<{ data: Uint8Array }>) {
        below.push(leafHash(row.data));
        i++;
      }
      if (i !== end) throw new LedgerError('CORRUPT', `entries ${start}..${end - 1} are incomplete`);
    }
    for (let level = 0; below.length > 0; level++) {
      const next: Uint8Array[] = [];
      for (let t = 0; t * TILE_WIDTH < below.length; t++) {
        const hashes = below.slice(t * TILE_WIDTH, (t + 1) * TILE_WIDTH);
        const tile = this.tile(level, t, hashes.length);
        if (!bytesEqual(tile, Buffer.concat(hashes))) throw new LedgerError('CORRUPT', `tile ${level}/${t} does not match the level below`);
        if (hashes.length === TILE_WIDTH) {
          let row = hashes;
          while (row.length > 1) {
            const up: Uint8Array[] = [];
            for (let j = 0; j < row.length; j += 2) up.push(nodeHash(row[j]!, row[j + 1]!));
            row = up;
          }
          next.push(row[0]!);
        }
      }
      below = next;
    }
    for (const cp of this.checkpoints()) {
      if (cp.size > this.#size || !bytesEqual(this.rootAt(cp.size), cp.root)) {
        throw new LedgerError('INCONSISTENT_CHECKPOINT', `checkpoint ${cp.seq} (size ${cp.size}) does not match the tree`);
      }
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
