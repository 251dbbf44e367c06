// TLS reporting (RFC 8460): `_smtp._tls` records from a real DNS lab, reports built from a day's outcome
// counts and checked against the RFC's schema, the report mail read back, the HTTPS POST against a real
// server on loopback (certificate from a test CA, hosts mapped to it), and hostile incoming reports.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createGzip, gunzipSync, gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { DnsPacketResolver } from '../../gateway/dns/index.ts';
import { Store } from '../../gateway/store/index.ts';
import {
  aggregateTlsOutcomes, buildTlsReport, dkimDnsRecord, dkimSign, extractTlsReportFromMail, generateDkimKey, TLSRPT_DKIM_SIGNED_HEADERS, verifyMessage, gzipTlsReport, parseTlsReport, parseTlsRptRecord, postTlsReport, tlsReportId,
  tlsReportMail, TlsRptError, utcDayRange, validateTlsReport,
  type TlsOutcome, type TlsOutcomeDayCount, type TlsReport, type TlsReportInput, type TlsReportMailInput, type TlsRptErrorCode,
} from '../../bridge/index.ts';
import { startDnsLab, type DnsLab } from '../dns-lab.ts';
import { selfSigned, signedBy, type Issued } from './dane-pki.ts';
import { tempDir } from '../helpers.ts';

const SUBMITTER = 'mx.origin.test';
const STS_STRINGS = ['version: STSv1', 'mode: enforce', 'mx: mx1.dest.test', 'mx: *.mail.dest.test', 'max_age: 86400'];
const TLSA_STRINGS = ['3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'];

function count(day: string, over: Partial<TlsOutcomeDayCount>): TlsOutcomeDayCount {
  return {
    day, policyDomain: 'dest.test', policyType: 'sts', policyStrings: STS_STRINGS, mxHost: 'mx1.dest.test', receivingIp: '192.0.2.10',
    result: 'success', detail: '', count: 1, ...over,
  };
}

/** Two days of counts: what the node's store would give from the first day on. */
const COUNTS: TlsOutcomeDayCount[] = [
  count('2026-12-05', { count: 40 }),
  count('2026-12-05', { result: 'certificate-expired', count: 2, detail: 'certificate has expired' }),
  count('2026-12-06', { count: 17 }),
  count('2026-12-06', { mxHost: 'a.mail.dest.test', receivingIp: '2001:db8::25', count: 3 }),
  count('2026-12-06', { result: 'certificate-host-mismatch', mxHost: 'a.mail.dest.test', receivingIp: '2001:db8::25', count: 4, detail: 'Hostname/IP does not match\r\ncertificate\'s altnames' }),
  count('2026-12-06', { result: 'sts-policy-fetch-error', mxHost: '', receivingIp: '', count: 1, detail: 'policy fetch: HTTP 404' }),
  count('2026-12-06', { policyType: 'no-policy-found', policyStrings: [], policyDomain: 'plain.test', mxHost: 'mx.plain.test', receivingIp: '198.51.100.7', count: 9 }),
  count('2026-12-06', { policyType: 'tlsa', policyStrings: TLSA_STRINGS, policyDomain: 'mx.dane.test', mxHost: 'mx.dane.test', receivingIp: '203.0.113.5', count: 5 }),
  count('2026-12-06', { policyType: 'tlsa', policyStrings: TLSA_STRINGS, policyDomain: 'mx.dane.test', mxHost: 'mx.dane.test', receivingIp: '203.0.113.5', result: 'validation-failure', count: 1, detail: 'no TLSA record matches' }),
  count('2026-12-07', { count: 99 }),
];

function reportsOf(day: string): TlsReport[] {
  return aggregateTlsOutcomes(COUNTS, day).map((d) => buildTlsReport({
    organizationName: 'Origin Test Mail', contactInfo: 'postmaster@origin.test', reportId: tlsReportId(day, d.policyDomain, SUBMITTER),
    dateRange: utcDayRange(day), policies: d.policies,
  }));
}

function sampleInput(over: Partial<TlsReportInput> = {}): TlsReportInput {
  return {
    organizationName: 'Origin Test Mail', contactInfo: 'postmaster@origin.test', reportId: tlsReportId('2026-12-06', 'dest.test', SUBMITTER),
    dateRange: utcDayRange('2026-12-06'), policies: aggregateTlsOutcomes(COUNTS, '2026-12-06').find((d) => d.policyDomain === 'dest.test')!.policies,
    ...over,
  };
}

function mailInput(report: TlsReport, over: Partial<TlsReportMailInput> = {}): TlsReportMailInput {
  return {
    report, from: 'tlsrpt@origin.test', to: 'tls-reports@dest.test', submitter: SUBMITTER, policyDomain: 'dest.test',
    messageId: 'tlsrpt.2026-12-06.1@origin.test', date: new Date('2026-12-07T01:00:00Z'), ...over,
  };
}

