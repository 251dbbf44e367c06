// The strict RFC 6376 §3.2 tag-list reader the bridge applies to every ARC-Seal.
import { describe, expect, it } from 'vitest';
import { parseTagList } from '../../bridge/auth/tag-list.ts';

describe('tag-list (RFC 6376 §3.2)', () => {
  it('reads folded specs, a trailing ";" and an empty value', () => {
    const parsed = parseTagList(' a=rsa-sha256;\r\n    b=abc\r\n def; h=;\r\n t=12345 ;');
    expect(parsed).toEqual({ ok: true, tags: new Map([['a', 'rsa-sha256'], ['b', 'abc\r\n def'], ['h', ''], ['t', '12345']]) });
  });

  it('keeps tag names case-sensitive: S= is not s=', () => {
    const parsed = parseTagList('S=dummy; d=example.org');
    expect(parsed.ok && [...parsed.tags.keys()]).toEqual(['S', 'd']);
  });

  it.each([
    ['a stray ";"', 's=dummy;; t=1', 'EMPTY_SPEC'],
    ['a tag name not starting with a letter', 's=dummy; _=; t=1', 'BAD_TAG_NAME'],
    ['a duplicate tag', 's=dummy; s=dummy', 'DUPLICATE_TAG'],
    ['a spec without "="', 's=dummy; cv', 'MISSING_EQUALS'],
    ['a value with a control byte', 's=du\x7fmmy', 'BAD_TAG_VALUE'],
    ['a bare line break inside a value', 'b=abc\r\ndef', 'BAD_TAG_VALUE'],
  ])('refuses %s', (_what, value, problem) => {
    expect(parseTagList(value)).toMatchObject({ ok: false, problem });
  });
});
