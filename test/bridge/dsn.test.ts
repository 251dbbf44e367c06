// Delivery status notifications: built, then read back both by parseDsn and by taking the MIME structure
// apart here (mailparser is not among the project's packages), so the report's container, its fields and
// their folding are checked on the bytes. A remote server's reply text is hostile input.
import { describe, expect, it } from 'vitest';
import { buildDsn, DsnError, MAX_RETURNED_MESSAGE, parseDsn, type DsnInput } from '../../bridge/index.ts';

const original = Buffer.from([
  'From: alice@node.example',
  'To: bob@legacy.example, nobody@legacy.example',
  'Subject: lunch?',
  'Message-ID: <orig@node.example>',
  '',
  'Shall we?',
  '',
].join('\r\n'));

const base: DsnInput = {
  reportingMta: 'mx.node.example',
  arrivalDate: new Date('2026-12-07T03:00:00Z'),
  originalEnvid: 'QQ314159',
  from: 'postmaster@node.example',
  to: 'alice@node.example',
  recipients: [
    {
      address: 'nobody@legacy.example', originalRecipient: 'rfc822;nobody+2Bx@legacy.example', action: 'failed', status: '5.1.1',
      remoteMta: 'mx1.legacy.example', diagnostic: { type: 'smtp', text: '550 5.1.1 <nobody@legacy.example>: Recipient address rejected' },
      lastAttemptDate: new Date('2026-12-07T03:00:05Z'),
    },
    {
      address: 'bob@legacy.example', action: 'delayed', status: '4.4.1',
      willRetryUntil: new Date('2026-12-12T03:00:00Z'), lastAttemptDate: new Date('2026-12-07T03:00:05Z'),
    },
  ],
  original,
  returnContent: 'FULL',
  messageId: 'dsn1@node.example',
  date: new Date('2026-12-07T03:00:06Z'),
};

interface Part { headers: string; body: string }

/** The top header section, and the parts of the multipart body, taken apart on the bytes. */
function mime(dsn: Buffer): { head: string; boundary: string; parts: Part[] } {
  const text = dsn.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const head = text.slice(0, end);
  const boundary = /boundary="([^"]+)"/.exec(head.replace(/\r\n[ \t]/g, ' '))![1]!;
  const sections = text.slice(end + 4).split(`\r\n--${boundary}`);
  expect(sections.pop()).toBe('--\r\n');
  const parts = sections.slice(1).map((s) => {
    const body = s.slice(2);
    const split = body.indexOf('\r\n\r\n');
    return { headers: body.slice(0, split), body: body.slice(split + 4) };
  });
  return { head, boundary, parts };
}

function code(f: () => unknown): string {
  try { f(); } catch (err) { return err instanceof DsnError ? err.code : `not a DsnError: ${String(err)}`; }
  return 'no error';
}