function caught(fn: () => unknown): TlsRptError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TlsRptError);
    return err as TlsRptError;
  }
  throw new Error('expected a TlsRptError');
}

async function rejected(promise: Promise<unknown>): Promise<TlsRptError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(TlsRptError);
  return err as TlsRptError;
}

describe('the _smtp._tls record', () => {
  it('reads one TLSRPT record with mailto and https destinations, other TXT records ignored', () => {
    expect(parseTlsRptRecord(['v=spf1 -all', 'v=TLSRPTv1; rua=mailto:tls@dest.test,https://reports.dest.test/v1/tlsrpt'])).toEqual({
      kind: 'record', ignored: [],
      rua: [{ kind: 'mailto', address: 'tls@dest.test' }, { kind: 'https', url: 'https://reports.dest.test/v1/tlsrpt' }],
    });
    // Spaces around ";" and ",", percent-encoding in mailto, a trailing ";" and an unknown field.
    expect(parseTlsRptRecord(['v=TLSRPTv1 ;\trua=mailto:tls%2Brpt@dest.test , mailto:b@dest.test?subject=x; ext.1=ok;'])).toEqual({
      kind: 'record', ignored: [], rua: [{ kind: 'mailto', address: 'tls+rpt@dest.test' }, { kind: 'mailto', address: 'b@dest.test' }],
    });
  });

  it('none without a TLSRPT record; several records or an unreadable one are invalid (no report is sent)', () => {
    expect(parseTlsRptRecord([])).toEqual({ kind: 'none' });
    expect(parseTlsRptRecord(['v=spf1 -all', 'v=TLSRPTv2; rua=mailto:a@b.test', 'V=TLSRPTv1; rua=mailto:a@b.test'])).toEqual({ kind: 'none' });
    expect(parseTlsRptRecord(['v=TLSRPTv1; rua=mailto:a@b.test', 'v=TLSRPTv1; rua=mailto:c@b.test'])).toMatchObject({ kind: 'invalid', reason: '2 TLSRPT records' });
    for (const bad of [
      'v=TLSRPTv1', 'v=TLSRPTv1;', 'v=TLSRPTv1; ruf=mailto:a@b.test', 'v=TLSRPTv1; rua=mailto:a@b.test; rua=mailto:c@b.test',
      'v=TLSRPTv1; rua=', 'v=TLSRPTv1; rua=mailto:a@b.test,,https://x.test/', 'v=TLSRPTv1; rua=mailto:a@b.test; =x', 'v=TLSRPTv1; rua=mailto:a@b.test; ext=a=b',
      'v=TLSRPTv1; rua=http://reports.b.test/', 'v=TLSRPTv1; rua=mailto:not-an-address', 'v=TLSRPTv1; rua=mailto:j%C3%B6rg@b.test', 'v=TLSRPTv1; rua=https://user:pw@reports.b.test/',
    ]) expect(parseTlsRptRecord([bad]), bad).toMatchObject({ kind: 'invalid' });
  });

  it('keeps the usable URIs and says why the others are not used ("!" is not a size suffix in TLSRPT)', () => {
    const record = parseTlsRptRecord(['v=TLSRPTv1; rua=mailto:a@b.test!10m,ftp://b.test/x,https://reports.b.test/']);
    expect(record).toMatchObject({ kind: 'record', rua: [{ kind: 'https', url: 'https://reports.b.test/' }] });
    if (record.kind !== 'record') throw new Error('no record');
    expect(record.ignored).toHaveLength(2);
    expect(record.ignored[0]).toMatch(/percent-encoded/);
    expect(record.ignored[1]).toMatch(/only mailto: and https:/);
  });

  it('uses at most five destinations', () => {
    const uris = Array.from({ length: 8 }, (_, i) => `mailto:r${i}@b.test`).join(',');
    const record = parseTlsRptRecord([`v=TLSRPTv1; rua=${uris}`]);
    expect(record).toMatchObject({ kind: 'record' });
    if (record.kind !== 'record') throw new Error('no record');
    expect(record.rua).toHaveLength(5);
    expect(record.ignored).toHaveLength(3);
  });

  describe('from a real DNS lab', () => {
    let lab: DnsLab;
    let dns: DnsPacketResolver;
    const dkimKey = generateDkimKey('ed25519');
    beforeAll(async () => {
      const dkimRecord = dkimDnsRecord({ selector: 'tlsrpt', domain: 'rpt.test', algorithm: 'ed25519', publicKey: dkimKey.publicKeyDnsValue });
      lab = await startDnsLab([{
        name: 'rpt.test', signed: false, records: [
          `tlsrpt._domainkey IN TXT "${dkimRecord.value}"`,
          '_smtp._tls.one IN TXT "v=TLSRPTv1; rua=mailto:tls@one.rpt.test," "https://reports.rpt.test/tlsrpt"',
          '_smtp._tls.one IN TXT "v=spf1 -all"',
          '_smtp._tls.several IN TXT "v=TLSRPTv1; rua=mailto:a@several.rpt.test"',
          '_smtp._tls.several IN TXT "v=TLSRPTv1; rua=mailto:b@several.rpt.test"',
          '_smtp._tls.other IN TXT "v=STSv1; id=1"',
        ],
      }]);
      dns = new DnsPacketResolver({ servers: [lab.resolver], timeoutMs: 2000, maxTtlSeconds: 0 });
    }, 120_000);
    afterAll(async () => { await lab?.close(); });

    it('one record split over TXT strings, several records, no record, no name', async () => {
      const read = async (name: string) => parseTlsRptRecord((await dns.txt(`_smtp._tls.${name}.rpt.test`)).records);
      expect(await read('one')).toEqual({
        kind: 'record', ignored: [], rua: [{ kind: 'mailto', address: 'tls@one.rpt.test' }, { kind: 'https', url: 'https://reports.rpt.test/tlsrpt' }],
      });
      expect(await read('several')).toMatchObject({ kind: 'invalid' });
      expect(await read('other')).toEqual({ kind: 'none' });
      expect(await read('absent')).toEqual({ kind: 'none' });
    });

    it('the report mail, DKIM-signed by the submitting domain (RFC 8460 §5.3), verifies at the receiver and still reads back', async () => {
      const report = buildTlsReport(sampleInput());
      const mail = tlsReportMail(mailInput(report, { from: 'tlsrpt@rpt.test', submitter: 'rpt.test', messageId: 'r1@rpt.test' }));
      const signed = await dkimSign(mail, [{ domain: 'rpt.test', selector: 'tlsrpt', algorithm: 'ed25519', privateKeyPem: dkimKey.privateKeyPem }], { headers: TLSRPT_DKIM_SIGNED_HEADERS });
      const verdicts = await verifyMessage({ message: signed, ip: '192.0.2.1', helo: 'rpt.test', mailFrom: '', resolver: dns, authservId: 'mx.dest.test' });
      expect(verdicts.dkim).toMatchObject([{ result: 'pass', domain: 'rpt.test', selector: 'tlsrpt' }]);
      const extracted = extractTlsReportFromMail(signed);
      expect(extracted.submitter).toBe('rpt.test');
      expect(parseTlsReport(extracted.body, extracted.contentType)).toEqual(report);
    });
  });
});

