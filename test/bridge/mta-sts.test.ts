// MTA-STS (RFC 8461) against a real HTTPS server on loopback holding a certificate from a test CA, and the
// `_mta-sts` TXT records of a real DNS lab. Every policy host `mta-sts.<domain>` is sent to that server by a
// host map; the server answers by the Host it is asked for.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:https';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import type { ServerResponse } from 'node:http';
import { DnsPacketResolver } from '../../gateway/dns/index.ts';
import {
  fetchStsPolicy, InMemoryStsPolicyCache, mxMatches, parseStsPolicy, parseStsRecord, refreshStsPolicy, resolveStsPolicy, StsError,
  type StsFetchOptions, type StsPolicy,
} from '../../bridge/index.ts';
import { startDnsLab, type DnsLab } from '../dns-lab.ts';
import { selfSigned, signedBy, type Issued } from './dane-pki.ts';

const ENFORCE = 'version: STSv1\r\nmode: enforce\r\nmx: mx1.example.net\r\nmx: *.mail.example.net\r\nmax_age: 86400\r\n';
const TESTING = 'version: STSv1\nmode: testing\nmx: mx.example.net\nmax_age: 604800\n';
const NONE = 'version: STSv1\nmode: none\nmax_age: 86400\n';

type Route = (res: ServerResponse) => void;
const plain = (body: string, type = 'text/plain'): Route => (res) => { res.writeHead(200, { 'content-type': type }); res.end(body); };

/** Policy domain -> what its policy host answers. */
const ROUTES: Record<string, Route> = {
  'enforce.example': plain(ENFORCE),
  'testing.example': plain(TESTING, 'text/plain; charset=utf-8'),
  'none.example': plain(NONE),
  'invalid.example': plain('version: STSv1\nmode: enforce\nmax_age: 86400\n'),
  'notfound.example': (res) => { res.writeHead(404, { 'content-type': 'text/plain' }); res.end('no'); },
  'redirect.example': (res) => { res.writeHead(302, { location: 'https://mta-sts.enforce.example/.well-known/mta-sts.txt' }); res.end(); },
  'error.example': (res) => { res.writeHead(500, { 'content-type': 'text/plain' }); res.end(ENFORCE); },
  'html.example': plain(ENFORCE, 'text/html'),
  // Never answers: the fetch deadline has to end it.
  'slow.example': () => {},
  // Chunked, so no Content-Length warns the client: the bound must hold while reading.
  'big.example': (res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write(ENFORCE);
    const filler = `x-padding: ${'a'.repeat(1000)}\n`;
    for (let i = 0; i < 80; i++) res.write(filler);
    res.end();
  },
  'one.sts.test': plain(ENFORCE),
  'withdrawn.sts.test': plain(NONE),
};

let ca: Issued;
let server: Server;
let lab: DnsLab;
let dns: DnsPacketResolver;
let closedPort: number;
const hits = new Map<string, number>();
const hostMap: Record<string, string> = {};
let fetchOpts: StsFetchOptions;

