// composeMessage: the RFC 5322 message the bridge sends for an app's message. Each rule, read back from the
// bytes; and the values a sender controls trying to add header fields.
import { describe, expect, it } from 'vitest';
import { ComposeError, composeMessage, type ComposeInput } from '../../bridge/index.ts';

const base: ComposeInput = {
  from: 'alice@node.example',
  to: ['bob@legacy.example'],
  date: new Date('2026-12-07T04:05:06Z'),
  messageId: '0123abcd@node.example',
  contentType: '',
  body: Buffer.from('Hello Bob.\r\n'),
  receipt: { origin: 'node.example/log', leafIndex: 42 },
};

/** Header fields (name as written, unfolded value) and body of a CRLF message. */
function parse(data: Buffer): { fields: [string, string][]; body: Buffer; raw: string } {
  const end = data.indexOf('\r\n\r\n');
  const raw = data.subarray(0, end).toString('utf8');
  const fields = raw.split(/\r\n(?![ \t])/).map((f): [string, string] => {
    const colon = f.indexOf(':');
    return [f.slice(0, colon), f.slice(colon + 1).replace(/\r\n/g, '').trim()];
  });
  return { fields, body: data.subarray(end + 4), raw };
}

function get(data: Buffer, name: string): string[] {
  return parse(data).fields.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
}

function decodeWords(value: string): string {
  return value.replace(/=\?UTF-8\?B\?([^?]*)\?=\s*/g, (_, b64: string) => Buffer.from(b64, 'base64').toString('utf8'));
}

function decodeQp(text: string): Buffer {
  const bytes = text.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  return Buffer.from(bytes, 'latin1');
}

function code(f: () => unknown): string {
  try { f(); } catch (err) { return err instanceof ComposeError ? err.code : `not a ComposeError: ${String(err)}`; }
  return 'no error';
}

function lines(data: Buffer): string[] {
  return data.toString('latin1').split('\r\n');
}

