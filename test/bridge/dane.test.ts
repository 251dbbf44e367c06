// DANE for outbound SMTP against a real DNS world (nsd + validating unbound, signed, unsigned and tampered
// zones) and real TLS servers on loopback presenting the chains under test. Each MX host name of the lab
// zones stands for one case; TLSA names say `_25._tcp`, so a host-to-port map sends each to its server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes, type X509Certificate } from 'node:crypto';
import { connect } from 'node:tls';
import { DnsPacketResolver } from '../../gateway/dns/index.ts';
import { daneTlsaPolicy, peerChain, verifyDane, type DanePolicy, type DaneVerdict } from '../../bridge/index.ts';
import type { BridgeSecureResolver, BridgeTlsaRecord } from '../../bridge/index.ts';
import { pathLengthConstraint } from '../../bridge/outbound/path-length.ts';
import { startDnsLab, type DnsLab } from '../dns-lab.ts';
import { selfSigned, signedBy, tlsServer, type Issued } from './dane-pki.ts';

const hex = (data: Buffer | string) => Buffer.from(data).toString('hex').toUpperCase();
const sha256 = (data: Buffer) => hex(createHash('sha256').update(data).digest());
const sha512 = (data: Buffer) => hex(createHash('sha512').update(data).digest());
const spki = (cert: X509Certificate) => cert.publicKey.export({ type: 'spki', format: 'der' });

let lab: DnsLab;
let dns: BridgeSecureResolver;
let ca: Issued;
let leaf: Issued;
const servers: { close(): Promise<void> }[] = [];
/** MX host -> port of the TLS server playing it. */
const hostPort = new Map<string, number>();

// The hosts whose TLSA records trust the CA need a leaf that names them; DANE-EE hosts need no name.
const TA_HOSTS = ['ta211.secure.test', 'ta200.secure.test', 'ta-inter.secure.test'];