beforeAll(async () => {
  ca = await selfSigned('MTA-STS Test CA', { ca: true });
  const policyHosts = Object.keys(ROUTES).map((domain) => `mta-sts.${domain}`);
  const cert = await signedBy(ca, 'mta-sts.enforce.example', { names: policyHosts });
  server = createServer({ key: cert.keyPem, cert: cert.pem + ca.pem }, (req, res) => {
    const host = (req.headers.host ?? '').replace(/^mta-sts\./, '');
    hits.set(host, (hits.get(host) ?? 0) + 1);
    const route = req.url === '/.well-known/mta-sts.txt' ? ROUTES[host] : undefined;
    if (route) route(res);
    else { res.writeHead(404); res.end(); }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  for (const host of policyHosts) hostMap[host] = `127.0.0.1:${port}`;
  // The wrong-name case: a policy host the certificate does not name, served by the same server.
  hostMap['mta-sts.wrongname.example'] = `127.0.0.1:${port}`;
  // A port nothing listens on: the policy host of down.sts.test is unreachable.
  const probe = createTcpServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  hostMap['mta-sts.down.sts.test'] = `127.0.0.1:${closedPort}`;
  fetchOpts = { fetchTimeoutMs: 5000, ca: ca.pem, hostMap };

  lab = await startDnsLab([{
    name: 'sts.test', signed: false, records: [
      '_mta-sts.one IN TXT "v=STSv1; id=20260101"',
      '_mta-sts.several IN TXT "v=STSv1; id=a"',
      '_mta-sts.several IN TXT "v=STSv1; id=b"',
      '_mta-sts.down IN TXT "v=STSv1; id=new"',
      '_mta-sts.withdrawn IN TXT "v=STSv1; id=2"',
      '_mta-sts.other IN TXT "v=spf1 -all"',
    ],
  }]);
  dns = new DnsPacketResolver({ servers: [lab.resolver], timeoutMs: 2000, maxTtlSeconds: 0 });
}, 120_000);

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await lab?.close();
});

async function fetchFailure(domain: string, opts: Partial<StsFetchOptions> = {}): Promise<StsError> {
  const err = await fetchStsPolicy(domain, { ...fetchOpts, ...opts }).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(StsError);
  return err as StsError;
}

function cached(domain: string, id: string, policy: StsPolicy, fetchedMs: number) {
  return { domain, id, policy, fetchedMs, expiresMs: fetchedMs + policy.maxAgeSeconds * 1000 };
}

describe('MTA-STS records and policies (parsing)', () => {
  it('reads the id of one STS record and ignores other TXT records', () => {
    expect(parseStsRecord(['v=spf1 -all', 'v=STSv1; id=20260101T0;'])).toEqual({ kind: 'record', id: '20260101T0' });
    expect(parseStsRecord(['v=STSv1 ;\tid=x1 ; ext=y'])).toEqual({ kind: 'record', id: 'x1' });
    expect(parseStsRecord(['v=spf1 -all'])).toEqual({ kind: 'none' });
  });

  it('several STS records, no id or a malformed id make the record invalid', () => {
    expect(parseStsRecord(['v=STSv1; id=a', 'v=STSv1; id=b'])).toMatchObject({ kind: 'invalid' });
    expect(parseStsRecord(['v=STSv1;'])).toMatchObject({ kind: 'invalid' });
    expect(parseStsRecord(['v=STSv1; id=has-dash'])).toMatchObject({ kind: 'invalid' });
  });

  it('parses a policy with CRLF lines, unknown fields ignored', () => {
    expect(parseStsPolicy(`${ENFORCE}future_field: x\r\n`)).toEqual({
      version: 'STSv1', mode: 'enforce', mx: ['mx1.example.net', '*.mail.example.net'], maxAgeSeconds: 86400,
    });
  });

  it('refuses malformed policies with sts-policy-invalid', () => {
    const bad = [
      'version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n',
      'version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n',
      'version: STSv1\nmode: enforce\nmax_age: 1\n',
      'version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n',
      'version: STSv1\nmode: enforce\nmx: a.example\n',
      'version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmax_age: 1\n',
      'version: STSv1\n\nmode: enforce\nmx: a.example\nmax_age: 1\n',
      'version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n',
    ];
    for (const text of bad) expect(() => parseStsPolicy(text), text).toThrow(expect.objectContaining({ code: 'sts-policy-invalid' }));
  });

  it('a single-label wildcard matches one label, not two, and not the parent', () => {
    const policy = parseStsPolicy(ENFORCE);
    expect(mxMatches(policy, 'MX1.example.net.')).toBe(true);
    expect(mxMatches(policy, 'a.mail.example.net')).toBe(true);
    expect(mxMatches(policy, 'a.b.mail.example.net')).toBe(false);
    expect(mxMatches(policy, 'mail.example.net')).toBe(false);
    expect(mxMatches(policy, 'mx2.example.net')).toBe(false);
  });
});

