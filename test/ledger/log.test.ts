import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  LEAF_SIZE,
  LedgerError,
  MemoryTree,
  TransparencyLog,
  decodeLeaf,
  encodeLeaf,
  entriesPath,
  leafHash,
  tilePath,
  verifyConsistency,
  verifyInclusion,
} from '../../ledger/index.ts';
import { tempDir, testKey } from './helpers.ts';
import { detBytes, hex, mth } from './reference.ts';

const key = testKey('log');
const origin = 'test.example/ledger';
let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir();
});
afterEach(() => tmp.cleanup());

const msgLeaf = (i: number, seed = 'm'): Uint8Array => encodeLeaf({ version: 1, type: 'message', messageHash: detBytes(seed, i) });
const open = (file = 'log.db'): TransparencyLog => TransparencyLog.open(tmp.path(file), { origin, signingKey: key });

function appendN(log: TransparencyLog, n: number, seed = 'm', batch = 4096): void {
  for (let done = 0; done < n; ) {
    const k = Math.min(batch, n - done);
    log.append(Array.from({ length: k }, (_, j) => msgLeaf(log.size + j, seed)));
    done += k;
  }
}

/** 70,000 leaves (the tlog-tiles spec example size), their hashes and tile levels, computed once. */
let big: { leaves: Uint8Array[]; hashes: Uint8Array[]; levels: Uint8Array[][] } | undefined;
function bigFixture(): NonNullable<typeof big> {
  if (big === undefined) {
    const leaves = Array.from({ length: 70_000 }, (_, i) => msgLeaf(i, 'tiles'));
    const hashes = leaves.map(leafHash);
    big = { leaves, hashes, levels: tileLevels(hashes) };
  }
  return big;
}
function appendAll(log: TransparencyLog, leaves: Uint8Array[], batch: number): void {
  for (let i = 0; i < leaves.length; i += batch) log.append(leaves.slice(i, i + batch));
}

/** From-scratch tlog-tiles recomputation: levels[l] = all hashes at tile level l. */
function tileLevels(leafHashes: Uint8Array[]): Uint8Array[][] {
  const levels: Uint8Array[][] = [leafHashes];
  for (;;) {
    const below = levels[levels.length - 1]!;
    const up: Uint8Array[] = [];
    for (let i = 0; i + 256 <= below.length; i += 256) up.push(mth(below.slice(i, i + 256)));
    if (up.length === 0) return levels;
    levels.push(up);
  }
}

describe('leaf format', () => {
  it('encodes version, type and hash in 34 bytes and round-trips', () => {
    const mh = detBytes('x', 1);
    const leaf = encodeLeaf({ version: 1, type: 'message', messageHash: mh });
    expect(leaf.length).toBe(LEAF_SIZE);
    expect(hex(leaf)).toBe(`0101${hex(mh)}`);
    expect(decodeLeaf(leaf)).toEqual({ version: 1, type: 'message', messageHash: Uint8Array.from(mh) });
  });

  it('rejects malformed leaves', () => {
    const mh = detBytes('x', 1);
    expect(() => encodeLeaf({ version: 1, type: 'message', messageHash: mh.subarray(1) })).toThrow(LedgerError);
    expect(() => encodeLeaf({ version: 2 as 1, type: 'message', messageHash: mh })).toThrow(/version/);
    expect(() => encodeLeaf({ version: 1, type: 'nope' as 'message', messageHash: mh })).toThrow(/type/);
    expect(() => decodeLeaf(new Uint8Array(33))).toThrow(/34 bytes/);
    expect(() => decodeLeaf(Uint8Array.of(2, 1, ...mh))).toThrow(/version/);
    expect(() => decodeLeaf(Uint8Array.of(1, 9, ...mh))).toThrow(/type/);
  });
});

