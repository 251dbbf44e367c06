import { describe, expect, it } from 'vitest';
import {
  ByteReader,
  ByteWriter,
  base58btcDecode,
  base58btcEncode,
  fromBase64Url,
  fromUtf8,
  toBase64Url,
} from '../../identity/encoding.ts';
import { IdentityError } from '../../identity/index.ts';

const bytes = (...xs: number[]): Uint8Array => Uint8Array.from(xs);

describe('base58btc', () => {
  it('encodes known values, keeping leading zero bytes as "1"', () => {
    expect(base58btcEncode(new TextEncoder().encode('Hello World!'))).toBe('2NEpo7TZRRrLZSi2U');
    expect(base58btcEncode(bytes(0, 0, 0x28, 0x7f, 0xb4, 0xcd))).toBe('11233QC4');
    expect(base58btcEncode(new Uint8Array(0))).toBe('');
    expect(base58btcEncode(bytes(0))).toBe('1');
  });

  it('round-trips random byte strings', () => {
    for (let n = 0; n < 40; n++) {
      const b = Uint8Array.from({ length: n }, (_, i) => (i * 97 + n * 31) & 0xff);
      if (n % 3 === 0 && n > 0) b[0] = 0;
      expect(base58btcDecode(base58btcEncode(b))).toEqual(b);
    }
  });

  it('rejects characters outside the alphabet', () => {
    expect(() => base58btcDecode('0OIl')).toThrow(IdentityError);
    expect(() => base58btcDecode('abc+')).toThrow(/base58btc/);
  });
});

describe('base64url', () => {
  it('round-trips and rejects padding, foreign characters and non-canonical tails', () => {
    const b = bytes(0xfb, 0xff, 0x01);
    expect(toBase64Url(b)).toBe('-_8B');
    expect(fromBase64Url('-_8B')).toEqual(b);
    expect(() => fromBase64Url('-_8B=')).toThrow(IdentityError);
    expect(() => fromBase64Url('+/8B')).toThrow(IdentityError);
    expect(fromBase64Url('AQ')).toEqual(bytes(1));
    expect(() => fromBase64Url('AR')).toThrow(/non-canonical/); // unused low bits must be zero
    expect(() => fromBase64Url('A')).toThrow(IdentityError);
  });
});

describe('strict UTF-8', () => {
  it('rejects ill-formed sequences instead of replacing them', () => {
    expect(() => fromUtf8(bytes(0xc0, 0xaf))).toThrow(/UTF-8/); // overlong '/'
    expect(() => fromUtf8(bytes(0xed, 0xa0, 0x80))).toThrow(/UTF-8/); // surrogate
    expect(() => fromUtf8(bytes(0xe2, 0x82))).toThrow(/UTF-8/); // truncated
  });

  it('keeps a leading BOM so that decoding round-trips', () => {
    expect(fromUtf8(bytes(0xef, 0xbb, 0xbf, 0x61))).toBe('\uFEFFa');
  });

  it('the writer refuses lone surrogates', () => {
    expect(() => new ByteWriter().str('a\uD800b', 'field')).toThrow(/surrogate/);
  });
});

describe('ByteWriter / ByteReader', () => {
  it('writes big-endian integers and length prefixes', () => {
    const out = new ByteWriter().u8(1).u16(0x0203).u32(0x04050607).u64(2 ** 53 - 1).lp(bytes(9, 9)).finish();
    expect(Array.from(out)).toEqual([1, 2, 3, 4, 5, 6, 7, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, 9, 9]);
    const r = new ByteReader(out, 't');
    expect([r.u8('a'), r.u16('b'), r.u32('c'), r.u64('d')]).toEqual([1, 0x0203, 0x04050607, 2 ** 53 - 1]);
    expect(r.lp('e', 10)).toEqual(bytes(9, 9));
    expect(() => r.end()).not.toThrow();
  });

  it('grows past its initial capacity without losing or reordering bytes', () => {
    const big = Uint8Array.from({ length: 5000 }, (_, i) => i & 0xff);
    const w = new ByteWriter(16).u64(2 ** 32).str('é€😀', 's').lp(big).u64(2 ** 32 - 1).u64(0);
    const out = w.finish();
    expect(out.length).toBe(w.length);
    const r = new ByteReader(out, 't');
    expect(r.u64('a')).toBe(2 ** 32);
    expect(r.str('s', 100)).toBe('é€😀');
    expect(r.lp('big', 10_000)).toEqual(big);
    expect([r.u64('b'), r.u64('c')]).toEqual([2 ** 32 - 1, 0]);
    expect(() => r.end()).not.toThrow();
  });

  it('rejects u64 values above 2^53 - 1', () => {
    const r = new ByteReader(bytes(0, 0x20, 0, 0, 0, 0, 0, 0), 't');
    expect(() => r.u64('ts')).toThrow(/2\^53-1/);
    expect(() => new ByteWriter().u64(2 ** 53)).toThrow(IdentityError);
  });

  it('rejects truncation, over-limit lengths and trailing bytes with codes', () => {
    const lp = new ByteWriter().lp(bytes(1, 2, 3)).finish();
    const tryCode = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        return (e as IdentityError).code;
      }
      return undefined;
    };
    expect(tryCode(() => new ByteReader(lp.subarray(0, 5), 't').lp('x', 10))).toBe('ENCODING');
    expect(tryCode(() => new ByteReader(lp, 't').lp('x', 2))).toBe('LIMIT');
    const r = new ByteReader(new Uint8Array([...lp, 0]), 't');
    r.lp('x', 10);
    expect(tryCode(() => r.end())).toBe('ENCODING');
  });
});