describe('reports from the outcome counts', () => {
  it('aggregates only the asked UTC day, per policy domain, per policy, one failure detail per (result, MX, address)', () => {
    const day = aggregateTlsOutcomes(COUNTS, '2026-12-06');
    expect(day.map((d) => d.policyDomain)).toEqual(['dest.test', 'mx.dane.test', 'plain.test']);
    const dest = day[0]!;
    expect(dest.policies).toHaveLength(1);
    expect(dest.policies[0]).toMatchObject({ policyType: 'sts', policyStrings: STS_STRINGS, mxHosts: ['mx1.dest.test', '*.mail.dest.test'], successes: 20 });
    expect(dest.policies[0]!.failures).toEqual([
      { resultType: 'certificate-host-mismatch', receivingMxHostname: 'a.mail.dest.test', receivingIp: '2001:db8::25', failedSessionCount: 4, failureReasonCode: 'Hostname/IP does not match certificate\'s altnames' },
      { resultType: 'sts-policy-fetch-error', failedSessionCount: 1, failureReasonCode: 'policy fetch: HTTP 404' },
    ]);
    expect(day[1]!.policies[0]).toMatchObject({ policyType: 'tlsa', policyStrings: TLSA_STRINGS, successes: 5, failures: [{ resultType: 'validation-failure', failedSessionCount: 1 }] });
    expect(day[2]!.policies[0]).toMatchObject({ policyType: 'no-policy-found', policyStrings: [], successes: 9, failures: [] });

    const before = aggregateTlsOutcomes(COUNTS, '2026-12-05');
    expect(before).toHaveLength(1);
    expect(before[0]!.policies[0]).toMatchObject({ successes: 40, failures: [{ resultType: 'certificate-expired', failedSessionCount: 2 }] });
    expect(aggregateTlsOutcomes(COUNTS, '2026-12-08')).toEqual([]);
    expect(caught(() => aggregateTlsOutcomes(COUNTS, '2026-13-01')).code).toBe('BAD_ARGUMENT');
  });

  it('aggregates what the store counted: outcomes recorded over two days, the later day asked', async () => {
    const dir = tempDir();
    const store = new Store(join(dir.path, 'node.db'), { durability: 'deferred' });
    try {
      const at = (iso: string) => Date.parse(iso);
      const outcome = (over: Partial<TlsOutcome>): TlsOutcome => ({
        policyDomain: 'Dest.Test', policyType: 'sts', policyStrings: STS_STRINGS, mxHost: 'MX1.dest.test', receivingIp: '192.0.2.10',
        result: 'success', detail: '', atMs: at('2026-12-06T12:00:00Z'), ...over,
      });
      const recorded = [
        outcome({ atMs: at('2026-12-05T23:59:59Z') }),
        outcome({ atMs: at('2026-12-05T23:59:59Z'), result: 'certificate-expired', detail: 'expired' }),
        outcome({}), outcome({}), outcome({ atMs: at('2026-12-06T00:00:00Z') }),
        outcome({ result: 'starttls-not-supported', detail: 'no STARTTLS' }), outcome({ result: 'starttls-not-supported', detail: 'no STARTTLS' }),
        outcome({ atMs: at('2026-12-07T00:00:00Z') }),
      ];
      for (const o of recorded) await store.tlsOutcomes.record(o);
      const day = aggregateTlsOutcomes(store.tlsOutcomes.since('2026-12-05'), '2026-12-06');
      expect(day).toEqual([{
        policyDomain: 'dest.test',
        policies: [{
          policyType: 'sts', policyStrings: STS_STRINGS, policyDomain: 'dest.test', mxHosts: ['mx1.dest.test', '*.mail.dest.test'], successes: 3,
          failures: [{ resultType: 'starttls-not-supported', receivingMxHostname: 'mx1.dest.test', receivingIp: '192.0.2.10', failedSessionCount: 2, failureReasonCode: 'no STARTTLS' }],
        }],
      }]);
      const report = buildTlsReport({ ...sampleInput(), policies: day[0]!.policies });
      expect(validateTlsReport(report).ok).toBe(true);
    } finally {
      await store.close();
      dir.cleanup();
    }
  });

  it('builds the RFC 8460 JSON with the RFC field names, and every report built passes the schema exactly', () => {
    const reports = [...reportsOf('2026-12-05'), ...reportsOf('2026-12-06')];
    expect(reports).toHaveLength(4);
    for (const report of reports) expect(validateTlsReport(report)).toEqual({ ok: true, report });
    const dest = reports.find((r) => r['report-id'] === '2026-12-06_dest.test@mx.origin.test')!;
    expect(dest).toEqual({
      'organization-name': 'Origin Test Mail',
      'date-range': { 'start-datetime': '2026-12-06T00:00:00Z', 'end-datetime': '2026-12-06T23:59:59Z' },
      'contact-info': 'postmaster@origin.test',
      'report-id': '2026-12-06_dest.test@mx.origin.test',
      policies: [{
        policy: { 'policy-type': 'sts', 'policy-string': STS_STRINGS, 'policy-domain': 'dest.test', 'mx-host': ['mx1.dest.test', '*.mail.dest.test'] },
        summary: { 'total-successful-session-count': 20, 'total-failure-session-count': 5 },
        'failure-details': [
          { 'result-type': 'certificate-host-mismatch', 'receiving-mx-hostname': 'a.mail.dest.test', 'receiving-ip': '2001:db8::25', 'failed-session-count': 4, 'failure-reason-code': 'Hostname/IP does not match certificate\'s altnames' },
          { 'result-type': 'sts-policy-fetch-error', 'failed-session-count': 1, 'failure-reason-code': 'policy fetch: HTTP 404' },
        ],
      }],
    });
    const plain = reports.find((r) => r['report-id'].includes('plain.test'))!;
    expect(plain.policies[0]!.policy).toEqual({ 'policy-type': 'no-policy-found', 'policy-domain': 'plain.test' });
    expect(plain.policies[0]!['failure-details']).toBeUndefined();
  });

  it('report ids are stable and differ per day, policy domain and submitter', () => {
    const ids = new Set([
      tlsReportId('2026-12-06', 'dest.test', SUBMITTER), tlsReportId('2026-12-07', 'dest.test', SUBMITTER),
      tlsReportId('2026-12-06', 'plain.test', SUBMITTER), tlsReportId('2026-12-06', 'dest.test', 'mx2.origin.test'),
    ]);
    expect(ids.size).toBe(4);
    expect(tlsReportId('2026-12-06', 'Dest.Test', SUBMITTER)).toBe(tlsReportId('2026-12-06', 'dest.test', SUBMITTER));
  });

  it('a broken report fails validation with a reason that says where', () => {
    const good = buildTlsReport(sampleInput());
    const cases: [string, (r: any) => void, RegExp][] = [
      ['no report id', (r) => { delete r['report-id']; }, /report-id/],
      ['an unknown result type', (r) => { r.policies[0]['failure-details'][0]['result-type'] = 'certificate-sad'; }, /policies\.0\.failure-details\.0\.result-type/],
      ['a negative count', (r) => { r.policies[0].summary['total-successful-session-count'] = -1; }, /total-successful-session-count/],
      ['a count as a string', (r) => { r.policies[0]['failure-details'][0]['failed-session-count'] = '4'; }, /failed-session-count/],
      ['a bad policy type', (r) => { r.policies[0].policy['policy-type'] = 'dane'; }, /policy-type/],
      ['policy-string not an array', (r) => { r.policies[0].policy['policy-string'] = 'version: STSv1'; }, /policy-string/],
      ['a time without a zone', (r) => { r['date-range']['start-datetime'] = '2026-12-06T00:00:00'; }, /start-datetime/],
      ['a range that ends first', (r) => { r['date-range']['start-datetime'] = '2026-12-07T00:00:00Z'; }, /start-datetime is after/],
      ['a bad IP address', (r) => { r.policies[0]['failure-details'][0]['receiving-ip'] = '300.1.1.1'; }, /receiving-ip/],
      ['no policies', (r) => { r.policies = []; }, /policies/],
      ['a misspelt field', (r) => { r.policies[0].policy['policy-strings'] = r.policies[0].policy['policy-string']; }, /policy-strings/],
    ];
    for (const [what, breakIt, where] of cases) {
      const broken = structuredClone(good);
      breakIt(broken);
      const check = validateTlsReport(broken);
      expect(check.ok, what).toBe(false);
      if (!check.ok) expect(check.reason, what).toMatch(where);
    }
    expect(validateTlsReport('{}')).toMatchObject({ ok: false });
    expect(validateTlsReport(null)).toMatchObject({ ok: false });
  });

  it('refuses inputs it will not write, control characters as HEADER_INJECTION', () => {
    const codes: [Partial<TlsReportInput>, TlsRptErrorCode][] = [
      [{ organizationName: 'Origin\r\nBcc: victim@elsewhere.test' }, 'HEADER_INJECTION'],
      [{ organizationName: '   ' }, 'BAD_ARGUMENT'],
      [{ contactInfo: 'postmaster@origin.test\nX-Evil: 1' }, 'HEADER_INJECTION'],
      [{ contactInfo: 'not a mailbox' }, 'BAD_ARGUMENT'],
      [{ reportId: 'id\r\nX-Evil: 1' }, 'HEADER_INJECTION'],
      [{ reportId: 'id> <other' }, 'BAD_ARGUMENT'],
      [{ dateRange: { start: new Date('2026-12-07T00:00:00Z'), end: new Date('2026-12-06T00:00:00Z') } }, 'BAD_ARGUMENT'],
      [{ dateRange: { start: new Date(NaN), end: new Date() } }, 'BAD_ARGUMENT'],
      [{ policies: [] }, 'BAD_ARGUMENT'],
      [{ policies: [{ policyType: 'sts', policyStrings: [], policyDomain: 'dest.test\r\nX-Evil: 1', successes: 1, failures: [] }] }, 'HEADER_INJECTION'],
      [{ policies: [{ policyType: 'sts', policyStrings: [], policyDomain: 'dest.test', successes: -1, failures: [] }] }, 'BAD_ARGUMENT'],
      [{ policies: [{ policyType: 'sts', policyStrings: [], policyDomain: 'dest.test', successes: 1, failures: [{ resultType: 'nope' as 'dane-required', failedSessionCount: 1 }] }] }, 'BAD_ARGUMENT'],
      [{ policies: [{ policyType: 'sts', policyStrings: [], policyDomain: 'dest.test', successes: 1, failures: [{ resultType: 'dane-required', receivingIp: 'mx.dest.test', failedSessionCount: 1 }] }] }, 'BAD_ARGUMENT'],
    ];
    for (const [over, code] of codes) expect(caught(() => buildTlsReport(sampleInput(over))).code, JSON.stringify(over)).toBe(code);
    expect(caught(() => tlsReportId('2026-12-06', 'dest.test\r\nX: y', SUBMITTER)).code).toBe('HEADER_INJECTION');
  });
});

