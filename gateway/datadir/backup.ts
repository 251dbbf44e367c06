// A consistent copy of a node's data directory, taken while the node runs.
import { chmodSync, closeSync, constants, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { GatewayError, createPrivateFile, tightenModes } from '../core/index.ts';
import { READY_FILE } from './mailboxes.ts';
import { openNodeFiles } from './node-files.ts';

export interface BackupResult {
  out: string;
  /** The SQLite databases, in the order their snapshots were taken (relative paths). */
  databases: string[];
  /** Other files copied as they are (config, keys, TLS material, anchoring state). */
  files: number;
}

/** SQLite's side files: the snapshot replaces them. */
const SQLITE_SIDE_FILE = /-(wal|shm|journal)$/;

/**
 * Copies the node in `dataDir` to `out`, which must not exist or be empty. The node may be running:
 * each SQLite database is copied with `VACUUM INTO`, a consistent snapshot taken in one read
 * transaction that never blocks the node's writer. The store goes first and the transparency log
 * second: the node appends a message's leaf before it stores the envelope, so the later log snapshot
 * holds the leaf of every message in the store snapshot, at the index its receipt names (a few newer
 * leaves without envelopes are harmless, as after a failed store). Every other file is copied. The copy
 * is for the node's user alone: directories 0700, files 0600 (or narrower, as the original); it is a
 * complete data directory (`aftersmtp start --data OUT`).
 */
export function backupNode(opts: { dataDir: string; out: string }): BackupResult {
  const { dataDir, out } = opts;
  const { config } = openNodeFiles(dataDir); // a node is there, and its config is valid
  if (existsSync(out) && readdirSync(out).length > 0) throw new GatewayError('INVALID_ARGUMENT', `${out} exists and is not empty; name a new directory`);
  const inside = relative(dataDir, out);
  if (inside === '' || (!inside.startsWith('..') && !isAbsolute(inside))) {
    throw new GatewayError('INVALID_ARGUMENT', `${out} is inside the data directory ${dataDir}; put the copy somewhere else`);
  }
  const known = [config.storage.file, config.ledger.file]; // snapshot order, see above
  for (const file of known) {
    if (isAbsolute(file) || relative(dataDir, join(dataDir, file)).startsWith('..')) {
      throw new GatewayError('INVALID_ARGUMENT', `the database ${file} is outside the data directory; back it up with the node's files yourself`);
    }
  }
  // The copy holds the node's keys: only its owner may enter it, even if it existed (empty) before.
  mkdirSync(out, { recursive: true, mode: 0o700 });
  tightenModes([out]);

  const databases: string[] = [];
  let files = 0;
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(dataDir, dir), { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        mkdirSync(join(out, path), { mode: 0o700 });
        walk(path);
      } else if (entry.isFile() && !SQLITE_SIDE_FILE.test(entry.name) && path !== READY_FILE) {
        if (isSqlite(join(dataDir, path))) {
          databases.push(path);
        } else {
          copyFileSync(join(dataDir, path), join(out, path), constants.COPYFILE_EXCL);
          chmodSync(join(out, path), statSync(join(dataDir, path)).mode & 0o600);
          files++;
        }
      }
    }
  };
  walk('');
  // The store, then the log, then whatever else (see above).
  databases.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  for (const path of databases) {
    const source = new DatabaseSync(join(dataDir, path), { readOnly: true });
    try {
      createPrivateFile(join(out, path)); // VACUUM INTO fills an empty file and keeps its mode
      source.exec(`VACUUM INTO '${join(out, path).replaceAll("'", "''")}'`);
    } catch (err) {
      throw new GatewayError('STORAGE', `cannot snapshot ${join(dataDir, path)}: ${(err as Error).message}`, { cause: err });
    } finally {
      source.close();
    }
  }
  return { out, databases, files };

  function rank(path: string): number {
    const i = known.indexOf(path);
    return i === -1 ? known.length : i;
  }
}

/** A SQLite database file starts with this 16-byte header string. */
function isSqlite(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const header = Buffer.alloc(16);
    return readSync(fd, header, 0, 16, 0) === 16 && header.toString('latin1') === 'SQLite format 3\0';
  } finally {
    closeSync(fd);
  }
}
