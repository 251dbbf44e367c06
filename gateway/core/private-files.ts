// Files only the node's user may read: keys, tokens, profiles, databases. A mode given to open() or
// mkdir() counts only when the file is created, so secrets are written to a new file and renamed into
// place, and files that existed before are tightened at start. Modes are only ever narrowed.
import { type Stats, chmodSync, closeSync, fchmodSync, fsyncSync, lstatSync, mkdirSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { GatewayError } from './errors.ts';

/** Permission bits of group and others. */
const OTHERS = 0o077;

const octal = (mode: number): string => `0${(mode & 0o7777).toString(8)}`;

/**
 * Writes `content` to `path` readable by the owner only: a new file opened exclusively with mode 0600
 * (whatever the umask), then renamed over `path`. An existing `path` that group or others may access is
 * left untouched and refused: it may already have exposed what it held, and a rename would hide that.
 * Replacing an owner-only file keeps its (possibly narrower) mode.
 */
export function writeSecretFile(path: string, content: string): void {
  const existing = refuseSharedFile(path);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const mode = existing ? existing.mode & 0o700 : 0o600;
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temp, 'wx', 0o600);
  try {
    try {
      fchmodSync(fd, mode); // the umask may have taken bits the owner needs (it never adds any)
      writeSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (err) {
    try { unlinkSync(temp); } catch { /* never created */ }
    throw err;
  }
}

/**
 * Throws if `path` is an existing file that group or others may access (a command checks this before
 * it changes anything, so a refusal leaves everything as it was). Returns the file's stat, if any.
 */
export function refuseSharedFile(path: string): Stats | undefined {
  const existing = lstatOrUndefined(path);
  if (!existing?.isFile()) return undefined;
  if (existing.mode & OTHERS) {
    throw new GatewayError('INVALID_ARGUMENT', `${path} is accessible to other users (mode ${octal(existing.mode)}); refusing to write secrets into it. Check who may have read it, then "chmod 600 ${path}" (or remove it) and run the command again`);
  }
  return existing;
}

/**
 * Creates an empty `file` with mode 0600 if there is none, before a database opens it: SQLite creates
 * a missing database with 0644 minus the umask, and its -wal and -shm files take the database's mode.
 */
export function createPrivateFile(file: string): void {
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw err;
  }
  try {
    fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
}

export interface ModeFix {
  path: string;
  from: string;
  to: string;
}

/**
 * Removes group and other permissions from each existing path (directories and files alike); missing
 * paths are skipped. Returns what it changed, and what it could not change (e.g. another user's file).
 */
export function tightenModes(paths: Iterable<string>): { fixed: ModeFix[]; failed: { path: string; error: string }[] } {
  const fixed: ModeFix[] = [];
  const failed: { path: string; error: string }[] = [];
  for (const path of new Set(paths)) {
    let mode: number;
    try {
      mode = statSync(path).mode & 0o7777;
    } catch {
      continue;
    }
    if ((mode & OTHERS) === 0) continue;
    const narrowed = mode & ~OTHERS;
    try {
      chmodSync(path, narrowed);
      fixed.push({ path, from: octal(mode), to: octal(narrowed) });
    } catch (err) {
      failed.push({ path, error: (err as Error).message });
    }
  }
  return { fixed, failed };
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