describe('the report mail', () => {
  it('is a multipart/report of type tlsrpt with the RFC 8460 fields, and reads back to the same report', () => {
    const report = buildTlsReport(sampleInput());
    const mail = tlsReportMail(mailInput(report, { to: ['tls-reports@dest.test', 'copy@dest.test'] }));
    const text = mail.toString('latin1');
    const head = text.slice(0, text.indexOf('\r\n\r\n'));
    // Folded where it is long; unfolded (RFC 5322 §2.2.3) it is the RFC 8460 §5.3 Subject.
    expect(head.replace(/\r\n(?=[ \t])/g, '')).toMatch(/^Subject: Report Domain: dest\.test Submitter: mx\.origin\.test Report-ID: <2026-12-06_dest\.test@mx\.origin\.test>$/m);
    expect(head).toMatch(/^TLS-Report-Domain: dest\.test$/m);
    expect(head).toMatch(/^TLS-Report-Submitter: mx\.origin\.test$/m);
    expect(head).toMatch(/^To: <tls-reports@dest\.test>, <copy@dest\.test>$/m);
    expect(head).toMatch(/^Content-Type: multipart\/report; report-type="tlsrpt";\r\n boundary="/m);
    expect(text).toContain('Content-Type: text/plain');
    expect(text).toMatch(/Content-Type: application\/tlsrpt\+gzip\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment;\r\n filename="mx\.origin\.test!dest\.test!1796515200!1796601599\.json\.gz"/);
    // Lines within RFC 5322's limit, CRLF only.
    expect(text.split('\r\n').every((l) => l.length <= 998 && !l.includes('\n') && !l.includes('\r'))).toBe(true);

    const extracted = extractTlsReportFromMail(mail);
    expect(extracted).toMatchObject({
      contentType: 'application/tlsrpt+gzip', filename: 'mx.origin.test!dest.test!1796515200!1796601599.json.gz',
      reportDomain: 'dest.test', submitter: 'mx.origin.test',
    });
    expect(parseTlsReport(extracted.body, extracted.contentType)).toEqual(report);
    // Also with LF line ends, as a mailbox file may store it.
    const lf = extractTlsReportFromMail(Buffer.from(text.replace(/\r\n/g, '\n'), 'latin1'));
    expect(parseTlsReport(lf.body)).toEqual(report);
  });

  it('refuses header injection in every value that becomes a field', () => {
    const report = buildTlsReport(sampleInput());
    const attempts: [Partial<TlsReportMailInput>, TlsRptErrorCode][] = [
      [{ policyDomain: 'dest.test\r\nBcc: victim@elsewhere.test' }, 'HEADER_INJECTION'],
      [{ submitter: 'mx.origin.test\nX-Evil: 1' }, 'HEADER_INJECTION'],
      [{ submitter: 'mx origin' }, 'BAD_ARGUMENT'],
      [{ from: 'tlsrpt@origin.test\r\nBcc: victim@elsewhere.test' }, 'HEADER_INJECTION'],
      [{ to: ['tls@dest.test', 'x@dest.test\r\nBcc: victim@elsewhere.test'] }, 'HEADER_INJECTION'],
      [{ to: [] }, 'BAD_ARGUMENT'],
      [{ to: 'jörg@dest.test' }, 'BAD_ARGUMENT'],
      [{ policyDomain: 'plain.test' }, 'BAD_ARGUMENT'],
      [{ messageId: 'id@origin.test>\r\nX-Evil: <1' }, 'HEADER_INJECTION'],
      [{ messageId: 'id@origin.test> <x@y' }, 'BAD_ARGUMENT'],
      [{ date: new Date(NaN) }, 'BAD_ARGUMENT'],
    ];
    for (const [over, code] of attempts) expect(caught(() => tlsReportMail(mailInput(report, over))).code, JSON.stringify(over)).toBe(code);
    // A report object made by hand (not by buildTlsReport) is checked too.
    const forged = { ...report, 'organization-name': 'Origin\r\nBcc: victim@elsewhere.test' };
    expect(caught(() => tlsReportMail(mailInput(forged))).code).toBe('HEADER_INJECTION');
    const idForged = { ...report, 'report-id': 'x>\r\nBcc: victim@elsewhere.test' };
    expect(caught(() => tlsReportMail(mailInput(idForged))).code).toBe('HEADER_INJECTION');
    expect(caught(() => tlsReportMail(mailInput({ ...report, policies: [] }))).code).toBe('INVALID_REPORT');
  });

  it('finds a +json part in a multipart/mixed mail and refuses a mail without a report', () => {
    const report = buildTlsReport(sampleInput());
    const mixed = [
      'From: <r@other.test>', 'Content-Type: multipart/mixed; boundary="b1"', '', '--b1', 'Content-Type: text/plain', '', 'hello', '--b1',
      'Content-Type: application/tlsrpt+json; name="r.json"', 'Content-Transfer-Encoding: base64', '', Buffer.from(JSON.stringify(report)).toString('base64'), '--b1--', '',
    ].join('\r\n');
    const extracted = extractTlsReportFromMail(Buffer.from(mixed));
    expect(extracted).toMatchObject({ contentType: 'application/tlsrpt+json', filename: 'r.json' });
    expect(parseTlsReport(extracted.body, extracted.contentType)).toEqual(report);
    expect(caught(() => extractTlsReportFromMail(Buffer.from('From: <a@b.test>\r\nContent-Type: text/plain\r\n\r\nno report\r\n'))).code).toBe('NOT_REPORT');
    expect(caught(() => extractTlsReportFromMail(Buffer.alloc(11 * 1024 * 1024, 0x61))).code).toBe('TOO_LARGE');
  });
});

describe('incoming reports', () => {
  it('takes a gzip or JSON body, by content type or by its magic, and drops fields the RFC does not name', () => {
    const report = buildTlsReport(sampleInput());
    expect(parseTlsReport(gzipTlsReport(report), 'application/tlsrpt+gzip')).toEqual(report);
    expect(parseTlsReport(gzipTlsReport(report))).toEqual(report);
    expect(parseTlsReport(Buffer.from(JSON.stringify(report)), 'application/tlsrpt+json; charset=utf-8')).toEqual(report);
    const extended = { ...report, 'x-vendor': { anything: 1 }, policies: report.policies.map((p) => ({ ...p, 'x-extra': true })) };
    expect(parseTlsReport(Buffer.from(JSON.stringify(extended)))).toEqual(report);
  });

  it('reads reports shaped as large senders write them (empty arrays, HELO, sending address, extra fields)', () => {
    const other = {
      'organization-name': 'Big Mail Inc.', 'date-range': { 'start-datetime': '2026-12-06T00:00:00Z', 'end-datetime': '2026-12-06T23:59:59Z' },
      'contact-info': 'smtp-tls-reporting@bigmail.test', 'report-id': '2026-12-06T00:00:00Z_dest.test',
      policies: [
        { policy: { 'policy-type': 'no-policy-found', 'policy-string': [], 'policy-domain': 'dest.test', 'mx-host': [] },
          summary: { 'total-successful-session-count': 12, 'total-failure-session-count': 0 }, 'failure-details': [] },
        { policy: { 'policy-type': 'sts', 'policy-string': STS_STRINGS, 'policy-domain': 'dest.test', 'mx-host': ['*.mail.dest.test'] },
          summary: { 'total-successful-session-count': 0, 'total-failure-session-count': 1 },
          'failure-details': [{
            'result-type': 'certificate-expired', 'sending-mta-ip': '2001:db8:1::9', 'receiving-mx-hostname': 'a.mail.dest.test', 'receiving-mx-helo': 'a.mail.dest.test',
            'receiving-ip': '192.0.2.10', 'failed-session-count': 1, 'additional-information': 'https://bigmail.test/tlsrpt/help', 'failure-reason-code': 'X509_V_ERR_CERT_HAS_EXPIRED',
          }] },
      ],
      'x-generator': 'bigmail 9',
    };
    const parsed = parseTlsReport(gzipSync(Buffer.from(JSON.stringify(other))), 'application/tlsrpt+gzip');
    const { 'x-generator': _dropped, ...known } = other;
    expect(parsed).toEqual(known);
  });

  it('refuses a gzip bomb without inflating it: TOO_LARGE, and the process grows little', async () => {
    // 100 MiB of zeros, compressed as a stream so the test itself never holds them.
    const gzip = createGzip({ level: 9 });
    const out: Buffer[] = [];
    gzip.on('data', (chunk: Buffer) => out.push(chunk));
    const ended = new Promise((resolve) => gzip.on('end', resolve));
    const zeros = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < 100; i++) if (!gzip.write(zeros)) await new Promise((resolve) => gzip.once('drain', resolve));
    gzip.end();
    await ended;
    const bomb = Buffer.concat(out);
    expect(bomb.length).toBeLessThan(200 * 1024);
    const rss = process.memoryUsage().rss;
    expect(caught(() => parseTlsReport(bomb, 'application/tlsrpt+gzip')).code).toBe('TOO_LARGE');
    expect(caught(() => parseTlsReport(bomb)).code).toBe('TOO_LARGE');
    // Inflating it all would add 100 MiB; the bound stops at 5 MiB.
    expect(process.memoryUsage().rss - rss).toBeLessThan(40 * 1024 * 1024);
  });

  it('refuses what is not a report with a typed error', () => {
    const report = buildTlsReport(sampleInput());
    const cases: [Buffer, string | undefined, TlsRptErrorCode][] = [
      [Buffer.from(JSON.stringify(report)), 'application/tlsrpt+gzip', 'NOT_GZIP'],
      [gzipTlsReport(report).subarray(0, 40), 'application/tlsrpt+gzip', 'NOT_GZIP'],
      [gzipSync(Buffer.from('{"organization-name": "x",')), undefined, 'BAD_JSON'],
      [Buffer.from([0xff, 0xfe, 0x7b, 0x7d]), 'application/tlsrpt+json', 'BAD_JSON'],
      [Buffer.from('{}'), undefined, 'INVALID_REPORT'],
      [Buffer.from(JSON.stringify({ ...report, policies: [{ ...report.policies[0], summary: { 'total-successful-session-count': 'many' } }] })), undefined, 'INVALID_REPORT'],
      [gzipSync(Buffer.from(`${'['.repeat(200_000)}${']'.repeat(200_000)}`)), undefined, 'INVALID_REPORT'],
      [Buffer.from(JSON.stringify(report)), 'text/html', 'NOT_REPORT'],
      [Buffer.alloc(6 * 1024 * 1024, 0x20), 'application/tlsrpt+json', 'TOO_LARGE'],
    ];
    for (const [body, type, code] of cases) {
      const err = caught(() => parseTlsReport(body, type));
      expect(err.code, `${type}: ${err.message}`).toBe(code);
    }
  });
});

