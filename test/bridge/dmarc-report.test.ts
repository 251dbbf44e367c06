// DMARC aggregate reports: observations aggregated into rows, the XML written and read back, the mail built
// and taken apart, rua= destinations and their DNS consent check against a real DNS server on loopback. A
// received report is hostile input: entity payloads, gzip bombs, markup in every value.
import { gzipSync } from 'node:zlib';
import { zipSync } from 'fflate';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  aggregateDmarc, authorisedDestinations, buildDmarcReport, checkExternalDestination, DMARC_XML_NAMESPACE, dmarcDayRange, dmarcPolicyPublished, dmarcReportMail,
  DmarcReportError, extractDmarcReportFromMail, parseDmarcReport, parseDmarcRua, type DmarcAggregateReport, type DmarcObservation,
} from '../../bridge/index.ts';
import { DnsPacketResolver } from '../../gateway/dns/index.ts';
import { startDnsServer, type TestDnsServer } from '../dns-server.ts';
import { splitMessage } from '../../bridge/auth/canon.ts';

const day = dmarcDayRange(new Date('2026-12-06T13:45:00Z'));

function observation(over: Partial<DmarcObservation> & { at?: number } = {}): DmarcObservation {
  return {
    at: day.begin + 3600,
    sourceIp: '192.0.2.10',
    headerFrom: 'sender.example',
    envelopeFrom: 'sender.example',
    envelopeTo: 'node.example',
    verdicts: {
      dmarc: {
        result: 'pass', policy: 'none', domain: 'sender.example', policyDomain: 'sender.example', alignment: { spf: true, dkim: true },
        record: 'v=DMARC1; p=reject; adkim=r; aspf=r; rua=mailto:rua@sender.example',
      },
      spf: { result: 'pass', domain: 'sender.example' },
      dkim: [{ result: 'pass', domain: 'sender.example', selector: 's1' }],
    },
    ...over,
  };
}

function failing(over: Partial<DmarcObservation> = {}): DmarcObservation {
  return observation({
    sourceIp: '198.51.100.7',
    verdicts: {
      dmarc: { result: 'fail', policy: 'reject', domain: 'sender.example', alignment: { spf: false, dkim: false }, record: 'v=DMARC1; p=reject; adkim=r; aspf=r; rua=mailto:rua@sender.example' },
      spf: { result: 'softfail', domain: 'bulk.example' },
      dkim: [{ result: 'fail', domain: 'bulk.example', selector: 'x' }],
    },
    envelopeFrom: 'bulk.example',
    ...over,
  });
}

function sampleReport(over: Partial<DmarcAggregateReport> = {}): DmarcAggregateReport {
  const [aggregate] = aggregateDmarc([observation(), observation(), failing()], day);
  return {
    orgName: 'node.example',
    email: 'dmarc-reports@node.example',
    reportId: `sender.example.${day.begin}`,
    dateRange: day,
    policyPublished: aggregate!.policyPublished,
    records: aggregate!.records,
    ...over,
  };
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof DmarcReportError) return err.code;
    throw err;
  }
  return undefined;
}