beforeAll(async () => {
  ca = await selfSigned('Outbound Test CA', { ca: true });
  leaf = await signedBy(ca, 'mx.secure.test', { names: ['mx.secure.test', ...TA_HOSTS] });
  const expired = await signedBy(ca, 'expired.secure.test', { names: ['expired-ee.secure.test', 'expired-ta.secure.test'], expired: true });
  const wrongName = await signedBy(ca, 'other.example', { names: ['other.example'] });
  const intermediate = await signedBy(ca, 'Outbound Test Intermediate', { ca: true });
  const interLeaf = await signedBy(intermediate, 'ta-inter.secure.test');
  const impostor = await selfSigned('mx.secure.test', { names: ['impostor-ee.secure.test', 'impostor-ta.secure.test'] });

  const leafSpki311 = `3 1 1 ${sha256(spki(leaf.cert))}`;
  const caSpki211 = `2 1 1 ${sha256(spki(ca.cert))}`;
  const cases: Record<string, string[]> = {
    ee311: [leafSpki311],
    ee301: [`3 0 1 ${sha256(leaf.cert.raw)}`],
    ee312: [`3 1 2 ${sha512(spki(leaf.cert))}`],
    ta211: [caSpki211],
    ta200: [`2 0 0 ${hex(ca.cert.raw)}`],
    'ta-inter': [caSpki211],
    unusable: [`1 1 1 ${sha256(spki(ca.cert))}`, `0 0 1 ${sha256(ca.cert.raw)}`, `3 2 1 ${sha256(spki(leaf.cert))}`],
    rollover: [`3 1 1 ${hex(randomBytes(32))}`, leafSpki311],
    baddigest: [`3 1 1 ${hex(randomBytes(20))}`],
    'expired-ee': [`3 1 1 ${sha256(spki(expired.cert))}`],
    'expired-ta': [caSpki211],
    'wrongname-ta': [caSpki211],
    'impostor-ee': [leafSpki311],
    'impostor-ta': [caSpki211],
  };
  const secureRecords = [
    // The address comes through a CNAME into the unsigned zone: the TLSA records here must not count.
    'via-insecure IN CNAME mx.insecure.test.', `_25._tcp.via-insecure IN TLSA ${leafSpki311}`,
    // An alias whose TLSA records are at the name its CNAME leads to, and one whose records are at the alias only.
    'alias-target IN CNAME real-target', 'real-target IN A 127.0.0.1', `_25._tcp.real-target IN TLSA ${leafSpki311}`,
    'alias-only IN CNAME real-plain', 'real-plain IN A 127.0.0.1', `_25._tcp.alias-only IN TLSA ${caSpki211}`,
    'nxtlsa IN A 127.0.0.1', 'nodata IN A 127.0.0.1', '_25._tcp.nodata IN TXT "not a TLSA record"'];
  for (const [host, tlsa] of Object.entries(cases)) {
    secureRecords.push(`${host} IN A 127.0.0.1`, ...tlsa.map((rr) => `_25._tcp.${host} IN TLSA ${rr}`));
  }
  const mxRecords = ['mx IN A 127.0.0.1', `_25._tcp.mx IN TLSA ${leafSpki311}`];
  lab = await startDnsLab([
    { name: 'secure.test', signed: true, records: secureRecords },
    { name: 'insecure.test', signed: false, records: mxRecords },
    {
      name: 'bogus.test', signed: true, records: mxRecords,
      // One hex digit of the TLSA data changed after signing: its signature no longer verifies.
      tamper: (text) => text.replace(/(_25\._tcp\.mx\.bogus\.test\.\s+\d+\s+IN\s+TLSA\s+3 1 1 )([0-9A-F])/,
        (_, head: string, digit: string) => head + (digit === '0' ? '1' : '0')),
    },
  ]);
  dns = new DnsPacketResolver({ servers: [lab.resolver], timeoutMs: 2000 });

  const chains: [Issued, Issued[], string[]][] = [
    [leaf, [ca], ['ee311', 'ee301', 'ee312', 'ta211', 'unusable', 'rollover', 'baddigest']],
    [leaf, [], ['ta200']],
    [interLeaf, [intermediate, ca], ['ta-inter']],
    [expired, [ca], ['expired-ee', 'expired-ta']],
    [wrongName, [ca], ['wrongname-ta']],
    [impostor, [], ['impostor-ee', 'impostor-ta']],
  ];
  for (const [cert, chain, hosts] of chains) {
    const server = await tlsServer(cert, chain);
    servers.push(server);
    for (const host of hosts) hostPort.set(`${host}.secure.test`, server.port);
  }
}, 120_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await lab?.close();
});

/** Connects as an SMTP client would (no PKIX decision), reads the presented chain, closes. */
async function presentedChain(mxHost: string): Promise<X509Certificate[]> {
  const address = (await dns.a(mxHost)).records[0]!;
  const socket = connect({ host: address, port: hostPort.get(mxHost)!, servername: mxHost, rejectUnauthorized: false });
  try {
    await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject); });
    return peerChain(socket);
  } finally {
    socket.destroy();
  }
}

async function dane(mxHost: string, nameCandidates: string[] = []): Promise<{ policy: DanePolicy; verdict?: DaneVerdict }> {
  const policy = await daneTlsaPolicy(dns, mxHost);
  if (policy.kind !== 'dane') return { policy };
  return { policy, verdict: verifyDane(policy.records, await presentedChain(mxHost), mxHost, nameCandidates) };
}