describe('buildDsn', () => {
  it('is a multipart/report of report-type delivery-status: text/plain, message/delivery-status, message/rfc822', () => {
    const dsn = buildDsn(base);
    const { head, parts } = mime(dsn);
    expect(head).toMatch(/^From: Mail Delivery System <postmaster@node\.example>\r\nTo: <alice@node\.example>\r\n/);
    expect(head).toMatch(/\r\nSubject: Undelivered Mail Returned to Sender\r\n/);
    expect(head).toMatch(/\r\nDate: Mon, 07 Dec 2026 03:00:06 \+0000\r\n/);
    expect(head).toMatch(/\r\nMessage-ID: <dsn1@node\.example>\r\n/);
    expect(head).toMatch(/\r\nAuto-Submitted: auto-replied\r\n/);
    expect(head.replace(/\r\n /g, ' ')).toMatch(/\r\nContent-Type: multipart\/report; report-type=delivery-status; boundary="[^"]+"/);
    expect(parts.map((p) => p.headers)).toEqual(['Content-Type: text/plain; charset=utf-8', 'Content-Type: message/delivery-status', 'Content-Type: message/rfc822']);
    expect(parts[0]!.body).toMatch(/could not be delivered to nobody@legacy\.example \(5\.1\.1\)/);
    expect(parts[2]!.body).toBe(original.toString('latin1'));
    expect(dsn.toString('latin1')).not.toMatch(/\r(?!\n)|(?<!\r)\n/);
  });

  it('writes the per-message and per-recipient fields of RFC 3464', () => {
    const status = mime(buildDsn(base)).parts[1]!.body;
    const groups = status.split('\r\n\r\n').map((g) => g.trimEnd()).filter(Boolean);
    expect(groups[0]).toBe('Reporting-MTA: dns; mx.node.example\r\nOriginal-Envelope-Id: QQ314159\r\nArrival-Date: Mon, 07 Dec 2026 03:00:00 +0000');
    expect(groups[1]!.split('\r\n')).toEqual([
      'Original-Recipient: rfc822; nobody+x@legacy.example',
      'Final-Recipient: rfc822; nobody@legacy.example',
      'Action: failed',
      'Status: 5.1.1',
      'Remote-MTA: dns; mx1.legacy.example',
      'Diagnostic-Code: smtp; 550 5.1.1 <nobody@legacy.example>: Recipient address',
      ' rejected',
      'Last-Attempt-Date: Mon, 07 Dec 2026 03:00:05 +0000',
    ]);
    expect(groups[2]).toBe('Final-Recipient: rfc822; bob@legacy.example\r\nAction: delayed\r\nStatus: 4.4.1\r\n'
      + 'Last-Attempt-Date: Mon, 07 Dec 2026 03:00:05 +0000\r\nWill-Retry-Until: Sat, 12 Dec 2026 03:00:00 +0000');
  });

  it('parses back with parseDsn', () => {
    expect(parseDsn(buildDsn(base))).toEqual({
      reportingMta: 'mx.node.example',
      originalEnvid: 'QQ314159',
      arrivalDate: 'Mon, 07 Dec 2026 03:00:00 +0000',
      recipients: [
        {
          finalRecipient: 'nobody@legacy.example', originalRecipient: 'nobody+x@legacy.example', action: 'failed', status: '5.1.1',
          remoteMta: 'mx1.legacy.example', diagnostic: 'smtp; 550 5.1.1 <nobody@legacy.example>: Recipient address rejected',
        },
        { finalRecipient: 'bob@legacy.example', action: 'delayed', status: '4.4.1' },
      ],
    });
  });

  it('folds a long diagnostic into lines of at most 78, which unfold to the text', () => {
    const text = `550-5.7.1 ${Array.from({ length: 60 }, (_, i) => `policy${i}`).join(' ')}`;
    const dsn = buildDsn({ ...base, recipients: [{ ...base.recipients[0]!, diagnostic: { type: 'smtp', text } }] });
    const status = mime(dsn).parts[1]!.body;
    const diagnosticLines = status.slice(status.indexOf('Diagnostic-Code:')).split(/\r\n(?=[^ ])/)[0]!.split('\r\n');
    expect(diagnosticLines.length).toBeGreaterThan(5);
    expect(Math.max(...diagnosticLines.map((l) => l.length))).toBeLessThanOrEqual(78);
    expect(parseDsn(dsn).recipients[0]!.diagnostic).toBe(`smtp; ${text}`);
  });

  it('a hostile diagnostic cannot add a field, a part or a line: CR, LF, a boundary, controls, non-ASCII, megabytes', () => {
    const { boundary } = mime(buildDsn(base));
    const hostile = `550 no\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\nFinal-Recipient: rfc822; evil@x\n\r--${boundary}--\r\nX\0\x1b[31m ünïcode ${'A'.repeat(2_000_000)}`;
    const dsn = buildDsn({ ...base, recipients: [{ ...base.recipients[0]!, remoteMta: 'mx\r\nAction: delivered', diagnostic: { type: 'smtp', text: hostile } }] });
    const parsed = parseDsn(dsn);
    expect(parsed.recipients.map((r) => [r.finalRecipient, r.action, r.status])).toEqual([['nobody@legacy.example', 'failed', '5.1.1']]);
    expect(parsed.recipients[0]!.diagnostic).toMatch(/^smtp; 550 no Action: delivered Status: 2\.0\.0 Final-Recipient: rfc822; evil@x --/);
    expect(parsed.recipients[0]!.remoteMta).toBe('mx??Action:?delivered');
    const status = mime(dsn).parts[1]!.body;
    expect(status).toMatch(/^[\x20-\x7e\r\n]*$/);
    expect(Math.max(...status.split('\r\n').map((l) => l.length))).toBeLessThanOrEqual(998);
    expect(mime(dsn).parts).toHaveLength(3);
  });

  it('HDRS, or an original over the size bound, returns the header section as text/rfc822-headers', () => {
    const hdrs = mime(buildDsn({ ...base, returnContent: 'HDRS' })).parts[2]!;
    expect(hdrs.headers).toBe('Content-Type: text/rfc822-headers');
    expect(hdrs.body).toBe('From: alice@node.example\r\nTo: bob@legacy.example, nobody@legacy.example\r\nSubject: lunch?\r\nMessage-ID: <orig@node.example>\r\n');
    const big = Buffer.concat([original, Buffer.from(`${'x'.repeat(900)}\r\n`.repeat(Math.ceil(MAX_RETURNED_MESSAGE / 900)))]);
    const dsn = buildDsn({ ...base, original: big });
    expect(mime(dsn).parts[2]!.headers).toBe('Content-Type: text/rfc822-headers');
    expect(dsn.length).toBeLessThan(16 * 1024);
  });

  it('an 8-bit original goes back as 8bit; a UTF-8 recipient is written with RFC 6533 escapes', () => {
    const eight = Buffer.from('From: alice@node.example\r\nSubject: Grüße\r\n\r\nä\r\n');
    const dsn = buildDsn({ ...base, original: eight, recipients: [{ ...base.recipients[0]!, address: 'bjørn@legacy.example', originalRecipient: undefined }] });
    const { head, parts } = mime(dsn);
    expect(head).toMatch(/\r\nContent-Transfer-Encoding: 8bit$/);
    expect(parts[2]!.headers).toBe('Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit');
    expect(parts[1]!.body).toMatch(/Final-Recipient: utf-8; bj\\x\{F8\}rn@legacy\.example/);
    expect(parseDsn(dsn).recipients[0]!.finalRecipient).toBe('bjørn@legacy.example');
  });

  it('refuses caller values that would break the report', () => {
    expect(code(() => buildDsn({ ...base, to: 'alice@node.example\r\nBcc: v@x' }))).toBe('HEADER_INJECTION');
    expect(code(() => buildDsn({ ...base, from: 'postmaster@node.example\nX: y' }))).toBe('HEADER_INJECTION');
    expect(code(() => buildDsn({ ...base, reportingMta: 'mx\r\nX: y' }))).toBe('HEADER_INJECTION');
    expect(code(() => buildDsn({ ...base, messageId: 'a@b\r\nX: y' }))).toBe('HEADER_INJECTION');
    expect(code(() => buildDsn({ ...base, originalEnvid: 'a\r\nb' }))).toBe('HEADER_INJECTION');
    expect(code(() => buildDsn({ ...base, recipients: [{ ...base.recipients[0]!, status: '2.0.0' }] }))).toBe('BAD_ARGUMENT');
    expect(code(() => buildDsn({ ...base, recipients: [{ ...base.recipients[0]!, status: '5.1' }] }))).toBe('BAD_ARGUMENT');
    expect(code(() => buildDsn({ ...base, recipients: [] }))).toBe('BAD_ARGUMENT');
    expect(code(() => buildDsn({ ...base, to: 'not an address' }))).toBe('BAD_ARGUMENT');
    expect(code(() => buildDsn({ ...base, date: new Date(NaN) }))).toBe('BAD_ARGUMENT');
  });
});