describe('aggregation', () => {
  it('groups alike messages into one row with their count, per policy domain, in a fixed order', () => {
    const other = observation({
      headerFrom: 'shop.other.example',
      verdicts: {
        dmarc: {
          result: 'pass', policy: 'none', domain: 'shop.other.example', policyDomain: 'other.example', alignment: { spf: true, dkim: false },
          record: 'v=DMARC1; p=none; sp=quarantine; fo=1',
        },
        spf: { result: 'pass', domain: 'shop.other.example' },
        dkim: [],
      },
      count: 5,
    });
    const observations = [observation(), failing(), observation({ sourceIp: '::ffff:192.0.2.10' }), other, observation({ count: 3 }), failing()];
    const result = aggregateDmarc(observations, day);
    expect(result.map((d) => d.policyDomain)).toEqual(['other.example', 'sender.example']);
    const sender = result[1]!;
    expect(sender.records).toHaveLength(2);
    const pass = sender.records.find((r) => r.sourceIp === '192.0.2.10')!;
    const fail = sender.records.find((r) => r.sourceIp === '198.51.100.7')!;
    expect(pass.count).toBe(5);
    expect(pass.policyEvaluated).toEqual({ disposition: 'pass', dkim: 'pass', spf: 'pass', reasons: [] });
    expect(pass.authResults).toEqual({
      dkim: [{ domain: 'sender.example', selector: 's1', result: 'pass' }],
      spf: { domain: 'sender.example', scope: 'mfrom', result: 'pass' },
    });
    expect(fail.count).toBe(2);
    expect(fail.policyEvaluated.disposition).toBe('reject');
    expect(fail.identifiers).toEqual({ headerFrom: 'sender.example', envelopeFrom: 'bulk.example', envelopeTo: 'node.example' });
    expect(result[0]!.records[0]!.count).toBe(5);
    expect(result[0]!.policyPublished).toEqual({ domain: 'other.example', p: 'none', sp: 'quarantine', discoveryMethod: 'treewalk', fo: '1' });
    expect(sender.policyPublished).toEqual({ domain: 'sender.example', p: 'reject', adkim: 'r', aspf: 'r', discoveryMethod: 'treewalk' });
    // Same observations in another order: the same aggregate, so the same report bytes.
    expect(aggregateDmarc([...observations].reverse(), day)).toEqual(result);
  });

  it('takes only the messages of the day range, and none without a DMARC record', () => {
    expect(day.end - day.begin).toBe(86_399);
    expect(new Date(day.begin * 1000).toISOString()).toBe('2026-12-06T00:00:00.000Z');
    const noRecord = observation({
      verdicts: { ...observation().verdicts, dmarc: { result: 'none', policy: 'none', domain: 'nopolicy.example', alignment: { spf: false, dkim: false } } },
    });
    const newer = observation({ at: day.begin + 7200, verdicts: { ...observation().verdicts, dmarc: { ...observation().verdicts.dmarc, record: 'v=DMARC1; p=quarantine' } } });
    expect(aggregateDmarc([newer, observation()], day)[0]!.policyPublished.p).toBe('quarantine');
    expect(aggregateDmarc([observation(), newer], day)[0]!.policyPublished.p).toBe('quarantine');
    const result = aggregateDmarc([
      observation({ at: day.begin }), observation({ at: day.end }), observation({ at: day.begin - 1 }), observation({ at: day.end + 1 }), noRecord,
    ], day);
    expect(result).toHaveLength(1);
    expect(result[0]!.records.map((r) => r.count)).toEqual([2]);
  });

  it('says policy_test_mode when a failing message was let through because the policy is in test mode', () => {
    const record = 'v=DMARC1; p=quarantine; t=y';
    const testMode = failing({
      verdicts: { ...failing().verdicts, dmarc: { result: 'fail', policy: 'none', domain: 'sender.example', alignment: { spf: false, dkim: false }, testMode: true, record } },
    });
    const [aggregate] = aggregateDmarc([testMode], day);
    expect(aggregate!.records[0]!.policyEvaluated).toMatchObject({ disposition: 'none', reasons: [{ type: 'policy_test_mode' }] });
    expect(aggregate!.policyPublished).toMatchObject({ p: 'quarantine', testing: 'y' });
  });

  it('reads policy_published from the record that applied, and nothing from a record that is not DMARC\'s', () => {
    expect(dmarcPolicyPublished('Sender.example', 'v=DMARC1;p=reject;sp=none;np=quarantine;adkim=s;aspf=r;t=n;fo=0:d;pct=50')).toEqual({
      domain: 'sender.example', p: 'reject', sp: 'none', np: 'quarantine', adkim: 's', aspf: 'r', discoveryMethod: 'treewalk', fo: '0:d', testing: 'n',
    });
    expect(dmarcPolicyPublished('x.example', 'v=DMARC1; rua=mailto:a@x.example; p=bogus; fo=<x>')).toEqual({ domain: 'x.example', p: 'none', discoveryMethod: 'treewalk' });
    expect(dmarcPolicyPublished('x.example', 'v=spf1 -all')).toBeUndefined();
  });
});

