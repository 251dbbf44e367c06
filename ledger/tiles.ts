/**
 * C2SP tlog-tiles geometry and resource paths.
 *
 * A tile at level L holds up to 256 consecutive hashes of perfect subtrees of height 8L (level 0:
 * leaf hashes). Tile N at level L covers entries [N * 256^(L+1), (N + 1) * 256^(L+1)). Paths:
 *   tile/<L>/<N>[.p/<W>]       tile/entries/<N>[.p/<W>]
 * where <N> is written in zero-padded 3-digit groups, every group but the last prefixed by "x"
 * (1234067 -> x001/x234/067), and .p/<W> marks a partial tile of width W (1..255).
 */
import { LedgerError } from './errors.ts';

/** Tree levels spanned by one tile. */
export const TILE_HEIGHT = 8;
/** Hashes in a full tile. */
export const TILE_WIDTH = 256;
/** Highest tile level the spec allows. */
export const MAX_TILE_LEVEL = 63;

function checkIndex(index: number): void {
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new LedgerError('BAD_ARGUMENT', `tile index must be a non-negative safe integer, got ${index}`);
  }
}

function checkWidth(width: number | undefined): void {
  if (width === undefined) return;
  if (!Number.isInteger(width) || width < 1 || width > TILE_WIDTH) {
    throw new LedgerError('BAD_ARGUMENT', `tile width must be 1..256, got ${width}`);
  }
}

/** The x-prefixed, zero-padded 3-digit path encoding of a tile index. */
export function encodeTileIndex(index: number): string {
  checkIndex(index);
  let n = index;
  let out = String(n % 1000).padStart(3, '0');
  n = Math.floor(n / 1000);
  while (n > 0) {
    out = `x${String(n % 1000).padStart(3, '0')}/${out}`;
    n = Math.floor(n / 1000);
  }
  return out;
}

function widthSuffix(width: number | undefined): string {
  checkWidth(width);
  return width === undefined || width === TILE_WIDTH ? '' : `.p/${width}`;
}

/** `tile/<L>/<N>[.p/<W>]`; a width of 256 (or none) names the full tile. */
export function tilePath(level: number, index: number, width?: number): string {
  if (!Number.isInteger(level) || level < 0 || level > MAX_TILE_LEVEL) {
    throw new LedgerError('BAD_ARGUMENT', `tile level must be 0..${MAX_TILE_LEVEL}, got ${level}`);
  }
  return `tile/${level}/${encodeTileIndex(index)}${widthSuffix(width)}`;
}

/** `tile/entries/<N>[.p/<W>]`. */
export function entriesPath(index: number, width?: number): string {
  return `tile/entries/${encodeTileIndex(index)}${widthSuffix(width)}`;
}

export type ParsedTilePath =
  | { kind: 'tile'; level: number; index: number; width: number | undefined }
  | { kind: 'entries'; index: number; width: number | undefined };

const DEC = /^(0|[1-9][0-9]*)$/;

/**
 * Parses a tile or entry-bundle path (without prefix). Strict: only the canonical encoding is
 * accepted (no leading "x000/" group, no leading zeros in L or W), so each resource has one name.
 * Returns null for anything else.
 */
export function parseTilePath(path: string): ParsedTilePath | null {
  const m = /^tile\/([^/]+)\/(.+)$/.exec(path);
  if (!m) return null;
  let rest = m[2]!;
  let width: number | undefined;
  const p = /^(.*)\.p\/([^/]+)$/.exec(rest);
  if (p) {
    if (!DEC.test(p[2]!)) return null;
    width = Number(p[2]);
    if (width < 1 || width > TILE_WIDTH - 1) return null;
    rest = p[1]!;
  }
  const groups = rest.split('/');
  let index = 0;
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i]!;
    const last = i === groups.length - 1;
    const re = last ? /^[0-9]{3}$/ : /^x[0-9]{3}$/;
    if (!re.test(g)) return null;
    const v = Number(last ? g : g.slice(1));
    if (i === 0 && !last && v === 0) return null;
    index = index * 1000 + v;
  }
  if (!Number.isSafeInteger(index)) return null;
  const lv = m[1]!;
  if (lv === 'entries') return { kind: 'entries', index, width };
  if (!DEC.test(lv)) return null;
  const level = Number(lv);
  if (level > MAX_TILE_LEVEL) return null;
  return { kind: 'tile', level, index, width };
}

/** Number of hashes that exist at tile level `level` for a tree of `size` leaves: floor(size / 256^level). */
export function hashesAtLevel(size: number, level: number): number {
  return Math.floor(size / TILE_WIDTH ** level);
}

/** Width of the tile `index` at `level` in a tree of `size` leaves (0 if it does not exist yet). */
export function tileWidthAt(size: number, level: number, index: number): number {
  const n = hashesAtLevel(size, level);
  return Math.max(0, Math.min(TILE_WIDTH, n - index * TILE_WIDTH));
}