describe('MTA-STS policy fetch over HTTPS', () => {
  it('fetches enforce, testing (content-type parameters ignored) and none policies', async () => {
    expect(await fetchStsPolicy('enforce.example', fetchOpts)).toMatchObject({ mode: 'enforce', maxAgeSeconds: 86400 });
    expect(await fetchStsPolicy('testing.example', fetchOpts)).toMatchObject({ mode: 'testing', mx: ['mx.example.net'] });
    expect(await fetchStsPolicy('none.example', fetchOpts)).toMatchObject({ mode: 'none', mx: [] });
  });

  it('an MX the fetched policy does not name does not match it', async () => {
    const policy = await fetchStsPolicy('enforce.example', fetchOpts);
    expect(mxMatches(policy, 'evil.example.org')).toBe(false);
  });

  it('404, 500 and a redirect (not followed) are sts-policy-fetch-error', async () => {
    const before = hits.get('enforce.example') ?? 0;
    expect((await fetchFailure('notfound.example')).code).toBe('sts-policy-fetch-error');
    expect((await fetchFailure('error.example')).code).toBe('sts-policy-fetch-error');
    const redirect = await fetchFailure('redirect.example');
    expect(redirect.code).toBe('sts-policy-fetch-error');
    expect(redirect.message).toContain('302');
    expect(hits.get('enforce.example') ?? 0).toBe(before);
  });

  it('a server that never answers is cut off at the fetch deadline', async () => {
    const err = await fetchFailure('slow.example', { fetchTimeoutMs: 300 });
    expect(err.code).toBe('sts-policy-fetch-error');
    expect(err.message).toContain('300 ms');
  });

  it('a body over the size bound is refused while reading', async () => {
    const err = await fetchFailure('big.example', { maxBytes: 65_536 });
    expect(err.code).toBe('sts-policy-invalid');
    expect(err.message).toContain('exceeds');
  });

  it('a policy not served as text/plain is sts-policy-invalid', async () => {
    expect((await fetchFailure('html.example')).code).toBe('sts-policy-invalid');
    expect((await fetchFailure('invalid.example')).code).toBe('sts-policy-invalid');
  });

  it('a certificate not naming the policy host, or from an unknown CA, is sts-webpki-invalid', async () => {
    expect((await fetchFailure('wrongname.example')).code).toBe('sts-webpki-invalid');
    expect((await fetchFailure('enforce.example', { ca: undefined })).code).toBe('sts-webpki-invalid');
  });

  it('an unreachable policy host is sts-policy-fetch-error', async () => {
    expect((await fetchFailure('down.sts.test')).code).toBe('sts-policy-fetch-error');
  });
});