describe('report XML', () => {
  it('is DMARCbis aggregate XML that reads back to the same report, and the same bytes twice', () => {
    const report = sampleReport({ extraContactInfo: 'https://node.example/dmarc', generator: 'AfterSMTP', errors: ['one lookup timed out'] });
    const xml = buildDmarcReport(report);
    expect(xml).toContain(`<feedback xmlns="${DMARC_XML_NAMESPACE}">`);
    expect(xml).toContain('<version>1.0</version>');
    expect(buildDmarcReport(report)).toBe(xml);
    expect(parseDmarcReport(Buffer.from(xml))).toEqual(report);
    expect(parseDmarcReport(gzipSync(xml))).toEqual(report);
  });

  it('escapes every hostile value: nothing a reporter writes becomes markup', () => {
    const hostile = `evil <feedback> & "quotes" 'single' ]]> <!ENTITY x "y"> &amp;`;
    const report = sampleReport({ orgName: hostile, extraContactInfo: hostile, errors: [hostile] });
    report.records[0]!.policyEvaluated.reasons.push({ type: 'other', comment: hostile });
    report.records[0]!.authResults.dkim[0]!.humanResult = hostile;
    const xml = buildDmarcReport(report);
    expect(xml).not.toContain('<feedback> &');
    expect(xml).not.toContain(']]>');
    expect(xml).not.toContain('<!ENTITY');
    expect(xml).toContain('evil &lt;feedback&gt; &amp; &quot;quotes&quot; &apos;single&apos; ]]&gt;');
    const back = parseDmarcReport(Buffer.from(xml));
    expect(back.orgName).toBe(hostile);
    expect(back.records[0]!.policyEvaluated.reasons[0]!.comment).toBe(hostile);
    expect(back).toEqual(report);
  });

  it('gives back any text it was given (markup characters, line ends, any code point), as XML can carry it', () => {
    const markup = fc.string({ unit: fc.constantFrom('<', '>', '&', ']', '"', "'", '\r', '\n', ';', '#', 'x', ' ', '\u0000', '\ud800') });
    fc.assert(fc.property(fc.oneof(markup, fc.string({ unit: 'binary' })), (text) => {
      const report = sampleReport({ orgName: text });
      const back = parseDmarcReport(Buffer.from(buildDmarcReport(report)));
      const carried = text.replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
      expect(back.orgName).toBe(carried.trim());
      expect(back.records).toEqual(report.records);
    }), { numRuns: 300 });
  });

  it('replaces characters XML cannot carry, and refuses values that are not of the schema', () => {
    const xml = buildDmarcReport(sampleReport({ orgName: 'a\u0000b\u0007c\ud800d' }));
    expect(parseDmarcReport(Buffer.from(xml)).orgName).toBe('a\ufffdb\ufffdc\ufffdd');
    expect(codeOf(() => buildDmarcReport(sampleReport({ email: 'x@y\r\nBcc: z@w' })))).toBe('HEADER_INJECTION');
    expect(codeOf(() => buildDmarcReport(sampleReport({ reportId: 'id with space' })))).toBe('BAD_ARGUMENT');
    expect(codeOf(() => buildDmarcReport(sampleReport({ dateRange: { begin: 10, end: 5 } })))).toBe('BAD_ARGUMENT');
    const badIp = sampleReport();
    badIp.records[0]!.sourceIp = '<script>';
    expect(codeOf(() => buildDmarcReport(badIp))).toBe('BAD_ARGUMENT');
  });

  it('reads another reporter\'s RFC 9990 report: attributes, a prefixed namespace, CDATA, comments, elements in any order', () => {
    const xml = `<?xml version="1.0" encoding="UTF-8"?>
<!-- generated elsewhere -->
<d:feedback xmlns:d="${DMARC_XML_NAMESPACE}">
  <d:version>1.0</d:version>
  <d:report_metadata>
    <d:org_name>Reporter &amp; Co</d:org_name>
    <d:email>reports@reporter.example</d:email>
    <d:extra_contact_info lang="en">https://reporter.example/dmarc</d:extra_contact_info>
    <d:report_id>r-42</d:report_id>
    <d:date_range><d:begin>1796515200</d:begin><d:end>1796601599</d:end></d:date_range>
    <d:error lang='en'><![CDATA[lookup <timeout> for x]]></d:error>
    <d:generator>Reporter 2</d:generator>
  </d:report_metadata>
  <d:policy_published>
    <d:domain>node.example</d:domain><d:p>quarantine</d:p><d:sp>none</d:sp><d:np>reject</d:np>
    <d:testing>n</d:testing><d:discovery_method>treewalk</d:discovery_method>
  </d:policy_published>
  <d:record>
    <d:row><d:source_ip>2001:db8::25</d:source_ip><d:count>7</d:count>
      <d:policy_evaluated><d:disposition>pass</d:disposition><d:dkim>pass</d:dkim><d:spf>fail</d:spf></d:policy_evaluated></d:row>
    <d:identifiers><d:envelope_from>node.example</d:envelope_from><d:header_from>node.example</d:header_from></d:identifiers>
    <d:auth_results>
      <d:dkim><d:domain>node.example</d:domain><d:result>pass</d:result><d:selector>s2026</d:selector></d:dkim>
      <d:spf><d:domain>node.example</d:domain><d:result>fail</d:result></d:spf>
    </d:auth_results>
  </d:record>
</d:feedback>`;
    const report = parseDmarcReport(Buffer.from(xml));
    expect(report).toEqual({
      orgName: 'Reporter & Co', email: 'reports@reporter.example', extraContactInfo: 'https://reporter.example/dmarc', reportId: 'r-42',
      dateRange: { begin: 1796515200, end: 1796601599 }, errors: ['lookup <timeout> for x'], generator: 'Reporter 2',
      policyPublished: { domain: 'node.example', p: 'quarantine', sp: 'none', np: 'reject', testing: 'n', discoveryMethod: 'treewalk' },
      records: [{
        sourceIp: '2001:db8::25', count: 7,
        policyEvaluated: { disposition: 'pass', dkim: 'pass', spf: 'fail', reasons: [] },
        identifiers: { headerFrom: 'node.example', envelopeFrom: 'node.example' },
        authResults: { dkim: [{ domain: 'node.example', selector: 's2026', result: 'pass' }], spf: { domain: 'node.example', result: 'fail' } },
      }],
    });
    const foreign = buildDmarcReport(sampleReport()).replace(DMARC_XML_NAMESPACE, 'urn:example:not-dmarc');
    expect(codeOf(() => parseDmarcReport(Buffer.from(foreign)))).toBe('INVALID_REPORT');
  });

  it('reads an RFC 7489 report (no namespace, pct, sampled_out) too', () => {
    const xml = `<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <report_metadata><org_name>acme.com</org_name><email>noreply-dmarc-support@acme.com</email>
    <report_id>9391651994964116463</report_id><date_range><begin>1335571200</begin><end>1335657599</end></date_range></report_metadata>
  <policy_published><domain>example.com</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct></policy_published>
  <record>
    <row><source_ip>72.150.241.94</source_ip><count>2</count>
      <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>pass</spf><reason><type>sampled_out</type></reason></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><dkim><domain>example.com</domain><result>fail</result><human_result></human_result></dkim>
      <spf><domain>example.com</domain><result>pass</result></spf></auth_results>
  </record>
</feedback>`;
    const report = parseDmarcReport(Buffer.from(xml));
    expect(report.policyPublished).toEqual({ domain: 'example.com', p: 'none', sp: 'none', adkim: 'r', aspf: 'r', pct: 100 });
    expect(report.records[0]).toEqual({
      sourceIp: '72.150.241.94', count: 2,
      policyEvaluated: { disposition: 'none', dkim: 'fail', spf: 'pass', reasons: [{ type: 'sampled_out' }] },
      identifiers: { headerFrom: 'example.com' },
      authResults: { dkim: [{ domain: 'example.com', result: 'fail' }], spf: { domain: 'example.com', result: 'pass' } },
    });
  });
});

