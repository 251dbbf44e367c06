// DMARC aggregate reports out: the MX counts what it sees of mail from domains that publish DMARC, and once
// a UTC day is over the node mails each such domain a report (gzipped RFC 9990 XML, DKIM-signed) at the
// rua mailboxes that accept it: another domain's mailbox only with its `_report._dmarc` consent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import YAML from 'yaml';
import nodemailer from 'nodemailer';
import { extractDmarcReportFromMail } from '../../bridge/index.ts';
import { Store, utcDay } from '../../gateway/store/index.ts';
import { initNodeWithMailboxes, runCli, startNodeProcess, tempDir, until, stopNode, type RunningNode } from '../helpers.ts';
import { startReceiver, type Receiver } from '../bridge/smtp-receiver.ts';
import { startDnsServer, type TestDnsServer } from '../dns-server.ts';

describe('DMARC aggregate reports of the node', () => {
  const dir = tempDir('dmarc-out-');
  let node: RunningNode;
  let receiver: Receiver;
  let dns: TestDnsServer;
  let data: string;
  const yesterday = utcDay(Date.now() - 86_400_000);
  const DMARC = 'v=DMARC1; p=reject; rua=mailto:dmarc@origin.test,mailto:agg@consents.test,mailto:agg@stranger.test';

  beforeAll(async () => {
    receiver = await startReceiver();
    dns = await startDnsServer([
      { type: 'TXT', name: 'origin.test', data: 'v=spf1 ip4:127.0.0.1 -all' },
      { type: 'TXT', name: '_dmarc.origin.test', data: DMARC },
      // consents.test takes origin.test's reports; stranger.test says nothing, so it gets none.
      { type: 'TXT', name: 'origin.test._report._dmarc.consents.test', data: 'v=DMARC1' },
    ]);
    const made = await initNodeWithMailboxes(dir.path, 'a.test');
    data = made.data;
    const file = join(data, 'config.yaml');
    const config = YAML.parse(readFileSync(file, 'utf8'));
    config.dns = { servers: [dns.address] };
    config.bridge.smtp.reports = { intervalMs: 300 };
    writeFileSync(file, YAML.stringify(config));
    expect((await runCli(['route', 'add', '*', '--endpoint', `smtp://127.0.0.1:${receiver.port}?tls=may`, '--data', data])).code).toBe(0);
    // What the MX saw yesterday: three messages alike from one address, one failing from another.
    const store = new Store(join(data, 'node.db'));
    const at = Math.floor(Date.parse(`${yesterday}T08:00:00Z`) / 1000);
    const seen = (ip: string, pass: boolean) => ({
      at, sourceIp: ip, headerFrom: 'origin.test', envelopeFrom: 'origin.test',
      verdicts: {
        dmarc: { result: pass ? 'pass' : 'fail', policy: pass ? 'none' : 'reject', domain: 'origin.test', policyDomain: 'origin.test', alignment: { spf: pass, dkim: false }, record: DMARC },
        spf: { result: pass ? 'pass' : 'fail', domain: 'origin.test' }, dkim: [],
      },
      ...(pass ? {} : { disposition: 'reject' as const }),
    });
    for (let i = 0; i < 3; i++) await store.dmarcObservations.record('origin.test', seen('192.0.2.1', true));
    await store.dmarcObservations.record('origin.test', seen('198.51.100.7', false));
    await store.close();
    node = await startNodeProcess(data, {});
  }, 60_000);
  afterAll(async () => {
    await stopNode(node);
    await receiver?.close();
    await dns?.close();
    dir.cleanup();
  });

  it('mails yesterday\'s report once, to the rua mailboxes that accept it, with the day\'s rows', async () => {
    // One copy per recipient domain (one SMTP transaction each), none for the domain that did not consent.
    const reports = () => receiver.messages.filter((m) => m.data.toString().includes('Report Domain: origin.test'));
    await until('the report mailed to both', async () => (reports().length >= 2 ? true : undefined));
    expect(reports().flatMap((m) => m.rcpts.map((r) => r.address)).sort()).toEqual(['agg@consents.test', 'dmarc@origin.test']);
    const mail = reports()[0]!;
    expect(mail.mailFrom).toBe('postmaster@a.test');
    expect(mail.data.toString()).toMatch(/^DKIM-Signature: .*d=a\.test/m);
    expect(mail.data.toString().replace(/\r\n[ \t]+/g, ' ')).toMatch(/^Subject: Report Domain: origin\.test Submitter: a\.test Report-ID: /m);
    const report = extractDmarcReportFromMail(mail.data);
    expect(report).toMatchObject({ orgName: 'a.test', reportId: `${yesterday}_origin.test@a.test`, policyPublished: { domain: 'origin.test', p: 'reject' } });
    const rows = report.records.map((r) => ({ ip: r.sourceIp, count: r.count, disposition: r.policyEvaluated.disposition })).sort((a, b) => a.ip.localeCompare(b.ip));
    expect(rows).toEqual([{ ip: '192.0.2.1', count: 3, disposition: 'pass' }, { ip: '198.51.100.7', count: 1, disposition: 'reject' }]);
    const db = new DatabaseSync(join(data, 'node.db'), { readOnly: true });
    try {
      await until('the day marked reported', async () => db.prepare('SELECT 1 FROM dmarc_reports_sent WHERE day = ? AND policy_domain = ?').get(yesterday, 'origin.test'));
    } finally {
      db.close();
    }
    expect(reports()).toHaveLength(2);
  });

  it('the MX counts today\'s mail from a DMARC domain, refused or taken, for tomorrow\'s report', async () => {
    const a = (node.ready as { smtp?: string }).smtp!;
    const transport = nodemailer.createTransport({ host: a.slice(0, a.lastIndexOf(':')), port: Number(a.slice(a.lastIndexOf(':') + 1)), secure: false, ignoreTLS: true, name: 'mta.origin.test' });
    try {
      await transport.sendMail({ envelope: { from: 'dave@origin.test', to: ['alice@a.test'] }, from: 'dave@origin.test', to: 'alice@a.test', subject: 's', text: 't' });
      // A From of origin.test with an envelope sender whose SPF does not pass: DMARC fails, p=reject.
      await expect(transport.sendMail({ envelope: { from: 'x@elsewhere.test', to: ['alice@a.test'] }, from: 'dave@origin.test', to: 'alice@a.test', subject: 's', text: 't' }))
        .rejects.toMatchObject({ responseCode: 550 });
    } finally {
      transport.close();
    }
    const db = new DatabaseSync(join(data, 'node.db'), { readOnly: true });
    try {
      const rows = await until('both counted', async () => {
        const r = db.prepare('SELECT observation, count FROM dmarc_observations WHERE day = ?').all(utcDay(Date.now())) as { observation: string; count: number }[];
        return r.length === 2 ? r.map((x) => JSON.parse(x.observation) as { verdicts: { dmarc: { result: string } }; disposition?: string }) : undefined;
      });
      expect(rows.map((o) => `${o.verdicts.dmarc.result}:${o.disposition ?? 'none'}`).sort()).toEqual(['fail:reject', 'pass:none']);
    } finally {
      db.close();
    }
  });
});
