// TLS-RPT out: once a UTC day is over, the node reports the TLS it met to each policy domain that asks
// (`_smtp._tls` TXT): by HTTPS POST and by DKIM-signed mail through its own queue. Each destination gets
// the day's report once, the report validates against RFC 8460, and its own delivery is not reported on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { DatabaseSync } from 'node:sqlite';
import YAML from 'yaml';
import { createCertificateAuthority, issueServerCertificate } from '../../identity/index.ts';
import { extractTlsReportFromMail, parseTlsReport, validateTlsReport } from '../../bridge/index.ts';
import { Store, utcDay } from '../../gateway/store/index.ts';
import { initNodeWithMailboxes, runCli, startNodeProcess, tempDir, until, type RunningNode } from '../helpers.ts';
import { startReceiver, type Receiver } from '../bridge/smtp-receiver.ts';
import { startDnsServer, type TestDnsServer } from '../dns-server.ts';

describe('TLS-RPT reports of the node', () => {
  const dir = tempDir('tlsrpt-out-');
  let node: RunningNode;
  let receiver: Receiver;
  let dns: TestDnsServer;
  let https: Server;
  let data: string;
  const posts: { type: string; body: Buffer }[] = [];
  const yesterday = utcDay(Date.now() - 86_400_000);

  beforeAll(async () => {
    const ca = await createCertificateAuthority({ commonName: 'report receiver CA', validDays: 2 });
    const cert = await issueServerCertificate(ca, { dnsNames: ['reports.example'], validDays: 2 });
    https = createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => { posts.push({ type: String(req.headers['content-type']), body: Buffer.concat(chunks) }); res.writeHead(201).end(); });
    });
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', () => r()));
    const httpsPort = (https.address() as import('node:net').AddressInfo).port;
    receiver = await startReceiver();
    dns = await startDnsServer([
      { type: 'TXT', name: '_smtp._tls.legacy.test', data: 'v=TLSRPTv1; rua=mailto:tls@legacy.test,https://reports.example/tlsrpt' },
    ]);
    const made = await initNodeWithMailboxes(dir.path, 'a.test');
    data = made.data;
    writeFileSync(join(data, 'report-ca.pem'), ca.certPem);
    const file = join(data, 'config.yaml');
    const config = YAML.parse(readFileSync(file, 'utf8'));
    config.dns = { servers: [dns.address] };
    config.bridge.smtp.outbound.caFiles = ['report-ca.pem'];
    config.bridge.smtp.reports = { intervalMs: 300, postHostMap: { 'reports.example': `127.0.0.1:${httpsPort}` } };
    writeFileSync(file, YAML.stringify(config));
    expect((await runCli(['route', 'add', 'legacy.test', '--endpoint', `smtp://127.0.0.1:${receiver.port}?tls=may`, '--data', data])).code).toBe(0);
    // What the outbound bridge counted yesterday for mail to legacy.test and its MX.
    const store = new Store(join(data, 'node.db'));
    const at = Date.parse(`${yesterday}T10:00:00Z`);
    const base = { policyDomain: 'legacy.test', policyType: 'sts' as const, policyStrings: ['version: STSv1', 'mode: enforce', 'mx: mx.legacy.test', 'max_age: 86400'], mxHost: 'mx.legacy.test', receivingIp: '192.0.2.10', detail: '' };
    for (let i = 0; i < 5; i++) await store.tlsOutcomes.record({ ...base, result: 'success', atMs: at + i });
    await store.tlsOutcomes.record({ ...base, result: 'certificate-expired', detail: 'the certificate expired', atMs: at + 9 });
    await store.close();
    node = await startNodeProcess(data);
  }, 60_000);
  afterAll(async () => {
    node?.child.kill('SIGTERM');
    await node?.exited;
    await receiver?.close();
    await dns?.close();
    await new Promise<void>((r) => https?.close(() => r()));
    dir.cleanup();
  });

  it('posts yesterday\'s report once as application/tlsrpt+gzip, valid RFC 8460 JSON with the day\'s counts', async () => {
    const post = await until('the report posted', async () => posts[0]);
    expect(post.type).toBe('application/tlsrpt+gzip');
    const json = JSON.parse(gunzipSync(post.body).toString('utf8'));
    expect(validateTlsReport(json)).toMatchObject({ ok: true });
    expect(json['organization-name']).toBe('a.test');
    expect(json['report-id']).toBe(`${yesterday}_legacy.test@a.test`);
    expect(json['date-range']).toEqual({ 'start-datetime': `${yesterday}T00:00:00Z`, 'end-datetime': `${yesterday}T23:59:59Z` });
    const [policy] = json.policies;
    expect(policy.policy).toMatchObject({ 'policy-type': 'sts', 'policy-domain': 'legacy.test' });
    expect(policy.summary).toEqual({ 'total-successful-session-count': 5, 'total-failure-session-count': 1 });
    expect(policy['failure-details']).toEqual([expect.objectContaining({ 'result-type': 'certificate-expired', 'receiving-mx-hostname': 'mx.legacy.test', 'failed-session-count': 1 })]);
  });

  it('mails the same report to the mailto destination, DKIM-signed, and sends each destination one copy only', async () => {
    const mail = await until('the report mailed', async () => receiver.messages.find((m) => m.rcpts.some((r) => r.address === 'tls@legacy.test')));
    const text = mail.data.toString();
    expect(text).toMatch(/^DKIM-Signature: .*d=a\.test/m);
    expect(text).toMatch(/^TLS-Report-Domain: legacy\.test\r$/m);
    expect(text).toMatch(/^TLS-Report-Submitter: a\.test\r$/m);
    const extracted = extractTlsReportFromMail(mail.data);
    expect(parseTlsReport(extracted.body, extracted.contentType)['report-id']).toBe(`${yesterday}_legacy.test@a.test`);
    // The day is marked done once every destination has its copy; later runs of the reporter skip it.
    const db = new DatabaseSync(join(data, 'node.db'), { readOnly: true });
    try {
      const sent = await until('the day marked reported', async () => {
        const rows = db.prepare('SELECT destination FROM tlsrpt_sent WHERE day = ? AND policy_domain = ?').all(yesterday, 'legacy.test') as { destination: string }[];
        return rows.some((r) => r.destination === '') ? rows.map((r) => r.destination).sort() : undefined;
      });
      expect(sent).toEqual(['', 'https://reports.example/tlsrpt', 'mailto:tls@legacy.test']);
    } finally {
      db.close();
    }
    expect(posts).toHaveLength(1);
    expect(receiver.messages.filter((m) => m.rcpts.some((r) => r.address === 'tls@legacy.test'))).toHaveLength(1);
  });

  it('a report\'s own delivery is not counted as a TLS outcome', async () => {
    node.child.kill('SIGTERM');
    await node.exited;
    const store = new Store(join(data, 'node.db'));
    try {
      expect(store.tlsOutcomes.since(utcDay(Date.now())).filter((c) => c.policyDomain === 'legacy.test')).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