describe('hostile received reports', () => {
  it('refuses a DTD: the billion laughs never expand', () => {
    const laughs = [
      '<?xml version="1.0"?>',
      '<!DOCTYPE feedback [',
      '  <!ENTITY lol "lol">',
      ...Array.from({ length: 9 }, (_, i) => `  <!ENTITY lol${i + 1} "${`&lol${i === 0 ? '' : i};`.repeat(10)}">`),
      ']>',
      '<feedback><report_metadata><org_name>&lol9;</org_name></report_metadata></feedback>',
    ].join('\n');
    expect(codeOf(() => parseDmarcReport(Buffer.from(laughs)))).toBe('BAD_XML');
    expect(codeOf(() => parseDmarcReport(gzipSync(laughs)))).toBe('BAD_XML');
    // An entity used without a DTD is not defined: refused, not left as text.
    const undefinedEntity = buildDmarcReport(sampleReport()).replace('<org_name>node.example', '<org_name>&xxe;');
    expect(codeOf(() => parseDmarcReport(Buffer.from(undefinedEntity)))).toBe('BAD_XML');
  });

  it('refuses a gzip bomb once the inflated size passes the bound, without inflating the rest', () => {
    // 64 MiB of zeros compress to ~64 KiB; the reader stops at its bound (here 1 MiB).
    const bomb = gzipSync(Buffer.alloc(64 * 2 ** 20), { level: 9 });
    expect(bomb.length).toBeLessThan(256 * 1024);
    const before = process.memoryUsage().arrayBuffers;
    expect(codeOf(() => parseDmarcReport(bomb, { maxXmlBytes: 2 ** 20 }))).toBe('TOO_LARGE');
    // Well under the bomb's 64 MiB were ever allocated for it.
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 2 ** 20);
    expect(codeOf(() => parseDmarcReport(bomb))).toBe('TOO_LARGE');
  });

  it('reads a report zipped as large reporters send it (deflated or stored, made by another zip implementation), from the archive\'s index', () => {
    const xml = Buffer.from(buildDmarcReport(sampleReport()));
    const name = 'google.com!example.test!1733529600!1733615999.xml';
    expect(parseDmarcReport(Buffer.from(zipSync({ [name]: xml })))).toEqual(sampleReport());
    expect(parseDmarcReport(Buffer.from(zipSync({ [name]: [xml, { level: 0 }] })))).toEqual(sampleReport());
    // A comment after the index, and a second file beside the report: the *.xml one is read.
    expect(parseDmarcReport(Buffer.from(zipSync({ 'README.txt': Buffer.from('hi'), [name]: xml }, { comment: 'from a reporter' })))).toEqual(sampleReport());
  });

  it('refuses a zip bomb before inflating it (its index says how large) and while inflating it (when the index lies), and damaged or encrypted archives', () => {
    const bomb = Buffer.from(zipSync({ 'bomb.xml': [new Uint8Array(64 * 2 ** 20), { level: 9 }] }));
    expect(bomb.length).toBeLessThan(256 * 1024);
    expect(codeOf(() => parseDmarcReport(bomb, { maxXmlBytes: 2 ** 20 }))).toBe('TOO_LARGE');
    // The central directory's uncompressed size (offset 24 of the entry) rewritten to 1 KiB: zlib stops at the bound.
    const lying = Buffer.from(bomb);
    const central = lying.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    lying.writeUInt32LE(1024, central + 24);
    const before = process.memoryUsage().arrayBuffers;
    expect(codeOf(() => parseDmarcReport(lying, { maxXmlBytes: 2 ** 20 }))).toBe('TOO_LARGE');
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 2 ** 20);

    const good = Buffer.from(zipSync({ 'r.xml': Buffer.from(buildDmarcReport(sampleReport())) }));
    expect(codeOf(() => parseDmarcReport(good.subarray(0, good.length - 30)))).toBe('NOT_GZIP'); // the end record cut off
    const badCrc = Buffer.from(good);
    badCrc.writeUInt32LE(0xdeadbeef, badCrc.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])) + 16);
    expect(codeOf(() => parseDmarcReport(badCrc))).toBe('NOT_GZIP');
    const outside = Buffer.from(good);
    outside.writeUInt32LE(0x7fffffff, outside.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])) + 42); // the entry's offset past the end
    expect(codeOf(() => parseDmarcReport(outside))).toBe('NOT_GZIP');
    const encrypted = Buffer.from(good);
    encrypted.writeUInt16LE(1, encrypted.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])) + 8);
    expect(codeOf(() => parseDmarcReport(encrypted))).toBe('UNSUPPORTED_FORMAT');
    const many = Buffer.from(zipSync(Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`f${i}.txt`, new Uint8Array(1)]))));
    expect(codeOf(() => parseDmarcReport(many))).toBe('NOT_GZIP');
  });

  it('refuses oversize input, deep nesting, damaged gzip, zip and documents that are not reports, with typed codes', () => {
    expect(codeOf(() => parseDmarcReport(Buffer.alloc(2048, 0x20), { maxCompressedBytes: 1024 }))).toBe('TOO_LARGE');
    expect(codeOf(() => parseDmarcReport(Buffer.from(`<feedback>${'<a>'.repeat(100)}${'</a>'.repeat(100)}</feedback>`)))).toBe('BAD_XML');
    const gz = gzipSync(buildDmarcReport(sampleReport()));
    expect(codeOf(() => parseDmarcReport(gz.subarray(0, gz.length - 20)))).toBe('NOT_GZIP');
    expect(codeOf(() => parseDmarcReport(Buffer.from([0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0])))).toBe('NOT_GZIP'); // a zip without its index
    expect(codeOf(() => parseDmarcReport(Buffer.from('<html><body>hi</body></html>')))).toBe('INVALID_REPORT');
    expect(codeOf(() => parseDmarcReport(Buffer.from('<feedback><report_metadata>')))).toBe('BAD_XML');
    expect(codeOf(() => parseDmarcReport(Buffer.from('not xml at all')))).toBe('BAD_XML');
    const badCount = buildDmarcReport(sampleReport()).replace(/<count>\d+<\/count>/, '<count>-3</count>');
    expect(codeOf(() => parseDmarcReport(Buffer.from(badCount)))).toBe('INVALID_REPORT');
    const badIp = buildDmarcReport(sampleReport()).replace(/<source_ip>[^<]+/, '<source_ip>not an ip');
    expect(codeOf(() => parseDmarcReport(Buffer.from(badIp)))).toBe('INVALID_REPORT');
    const tooMany = buildDmarcReport(sampleReport());
    expect(codeOf(() => parseDmarcReport(Buffer.from(tooMany), { maxRecords: 1 }))).toBe('TOO_LARGE');
    // None of that leaves anything behind: the next report reads as ever.
    expect(parseDmarcReport(Buffer.from(tooMany))).toEqual(sampleReport());
  });
});

