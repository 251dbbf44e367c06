import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeTileIndex, entriesPath, parseTilePath, tilePath } from '../../ledger/index.ts';

describe('tlog-tiles paths', () => {
  it('encodes indexes in x-prefixed 3-digit groups', () => {
    expect(encodeTileIndex(0)).toBe('000');
    expect(encodeTileIndex(7)).toBe('007');
    expect(encodeTileIndex(999)).toBe('999');
    expect(encodeTileIndex(1000)).toBe('x001/000');
    expect(encodeTileIndex(1234067)).toBe('x001/x234/067');
    expect(tilePath(0, 1234067)).toBe('tile/0/x001/x234/067');
    expect(tilePath(1, 5, 17)).toBe('tile/1/005.p/17');
    expect(tilePath(2, 5, 256)).toBe('tile/2/005');
    expect(entriesPath(1000, 3)).toBe('tile/entries/x001/000.p/3');
    expect(entriesPath(42)).toBe('tile/entries/042');
  });

  it('rejects invalid coordinates', () => {
    expect(() => tilePath(-1, 0)).toThrow();
    expect(() => tilePath(64, 0)).toThrow();
    expect(() => tilePath(0, -1)).toThrow();
    expect(() => tilePath(0, 1.5)).toThrow();
    expect(() => tilePath(0, 0, 0)).toThrow();
    expect(() => tilePath(0, 0, 257)).toThrow();
  });

  it('parses canonical paths and nothing else', () => {
    expect(parseTilePath('tile/0/x001/x234/067')).toEqual({ kind: 'tile', level: 0, index: 1234067, width: undefined });
    expect(parseTilePath('tile/3/005.p/17')).toEqual({ kind: 'tile', level: 3, index: 5, width: 17 });
    expect(parseTilePath('tile/entries/x001/000.p/3')).toEqual({ kind: 'entries', index: 1000, width: 3 });
    for (const bad of [
      'tile/0/x000/005', 'tile/00/000', 'tile/0/5', 'tile/0/0005', 'tile/0/000.p/0', 'tile/0/000.p/256',
      'tile/0/000.p/07', 'tile/64/000', 'tile/0/x001', 'tile/0/001/002', 'tile/-1/000', 'tile/0/', 'tiles/0/000',
      'tile/0/000/', 'tile/0/x01/000', 'checkpoint', 'tile/entries/000.p/x',
    ]) {
      expect(parseTilePath(bad), bad).toBeNull();
    }
  });

  it('round-trips random coordinates', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 63 }), fc.integer({ min: 0, max: 2 ** 40 }), fc.option(fc.integer({ min: 1, max: 255 }), { nil: undefined }), (level, index, width) => {
        expect(parseTilePath(tilePath(level, index, width))).toEqual({ kind: 'tile', level, index, width });
        expect(parseTilePath(entriesPath(index, width))).toEqual({ kind: 'entries', index, width });
      }),
    );
  });
});