describe('MTA-STS policy resolution with a cache (RFC 8461 §5.1)', () => {
  const now = Date.parse('2026-12-07T00:00:00Z');

  it('fetches an announced policy once, then uses the cache while the id stays', async () => {
    const cache = new InMemoryStsPolicyCache();
    const before = hits.get('one.sts.test') ?? 0;
    const first = await resolveStsPolicy('one.sts.test', dns, cache, fetchOpts, now);
    expect(first).toMatchObject({ kind: 'policy', id: '20260101', fromCache: false, policy: { mode: 'enforce' } });
    expect(await resolveStsPolicy('one.sts.test', dns, cache, fetchOpts, now + 1000)).toMatchObject({ kind: 'policy', fromCache: true });
    expect(hits.get('one.sts.test')! - before).toBe(1);
    expect(await cache.get('one.sts.test')).toMatchObject({ id: '20260101', fetchedMs: now, expiresMs: now + 86_400_000 });
  });

  it('refetches when the announced id changes', async () => {
    const cache = new InMemoryStsPolicyCache();
    await cache.put(cached('one.sts.test', 'older', parseStsPolicy(TESTING), now));
    const before = hits.get('one.sts.test') ?? 0;
    expect(await resolveStsPolicy('one.sts.test', dns, cache, fetchOpts, now + 1000))
      .toMatchObject({ kind: 'policy', id: '20260101', fromCache: false, policy: { mode: 'enforce' } });
    expect(hits.get('one.sts.test')! - before).toBe(1);
  });

  it('keeps using a cached policy while the policy host is down, until it expires', async () => {
    const cache = new InMemoryStsPolicyCache();
    await cache.put(cached('down.sts.test', 'old', parseStsPolicy(ENFORCE), now));
    expect(await resolveStsPolicy('down.sts.test', dns, cache, fetchOpts, now + 1000))
      .toMatchObject({ kind: 'policy', id: 'old', fromCache: true, policy: { mode: 'enforce' } });
    expect(await resolveStsPolicy('down.sts.test', dns, cache, fetchOpts, now + 86_400_001))
      .toMatchObject({ kind: 'failed', failure: 'sts-policy-fetch-error' });
  });

  it('keeps using a cached policy while the TXT lookup fails', async () => {
    const cache = new InMemoryStsPolicyCache();
    await cache.put(cached('one.sts.test', '20260101', parseStsPolicy(ENFORCE), now));
    const deadDns = new DnsPacketResolver({ servers: [`127.0.0.1:${closedPort}`], timeoutMs: 300, tries: 1 });
    expect(await resolveStsPolicy('one.sts.test', deadDns, cache, fetchOpts, now + 1000)).toMatchObject({ kind: 'policy', fromCache: true });
    expect(await resolveStsPolicy('one.sts.test', deadDns, new InMemoryStsPolicyCache(), fetchOpts, now)).toMatchObject({ kind: 'none' });
  });

  it('several STS records, or none, announce no policy', async () => {
    const cache = new InMemoryStsPolicyCache();
    expect(await resolveStsPolicy('several.sts.test', dns, cache, fetchOpts, now)).toMatchObject({ kind: 'none', reason: expect.stringContaining('invalid') });
    expect(await resolveStsPolicy('other.sts.test', dns, cache, fetchOpts, now)).toMatchObject({ kind: 'none', reason: 'no MTA-STS record' });
  });

  it('refreshes a policy past half its max_age under the same id, and keeps it while its host is down', async () => {
    const cache = new InMemoryStsPolicyCache();
    await resolveStsPolicy('one.sts.test', dns, cache, fetchOpts, now);
    const entry = (await cache.get('one.sts.test'))!;
    const before = hits.get('one.sts.test') ?? 0;
    expect(await refreshStsPolicy(entry, dns, cache, fetchOpts, now + 3600_000)).toBe('fresh');
    expect(hits.get('one.sts.test')! - before).toBe(0);
    const later = now + 50_000_000; // past half of max_age 86400 s
    expect(await refreshStsPolicy(entry, dns, cache, fetchOpts, later)).toBe('refreshed');
    expect(hits.get('one.sts.test')! - before).toBe(1);
    expect(await cache.get('one.sts.test')).toMatchObject({ id: '20260101', fetchedMs: later, expiresMs: later + 86_400_000 });
    const down = cached('down.sts.test', 'old', parseStsPolicy(ENFORCE), now);
    await cache.put(down);
    expect(await refreshStsPolicy(down, dns, cache, fetchOpts, later)).toBe('kept');
    expect(await cache.get('down.sts.test')).toEqual(down);
  });

  it('mode none withdraws a cached enforce policy', async () => {
    const cache = new InMemoryStsPolicyCache();
    await cache.put(cached('withdrawn.sts.test', '1', parseStsPolicy(ENFORCE), now));
    expect(await resolveStsPolicy('withdrawn.sts.test', dns, cache, fetchOpts, now + 1000)).toMatchObject({ kind: 'none' });
    expect(await cache.get('withdrawn.sts.test')).toMatchObject({ id: '2', policy: { mode: 'none' } });
  });
});
