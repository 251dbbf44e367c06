// Two nodes reporting to each other: A sends B the TLS report of a day (by mail to B's postmaster, and by
// HTTPS POST to B's /.well-known/tlsrpt), B sends A the DMARC aggregate report of a day (by mail to A's
// postmaster). Each takes in what is about its own domains and lists it with the domain whose DKIM signature
// on the report passed (each node's keys are in the test DNS); a malformed or oversized report is refused
// with the reason while the node goes on serving, and an unsigned one is listed as such.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { DatabaseSync } from 'node:sqlite';
import YAML from 'yaml';
import nodemailer from 'nodemailer';
import { Store, utcDay } from '../../gateway/store/index.ts';
import { initNodeWithMailboxes, runCli, startNodeProcess, tempDir, until, type RunningNode } from '../helpers.ts';
import { startDnsServer, type TestDnsServer, type TestRecord } from '../dns-server.ts';

interface Listed { organization: string; reportId: string; via: string; signedBy: string[]; policies: Record<string, { successes: number; failures: Record<string, number> }> }

function post(address: string, ca: string, body: Buffer, type: string): Promise<{ status: number; text: string }> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const req = request({ host, port, method: 'POST', path: '/.well-known/tlsrpt', ca, servername: 'localhost', headers: { 'content-type': type, 'content-length': body.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('two nodes reporting to each other', () => {
  const dir = tempDir('reports-');
  let dns: TestDnsServer;
  let a: RunningNode;
  let b: RunningNode;
  let aData: string;
  let bData: string;
  let bCa: string;
  const yesterday = utcDay(Date.now() - 86_400_000);
  const ready = (n: RunningNode) => n.ready as { smtp?: string; http: string | null };

  const configure = (data: string, edit: (c: Record<string, any>) => void) => {
    const file = join(data, 'config.yaml');
    const config = YAML.parse(readFileSync(file, 'utf8'));
    edit(config);
    writeFileSync(file, YAML.stringify(config));
  };

  /** A node's DKIM records (`dkim show`), as the test DNS serves them. */
  const dkimRecords = async (data: string): Promise<TestRecord[]> => {
    const shown = await runCli(['dkim', 'show', '--data', data, '--json']);
    expect(shown.code, shown.stderr).toBe(0);
    return (JSON.parse(shown.stdout) as { name: string; value: string }[]).map((r) => ({ type: 'TXT', name: r.name, data: r.value }));
  };

  beforeAll(async () => {
    const records: TestRecord[] = [
      { type: 'TXT', name: '_smtp._tls.b.test', data: 'v=TLSRPTv1; rua=mailto:postmaster@b.test,https://b.test/.well-known/tlsrpt' },
      { type: 'TXT', name: '_dmarc.a.test', data: 'v=DMARC1; p=none; rua=mailto:postmaster@a.test' },
      { type: 'TXT', name: '_dmarc.b.test', data: 'v=DMARC1; p=none' },
      // Until B has its route to A's MX (A starts after B), a.test is reached by its address, where nothing
      // listens on port 25: B's report waits in its queue (4xx) instead of failing as for a domain that does not exist.
      { type: 'A', name: 'a.test', data: '127.0.0.1' },
    ];
    dns = await startDnsServer(records);
    aData = (await initNodeWithMailboxes(join(dir.path, 'a'), 'a.test')).data;
    bData = (await initNodeWithMailboxes(join(dir.path, 'b'), 'b.test')).data;
    dns.set([...records, ...await dkimRecords(aData), ...await dkimRecords(bData)]);
    bCa = readFileSync(join(bData, 'tls', 'ca.crt'), 'utf8');
    // B first (A posts to it and mails its MX); yesterday's outcomes and observations before either starts.
    const aStore = new Store(join(aData, 'node.db'));
    const at = Date.parse(`${yesterday}T12:00:00Z`);
    const tls = { policyDomain: 'b.test', policyType: 'no-policy-found' as const, policyStrings: [], mxHost: 'mx.b.test', receivingIp: '192.0.2.20', detail: '' };
    for (let i = 0; i < 4; i++) await aStore.tlsOutcomes.record({ ...tls, result: 'success', atMs: at + i });
    await aStore.tlsOutcomes.record({ ...tls, result: 'starttls-not-supported', detail: 'no STARTTLS', atMs: at + 5 });
    await aStore.close();
    const bStore = new Store(join(bData, 'node.db'));
    const seen = {
      at: Math.floor(at / 1000), sourceIp: '192.0.2.30', headerFrom: 'a.test', envelopeFrom: 'a.test',
      verdicts: { dmarc: { result: 'pass', policy: 'none', domain: 'a.test', policyDomain: 'a.test', alignment: { spf: true, dkim: true }, record: 'v=DMARC1; p=none; rua=mailto:postmaster@a.test' }, spf: { result: 'pass', domain: 'a.test' }, dkim: [] },
    };
    for (let i = 0; i < 2; i++) await bStore.dmarcObservations.record('a.test', seen);
    await bStore.close();
    // B's report to A may be queued before B has its route to A's MX (A starts after B): it is retried soon.
    configure(bData, (c) => { c.dns = { servers: [dns.address] }; c.bridge.smtp.reports = { intervalMs: 300 }; c.federation = { ...c.federation, retry: { initialMs: 200, maxMs: 1000 } }; });
    b = await startNodeProcess(bData);
    configure(aData, (c) => {
      c.dns = { servers: [dns.address] };
      writeFileSync(join(aData, 'b-ca.pem'), bCa);
      c.bridge.smtp.outbound.caFiles = ['b-ca.pem'];
      c.bridge.smtp.reports = { intervalMs: 300, postHostMap: { 'b.test': ready(b).http! } };
    });
    expect((await runCli(['route', 'add', 'b.test', '--endpoint', `smtp://${ready(b).smtp}?tls=may`, '--data', aData])).code).toBe(0);
    a = await startNodeProcess(aData);
    expect((await runCli(['route', 'add', 'a.test', '--endpoint', `smtp://${ready(a).smtp}?tls=may`, '--data', bData])).code).toBe(0);
  }, 90_000);
  afterAll(async () => {
    for (const n of [a, b]) { n?.child.kill('SIGTERM'); await n?.exited; }
    await dns?.close();
    dir.cleanup();
  });

  const list = async (kind: 'tlsrpt' | 'dmarc', data: string): Promise<Listed[]> => {
    const r = await runCli([kind, 'list', '--data', data, '--json']);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as Listed[];
  };

  it('B takes A\'s TLS report (mail and POST, kept once) and lists it per policy domain', async () => {
    // A marks the day done once both destinations have it.
    const db = new DatabaseSync(join(aData, 'node.db'), { readOnly: true });
    try {
      await until('A sent the report both ways', async () => db.prepare("SELECT 1 FROM tlsrpt_sent WHERE day = ? AND policy_domain = 'b.test' AND destination = ''").get(yesterday));
    } finally {
      db.close();
    }
    const listed = await until('A\'s TLS report at B', async () => {
      const l = await list('tlsrpt', bData);
      return l.length ? l : undefined;
    });
    // Kept once: whichever came first, the mailed copy's passing signature stands (it replaces an unsigned POST).
    await until('the signed copy', async () => (await list('tlsrpt', bData))[0]?.signedBy.length || undefined);
    expect(await list('tlsrpt', bData)).toEqual([expect.objectContaining({
      organization: 'a.test', reportId: `${yesterday}_b.test@a.test`, signedBy: ['a.test'], via: 'mail', policies: { 'b.test': { successes: 4, failures: { 'starttls-not-supported': 1 } } },
    })]);
    expect(listed).toHaveLength(1);
    const text = await runCli(['tlsrpt', 'list', '--since', yesterday, '--data', bData]);
    expect(text.stdout).toContain(`${yesterday} a.test b.test: 4 ok, starttls-not-supported=1 (signed by a.test)`);
  });

  it('A takes B\'s DMARC aggregate report by mail and lists it', async () => {
    const listed = await until('B\'s DMARC report at A', async () => {
      const l = await list('dmarc', aData);
      return l.length ? l : undefined;
    });
    expect(listed).toEqual([expect.objectContaining({ organization: 'b.test', via: 'mail', signedBy: ['b.test'], policies: { 'a.test': { successes: 2, failures: {} } } })]);
  });

  it('a malformed report, one about another domain, and an oversized POST are refused with the reason; the node goes on', async () => {
    const http = ready(b).http!;
    const bad = await post(http, bCa, gzipSync(Buffer.from('{"organization-name": 1}')), 'application/tlsrpt+gzip');
    expect(bad.status).toBe(400);
    expect(bad.text).toMatch(/^report refused: INVALID_REPORT/);
    const other = JSON.stringify({
      'organization-name': 'x.test', 'date-range': { 'start-datetime': `${yesterday}T00:00:00Z`, 'end-datetime': `${yesterday}T23:59:59Z` },
      'contact-info': 'ops@x.test', 'report-id': 'other-1',
      policies: [{ policy: { 'policy-type': 'no-policy-found', 'policy-domain': 'elsewhere.test' }, summary: { 'total-successful-session-count': 1, 'total-failure-session-count': 0 } }],
    });
    const notOurs = await post(http, bCa, Buffer.from(other), 'application/tlsrpt+json');
    expect(notOurs).toMatchObject({ status: 400, text: 'report refused: the report is about no domain of this node\n' });
    const big = await post(http, bCa, Buffer.alloc(6 * 1024 * 1024, 1), 'application/tlsrpt+gzip').catch(() => ({ status: 413, text: '' }));
    expect(big.status).toBe(413);
    // A report mail whose attachment is not a report: refused at DATA with the reason.
    const mx = ready(b).smtp!;
    const transport = nodemailer.createTransport({ host: mx.slice(0, mx.lastIndexOf(':')), port: Number(mx.slice(mx.lastIndexOf(':') + 1)), secure: false, ignoreTLS: true, name: 'mta.x.test' });
    try {
      await expect(transport.sendMail({
        from: 'reports@x.test', to: 'postmaster@b.test', subject: 'Report Domain: b.test Submitter: x.test Report-ID: <1>',
        attachments: [{ filename: 'x.test!b.test!1!2.json.gz', content: Buffer.from('not gzip'), contentType: 'application/tlsrpt+gzip' }],
      })).rejects.toMatchObject({ responseCode: 550, response: expect.stringContaining('report refused') });
      // A well-formed report by mail, signed by nobody, under a name that would draw on the operator's terminal:
      // kept, listed unsigned, the name escaped.
      const forged = { ...JSON.parse(other), 'organization-name': 'a.test\u001b[2J\nfake line', 'report-id': 'forged-1', policies: [{ policy: { 'policy-type': 'no-policy-found', 'policy-domain': 'b.test' }, summary: { 'total-successful-session-count': 9, 'total-failure-session-count': 0 } }] };
      await transport.sendMail({
        from: 'reports@x.test', to: 'postmaster@b.test', subject: 'Report Domain: b.test Submitter: x.test Report-ID: <forged-1>',
        attachments: [{ filename: 'x.test!b.test!1!2.json.gz', content: gzipSync(JSON.stringify(forged)), contentType: 'application/tlsrpt+gzip' }],
      });
    } finally {
      transport.close();
    }
    const ok = JSON.stringify({ ...JSON.parse(other), 'report-id': 'ours-1', policies: [{ policy: { 'policy-type': 'no-policy-found', 'policy-domain': 'b.test' }, summary: { 'total-successful-session-count': 7, 'total-failure-session-count': 0 } }] });
    expect(await post(http, bCa, Buffer.from(ok), 'application/tlsrpt+json')).toMatchObject({ status: 201 });
    expect(await post(http, bCa, Buffer.from(ok), 'application/tlsrpt+json')).toMatchObject({ status: 200, text: 'report already taken\n' });
    const kept = await list('tlsrpt', bData);
    expect(kept.find((r) => r.reportId === 'ours-1')).toMatchObject({ via: 'https', signedBy: [] });
    expect(kept.find((r) => r.reportId === 'forged-1')).toMatchObject({ via: 'mail', signedBy: [], organization: 'a.test\u001b[2J\nfake line' });
    const shown = (await runCli(['tlsrpt', 'list', '--data', bData])).stdout;
    expect(shown).toContain(`${yesterday} a.test\\u001b[2J\\nfake line b.test: 9 ok (unsigned, by mail)`);
    expect(shown).toContain(`${yesterday} x.test b.test: 7 ok (unsigned, by https)`);
    expect(shown).not.toContain('\u001b');
  });

  it('serves the MTA-STS policy of its domains by the policy host\'s name, with the id dns records publishes', async () => {
    const get = (host: string, servername = host) => new Promise<{ status: number; type: string; text: string }>((resolve, reject) => {
      const address = ready(b).http!;
      const req = request({
        host: address.slice(0, address.lastIndexOf(':')), port: Number(address.slice(address.lastIndexOf(':') + 1)), method: 'GET',
        path: '/.well-known/mta-sts.txt', ca: bCa, servername, headers: { host },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), text: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      req.end();
    });
    const policy = await get('mta-sts.b.test');
    expect(policy).toMatchObject({ status: 200, type: 'text/plain' });
    expect(policy.text).toBe('version: STSv1\r\nmode: testing\r\nmx: b.test\r\nmax_age: 604800\r\n');
    const records = JSON.parse((await runCli(['dns', 'records', '--data', bData, '--json'])).stdout) as { kind: string; value: string }[];
    const id = /id=([0-9a-f]+)/.exec(records.find((r) => r.kind === 'mta-sts')!.value)![1];
    expect(id).toMatch(/^[0-9a-f]{20}$/);
    // Another name gets nothing: the node serves policies for its own domains only.
    expect((await get('mta-sts.a.test', 'localhost')).status).toBe(404);
  });
});
