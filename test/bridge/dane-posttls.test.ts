// The DANE matrix end to end, with Postfix as the oracle: each case is a real SMTP server (smtp-server, STARTTLS
// with the case's chain) behind an MX host of a real signed (or unsigned, or tampered) lab zone, and the
// bridge's real delivery path and Postfix's `posttls-finger -l dane` are both pointed at it through the same
// validating resolver. Each verdict must match the other and the one the case table expects.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes, randomInt, type X509Certificate } from 'node:crypto';
import { SMTPServer } from 'smtp-server';
import type { AddressInfo } from 'node:net';
import { DnsPacketResolver } from '../../gateway/dns/index.ts';
import { createSmtpOutbound, InMemoryStsPolicyCache } from '../../bridge/index.ts';
import type { OutboundMessage, RecipientResult, SmtpOutbound, TlsFailureType, TlsOutcome } from '../../bridge/index.ts';
import { startDnsLab, type DnsLab } from '../dns-lab.ts';
import { KeyUsageFlags, selfSigned, signedBy, type Issued } from './dane-pki.ts';
import { findPosttlsFinger, fingerEvidence, fingerOutcome, startPosttlsFinger, type DaneOutcome, type FingerRun, type PosttlsFinger } from './posttls-finger.ts';

type Zone = 'secure.test' | 'insecure.test' | 'bogus.test';

interface Case {
  id: string;
  what: string;
  zone: Zone;
  /** Where the MX host lives when not in the domain's own zone. */
  mxZone?: Zone;
  /** The MX host when not `mx-<id>.<mxZone or zone>`. */
  mx?: string;
  expected: DaneOutcome;
  /** The TLS-RPT result the bridge reports for a refusal or deferral. */
  failure?: TlsFailureType;
}

/**
 * The matrix. Each case's domain is `<id>.<zone>`, its one MX `mx-<id>.<mxZone or zone>`, with its address and its
 * TLSA records (`_25._tcp.mx-…`) in that zone.
 */