describe('the report by HTTPS POST', () => {
  let ca: Issued;
  let server: Server;
  let port: number;
  const received: { path: string; type: string; report: unknown }[] = [];
  let redirectTargetHits = 0;
  const hostMap: Record<string, string> = {};

  beforeAll(async () => {
    ca = await selfSigned('TLS-RPT Test CA', { ca: true });
    const cert = await signedBy(ca, 'reports.dest.test', { names: ['reports.dest.test'] });
    server = createServer({ key: cert.keyPem, cert: cert.pem + ca.pem }, (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.url === '/ok') {
          const type = req.headers['content-type'] ?? '';
          const body = Buffer.concat(chunks);
          if (req.method !== 'POST' || type !== 'application/tlsrpt+gzip') { res.writeHead(415); res.end(); return; }
          received.push({ path: req.url, type, report: JSON.parse(gunzipSync(body).toString('utf8')) });
          res.writeHead(201, { 'content-type': 'text/plain' });
          res.end('x'.repeat(200_000));
        } else if (req.url === '/fail') {
          res.writeHead(500); res.end('broken');
        } else if (req.url === '/moved') {
          res.writeHead(307, { location: 'https://reports.dest.test/target' }); res.end();
        } else if (req.url === '/target') {
          redirectTargetHits++;
          res.writeHead(200); res.end();
        }
        // '/silent' never answers: the deadline ends it.
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    hostMap['reports.dest.test'] = `127.0.0.1:${port}`;
    hostMap['untrusted.dest.test'] = `127.0.0.1:${port}`;
  }, 60_000);

  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  const opts = () => ({ timeoutMs: 10_000, ca: ca.pem, hostMap });

  it('posts the gzipped report as application/tlsrpt+gzip; 2xx is success, a long answer is cut', async () => {
    const report = buildTlsReport(sampleInput());
    expect(await postTlsReport('https://reports.dest.test/ok', gzipTlsReport(report), opts())).toEqual({ status: 201 });
    expect(received).toEqual([{ path: '/ok', type: 'application/tlsrpt+gzip', report }]);
  });

  it('a 500 and a redirect are HTTP_STATUS errors; the redirect is not followed', async () => {
    const body = gzipTlsReport(buildTlsReport(sampleInput()));
    const failed = await rejected(postTlsReport('https://reports.dest.test/fail', body, opts()));
    expect(failed).toMatchObject({ code: 'HTTP_STATUS', status: 500 });
    const moved = await rejected(postTlsReport('https://reports.dest.test/moved', body, opts()));
    expect(moved).toMatchObject({ code: 'HTTP_STATUS', status: 307 });
    expect(moved.message).toMatch(/not followed/);
    expect(redirectTargetHits).toBe(0);
  });

  it('a certificate not valid for the name, a silent server, a bad URL and non-public addresses fail typed', async () => {
    const body = gzipTlsReport(buildTlsReport(sampleInput()));
    expect((await rejected(postTlsReport('https://untrusted.dest.test/ok', body, opts()))).code).toBe('UNREACHABLE');
    expect((await rejected(postTlsReport('https://reports.dest.test/ok', body, { timeoutMs: 10_000, hostMap }))).code).toBe('UNREACHABLE');
    expect((await rejected(postTlsReport('https://reports.dest.test/silent', body, { ...opts(), timeoutMs: 300 }))).code).toBe('TIMEOUT');
    expect((await rejected(postTlsReport('http://reports.dest.test/ok', body, opts()))).code).toBe('BAD_ARGUMENT');
    expect((await rejected(postTlsReport('not a url', body, opts()))).code).toBe('BAD_ARGUMENT');
    // Without a host map the URL's own host is used: a loopback literal, or a name that resolves to loopback, is refused.
    expect((await rejected(postTlsReport(`https://127.0.0.1:${port}/ok`, body, { timeoutMs: 10_000, ca: ca.pem }))).code).toBe('FORBIDDEN_ADDRESS');
    expect((await rejected(postTlsReport(`https://[::1]:${port}/ok`, body, { timeoutMs: 10_000, ca: ca.pem }))).code).toBe('FORBIDDEN_ADDRESS');
    expect((await rejected(postTlsReport(`https://localhost:${port}/ok`, body, { timeoutMs: 10_000, ca: ca.pem }))).code).toBe('FORBIDDEN_ADDRESS');
    expect(received.filter((r) => r.path === '/ok')).toHaveLength(1);
  });
});