describe('a message built around the body', () => {
  it('writes the fields in RFC 5322 form, the receipt, and a 7bit text body without a transfer encoding', () => {
    const out = composeMessage({ ...base, cc: ['carol@legacy.example'], subject: 'Plain subject' });
    expect(parse(out.data).fields).toEqual([
      ['From', 'alice@node.example'],
      ['To', 'bob@legacy.example'],
      ['Cc', 'carol@legacy.example'],
      ['Subject', 'Plain subject'],
      ['Date', 'Mon, 07 Dec 2026 04:05:06 +0000'],
      ['Message-ID', '<0123abcd@node.example>'],
      ['AfterSMTP-Receipt', 'origin=node.example/log; leaf=42'],
      ['MIME-Version', '1.0'],
      ['Content-Type', 'text/plain; charset=utf-8'],
    ]);
    expect(parse(out.data).body.toString()).toBe('Hello Bob.\r\n');
    expect(out).toMatchObject({ eightBit: false, smtputf8: false });
  });

  it('normalises bare LF and bare CR to CRLF and ends the body with CRLF', () => {
    const out = composeMessage({ ...base, body: Buffer.from('one\ntwo\rthree\r\nfour') });
    expect(parse(out.data).body.toString()).toBe('one\r\ntwo\r\nthree\r\nfour\r\n');
    expect(out.data.toString('latin1')).not.toMatch(/\r(?!\n)|(?<!\r)\n/);
  });

  it('keeps the given content type; 8-bit octets are sent as 8bit', () => {
    const out = composeMessage({ ...base, contentType: 'text/html; charset=utf-8', body: Buffer.from('<p>Grüße</p>\n') });
    expect(get(out.data, 'Content-Type')).toEqual(['text/html; charset=utf-8']);
    expect(get(out.data, 'Content-Transfer-Encoding')).toEqual(['8bit']);
    expect(parse(out.data).body.toString('utf8')).toBe('<p>Grüße</p>\r\n');
    expect(out).toMatchObject({ eightBit: true, smtputf8: false });
  });

  it('a line over 998 octets goes quoted-printable (7-bit, lines of at most 76), and decodes to the body', () => {
    const long = `${'ä'.repeat(600)} end  \r\nshort line\r\n`;
    const out = composeMessage({ ...base, body: Buffer.from(long) });
    expect(get(out.data, 'Content-Transfer-Encoding')).toEqual(['quoted-printable']);
    const body = parse(out.data).body;
    expect(Math.max(...lines(body).map((l) => l.length))).toBeLessThanOrEqual(76);
    expect(decodeQp(body.toString('latin1')).toString('utf8')).toBe(long);
    expect(out).toMatchObject({ eightBit: false, smtputf8: false });
  });

  it('a multipart body with an over-long line is refused (its own encoding cannot change)', () => {
    const body = Buffer.from(`--b\r\nContent-Type: text/plain\r\n\r\n${'x'.repeat(1200)}\r\n--b--\r\n`);
    expect(code(() => composeMessage({ ...base, contentType: 'multipart/mixed; boundary="b"', body }))).toBe('LINE_TOO_LONG');
  });

  it('a non-ASCII subject becomes RFC 2047 encoded words that decode to it', () => {
    const subject = 'Grüße aus Köln — 日本語のテキストがここにあります、そして更に長い件名です';
    const out = composeMessage({ ...base, subject });
    const [value] = get(out.data, 'Subject');
    expect(value).toMatch(/^=\?UTF-8\?B\?/);
    expect(decodeWords(value!)).toBe(subject);
    expect(Math.max(...lines(out.data).map((l) => l.length))).toBeLessThanOrEqual(78);
    expect(out.smtputf8).toBe(false);
  });

  it('a long ASCII subject is folded and unfolds to itself; text that looks like an encoded word is encoded', () => {
    const subject = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
    const out = composeMessage({ ...base, subject });
    expect(parse(out.data).raw).toMatch(/\r\n word/);
    expect(get(out.data, 'Subject')).toEqual([subject]);
    const spaced = `${'a'.repeat(60)}      ${'b'.repeat(30)}  c`;
    const spacedOut = composeMessage({ ...base, subject: spaced });
    expect(get(spacedOut.data, 'Subject')).toEqual([spaced]);
    expect(parse(spacedOut.data).raw).not.toMatch(/\r\n[ \t]*\r\n|\r\n[ \t]+$/);
    const tricky = composeMessage({ ...base, subject: '=?UTF-8?B?SGk=?= not encoded' });
    expect(decodeWords(get(tricky.data, 'Subject')[0]!)).toBe('=?UTF-8?B?SGk=?= not encoded');
  });

  it('a non-ASCII address sets smtputf8 and is written as UTF-8', () => {
    const out = composeMessage({ ...base, to: ['bjørn@example.no'] });
    expect(get(out.data, 'To')).toEqual(['bjørn@example.no']);
    expect(out).toMatchObject({ eightBit: true, smtputf8: true });
  });

  it('only Cc recipients: no empty To field', () => {
    const out = composeMessage({ ...base, to: [], cc: ['carol@legacy.example'] });
    expect(get(out.data, 'To')).toEqual([]);
    expect(get(out.data, 'Cc')).toEqual(['carol@legacy.example']);
  });

  it('many recipients fold at commas', () => {
    const to = Array.from({ length: 12 }, (_, i) => `recipient${i}@legacy.example`);
    const out = composeMessage({ ...base, to });
    expect(get(out.data, 'To')).toEqual([to.join(', ')]);
    expect(Math.max(...lines(out.data).map((l) => l.length))).toBeLessThanOrEqual(78);
  });

  it('extra headers are written; the fields the bridge writes cannot be set that way', () => {
    const out = composeMessage({ ...base, extraHeaders: [{ name: 'In-Reply-To', value: '<x@y.example>' }] });
    expect(get(out.data, 'In-Reply-To')).toEqual(['<x@y.example>']);
    for (const name of ['From', 'bcc', 'AfterSMTP-Receipt', 'Content-Transfer-Encoding', 'Bad Name']) {
      expect(code(() => composeMessage({ ...base, extraHeaders: [{ name, value: 'x' }] }))).toBe('BAD_ARGUMENT');
    }
  });
});