const CASES: Case[] = [
  { id: 'ee311', zone: 'secure.test', expected: 'authenticated', what: 'DANE-EE 3 1 1 (SHA-256 of the leaf key)' },
  { id: 'ee301', zone: 'secure.test', expected: 'authenticated', what: 'DANE-EE 3 0 1 (SHA-256 of the whole leaf)' },
  { id: 'ee312', zone: 'secure.test', expected: 'authenticated', what: 'DANE-EE 3 1 2 (SHA-512 of the leaf key)' },
  { id: 'ee310', zone: 'secure.test', expected: 'authenticated', what: 'DANE-EE 3 1 0 (the whole leaf key)' },
  { id: 'ee300', zone: 'secure.test', expected: 'authenticated', what: 'DANE-EE 3 0 0 (the whole leaf)' },
  { id: 'ta211', zone: 'secure.test', expected: 'authenticated', what: 'DANE-TA 2 1 1, the anchor presented in the chain' },
  { id: 'ta200', zone: 'secure.test', expected: 'authenticated', what: 'DANE-TA 2 0 0, the anchor only in DNS (not presented)' },
  { id: 'ta210', zone: 'secure.test', expected: 'authenticated', what: 'DANE-TA 2 1 0, only the anchor key in DNS (not presented)' },
  { id: 'tainter', zone: 'secure.test', expected: 'authenticated', what: 'DANE-TA 2 1 1 through an intermediate' },
  { id: 'tamiddle', zone: 'secure.test', expected: 'authenticated', what: 'DANE-TA 2 1 1 naming the intermediate, not the root' },
  { id: 'taleaf', zone: 'secure.test', expected: 'refused', failure: 'validation-failure', what: 'DANE-TA 2 0 1 naming the leaf itself' },
  { id: 'taselfsigned', zone: 'secure.test', expected: 'refused', failure: 'validation-failure', what: 'DANE-TA 2 0 1 naming a self-signed leaf, the only certificate presented' },
  { id: 'tanotca', zone: 'secure.test', expected: 'refused', failure: 'validation-failure', what: 'DANE-TA through a middle certificate that is not a CA' },
  { id: 'anchornotca', zone: 'secure.test', expected: 'refused', failure: 'validation-failure', what: 'DANE-TA 2 0 0 naming a certificate that is not a CA (not presented)' },
  { id: 'pathlen', zone: 'secure.test', expected: 'refused', failure: 'validation-failure', what: 'DANE-TA through an intermediate that may sign no further CA (path length 0) but did' },
  { id: 'nocertsign', zone: 'secure.test', expected: 'refused', failure: 'validation-failure', what: 'DANE-TA through an intermediate whose key usage does not allow signing certificates' },
  { id: 'clientauth', zone: 'secure.test', expected: 'refused', failure: 'validation-failure', what: 'DANE-TA with a leaf whose extended key usage is client authentication only' },
  { id: 'wildcard', zone: 'secure.test', expected: 'authenticated', what: 'a DANE-TA leaf naming the MX host by a wildcard' },
  { id: 'unusable', zone: 'secure.test', expected: 'opportunistic', what: 'only unusable TLSA records: encrypted, not authenticated (RFC 7672 §2.2.1)' },
  { id: 'baddigest', zone: 'secure.test', expected: 'opportunistic', what: 'only a digest of the wrong length: an unusable record, so encrypted, not authenticated' },
  { id: 'rollover', zone: 'secure.test', expected: 'authenticated', what: 'two records during a key rollover, one matching' },
  { id: 'expiredee', zone: 'secure.test', expected: 'authenticated', what: 'an expired leaf under DANE-EE (the record binds the key, not the dates)' },
  { id: 'expiredta', zone: 'secure.test', expected: 'refused', failure: 'certificate-expired', what: 'an expired leaf under DANE-TA' },
  { id: 'expiredca', zone: 'secure.test', expected: 'refused', failure: 'certificate-expired', what: 'DANE-TA 2 0 0 naming an expired anchor (not presented)' },
  { id: 'wrongname', zone: 'secure.test', expected: 'refused', failure: 'certificate-host-mismatch', what: 'a leaf naming another host under DANE-TA' },
  { id: 'nexthopname', zone: 'secure.test', expected: 'authenticated', what: 'a DANE-TA leaf naming the next-hop domain, not the MX host (RFC 7672 §3.2.3)' },
  { id: 'impostor', zone: 'secure.test', expected: 'refused', failure: 'validation-failure', what: 'a self-signed impostor under DANE-EE' },
  { id: 'nostarttls', zone: 'secure.test', expected: 'refused', failure: 'starttls-not-supported', what: 'TLSA records but no STARTTLS offered' },
  { id: 'nxtlsa', zone: 'secure.test', expected: 'opportunistic', what: 'a secure NXDOMAIN for the TLSA name: no DANE' },
  { id: 'nodata', zone: 'secure.test', expected: 'opportunistic', what: 'a secure NODATA for the TLSA name (it holds only a TXT record): no DANE' },
  { id: 'bogus', zone: 'bogus.test', expected: 'deferred', failure: 'dnssec-invalid', what: 'a bogus TLSA answer (signature broken)' },
  { id: 'cnametarget', zone: 'secure.test', expected: 'authenticated', what: 'an MX host that is a CNAME, TLSA records at the expanded name (RFC 7672 §2.2.2)' },
  { id: 'cnamealias', zone: 'secure.test', expected: 'authenticated', what: 'an MX host that is a CNAME, TLSA records at the alias only (RFC 7672 §2.2.2)' },
  { id: 'cnamename', zone: 'secure.test', expected: 'authenticated', what: 'a DANE-TA leaf naming only the name an MX alias expands to, the TLSA base domain (RFC 7672 §3.2.2)' },
  { id: 'implicitmx', zone: 'secure.test', mx: 'implicitmx.secure.test', expected: 'authenticated', what: 'no MX records: the domain is its own MX, with its TLSA records (RFC 5321 §5.1)' },
  { id: 'bogusmx', zone: 'bogus.test', expected: 'deferred', what: 'a bogus MX answer (signature broken)' },
  { id: 'insecuremx', zone: 'insecure.test', mxZone: 'secure.test', expected: 'authenticated', what: 'an unsigned MX answer naming a host with secure TLSA records: DANE still applies' },
  { id: 'insecure', zone: 'insecure.test', expected: 'opportunistic', what: 'TLSA records in an unsigned zone: no DANE' },
];