describe('TransparencyLog', () => {
  it('starts empty and grows with batched appends; roots and proofs match an in-memory tree', () => {
    const log = open();
    const mem = new MemoryTree();
    expect(log.size).toBe(0);
    expect(hex(log.root())).toBe(hex(mem.root()));
    const batches = [1, 2, 5, 200, 48, 1, 255, 256, 257, 600, 3];
    for (const b of batches) {
      const leaves = Array.from({ length: b }, (_, j) => msgLeaf(log.size + j));
      const first = log.append(leaves);
      expect(first).toBe(mem.size);
      for (const l of leaves) mem.appendLeafHash(leafHash(l));
      expect(log.size).toBe(mem.size);
      expect(hex(log.root())).toBe(hex(mem.root()));
    }
    const n = log.size;
    for (const size of [1, 2, 3, 7, 8, 255, 256, 257, 511, 512, 513, 1000, n]) {
      expect(hex(log.rootAt(size))).toBe(hex(mem.root(size)));
      for (const index of [0, size >> 1, size - 1]) {
        const p = log.inclusionProof(index, size);
        expect(p.map(hex)).toEqual(mem.inclusionProof(index, size).map(hex));
        expect(verifyInclusion(log.leafHash(index), index, size, p, log.rootAt(size))).toBe(true);
      }
      const c = log.consistencyProof(size);
      expect(verifyConsistency(size, n, c, log.rootAt(size), log.root())).toBe(true);
    }
    log.close();
  });

  it('stores the tiles exactly as a from-scratch tlog-tiles recomputation (spec example: 70,000 leaves)', () => {
    const log = open();
    const { leaves, hashes, levels } = bigFixture();
    appendAll(log, leaves, 8192);
    // c2sp tlog-tiles: 273 full level-0 tiles + partial of 112, one full level-1 tile + partial of 17,
    // one partial level-2 tile of width 1.
    expect(levels.map((l) => l.length)).toEqual([70_000, 273, 1]);
    expect(hex(log.tile(0, 273, 112))).toBe(hex(Buffer.concat(hashes.slice(273 * 256))));
    expect(() => log.tile(0, 273)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    expect(() => log.tile(0, 273, 113)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    expect(() => log.tile(0, 274, 1)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    expect(hex(log.tile(1, 0))).toBe(hex(Buffer.concat(levels[1]!.slice(0, 256))));
    expect(hex(log.tile(1, 1, 17))).toBe(hex(Buffer.concat(levels[1]!.slice(256))));
    expect(hex(log.tile(2, 0, 1))).toBe(hex(Buffer.from(levels[2]![0]!)));
    expect(() => log.tile(3, 0, 1)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    for (const t of [0, 1, 100, 272]) {
      const want = Buffer.concat(hashes.slice(t * 256, (t + 1) * 256));
      expect(hex(log.tile(0, t))).toBe(hex(want));
      expect(hex(log.tile(0, t, 10))).toBe(hex(want.subarray(0, 320)));
    }
    expect(hex(log.root())).toBe(hex(mth(hashes)));
    // Same bytes through the tlog-tiles paths.
    expect(hex(log.resource(tilePath(1, 1, 17)))).toBe(hex(log.tile(1, 1, 17)));
    expect(hex(log.resource('tile/0/272'))).toBe(hex(log.tile(0, 272)));
    expect(() => log.resource('tile/0/x000/272')).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    // The stored rows are the same as served.
    const db = new DatabaseSync(tmp.path('log.db'), { readOnly: true });
    const rows = db.prepare('SELECT level, idx, width FROM tiles ORDER BY level, idx').all() as { level: number; idx: number; width: number }[];
    expect(rows.length).toBe(274 + 2 + 1);
    expect(rows.filter((r) => r.width !== 256).map((r) => [r.level, r.idx, r.width])).toEqual([[0, 273, 112], [1, 1, 17], [2, 0, 1]]);
    db.close();
    log.verifyStorage();
    log.close();
  });

  it('serves entry bundles (uint16-length-prefixed leaves)', () => {
    const log = open();
    appendN(log, 300);
    const b = log.entryBundle(0);
    expect(b.length).toBe(256 * (2 + 34));
    expect(hex(b.subarray(0, 2))).toBe('0022');
    expect(hex(b.subarray(2, 36))).toBe(hex(Buffer.from(msgLeaf(0))));
    expect(log.entryBundle(1, 44).length).toBe(44 * 36);
    expect(hex(log.resource(entriesPath(1, 44)))).toBe(hex(log.entryBundle(1, 44)));
    expect(() => log.entryBundle(1)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    expect(() => log.entryBundle(1, 45)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    log.close();
  });

  it('finds leaves by message hash and returns leaf data', () => {
    const log = open();
    appendN(log, 1000);
    for (const i of [0, 1, 255, 256, 999]) {
      expect(log.leafIndexOf(detBytes('m', i))).toBe(i);
      expect(hex(log.leaf(i))).toBe(hex(Buffer.from(msgLeaf(i))));
    }
    expect(log.leafIndexOf(detBytes('unknown', 0))).toBeUndefined();
    // A duplicate message keeps pointing at its first leaf.
    log.append([msgLeaf(5)]);
    expect(log.leafIndexOf(detBytes('m', 5))).toBe(5);
    // Non-ledger leaf data is logged but not indexed.
    const raw = Buffer.from('not a ledger leaf');
    const at = log.append([raw]);
    expect(hex(log.leaf(at))).toBe(hex(raw));
    expect(() => log.leaf(at + 1)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    log.close();
  });

  it('reopens to the same tree, checkpoints and lookups', () => {
    const { leaves, hashes, levels } = bigFixture();
    let log = open();
    appendAll(log, leaves, 10_000);
    const cp = log.signCheckpoint();
    log.close();
    log = open();
    expect(log.size).toBe(70_000);
    expect(hex(log.root())).toBe(hex(mth(hashes)));
    expect(log.latestCheckpoint()).toEqual(cp);
    expect(log.leafIndexOf(detBytes('tiles', 69_999))).toBe(69_999);
    expect(hex(log.tile(1, 1, 17))).toBe(hex(Buffer.concat(levels[1]!.slice(256))));
    for (const i of [0, 12_345, 65_535, 65_536, 69_999]) {
      expect(verifyInclusion(hashes[i]!, i, 70_000, log.inclusionProof(i), cp.root)).toBe(true);
    }
    // Appending after reopen continues the same tree.
    const more = [msgLeaf(0, 'tail'), msgLeaf(1, 'tail')];
    log.append(more);
    expect(hex(log.root())).toBe(hex(mth([...hashes, ...more.map(leafHash)])));
    expect(verifyConsistency(70_000, 70_002, log.consistencyProof(70_000), cp.root, log.root())).toBe(true);
    log.close();
  });

  it('writes the lookup index as sorted runs of 65,536 leaves; the rest is looked up in memory', () => {
    const { leaves } = bigFixture();
    let log = open();
    appendAll(log, leaves.slice(0, 65_536), 4096); // the first run is complete but not yet written
    const runRows = () => {
      const db = new DatabaseSync(tmp.path('log.db'), { readOnly: true });
      const n = (db.prepare('SELECT count(*) AS n FROM index_runs WHERE run = 0').get() as { n: number }).n;
      const runs = (db.prepare("SELECT value FROM meta WHERE key = 'index_runs'").get() as { value: number } | undefined)?.value;
      db.close();
      return [n, runs ?? 0];
    };
    expect(runRows()).toEqual([0, 0]);
    appendAll(log, leaves.slice(65_536, 65_536 + 4096), 4096); // 2 index rows per leaf appended
    expect(runRows()).toEqual([8192, 0]);
    expect(log.leafIndexOf(detBytes('tiles', 40_000))).toBe(40_000);
    appendAll(log, leaves.slice(65_536 + 4096, 70_000), 4096);
    log.append(Array.from({ length: 12_000 }, (_, i) => msgLeaf(i, 'more')));
    log.append(Array.from({ length: 17_000 }, (_, i) => msgLeaf(i, 'more2')));
    expect(runRows()).toEqual([65_536, 1]);
    log.append([msgLeaf(5, 'tiles'), msgLeaf(69_000, 'tiles'), msgLeaf(11_999, 'more')]); // duplicates
    for (let pass = 0; pass < 2; pass++) {
      for (const i of [0, 5, 40_000, 65_535, 65_536, 69_000, 69_999]) expect(log.leafIndexOf(detBytes('tiles', i))).toBe(i);
      expect(log.leafIndexOf(detBytes('more', 11_999))).toBe(70_000 + 11_999);
      expect(log.leafIndexOf(detBytes('more', 12_000))).toBeUndefined();
      log.close();
      log = open(); // the tail and pending runs are rebuilt from the entries
    }
    log.close();
  });

  it('a failed batch appends nothing (one transaction)', () => {
    const log = open();
    appendN(log, 10);
    const root = hex(log.root());
    expect(() => log.append([msgLeaf(10), new Uint8Array(70_000)])).toThrow(/exceeds/);
    // Make the transaction itself fail mid-way: a trigger rejects the 3rd insert.
    const db = new DatabaseSync(tmp.path('log.db'));
    db.exec(`CREATE TRIGGER boom BEFORE INSERT ON entries WHEN NEW.idx = 12 BEGIN SELECT RAISE(ABORT, 'boom'); END;`);
    expect(() => log.append([msgLeaf(10), msgLeaf(11), msgLeaf(12)])).toThrow(/boom/);
    expect(log.size).toBe(10);
    expect(hex(log.root())).toBe(root);
    db.exec('DROP TRIGGER boom');
    db.close();
    log.append([msgLeaf(10), msgLeaf(11), msgLeaf(12)]);
    expect(log.size).toBe(13);
    log.verifyStorage();
    log.close();
  });

  it('refuses another writer, another origin, bad arguments', () => {
    const log = open();
    appendN(log, 3);
    const other = open();
    other.append([msgLeaf(3)]);
    expect(() => log.append([msgLeaf(3)])).toThrow(expect.objectContaining({ code: 'CORRUPT' }));
    other.close();
    log.close();
    expect(() => TransparencyLog.open(tmp.path('log.db'), { origin: 'other.example/log', signingKey: key })).toThrow(
      expect.objectContaining({ code: 'CONFIG_MISMATCH' }),
    );
    expect(() => TransparencyLog.open(tmp.path('x.db'), { origin: 'has space', signingKey: key })).toThrow(
      expect.objectContaining({ code: 'BAD_KEY' }),
    );
    expect(() => TransparencyLog.open(tmp.path('y.db'), { origin, signingKey: { ...key, publicKey: testKey('other').publicKey } })).toThrow(
      expect.objectContaining({ code: 'BAD_KEY' }),
    );
    const l2 = open();
    expect(() => l2.inclusionProof(4)).toThrow(LedgerError);
    expect(() => l2.rootAt(5)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    expect(() => l2.consistencyProof(2, 9)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    expect(() => l2.tile(0, -1)).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
    expect(l2.append([])).toBe(4);
    l2.close();
    expect(() => l2.root()).toThrow(/closed/);
  });

  it('detects a damaged store on open', () => {
    let log = open();
    appendN(log, 300);
    log.close();
    const db = new DatabaseSync(tmp.path('log.db'));
    db.exec('DELETE FROM tiles WHERE level = 0 AND idx = 1');
    db.close();
    expect(() => open()).toThrow(expect.objectContaining({ code: 'CORRUPT' }));
    log = TransparencyLog.open(tmp.path('log2.db'), { origin, signingKey: key });
    appendN(log, 10);
    log.close();
    const db2 = new DatabaseSync(tmp.path('log2.db'));
    db2.exec('DELETE FROM entries WHERE idx = 9');
    db2.close();
    expect(() => TransparencyLog.open(tmp.path('log2.db'), { origin, signingKey: key })).toThrow(expect.objectContaining({ code: 'CORRUPT' }));
  });
});