describe('DANE TLSA policy and chain verification (RFC 7672)', () => {
  it('the bridge resolver interface is fitted by the node DNS client', () => {
    expect(typeof dns.tlsa).toBe('function');
  });

  it('peerChain reads the presented chain leaf first, stopping at the self-signed CA', async () => {
    const chain = await presentedChain('ee311.secure.test');
    expect(chain.map((c) => c.fingerprint256)).toEqual([leaf.cert.fingerprint256, ca.cert.fingerprint256]);
    expect((await presentedChain('impostor-ee.secure.test')).length).toBe(1);
  });

  it('DANE-EE 3 1 1 (SHA-256 of the leaf key) verifies', async () => {
    expect((await dane('ee311.secure.test')).verdict).toEqual({ ok: true, usage: 3, depth: 0 });
  });

  it('DANE-EE 3 0 1 (SHA-256 of the whole leaf) verifies', async () => {
    expect((await dane('ee301.secure.test')).verdict).toEqual({ ok: true, usage: 3, depth: 0 });
  });

  it('DANE-EE 3 1 2 (SHA-512 of the leaf key) verifies', async () => {
    expect((await dane('ee312.secure.test')).verdict).toEqual({ ok: true, usage: 3, depth: 0 });
  });

  it('DANE-TA 2 1 1 with the anchor presented in the chain verifies at its depth', async () => {
    expect((await dane('ta211.secure.test')).verdict).toEqual({ ok: true, usage: 2, depth: 1 });
  });

  it('DANE-TA 2 0 0 with the anchor only in DNS verifies the leaf it signed', async () => {
    expect(await presentedChain('ta200.secure.test')).toHaveLength(1);
    expect((await dane('ta200.secure.test')).verdict).toEqual({ ok: true, usage: 2, depth: 1 });
  });

  it('DANE-TA 2 1 1 through an intermediate verifies the whole path up to the anchor', async () => {
    expect(await presentedChain('ta-inter.secure.test')).toHaveLength(3);
    expect((await dane('ta-inter.secure.test')).verdict).toEqual({ ok: true, usage: 2, depth: 2 });
  });

  it('DANE-TA refuses a path whose middle certificate is not a CA', async () => {
    // A leaf certificate of the CA used to sign another leaf: every signature verifies, the path must still fail.
    const notCa = await signedBy(ca, 'not-a-ca.secure.test');
    const forged = [(await signedBy(notCa, 'ta-inter.secure.test')).cert, notCa.cert, ca.cert];
    const record = { usage: 2, selector: 1, matchingType: 1, data: new Uint8Array(createHash('sha256').update(spki(ca.cert)).digest()) };
    expect(verifyDane([record], forged, 'ta-inter.secure.test')).toMatchObject({ ok: false, result: 'validation-failure' });
  });

  it('an MX host that is an alias: TLSA records at the name its CNAME chain ends at first, else at the alias', async () => {
    expect(await daneTlsaPolicy(dns, 'alias-target.secure.test')).toMatchObject({ kind: 'dane', baseDomain: 'real-target.secure.test', records: [{ usage: 3 }] });
    expect(await daneTlsaPolicy(dns, 'alias-only.secure.test')).toMatchObject({ kind: 'dane', baseDomain: 'alias-only.secure.test', records: [{ usage: 2 }] });
    expect(await daneTlsaPolicy(dns, 'real-target.secure.test')).toMatchObject({ kind: 'dane', baseDomain: 'real-target.secure.test' });
  });

  it('TLSA records do not count when the MX address is not DNSSEC-secure', async () => {
    expect(await daneTlsaPolicy(dns, 'via-insecure.secure.test')).toMatchObject({ kind: 'none', reason: expect.stringContaining('address') });
  });

  it('only unusable TLSA records: DANE applies (STARTTLS required) but nothing authenticates', async () => {
    expect((await dane('unusable.secure.test')).policy).toEqual({ kind: 'dane', records: [], unusableOnly: true, baseDomain: 'unusable.secure.test' });
    expect(verifyDane([], await presentedChain('unusable.secure.test'), 'unusable.secure.test')).toMatchObject({ ok: false, result: 'tlsa-invalid' });
  });

  it('a digest of the wrong length is an unusable record: DANE applies (STARTTLS required) but nothing authenticates', async () => {
    expect((await dane('baddigest.secure.test')).policy).toEqual({ kind: 'dane', records: [], unusableOnly: true, baseDomain: 'baddigest.secure.test' });
  });

  it('two records during a key rollover: the one that matches is enough', async () => {
    const { policy, verdict } = await dane('rollover.secure.test');
    expect(policy).toMatchObject({ kind: 'dane', unusableOnly: false });
    expect((policy as { records: BridgeTlsaRecord[] }).records).toHaveLength(2);
    expect(verdict).toEqual({ ok: true, usage: 3, depth: 0 });
  });

  it('an expired leaf under DANE-EE verifies: the record binds the key, not the dates', async () => {
    expect((await dane('expired-ee.secure.test')).verdict).toEqual({ ok: true, usage: 3, depth: 0 });
  });

  it('an expired leaf under DANE-TA is refused as certificate-expired', async () => {
    expect((await dane('expired-ta.secure.test')).verdict).toMatchObject({ ok: false, result: 'certificate-expired' });
  });

  it('a leaf naming another host under DANE-TA is refused, unless a name candidate matches', async () => {
    expect((await dane('wrongname-ta.secure.test')).verdict).toMatchObject({ ok: false, result: 'certificate-host-mismatch' });
    expect((await dane('wrongname-ta.secure.test', ['other.example'])).verdict).toEqual({ ok: true, usage: 2, depth: 1 });
  });

  it('a self-signed impostor is refused under DANE-EE and DANE-TA', async () => {
    expect((await dane('impostor-ee.secure.test')).verdict).toMatchObject({ ok: false, result: 'validation-failure' });
    expect((await dane('impostor-ta.secure.test')).verdict).toMatchObject({ ok: false, result: 'validation-failure' });
  });

  it('a DANE-TA anchor carried in full is held to its dates: an expired one is refused as certificate-expired', async () => {
    const expiredCa = await selfSigned('Expired CA', { ca: true, expired: true });
    const under = await signedBy(expiredCa, 'mx.secure.test');
    const record = { usage: 2, selector: 0, matchingType: 0, data: new Uint8Array(expiredCa.cert.raw) };
    expect(verifyDane([record], [under.cert], 'mx.secure.test')).toMatchObject({ ok: false, result: 'certificate-expired' });
    const keyOnly = { usage: 2, selector: 1, matchingType: 0, data: new Uint8Array(spki(expiredCa.cert)) };
    expect(verifyDane([keyOnly], [under.cert], 'mx.secure.test')).toEqual({ ok: true, usage: 2, depth: 1 });
  });

  it('DANE-TA holds every CA on the path to its path length constraint, an anchor carried in full too', async () => {
    // signedBy makes intermediates with a path length of 0: one may sign leaves, not another CA.
    const intermediate = await signedBy(ca, 'Constrained Intermediate', { ca: true });
    const sub = await signedBy(intermediate, 'Sub-intermediate', { ca: true });
    const under = await signedBy(sub, 'mx.secure.test');
    const rootAnchor = { usage: 2, selector: 1, matchingType: 1, data: new Uint8Array(createHash('sha256').update(spki(ca.cert)).digest()) };
    expect(verifyDane([rootAnchor], [under.cert, sub.cert, intermediate.cert, ca.cert], 'mx.secure.test'))
      .toMatchObject({ ok: false, result: 'validation-failure' });
    const inFull = { usage: 2, selector: 0, matchingType: 0, data: new Uint8Array(intermediate.cert.raw) };
    expect(verifyDane([inFull], [under.cert, sub.cert], 'mx.secure.test')).toMatchObject({ ok: false, result: 'validation-failure' });
    // One level below the constrained intermediate is allowed: the leaf it signed.
    const direct = await signedBy(intermediate, 'mx.secure.test');
    expect(verifyDane([rootAnchor], [direct.cert, intermediate.cert, ca.cert], 'mx.secure.test')).toEqual({ ok: true, usage: 2, depth: 2 });
  });

  it('the path length constraint is read from the DER: absent, zero, or none on a certificate without basic constraints', async () => {
    expect(pathLengthConstraint(ca.cert)).toBeUndefined();
    expect(pathLengthConstraint((await signedBy(ca, 'Constrained', { ca: true })).cert)).toBe(0);
    expect(pathLengthConstraint(leaf.cert)).toBeUndefined();
    // DER that claims more than it holds (a certificate Node would not have parsed) is refused, not read past its end.
    const truncated = { raw: ca.cert.raw.subarray(0, 40) } as X509Certificate;
    expect(pathLengthConstraint(truncated)).toBe('malformed');
  });

  it('under DANE-TA the leaf must be for TLS servers when it says what it is for; under DANE-EE it need not', async () => {
    const clientOnly = await signedBy(ca, 'mx.secure.test', { extendedKeyUsage: ['1.3.6.1.5.5.7.3.2'] });
    const serverToo = await signedBy(ca, 'mx.secure.test', { extendedKeyUsage: ['1.3.6.1.5.5.7.3.2', '1.3.6.1.5.5.7.3.1'] });
    const anchor = { usage: 2, selector: 1, matchingType: 1, data: new Uint8Array(createHash('sha256').update(spki(ca.cert)).digest()) };
    expect(verifyDane([anchor], [clientOnly.cert, ca.cert], 'mx.secure.test')).toMatchObject({ ok: false, result: 'validation-failure' });
    expect(verifyDane([anchor], [serverToo.cert, ca.cert], 'mx.secure.test')).toEqual({ ok: true, usage: 2, depth: 1 });
    const endEntity = { usage: 3, selector: 1, matchingType: 1, data: new Uint8Array(createHash('sha256').update(spki(clientOnly.cert)).digest()) };
    expect(verifyDane([endEntity], [clientOnly.cert], 'mx.secure.test')).toEqual({ ok: true, usage: 3, depth: 0 });
  });

  it('a DANE-TA anchor carried in full must be a CA', async () => {
    const notCa = await signedBy(ca, 'not-a-ca.secure.test');
    const under = await signedBy(notCa, 'mx.secure.test');
    const record = { usage: 2, selector: 0, matchingType: 0, data: new Uint8Array(notCa.cert.raw) };
    expect(verifyDane([record], [under.cert], 'mx.secure.test')).toMatchObject({ ok: false, result: 'validation-failure' });
  });

  it('a DANE-TA record matching the leaf itself is no trust anchor', () => {
    const record = { usage: 2, selector: 0, matchingType: 1, data: new Uint8Array(createHash('sha256').update(leaf.cert.raw).digest()) };
    expect(verifyDane([record], [leaf.cert, ca.cert], 'mx.secure.test')).toMatchObject({ ok: false, result: 'validation-failure' });
  });

  it('a DANE-TA record carried in full does not trust a leaf it did not sign', async () => {
    const other = await selfSigned('Other CA', { ca: true });
    const record = { usage: 2, selector: 0, matchingType: 0, data: new Uint8Array(other.cert.raw) };
    expect(verifyDane([record], [leaf.cert], 'mx.secure.test')).toMatchObject({ ok: false, result: 'validation-failure' });
  });

  it('a digest of the wrong length is not a usable record: tlsa-invalid', () => {
    const record = { usage: 3, selector: 1, matchingType: 1, data: new Uint8Array(20) };
    expect(verifyDane([record], [leaf.cert], 'mx.secure.test')).toMatchObject({ ok: false, result: 'tlsa-invalid' });
  });

  it('a bogus TLSA answer (signature broken) defers the host', async () => {
    expect(await daneTlsaPolicy(dns, 'mx.bogus.test')).toMatchObject({ kind: 'defer', reason: expect.stringContaining('TLSA lookup') });
  });

  it('an unsigned zone has no DANE even with TLSA records', async () => {
    expect(await daneTlsaPolicy(dns, 'mx.insecure.test')).toMatchObject({ kind: 'none' });
  });

  it('a secure NXDOMAIN or NODATA for the TLSA name means no DANE', async () => {
    expect(await daneTlsaPolicy(dns, 'nxtlsa.secure.test')).toMatchObject({ kind: 'none', reason: expect.stringContaining('no TLSA') });
    expect(await daneTlsaPolicy(dns, 'nodata.secure.test')).toMatchObject({ kind: 'none', reason: expect.stringContaining('no TLSA') });
  });

  it('TLSA records count only for a port given, under its own name', async () => {
    expect(await daneTlsaPolicy(dns, 'ee311.secure.test', 587)).toMatchObject({ kind: 'none' });
  });
});