const hex = (data: Buffer | string) => Buffer.from(data).toString('hex').toUpperCase();
const sha256 = (data: Buffer) => hex(createHash('sha256').update(data).digest());
const sha512 = (data: Buffer) => hex(createHash('sha512').update(data).digest());
const spki = (cert: X509Certificate) => cert.publicKey.export({ type: 'spki', format: 'der' });
const mxOf = (c: Case) => c.mx ?? `mx-${c.id}.${c.mxZone ?? c.zone}`;
const domainOf = (c: Case) => `${c.id}.${c.zone}`;

interface Receiver { address: string; port: number; received: { secure: boolean }[]; close(): Promise<void> }

/** An MX: smtp-server on its own loopback address, port 0, offering STARTTLS with `chain` (leaf first) unless told not to. */
async function receiver(address: string, leaf: Issued, chain: Issued[], starttls: boolean): Promise<Receiver> {
  const received: { secure: boolean }[] = [];
  const server = new SMTPServer({
    key: leaf.keyPem, cert: [leaf, ...chain].map((c) => c.pem).join(''),
    disabledCommands: starttls ? ['AUTH'] : ['AUTH', 'STARTTLS'], hideSTARTTLS: !starttls, logger: false,
    onData(stream, session, done) {
      stream.resume();
      stream.on('end', () => { received.push({ secure: session.secure }); done(); });
    },
  });
  server.on('error', () => {});
  await new Promise<void>((resolve, reject) => { server.server.once('error', reject); server.listen(0, address, () => resolve()); });
  return {
    address, port: (server.server.address() as AddressInfo).port, received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A distinct 127.x.y.z per MX: inside posttls-finger's namespace each one answers on port 25. */
function loopbackAddresses(count: number): string[] {
  const chosen = new Set<string>();
  while (chosen.size < count) chosen.add(`127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`);
  return [...chosen];
}

/** A verdict, or what made the result contradict itself (a test failure shows it as is). */
type Verdict = DaneOutcome | `inconsistent: ${string}`;

interface Verdicts { finger?: DaneOutcome; fingerRun: FingerRun; ours: Verdict; oursDetail: string; oursFailure?: string }

const finger = findPosttlsFinger();
let lab: DnsLab | undefined;
let oracle: PosttlsFinger | undefined;
let outbound: SmtpOutbound | undefined;
const receivers = new Map<string, Receiver>();
const verdicts = new Map<string, Verdicts>();

/** The bridge's verdict from one real delivery attempt: the result, the TLS outcome, and what the MX received. */
function ourOutcome(result: RecipientResult, outcomes: TlsOutcome[], got: Receiver): { outcome: Verdict; failure?: string; detail: string } {
  const failure = outcomes.find((o) => o.result !== 'success');
  const detail = `${result.status} ${result.reply.code} ${result.reply.text}; tls=${JSON.stringify(result.tls)}; outcomes=${JSON.stringify(outcomes.map((o) => [o.policyType, o.result, o.detail]))}; received=${JSON.stringify(got.received)}`;
  if (result.status === 'delivered') {
    if (got.received.length !== 1) return { outcome: `inconsistent: delivered, and the MX holds ${got.received.length} messages`, detail };
    return { outcome: result.tls?.authenticated === 'dane' ? 'authenticated' : 'opportunistic', detail };
  }
  if (got.received.length > 0) return { outcome: `inconsistent: ${result.status}, yet the MX received it`, detail };
  // A refusal is a connection made and judged; a deferral never gets that far (no trustworthy DNS answer).
  const judged = failure && failure.result !== 'dnssec-invalid' && failure.receivingIp !== '';
  return { outcome: judged ? 'refused' : 'deferred', failure: failure?.result, detail };
}

beforeAll(async () => {
  if ('missing' in finger) return;
  const ca = await selfSigned('DANE Matrix Test CA', { ca: true });
  const names = CASES.map(mxOf);
  const leaf = await signedBy(ca, 'mx.secure.test', { names });
  const expired = await signedBy(ca, 'expired.secure.test', { names, expired: true });
  const wrongName = await signedBy(ca, 'other.example', { names: ['other.example'] });
  const nextHopName = await signedBy(ca, 'nexthopname.secure.test', { names: ['nexthopname.secure.test'] });
  const intermediate = await signedBy(ca, 'DANE Matrix Test Intermediate', { ca: true });
  const interLeaf = await signedBy(intermediate, 'mx-tainter.secure.test', { names });
  const notCa = await signedBy(ca, 'not-a-ca.secure.test');
  const underNotCa = await signedBy(notCa, 'mx-tanotca.secure.test', { names });
  const expandedName = await signedBy(ca, 'real-cnamename.secure.test', { names: ['real-cnamename.secure.test'] });
  const belowPathLen = await signedBy(intermediate, 'DANE Matrix Test Sub-intermediate', { ca: true });
  const underPathLen = await signedBy(belowPathLen, 'mx-pathlen.secure.test', { names });
  const noCertSign = await signedBy(ca, 'DANE Matrix Signing-only Intermediate', { ca: true, caKeyUsage: KeyUsageFlags.digitalSignature });
  const underNoCertSign = await signedBy(noCertSign, 'mx-nocertsign.secure.test', { names });
  const clientAuth = await signedBy(ca, 'mx-clientauth.secure.test', { names, extendedKeyUsage: ['1.3.6.1.5.5.7.3.2'] });
  const wildcard = await signedBy(ca, '*.secure.test', { names: ['*.secure.test'] });
  const expiredCa = await selfSigned('DANE Matrix Expired CA', { ca: true, expired: true });
  const underExpiredCa = await signedBy(expiredCa, 'mx-expiredca.secure.test', { names });
  const impostor = await selfSigned('mx-impostor.secure.test', { names });

  const leaf311 = `3 1 1 ${sha256(spki(leaf.cert))}`;
  const ca211 = `2 1 1 ${sha256(spki(ca.cert))}`;
  /** `records`, when given, replaces the usual MX, A and TLSA lines of the case (the receiver's address given). */
  const setup: Record<string, { tlsa: string[]; chain: [Issued, Issued[]]; starttls?: false; records?: (address: string) => string[] }> = {
    ee311: { tlsa: [leaf311], chain: [leaf, [ca]] },
    ee301: { tlsa: [`3 0 1 ${sha256(leaf.cert.raw)}`], chain: [leaf, [ca]] },
    ee312: { tlsa: [`3 1 2 ${sha512(spki(leaf.cert))}`], chain: [leaf, [ca]] },
    ee310: { tlsa: [`3 1 0 ${hex(spki(leaf.cert))}`], chain: [leaf, [ca]] },
    ee300: { tlsa: [`3 0 0 ${hex(leaf.cert.raw)}`], chain: [leaf, [ca]] },
    ta211: { tlsa: [ca211], chain: [leaf, [ca]] },
    ta200: { tlsa: [`2 0 0 ${hex(ca.cert.raw)}`], chain: [leaf, []] },
    ta210: { tlsa: [`2 1 0 ${hex(spki(ca.cert))}`], chain: [leaf, []] },
    tainter: { tlsa: [ca211], chain: [interLeaf, [intermediate, ca]] },
    tamiddle: { tlsa: [`2 1 1 ${sha256(spki(intermediate.cert))}`], chain: [interLeaf, [intermediate, ca]] },
    taleaf: { tlsa: [`2 0 1 ${sha256(leaf.cert.raw)}`], chain: [leaf, [ca]] },
    taselfsigned: { tlsa: [`2 0 1 ${sha256(impostor.cert.raw)}`], chain: [impostor, []] },
    tanotca: { tlsa: [ca211], chain: [underNotCa, [notCa, ca]] },
    anchornotca: { tlsa: [`2 0 0 ${hex(notCa.cert.raw)}`], chain: [underNotCa, []] },
    pathlen: { tlsa: [ca211], chain: [underPathLen, [belowPathLen, intermediate, ca]] },
    nocertsign: { tlsa: [ca211], chain: [underNoCertSign, [noCertSign, ca]] },
    clientauth: { tlsa: [ca211], chain: [clientAuth, [ca]] },
    wildcard: { tlsa: [ca211], chain: [wildcard, [ca]] },
    unusable: { tlsa: [`1 1 1 ${sha256(spki(ca.cert))}`, `0 0 1 ${sha256(ca.cert.raw)}`, `3 2 1 ${sha256(spki(leaf.cert))}`], chain: [leaf, [ca]] },
    baddigest: { tlsa: [`3 1 1 ${hex(randomBytes(20))}`], chain: [leaf, [ca]] },
    rollover: { tlsa: [`3 1 1 ${hex(randomBytes(32))}`, leaf311], chain: [leaf, [ca]] },
    expiredee: { tlsa: [`3 1 1 ${sha256(spki(expired.cert))}`], chain: [expired, [ca]] },
    expiredta: { tlsa: [ca211], chain: [expired, [ca]] },
    expiredca: { tlsa: [`2 0 0 ${hex(expiredCa.cert.raw)}`], chain: [underExpiredCa, []] },
    wrongname: { tlsa: [ca211], chain: [wrongName, [ca]] },
    nexthopname: { tlsa: [ca211], chain: [nextHopName, [ca]] },
    impostor: { tlsa: [leaf311], chain: [impostor, []] },
    nostarttls: { tlsa: [leaf311], chain: [leaf, [ca]], starttls: false },
    nxtlsa: { tlsa: [], chain: [leaf, [ca]] },
    nodata: {
      tlsa: [], chain: [leaf, [ca]],
      records: (address) => ['nodata IN MX 10 mx-nodata', `mx-nodata IN A ${address}`, '_25._tcp.mx-nodata IN TXT "not a TLSA record"'],
    },
    bogus: { tlsa: [leaf311], chain: [leaf, [ca]] },
    cnametarget: {
      tlsa: [leaf311], chain: [leaf, [ca]],
      records: (address) => ['cnametarget IN MX 10 mx-cnametarget', 'mx-cnametarget IN CNAME real-cnametarget', `real-cnametarget IN A ${address}`,
        `_25._tcp.real-cnametarget IN TLSA ${leaf311}`],
    },
    cnamealias: {
      tlsa: [leaf311], chain: [leaf, [ca]],
      records: (address) => ['cnamealias IN MX 10 mx-cnamealias', 'mx-cnamealias IN CNAME real-cnamealias', `real-cnamealias IN A ${address}`,
        `_25._tcp.mx-cnamealias IN TLSA ${leaf311}`],
    },
    cnamename: {
      tlsa: [ca211], chain: [expandedName, [ca]],
      records: (address) => ['cnamename IN MX 10 mx-cnamename', 'mx-cnamename IN CNAME real-cnamename', `real-cnamename IN A ${address}`,
        `_25._tcp.real-cnamename IN TLSA ${ca211}`],
    },
    implicitmx: { tlsa: [leaf311], chain: [leaf, [ca]], records: (address) => [`implicitmx IN A ${address}`, `_25._tcp.implicitmx IN TLSA ${leaf311}`] },
    bogusmx: { tlsa: [leaf311], chain: [leaf, [ca]] },
    insecuremx: { tlsa: [leaf311], chain: [leaf, [ca]] },
    insecure: { tlsa: [leaf311], chain: [leaf, [ca]] },
  };

  const addresses = loopbackAddresses(CASES.length);
  await Promise.all(CASES.map(async (c, i) => {
    const { chain: [cert, chain], starttls } = setup[c.id]!;
    receivers.set(c.id, await receiver(addresses[i]!, cert, chain, starttls !== false));
  }));
  const records: Record<Zone, string[]> = { 'secure.test': [], 'insecure.test': [], 'bogus.test': [] };
  for (const c of CASES) {
    const { tlsa, records: own } = setup[c.id]!;
    const address = receivers.get(c.id)!.address;
    if (own) {
      records[c.zone].push(...own(address));
      continue;
    }
    const mx = `mx-${c.id}`;
    records[c.zone].push(`${c.id} IN MX 10 ${mxOf(c)}.`);
    records[c.mxZone ?? c.zone].push(`${mx} IN A ${address}`, ...tlsa.map((rr) => `_25._tcp.${mx} IN TLSA ${rr}`));
  }
  lab = await startDnsLab([
    { name: 'secure.test', signed: true, records: records['secure.test'] },
    { name: 'insecure.test', signed: false, records: records['insecure.test'] },
    {
      name: 'bogus.test', signed: true, records: records['bogus.test'],
      // Data changed after signing, so its signature no longer verifies: one hex digit of a TLSA record, one MX preference.
      tamper: (text) => text
        .replace(/(_25\._tcp\.mx-bogus\.bogus\.test\.\s+\d+\s+IN\s+TLSA\s+3 1 1 )([0-9A-F])/,
          (_, head: string, digit: string) => head + (digit === '0' ? '1' : '0'))
        .replace(/(bogusmx\.bogus\.test\.\s+\d+\s+IN\s+MX\s+)10 /, '$111 '),
    },
  ]);
  oracle = await startPosttlsFinger(finger.path, lab.resolver, [...receivers.values()].map((r) => ({ address: r.address, port: r.port })));

  const outcomes = new Map<string, TlsOutcome[]>();
  outbound = createSmtpOutbound({
    hostname: 'bridge.node.test',
    resolver: new DnsPacketResolver({ servers: [lab.resolver], timeoutMs: 5000 }),
    stsCache: new InMemoryStsPolicyCache(),
    stsFetch: { fetchTimeoutMs: 5000 },
    portMap: Object.fromEntries(CASES.map((c) => [mxOf(c), receivers.get(c.id)!.port])),
    onTlsOutcome: (o) => { const list = outcomes.get(o.mxHost) ?? []; list.push(o); outcomes.set(o.mxHost, list); },
  });

  await Promise.all(CASES.map(async (c) => {
    const [fingerRun, results] = await Promise.all([
      oracle!.probe(domainOf(c)),
      outbound!.deliver(domainOf(c), message(c)),
    ]);
    const ours = ourOutcome(results[0]!, outcomes.get(mxOf(c)) ?? [], receivers.get(c.id)!);
    verdicts.set(c.id, { finger: fingerOutcome(fingerRun.output), fingerRun, ours: ours.outcome, oursFailure: ours.failure, oursDetail: ours.detail });
  }));
}, 60_000);

function message(c: Case): OutboundMessage {
  const to = `rcpt@${domainOf(c)}`;
  return {
    envelope: { mailFrom: 'sender@node.test', recipients: [{ address: to }], requireTls: false, smtputf8: false, eightBit: false },
    data: Buffer.from(`From: sender@node.test\r\nTo: ${to}\r\nSubject: DANE case ${c.id}\r\nMessage-ID: <${c.id}@node.test>\r\n\r\nBody.\r\n`),
  };
}

afterAll(async () => {
  await outbound?.close();
  await oracle?.close();
  await Promise.all([...receivers.values()].map((r) => r.close()));
  await lab?.close();
});

describe('DANE verdicts agree with Postfix posttls-finger -l dane (same servers, same DNS)', () => {
  it('posttls-finger is installed', () => {
    if ('missing' in finger) expect.fail(finger.missing);
  });

  it.each(CASES.map((c) => [c.what, c] as const))('%s', (_, c) => {
    if ('missing' in finger) expect.fail(finger.missing);
    const v = verdicts.get(c.id)!;
    const found = { posttlsFinger: v.finger ?? 'no verdict in its log', aftersmtp: v.ours };
    expect(found, `posttls-finger ${domainOf(c)} (exit ${v.fingerRun.code}):\n${fingerEvidence(v.fingerRun.output)}\nAfterSMTP: ${v.oursDetail}`)
      .toEqual({ posttlsFinger: c.expected, aftersmtp: c.expected });
    if (c.failure) expect(v.oursFailure, v.oursDetail).toBe(c.failure);
    // Every MX here offers STARTTLS (but one): what was delivered, even unauthenticated, went over TLS.
    expect(receivers.get(c.id)!.received.every((m) => m.secure), v.oursDetail).toBe(true);
  });
});