describe('report mail', () => {
  const mailOptions = {
    submitter: 'node.example', from: 'dmarc-reports@node.example', to: ['rua@sender.example', 'agg@reports.example'],
    messageId: 'dmarc.1@node.example', date: new Date('2026-12-07T01:00:00Z'),
  };

  it('carries the gzipped XML under the standard name and Subject, and reads back to the same report', () => {
    const report = sampleReport();
    const mail = dmarcReportMail(report, mailOptions);
    const { headers } = splitMessage(mail);
    const field = (name: string) => headers.find((h) => h.name === name)!.raw.replace(/\r\n/g, '');
    expect(field('subject')).toBe(`Subject: Report Domain: sender.example Submitter: node.example Report-ID: <sender.example.${day.begin}>`);
    expect(field('to')).toBe('To: <rua@sender.example>, <agg@reports.example>');
    const text = mail.toString('latin1');
    expect(text).toContain(`Content-Type: application/gzip; name="node.example!sender.example!${day.begin}!${day.end}.xml.gz"`);
    expect(text).toContain('Content-Transfer-Encoding: base64');
    for (const line of text.split('\r\n')) expect(line.length).toBeLessThanOrEqual(998);
    expect(extractDmarcReportFromMail(mail)).toEqual(report);
  });

  it('refuses header injection in every header value', () => {
    const report = sampleReport();
    expect(codeOf(() => dmarcReportMail(report, { ...mailOptions, to: ['a@b.example\r\nBcc: victim@x.example'] }))).toBe('HEADER_INJECTION');
    expect(codeOf(() => dmarcReportMail(report, { ...mailOptions, from: 'a@b.example\nX: y' }))).toBe('HEADER_INJECTION');
    expect(codeOf(() => dmarcReportMail(report, { ...mailOptions, submitter: 'node.example\r\nX: y' }))).toBe('HEADER_INJECTION');
    expect(codeOf(() => dmarcReportMail(report, { ...mailOptions, messageId: 'x@y>\r\nBcc: z@w' }))).toBe('HEADER_INJECTION');
    expect(codeOf(() => dmarcReportMail({ ...report, reportId: 'id\r\nBcc: z@w' }, mailOptions))).toBe('HEADER_INJECTION');
    expect(codeOf(() => dmarcReportMail({ ...report, policyPublished: { ...report.policyPublished, domain: 'x.example\r\nBcc: z@w' } }, mailOptions))).toBe('HEADER_INJECTION');
  });

  it('reads a plain XML attachment, and says NO_REPORT or NOT_GZIP for a mail that has none or a disguised one', () => {
    const xml = buildDmarcReport(sampleReport());
    const plain = Buffer.from([
      'From: <r@x.example>', 'Subject: Report Domain: sender.example', 'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b1"', '', '--b1', 'Content-Type: text/plain', '', 'hello', '--b1',
      'Content-Type: text/xml', 'Content-Disposition: attachment; filename="r.xml"', '', xml, '--b1--', '',
    ].join('\r\n'));
    expect(extractDmarcReportFromMail(plain)).toEqual(sampleReport());
    const none = Buffer.from('From: <r@x.example>\r\nSubject: hi\r\n\r\njust text\r\n');
    expect(codeOf(() => extractDmarcReportFromMail(none))).toBe('NO_REPORT');
    const disguised = Buffer.from([
      'MIME-Version: 1.0', 'Content-Type: application/gzip; name="x.xml.gz"', 'Content-Transfer-Encoding: base64', '',
      Buffer.from(xml).toString('base64'), '',
    ].join('\r\n'));
    expect(codeOf(() => extractDmarcReportFromMail(disguised))).toBe('NOT_GZIP');
  });
});

