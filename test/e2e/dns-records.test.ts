// `aftersmtp dns records` prints what a node's domains need; `aftersmtp dns check` looks each record up through
// the node's resolver (the DNS lab: nsd + unbound) and says ok, missing or wrong. One zone publishes exactly
// what `records` printed; another has one record of each kind wrong.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { initNode } from '../../gateway/datadir/index.ts';
import { runCli, tempDir } from '../helpers.ts';
import { startDnsLab, type DnsLab } from '../dns-lab.ts';

interface Row { kind: string; name: string; type: string; value: string; status?: string; problem?: string }

/** A zone-file line for a record as `dns records --json` gives it, owner relative to the zone. */
function zoneLine(r: Row, zone: string): string {
  const owner = r.name === zone ? '@' : r.name.slice(0, -(zone.length + 1));
  if (r.type === 'MX') return `${owner} IN MX ${r.value}.`;
  if (r.type === 'TLSA') return `${owner} IN TLSA ${r.value}`;
  return `${owner} IN TXT ${(r.value.match(/.{1,255}/g) ?? []).map((p) => `"${p}"`).join(' ')}`;
}

describe('dns records and dns check', () => {
  const dir = tempDir('dns-records-');
  let lab: DnsLab;
  const good = join(dir.path, 'good');
  const bad = join(dir.path, 'bad');
  let goodRecords: Row[];

  const setDns = (data: string, resolver: string) => {
    const file = join(data, 'config.yaml');
    const config = YAML.parse(readFileSync(file, 'utf8'));
    config.dns = { servers: [resolver] };
    config.bridge.smtp.hostname = `mx.${config.node.domains[0]}`;
    writeFileSync(file, YAML.stringify(config));
  };
  const records = async (data: string): Promise<Row[]> => {
    const r = await runCli(['dns', 'records', '--data', data, '--json']);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as Row[];
  };

  beforeAll(async () => {
    await initNode({ dataDir: good, domain: 'good.test', grpcPort: 0 });
    await initNode({ dataDir: bad, domain: 'bad.test', grpcPort: 0 });
    for (const d of [good, bad]) setDns(d, '127.0.0.1:1'); // records need no DNS; set for real below
    goodRecords = await records(good);
    const badRecords = await records(bad);
    const dnsRows = (rows: Row[]) => rows.filter((r) => r.type !== 'HTTPS');
    const wrong = dnsRows(badRecords).map((r): string => {
      switch (r.kind) {
        case 'mx': return zoneLine({ ...r, value: '10 other.bad.test' }, 'bad.test');
        case 'spf': return '@ IN TXT "v=spf1 ip4:192.0.2.1 -all"';
        // The RSA key altered; the Ed25519 one right but without the tlsrpt service its reports need.
        case 'dkim': return zoneLine({ ...r, value: r.value.includes('k=rsa') ? r.value.replace(/p=.{8}/, 'p=AAAAAAAA') : r.value.replace(/s=[^;]*; /, '') }, 'bad.test');
        case 'dmarc': return '_dmarc IN TXT "v=DMARC1; p=none"';
        case 'mta-sts': return '_mta-sts IN TXT "v=STSv1; id=old1"';
        case 'tls-rpt': return ['_smtp._tls IN TXT "v=TLSRPTv1; rua=mailto:a@bad.test"', '_smtp._tls IN TXT "v=TLSRPTv1; rua=mailto:b@bad.test"'].join('\n');
        case 'aftersmtp': return '_aftersmtp IN TXT "v=aftersmtp1; did=did:key:z6MkSomeoneElse"';
        case 'tlsa': return zoneLine({ ...r, value: `3 1 1 ${'ab'.repeat(32)}` }, 'bad.test');
        default: return '';
      }
    }).flatMap((l) => l.split('\n')).filter(Boolean);
    lab = await startDnsLab([
      { name: 'good.test', signed: true, records: [...dnsRows(goodRecords).map((r) => zoneLine(r, 'good.test')), 'mx IN A 127.0.0.1'] },
      { name: 'bad.test', signed: true, records: [...wrong, 'mx IN A 127.0.0.1'] },
    ]);
    for (const d of [good, bad]) setDns(d, lab.resolver);
  }, 60_000);
  afterAll(async () => {
    await lab?.close();
    dir.cleanup();
  });

  it('records lists every kind a domain needs, with the DKIM keys, the served MTA-STS id and TLSA of the certificate', () => {
    expect(goodRecords.map((r) => r.kind).sort()).toEqual(['aftersmtp', 'dkim', 'dkim', 'dmarc', 'mta-sts', 'mx', 'spf', 'tls-rpt', 'tlsa']);
    expect(goodRecords.find((r) => r.kind === 'mx')).toMatchObject({ name: 'good.test', value: '10 mx.good.test' });
    expect(goodRecords.find((r) => r.kind === 'tlsa')).toMatchObject({ name: '_25._tcp.mx.good.test', value: expect.stringMatching(/^3 1 1 [0-9a-f]{64}$/) });
    expect(goodRecords.find((r) => r.kind === 'mta-sts')!.value).toMatch(/^v=STSv1; id=[0-9a-f]{20}$/);
  });

  it('check says ok for every record of a zone that publishes them, and exits 0', async () => {
    const r = await runCli(['dns', 'check', '--data', good, '--json']);
    const rows = JSON.parse(r.stdout) as Row[];
    expect(rows.filter((c) => c.status !== 'ok'), r.stdout).toEqual([]);
    expect(r.code).toBe(0);
  });

  it('check says what is wrong with each record of a zone that has one of each kind wrong, and exits 1', async () => {
    const r = await runCli(['dns', 'check', '--data', bad, '--json']);
    expect(r.code).toBe(1);
    const rows = JSON.parse(r.stdout) as Row[];
    const of = (kind: string, name?: string) => rows.find((c) => c.kind === kind && (!name || c.name.startsWith(name)))!;
    expect(of('mx')).toMatchObject({ status: 'wrong', problem: 'no MX names mx.bad.test' });
    expect(of('spf')).toMatchObject({ status: 'wrong', problem: expect.stringContaining('no "mx" mechanism') });
    const dkim = rows.filter((c) => c.kind === 'dkim');
    expect(dkim.map((c) => [c.status, c.problem])).toEqual(expect.arrayContaining([
      ['wrong', 'it publishes another key'],
      ['wrong', 'its services (s=) leave out tlsrpt: publish s=email:tlsrpt'],
    ]));
    expect(goodRecords.filter((r) => r.kind === 'dkim').every((r) => /^v=DKIM1; k=(rsa|ed25519); s=email:tlsrpt; p=/.test(r.value))).toBe(true);
    expect(of('dmarc')).toMatchObject({ status: 'wrong', problem: expect.stringContaining('no rua') });
    expect(of('mta-sts')).toMatchObject({ status: 'wrong', problem: expect.stringMatching(/^id old1; the policy served now has id [0-9a-f]{20}$/) });
    expect(of('tls-rpt')).toMatchObject({ status: 'wrong', problem: '2 records; exactly one is allowed' });
    expect(of('aftersmtp')).toMatchObject({ status: 'wrong', problem: 'it names did:key:z6MkSomeoneElse' });
    expect(of('tlsa')).toMatchObject({ status: 'wrong', problem: 'no record matches the certificate the node presents' });
    const text = await runCli(['dns', 'check', '--data', bad]);
    expect(text.stdout).toMatch(/^wrong +mta-sts +_mta-sts\.bad\.test: id old1/m);
  });

  it('dkim rotate: new keys sign, the old ones stay published for the grace period, then leave dns records', async () => {
    const data = join(dir.path, 'rotate');
    await initNode({ dataDir: data, domain: 'rot.test', grpcPort: 0 });
    const before = (await records(data)).filter((r) => r.kind === 'dkim');
    const rotated = await runCli(['dkim', 'rotate', '--data', data, '--json']);
    expect(rotated.code, rotated.stderr).toBe(0);
    const { added, retired } = JSON.parse(rotated.stdout) as { added: { selector: string }[]; retired: { selector: string }[] };
    expect(retired.map((k) => k.selector).sort()).toEqual(before.map((r) => r.name.split('.')[0]).sort());
    expect(added).toHaveLength(2);
    const shown = JSON.parse((await runCli(['dkim', 'show', '--data', data, '--json'])).stdout) as { selector: string; signing?: boolean; retiredAt?: string }[];
    expect(shown.filter((k) => k.signing).map((k) => k.selector).sort()).toEqual(added.map((k) => k.selector).sort());
    expect(shown.filter((k) => k.retiredAt)).toHaveLength(2);
    expect((await records(data)).filter((r) => r.kind === 'dkim')).toHaveLength(4);
    expect(readFileSync(join(data, 'config.yaml'), 'utf8')).toMatch(/^# AfterSMTP node configuration/); // edited in place
    const file = join(data, 'config.yaml');
    const config = YAML.parse(readFileSync(file, 'utf8'));
    config.bridge.smtp.outbound.dkimGraceDays = 0;
    writeFileSync(file, YAML.stringify(config));
    expect((await records(data)).filter((r) => r.kind === 'dkim').map((r) => r.name.split('.')[0]).sort()).toEqual(added.map((k) => k.selector).sort());
  });
});
