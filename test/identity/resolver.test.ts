/**
 * did:web resolution against a real node:https server on 127.0.0.1 (port 0) with a test CA made by
 * identity/certificates.ts; the DID's host name reaches it through hostMap.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildDidWebDocument,
  createCertificateAuthority,
  createDidResolver,
  didKeyFromEd25519,
  generateAgreementKeyPair,
  generateSigningKeyPair,
  issueServerCertificate,
} from '../../identity/index.ts';
import type { DidResolverOptions, PemKeyPair } from '../../identity/index.ts';

const signing = generateSigningKeyPair();
const agreement = generateAgreementKeyPair();

interface Seen {
  path: string;
  host: string | undefined;
  servername: string | false | null | undefined;
}

let ca: PemKeyPair;
let otherCa: PemKeyPair;
let server: https.Server;
let port = 0;
const seen: Seen[] = [];

function didFor(host: string, path: string): string {
  const segments = path.split('/').filter(Boolean).slice(0, -1); // drop "did.json"
  const hostPart = host.replace(':', '%3A');
  return path === '/.well-known/did.json' ? `did:web:${hostPart}` : `did:web:${hostPart}:${segments.join(':')}`;
}

function handler(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void {
  const path = req.url ?? '/';
  const host = req.headers.host ?? '';
  seen.push({ path, host: req.headers.host, servername: (req.socket as TLSSocket).servername });
  const docFor = (id: string): string =>
    JSON.stringify(buildDidWebDocument({ did: id, signingPublicKey: signing.publicKey, agreementPublicKey: agreement.publicKey }));
  switch (path) {
    case '/users/missing/did.json':
      res.writeHead(404, { 'content-type': 'application/json' }).end('{}');
      return;
    case '/users/redirect/did.json':
      res.writeHead(302, { location: '/users/alice/did.json' }).end();
      return;
    case '/users/text/did.json':
      res.writeHead(200, { 'content-type': 'text/plain' }).end(docFor(didFor(host, path)));
      return;
    case '/users/charset/did.json':
      res.writeHead(200, { 'content-type': 'application/did+json; charset=utf-8' }).end(docFor(didFor(host, path)));
      return;
    case '/users/big/did.json': {
      const body = JSON.stringify({ id: didFor(host, path), pad: 'x'.repeat(70 * 1024) });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      return;
    }
    case '/users/bigchunked/did.json': {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = 'x'.repeat(8 * 1024);
      for (let i = 0; i < 10; i++) res.write(chunk);
      res.end();
      return;
    }
    case '/users/mismatch/did.json':
      res.writeHead(200, { 'content-type': 'application/json' }).end(docFor('did:web:example.test:users:alice'));
      return;
    case '/users/badjson/did.json':
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"id": ');
      return;
    case '/users/slow/did.json':
      return; // never answers
    default:
      res.writeHead(200, { 'content-type': 'application/json' }).end(docFor(didFor(host, path)));
  }
}

beforeAll(async () => {
  ca = await createCertificateAuthority({ commonName: 'AfterSMTP test CA', validDays: 1 });
  otherCa = await createCertificateAuthority({ commonName: 'Untrusted CA', validDays: 1 });
  const leaf = await issueServerCertificate(ca, { dnsNames: ['example.test'], validDays: 1 });
  server = https.createServer({ key: leaf.keyPem, cert: leaf.certPem }, handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function resolverWith(opts: Partial<DidResolverOptions> = {}) {
  return createDidResolver({
    ca: ca.certPem,
    hostMap: { 'example.test': `127.0.0.1:${port}`, 'wrong.test': `127.0.0.1:${port}` },
    fetchTimeoutMs: 3000,
    ...opts,
  });
}

function fetchesOf(path: string): number {
  return seen.filter((s) => s.path === path).length;
}

describe('did:web over HTTPS', () => {
  it('resolves a document; SNI and Host are the DID host although TCP goes to 127.0.0.1', async () => {
    const did = 'did:web:example.test:users:alice';
    const before = seen.length;
    const keys = await resolverWith().resolveKeys(did);
    expect(keys.did).toBe(did);
    expect(keys.authentication.get(`${did}#sig-1`)).toEqual(signing.publicKey);
    expect(keys.keyAgreement.get(`${did}#ka-1`)).toEqual(agreement.publicKey);
    const req = seen.slice(before).find((s) => s.path === '/users/alice/did.json');
    expect(req).toMatchObject({ host: 'example.test', servername: 'example.test' });
  });

  it('resolves the .well-known document and DIDs with an explicit port (Host carries the port)', async () => {
    const r = resolverWith({ hostMap: { 'example.test:8443': `127.0.0.1:${port}`, 'example.test': `127.0.0.1:${port}` } });
    expect((await r.resolveKeys('did:web:example.test')).document.id).toBe('did:web:example.test');
    const before = seen.length;
    const did = 'did:web:example.test%3A8443:users:bob';
    expect((await r.resolveKeys(did)).document.id).toBe(did);
    expect(seen[before]).toMatchObject({ path: '/users/bob/did.json', host: 'example.test:8443', servername: 'example.test' });
  });

  it('accepts application/did+json with a charset parameter', async () => {
    await expect(resolverWith().resolveKeys('did:web:example.test:users:charset')).resolves.toBeDefined();
  });

  it.each([
    ['404', 'did:web:example.test:users:missing', /HTTP 404/],
    ['wrong content type', 'did:web:example.test:users:text', /content type "text\/plain"/],
    ['oversize (content-length)', 'did:web:example.test:users:big', /exceeds 65536 bytes/],
    ['oversize (chunked)', 'did:web:example.test:users:bigchunked', /exceeds 65536 bytes/],
    ['mismatched id', 'did:web:example.test:users:mismatch', /id "did:web:example.test:users:alice" does not equal the DID/],
    ['invalid JSON', 'did:web:example.test:users:badjson', /not valid JSON/],
  ])('rejects %s', async (_name, did, message) => {
    const err = await resolverWith().resolveKeys(did).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'IdentityError', code: 'DID_RESOLUTION' });
    expect((err as Error).message).toMatch(message);
  });

  it('rejects a redirect without following it', async () => {
    const before = fetchesOf('/users/alice/did.json');
    const err = await resolverWith().resolveKeys('did:web:example.test:users:redirect').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DID_RESOLUTION' });
    expect((err as Error).message).toMatch(/302 redirect .* rejected/);
    expect(fetchesOf('/users/alice/did.json')).toBe(before);
  });

  it('rejects a server whose certificate chains to another CA', async () => {
    const err = await resolverWith({ ca: otherCa.certPem }).resolveKeys('did:web:example.test:users:alice').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DID_RESOLUTION' });
    expect((err as Error).message).toMatch(/unable to verify the first certificate/);
  });

  it('rejects a certificate that does not name the DID host, even from the trusted CA', async () => {
    const err = await resolverWith().resolveKeys('did:web:wrong.test:users:alice').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DID_RESOLUTION' });
    expect((err as Error).message).toMatch(/does not match certificate's altnames/);
  });

  it('times out', async () => {
    const t = performance.now();
    const err = await resolverWith({ fetchTimeoutMs: 300 }).resolveKeys('did:web:example.test:users:slow').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DID_RESOLUTION' });
    expect((err as Error).message).toMatch(/timed out after 300 ms/);
    expect(performance.now() - t).toBeLessThan(2500);
  });

  it('stops when the resolver signal aborts', async () => {
    const ac = new AbortController();
    const p = resolverWith({ signal: ac.signal }).resolveKeys('did:web:example.test:users:slow').catch((e: unknown) => e);
    setTimeout(() => ac.abort(), 50);
    const err = await p;
    expect(err).toMatchObject({ code: 'DID_RESOLUTION' });
    expect((err as Error).message).toMatch(/aborted/);
  });

  it('caches: a second resolution does not fetch again; concurrent ones share one fetch', async () => {
    const r = resolverWith();
    const path = '/users/carol/did.json';
    const did = 'did:web:example.test:users:carol';
    const results = await Promise.all([r.resolveKeys(did), r.resolveKeys(did), r.resolveKeys(did)]);
    expect(fetchesOf(path)).toBe(1);
    expect(results[1]).toBe(results[0]);
    await r.resolveKeys(did);
    expect(fetchesOf(path)).toBe(1);
    r.invalidate(did);
    await r.resolveKeys(did);
    expect(fetchesOf(path)).toBe(2);
  });

  it('re-fetches after the TTL', async () => {
    let now = 1_000_000;
    const r = resolverWith({ cacheTtlMs: 60_000, now: () => now });
    const path = '/users/dave/did.json';
    const did = 'did:web:example.test:users:dave';
    await r.resolveKeys(did);
    now += 59_999;
    await r.resolveKeys(did);
    expect(fetchesOf(path)).toBe(1);
    now += 2;
    await r.resolveKeys(did);
    expect(fetchesOf(path)).toBe(2);
  });

  it('remembers a failure for failureTtlMs, then fetches again', async () => {
    let clock = 1_000_000;
    const r = resolverWith({ now: () => clock, failureTtlMs: 10_000 });
    await expect(r.resolveKeys('did:web:example.test:users:missing')).rejects.toMatchObject({ code: 'DID_RESOLUTION' });
    const n = fetchesOf('/users/missing/did.json');
    await expect(r.resolveKeys('did:web:example.test:users:missing')).rejects.toMatchObject({ code: 'DID_RESOLUTION' });
    expect(fetchesOf('/users/missing/did.json')).toBe(n);
    clock += 10_001;
    await expect(r.resolveKeys('did:web:example.test:users:missing')).rejects.toMatchObject({ code: 'DID_RESOLUTION' });
    expect(fetchesOf('/users/missing/did.json')).toBe(n + 1);
  });

  it('with allowPrivateAddresses false, dials a private address only for a host in hostMap', async () => {
    const r = resolverWith({ allowPrivateAddresses: false });
    expect((await r.resolveKeys('did:web:example.test:users:alice')).did).toBe('did:web:example.test:users:alice');
    await expect(r.resolveKeys(`did:web:127.0.0.1%3A${port}:users:alice`)).rejects.toThrow(/private address/);
    await expect(r.resolveKeys(`did:web:localhost%3A${port}:users:alice`)).rejects.toThrow(/private address/);
    expect(seen.some((s) => s.host === `127.0.0.1:${port}` || s.host === `localhost:${port}`)).toBe(false);
  });

  it('asks resolveHost for a did:web host\'s address, and refuses what it answers in a private range unless allowed', async () => {
    const asked: string[] = [];
    const resolveHost = async (hostname: string) => { asked.push(hostname); return [{ address: '127.0.0.1', family: 4 as const }]; };
    const did = `did:web:example.test%3A${port}:users:alice`;
    const open = resolverWith({ hostMap: {}, resolveHost });
    expect((await open.resolveKeys(did)).did).toBe(did);
    expect(asked).toEqual(['example.test']);
    const guarded = resolverWith({ hostMap: {}, resolveHost, allowPrivateAddresses: false });
    await expect(guarded.resolveKeys(did)).rejects.toThrow(/private address/);
    const nowhere = resolverWith({ hostMap: {}, resolveHost: async () => [] });
    await expect(nowhere.resolveKeys(did)).rejects.toThrow(/no address/);
  });

  it('registered documents are served from memory without any request', async () => {
    const r = resolverWith();
    const did = 'did:web:example.test:users:erin';
    const other = generateSigningKeyPair();
    r.register(buildDidWebDocument({ did, signingPublicKey: other.publicKey, agreementPublicKey: agreement.publicKey }));
    expect((await r.resolveKeys(did)).authentication.get(`${did}#sig-1`)).toEqual(other.publicKey);
    expect(fetchesOf('/users/erin/did.json')).toBe(0);
  });

  it('resolves did:key without the network, through the did-resolver instance too', async () => {
    const r = resolverWith();
    const did = didKeyFromEd25519(signing.publicKey);
    expect((await r.resolveKeys(did)).authentication.size).toBe(1);
    const raw = await r.resolver.resolve(did);
    expect(raw.didDocument?.id).toBe(did);
    const bad = await r.resolver.resolve('did:key:z6MkBAD');
    expect(bad.didResolutionMetadata.error).toBe('invalidDid');
  });
});