describe('rua destinations', () => {
  it('reads mailto URIs with their size limits and skips the rest', () => {
    expect(parseDmarcRua('v=DMARC1; p=reject; rua=mailto:a@x.example,mailto:b@y.example!10m; ruf=mailto:f@x.example')).toEqual([
      { address: 'a@x.example' }, { address: 'b@y.example', maxBytes: 10 * 2 ** 20 },
    ]);
    expect(parseDmarcRua('v=DMARC1;p=none;rua=https://x.example/r, mailto:c@z.example!500, mailto:%62ad%40w.example!2k'))
      .toEqual([{ address: 'c@z.example', maxBytes: 500 }, { address: 'bad@w.example', maxBytes: 2048 }]);
    expect(parseDmarcRua('v=DMARC1; p=none')).toEqual([]);
    expect(parseDmarcRua('v=spf1 rua=mailto:a@x.example')).toEqual([]);
    expect(parseDmarcRua('v=DMARC1; rua=mailto:a%0d%0aBcc:@x.example,mailto:not-an-address')).toEqual([]);
    expect(parseDmarcRua(`v=DMARC1; rua=${Array.from({ length: 20 }, (_, i) => `mailto:r${i}@x.example`).join(',')}`)).toHaveLength(5);
  });

  describe('external destination consent, over a real DNS server', () => {
    let dns: TestDnsServer;
    let resolver: DnsPacketResolver;
    beforeAll(async () => {
      dns = await startDnsServer([
        { type: 'TXT', name: 'sender.example._report._dmarc.reports.example', data: 'v=DMARC1' },
        { type: 'TXT', name: 'other.example._report._dmarc.liar.example', data: 'v=spf1 -all' },
      ]);
      resolver = new DnsPacketResolver({ servers: [dns.address], timeoutMs: 2000 });
    });
    afterAll(async () => {
      await dns.close();
    });

    it('lets a destination in the policy domain through without asking DNS', async () => {
      const asked = dns.queries.length;
      expect(await checkExternalDestination('sender.example', 'rua@SENDER.example', resolver)).toBe(true);
      expect(dns.queries.length).toBe(asked);
    });

    it('lets an external destination through only when it published its consent', async () => {
      expect(await checkExternalDestination('sender.example', 'agg@reports.example', resolver)).toBe(true);
      expect(dns.queries).toContain('TXT sender.example._report._dmarc.reports.example');
      // Consent for another policy domain, no record at all, or a TXT that is not v=DMARC1: dropped.
      expect(await checkExternalDestination('other.example', 'agg@reports.example', resolver)).toBe(false);
      expect(await checkExternalDestination('other.example', 'agg@liar.example', resolver)).toBe(false);
      const uris = parseDmarcRua('v=DMARC1; p=reject; rua=mailto:rua@sender.example,mailto:agg@reports.example,mailto:x@elsewhere.example');
      expect(await authorisedDestinations('sender.example', uris, resolver)).toEqual([{ address: 'rua@sender.example' }, { address: 'agg@reports.example' }]);
    });
  });
});