describe('header injection', () => {
  const attacks: [string, Partial<ComposeInput>][] = [
    ['subject CRLF', { subject: 'hi\r\nBcc: victim@example.org' }],
    ['subject bare LF', { subject: 'hi\nBcc: victim@example.org' }],
    ['subject bare CR', { subject: 'hi\rBcc: victim@example.org' }],
    ['subject NUL', { subject: 'hi\0there' }],
    ['from CRLF', { from: 'alice@node.example\r\nBcc: victim@example.org' }],
    ['to CRLF', { to: ['bob@legacy.example\r\nSubject: forged'] }],
    ['cc LF', { cc: ['carol@legacy.example\nX: y'] }],
    ['content type CRLF', { contentType: 'text/plain\r\nBcc: victim@example.org' }],
    ['message id CRLF', { messageId: 'a@b\r\nBcc: v@x' }],
    ['receipt origin CRLF', { receipt: { origin: 'log\r\nBcc: v@x', leafIndex: 1 } }],
    ['extra header value CRLF', { extraHeaders: [{ name: 'X-Thing', value: 'a\r\nBcc: v@x' }] }],
  ];
  for (const [what, change] of attacks) {
    it(`refuses ${what} with HEADER_INJECTION`, () => {
      expect(code(() => composeMessage({ ...base, ...change }))).toBe('HEADER_INJECTION');
    });
  }

  it('refuses addresses that would change a header’s structure, and bad arguments', () => {
    expect(code(() => composeMessage({ ...base, from: 'Alice <alice@node.example>' }))).toBe('BAD_ADDRESS');
    expect(code(() => composeMessage({ ...base, to: ['bob@legacy.example, eve@evil.example'] }))).toBe('BAD_ADDRESS');
    expect(code(() => composeMessage({ ...base, to: [] }))).toBe('BAD_ADDRESS');
    expect(code(() => composeMessage({ ...base, to: [`${'x'.repeat(65)}@legacy.example`] }))).toBe('BAD_ADDRESS');
    expect(code(() => composeMessage({ ...base, messageId: '<a@b>' }))).toBe('BAD_ARGUMENT');
    expect(code(() => composeMessage({ ...base, receipt: { origin: 'a; leaf=1', leafIndex: 2 } }))).toBe('BAD_ARGUMENT');
    expect(code(() => composeMessage({ ...base, receipt: { origin: 'log', leafIndex: -1 } }))).toBe('BAD_ARGUMENT');
    expect(code(() => composeMessage({ ...base, receipt: { origin: 'log', leafIndex: 1.5 } }))).toBe('BAD_ARGUMENT');
    expect(code(() => composeMessage({ ...base, date: new Date(NaN) }))).toBe('BAD_ARGUMENT');
    expect(code(() => composeMessage({ ...base, contentType: 'not a type' }))).toBe('BAD_ARGUMENT');
  });

  it('accepts a bigint leaf index', () => {
    const out = composeMessage({ ...base, receipt: { origin: 'log', leafIndex: 2n ** 63n } });
    expect(get(out.data, 'AfterSMTP-Receipt')).toEqual([`origin=log; leaf=${2n ** 63n}`]);
  });
});