describe('parseDsn', () => {
  it('reads another MTA’s report (bare LF, base64 status part, comments)', () => {
    const status = Buffer.from('Reporting-MTA: dns; mail.other.example\r\n\r\nFinal-Recipient: RFC822; x@other.example (the user)\r\nAction: Failed\r\nStatus: 5.2.2 (mailbox full)\r\n').toString('base64');
    const dsn = Buffer.from([
      'From: MAILER-DAEMON@other.example',
      'Content-Type: multipart/report; report-type="delivery-status"; boundary=abc',
      '', 'preamble', '--abc', 'Content-Type: text/plain', '', 'sorry', '--abc',
      'Content-Type: message/delivery-status', 'Content-Transfer-Encoding: base64', '', status, '--abc--', '',
    ].join('\n'));
    expect(parseDsn(dsn)).toEqual({ reportingMta: 'mail.other.example', recipients: [{ finalRecipient: 'x@other.example', action: 'failed', status: '5.2.2' }] });
  });

  it('NOT_DSN for other mail; MALFORMED for a report it cannot read or one over its bounds', () => {
    const codeOf = (text: string) => code(() => parseDsn(Buffer.from(text)));
    expect(codeOf('Subject: hi\r\n\r\nhello\r\n')).toBe('NOT_DSN');
    expect(codeOf('Content-Type: multipart/report; report-type=disposition-notification; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n')).toBe('NOT_DSN');
    expect(codeOf('Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n')).toBe('NOT_DSN');
    const report = (status: string) => `Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n${status}\r\n--b--\r\n`;
    expect(codeOf(report('Reporting-MTA: dns; x'))).toBe('MALFORMED');
    expect(codeOf(report('Reporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; a@b\r\nAction: exploded\r\nStatus: 5.0.0'))).toBe('MALFORMED');
    expect(codeOf(report('Reporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; a@b\r\nAction: failed\r\nStatus: bad'))).toBe('MALFORMED');
    const many = Array.from({ length: 1001 }, (_, i) => `Final-Recipient: rfc822; r${i}@b\r\nAction: failed\r\nStatus: 5.0.0`).join('\r\n\r\n');
    expect(codeOf(report(`Reporting-MTA: dns; x\r\n\r\n${many}`))).toBe('MALFORMED');
    expect(codeOf(report(`Reporting-MTA: dns; x\r\n\r\n${'X-Pad: y\r\n'.repeat(8000)}`))).toBe('MALFORMED');
  });
});