describe('a message/rfc822 body', () => {
  const rfc822 = (text: string) => ({ ...base, contentType: 'message/rfc822', body: Buffer.from(text) });

  it('keeps its fields and body as written and adds only what is missing, plus the receipt', () => {
    const text = 'From: "Alice A." <Alice@Node.Example>\r\nSubject: mine\r\nX-Mailer: app 1.0\r\nContent-Type: text/plain\r\n\r\nbody line\r\n';
    const out = composeMessage(rfc822(text));
    const { fields } = parse(out.data);
    expect(fields.map(([n]) => n)).toEqual(['To', 'Date', 'Message-ID', 'AfterSMTP-Receipt', 'From', 'Subject', 'X-Mailer', 'Content-Type']);
    expect(out.data.toString().endsWith(text.slice(text.indexOf('From:')))).toBe(true);
    expect(out).toMatchObject({ eightBit: false, smtputf8: false });
  });

  it('never duplicates a field the message has', () => {
    const text = 'From: alice@node.example\r\nTo: someone@else.example\r\nDate: Sun, 06 Dec 2026 10:00:00 +0000\r\nMessage-ID: <own@id>\r\n\r\nx\r\n';
    const out = composeMessage(rfc822(text));
    for (const name of ['From', 'To', 'Date', 'Message-ID']) expect(get(out.data, name)).toHaveLength(1);
    expect(get(out.data, 'Message-ID')).toEqual(['<own@id>']);
    expect(get(out.data, 'To')).toEqual(['someone@else.example']);
  });

  it('drops a receipt field the app wrote: only the node states the receipt', () => {
    const out = composeMessage(rfc822('From: alice@node.example\r\nAfterSMTP-Receipt: origin=forged; leaf=1\r\n\r\nx\r\n'));
    expect(get(out.data, 'AfterSMTP-Receipt')).toEqual(['origin=node.example/log; leaf=42']);
  });

  it('adds the extra fields it lacks, never a second one', () => {
    const out = composeMessage({
      ...rfc822('From: alice@node.example\r\nIn-Reply-To: <own@x>\r\n\r\nx\r\n'),
      extraHeaders: [{ name: 'In-Reply-To', value: '<other@x>' }, { name: 'References', value: '<r@x>' }],
    });
    expect(get(out.data, 'In-Reply-To')).toEqual(['<own@x>']);
    expect(get(out.data, 'References')).toEqual(['<r@x>']);
    expect(code(() => composeMessage({ ...rfc822('From: alice@node.example\r\n\r\nx\r\n'), extraHeaders: [{ name: 'X', value: 'a\r\nBcc: v@x' }] })))
      .toBe('HEADER_INJECTION');
  });

  it('adds From when the message has none', () => {
    const out = composeMessage(rfc822('Subject: no author\r\n\r\nx\r\n'));
    expect(get(out.data, 'From')).toEqual(['alice@node.example']);
  });

  it('SENDER_MISMATCH for another author, two authors, or two From fields', () => {
    expect(code(() => composeMessage(rfc822('From: ceo@node.example\r\n\r\nx\r\n')))).toBe('SENDER_MISMATCH');
    expect(code(() => composeMessage(rfc822('From: alice@node.example, ceo@node.example\r\n\r\nx\r\n')))).toBe('SENDER_MISMATCH');
    expect(code(() => composeMessage(rfc822('From: alice@node.example\r\nFrom: ceo@node.example\r\n\r\nx\r\n')))).toBe('SENDER_MISMATCH');
    expect(code(() => composeMessage(rfc822('From: "alice@node.example" <ceo@node.example>\r\n\r\nx\r\n')))).toBe('SENDER_MISMATCH');
  });

  it('normalises bare line ends; 8-bit body and UTF-8 headers set the flags', () => {
    const out = composeMessage(rfc822('From: alice@node.example\nSubject: Grüße\n\nbody ä\n'));
    expect(out.data.toString('latin1')).not.toMatch(/\r(?!\n)|(?<!\r)\n/);
    expect(out).toMatchObject({ eightBit: true, smtputf8: true });
  });

  it('BAD_MESSAGE for a body that is not a message; LINE_TOO_LONG for a line it cannot re-encode', () => {
    expect(code(() => composeMessage(rfc822('just some text\r\nwithout fields\r\n')))).toBe('BAD_MESSAGE');
    expect(code(() => composeMessage(rfc822(`From: alice@node.example\r\n\r\n${'x'.repeat(999)}\r\n`)))).toBe('LINE_TOO_LONG');
  });
});
