// Outbound delivery end to end on loopback: a real DNS world (nsd + validating unbound: signed zones with TLSA
// records, an unsigned one, a tampered one), smtp-server receivers presenting certificates from a test CA or
// impostors, a real HTTPS server for MTA-STS policies, and a private Postfix as the far end. Each MX host name
// stands for one case; the test-only port map sends it to the receiver playing it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes, type X509Certificate } from 'node:crypto';
import { createServer as createHttps, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { DnsPacketResolver } from '../../gateway/dns/index.ts';
import {
  createSmtpOutbound, InMemoryStsPolicyCache, type OutboundMessage, type SmtpNextHop, type SmtpOutbound, type TlsOutcome,
} from '../../bridge/index.ts';
import { startDnsLab, type DnsLab } from '../dns-lab.ts';
import { selfSigned, signedBy, type Issued } from './dane-pki.ts';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { until } from '../helpers.ts';
import { closedPort, startPostfixReceiver, startReceiver, type PostfixReceiver, type Receiver } from './smtp-receiver.ts';

const hex = (data: Buffer) => data.toString('hex').toUpperCase();
const spki311 = (cert: X509Certificate) => `3 1 1 ${hex(createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest())}`;

let lab: DnsLab;
let dns: DnsPacketResolver;
let ca: Issued;
let postfixCert: Issued;
let https: HttpsServer;
const portMap: Record<string, number> = {};
const hostMap: Record<string, string> = {};
const receivers: Record<string, Receiver> = {};
const outbounds: SmtpOutbound[] = [];

const REFUSALS = { 'gone@x': [550, '5.1.1 no such mailbox'], 'busy@x': [451, '4.2.1 try later'] } as const;
const POLICIES: Record<string, string> = {
  'enf.sts.test': 'version: STSv1\nmode: enforce\nmx: listed.sts.test\nmax_age: 86400\n',
  'enfcert.sts.test': 'version: STSv1\nmode: enforce\nmx: mx.enfcert.sts.test\nmax_age: 86400\n',
  'enfok.sts.test': 'version: STSv1\nmode: enforce\nmx: *.enfok.sts.test\nmax_age: 86400\n',
  'testing.sts.test': 'version: STSv1\nmode: testing\nmx: mx.testing.sts.test\nmax_age: 86400\n',
  // DANE and an enforce policy that names another MX: DANE must decide.
  'both.dane.test': 'version: STSv1\nmode: enforce\nmx: elsewhere.example\nmax_age: 86400\n',
};
/** Announces a policy its policy host does not serve (404). */
const FETCH_FAILS = 'fetchfail.sts.test';

beforeAll(async () => {
  ca = await selfSigned('Delivery Test CA', { ca: true });
  const good = await signedBy(ca, 'mx-good.dane.test', { names: ['mx-good.dane.test', 'mx-nortls.dane.test', 'mx.enfok.sts.test'] });
  const wrongName = await signedBy(ca, 'other.example', { names: ['other.example'] });
  const selfCert = await selfSigned('self.plain.test', { names: ['self.plain.test'] });
  const impostor = await selfSigned('mx-imp.dane.test', { names: ['mx-imp.dane.test'] });
  postfixCert = await signedBy(ca, 'mta.legacy.test');
  const tlsOf = (cert: Issued, chain: Issued[] = []) => ({ key: cert.keyPem, cert: [cert.pem, ...chain.map((c) => c.pem)].join('') });

  const refuseRcpt = Object.fromEntries(Object.entries(REFUSALS).map(([k, v]) => [k, [...v] as [number, string]]));
  const start = async (name: string, opts: Parameters<typeof startReceiver>[0]) => { receivers[name] = await startReceiver({ refuseRcpt, ...opts }); };
  await start('good', tlsOf(good, [ca]));
  await start('nortls', { ...tlsOf(good, [ca]), hideREQUIRETLS: true });
  await start('self', tlsOf(selfCert));
  await start('impostor', tlsOf(impostor));
  await start('notls', { hideSTARTTLS: true });
  await start('wrongname', tlsOf(wrongName, [ca]));

  const map: Record<string, string> = {
    'up.plain.test': 'self', 'implicit.plain.test': 'self', 'insmx.plain.test': 'self',
    'mx-good.dane.test': 'good', 'mx-nortls.dane.test': 'nortls', 'mx-imp.dane.test': 'impostor', 'mx-notls.dane.test': 'notls',
    'mx.bogus.test': 'good', 'mx.enf.sts.test': 'good', 'mx.enfcert.sts.test': 'wrongname', 'mx.enfok.sts.test': 'good',
    'mx.testing.sts.test': 'self', 'mx.fetchfail.sts.test': 'self',
  };
  for (const [host, name] of Object.entries(map)) portMap[host] = receivers[name]!.port;
  portMap['down.plain.test'] = await closedPort();

  const policyHosts = [...Object.keys(POLICIES), FETCH_FAILS].map((d) => `mta-sts.${d}`);
  const policyCert = await signedBy(ca, policyHosts[0]!, { names: policyHosts });
  https = createHttps({ key: policyCert.keyPem, cert: policyCert.pem + ca.pem }, (req, res) => {
    const policy = POLICIES[(req.headers.host ?? '').replace(/^mta-sts\./, '')];
    if (!policy || req.url !== '/.well-known/mta-sts.txt') { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(policy);
  });
  await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
  for (const host of policyHosts) hostMap[host] = `127.0.0.1:${(https.address() as AddressInfo).port}`;

  const goodTlsa = spki311(good.cert);
  const a = (host: string) => `${host} IN A 127.0.0.1`;
  lab = await startDnsLab([
    {
      name: 'plain.test', signed: false, records: [
        'order IN MX 10 down', 'order IN MX 20 up', a('down'), a('up'), 'nullmx IN MX 0 .',
        a('implicit'), 'ins IN MX 10 insmx', a('insmx'), `_25._tcp.insmx IN TLSA 3 1 1 ${hex(randomBytes(32))}`,
      ],
    },
    {
      name: 'dane.test', signed: true, records: [
        'good IN MX 10 mx-good', 'both IN MX 10 mx-good', '_mta-sts.both IN TXT "v=STSv1; id=1"', 'impostor IN MX 10 mx-imp', 'notls IN MX 10 mx-notls', 'nortls IN MX 10 mx-nortls',
        ...['mx-good', 'mx-imp', 'mx-notls', 'mx-nortls'].flatMap((h) => [a(h), `_25._tcp.${h} IN TLSA ${goodTlsa}`]),
      ],
    },
    {
      name: 'bogus.test', signed: true, records: ['@ IN MX 10 mx', a('mx'), `_25._tcp.mx IN TLSA ${goodTlsa}`],
      tamper: (text) => text.replace(/(_25\._tcp\.mx\.bogus\.test\.\s+\d+\s+IN\s+TLSA\s+3 1 1 )([0-9A-F])/,
        (_, head: string, digit: string) => head + (digit === '0' ? '1' : '0')),
    },
    { name: 'legacy.test', signed: true, records: ['@ IN MX 10 mta', a('mta'), `_25._tcp.mta IN TLSA ${spki311(postfixCert.cert)}`] },
    {
      name: 'sts.test', signed: false, records: [
        ...['enf', 'enfcert', 'enfok', 'testing', 'fetchfail'].flatMap((d) => [`${d} IN MX 10 mx.${d}`, a(`mx.${d}`), `_mta-sts.${d} IN TXT "v=STSv1; id=1"`]),
      ],
    },
  ]);
  dns = new DnsPacketResolver({ servers: [lab.resolver], timeoutMs: 2000 });
}, 120_000);

afterAll(async () => {
  await Promise.all(outbounds.map((o) => o.close()));
  await Promise.all(Object.values(receivers).map((r) => r.close()));
  https?.closeAllConnections();
  await new Promise<void>((resolve) => (https ? https.close(() => resolve()) : resolve()));
  await lab?.close();
});

function outbound(): { o: SmtpOutbound; outcomes: TlsOutcome[] } {
  const outcomes: TlsOutcome[] = [];
  const o = createSmtpOutbound({
    hostname: 'out.node.test', resolver: dns, stsCache: new InMemoryStsPolicyCache(), stsFetch: { fetchTimeoutMs: 5000, ca: ca.pem, hostMap },
    portMap, ca: ca.pem, onTlsOutcome: (outcome) => outcomes.push(outcome), connectTimeoutMs: 5000, commandTimeoutMs: 10_000, dataTimeoutMs: 10_000,
  });
  outbounds.push(o);
  return { o, outcomes };
}

function message(domain: string, locals: string[] = ['rcpt'], extra: Partial<OutboundMessage['envelope']> = {}): OutboundMessage {
  const id = randomBytes(6).toString('hex');
  return {
    envelope: { mailFrom: 'alice@node.test', recipients: locals.map((l) => ({ address: l.includes('@') ? l : `${l}@${domain}` })), requireTls: false, smtputf8: false, eightBit: false, ...extra },
    data: Buffer.from(`Subject: ${id}\r\n\r\nbody ${id}\r\n`),
  };
}

const got = (name: string, msg: OutboundMessage) => receivers[name]!.messages.find((m) => m.data.equals(msg.data));

describe('MX selection', () => {
  it('tries MX hosts in preference order: the first one down, the second takes it', async () => {
    const { o } = outbound();
    const msg = message('order.plain.test');
    const [result] = await o.deliver('order.plain.test', msg);
    expect(result).toMatchObject({ status: 'delivered', mx: 'up.plain.test', tls: { authenticated: 'none' } });
    expect(got('self', msg)).toBeDefined();
  });

  it('a null MX fails every recipient at once (RFC 7505)', async () => {
    const results = await outbound().o.deliver('nullmx.plain.test', message('nullmx.plain.test', ['a', 'b']));
    expect(results).toMatchObject([1, 2].map(() => ({ status: 'failed', mx: '', reply: { code: 556, enhanced: '5.1.10' } })));
  });

  it('a domain with an address and no MX is its own MX', async () => {
    const msg = message('implicit.plain.test');
    expect((await outbound().o.deliver('implicit.plain.test', msg))[0]).toMatchObject({ status: 'delivered', mx: 'implicit.plain.test' });
    expect(got('self', msg)).toBeDefined();
  });

  it('a domain that does not exist fails with 5.1.2', async () => {
    expect((await outbound().o.deliver('nosuch.plain.test', message('nosuch.plain.test')))[0])
      .toMatchObject({ status: 'failed', reply: { code: 550, enhanced: '5.1.2', text: expect.stringContaining('NXDOMAIN') } });
  });

  it('4xx to RCPT defers that recipient, 5xx fails it with the server\'s enhanced code', async () => {
    const results = await outbound().o.deliver('order.plain.test', message('order.plain.test', ['gone@x', 'ok', 'busy@x']));
    expect(results).toMatchObject([
      { status: 'failed', reply: { code: 550, enhanced: '5.1.1', text: 'no such mailbox' } },
      { status: 'delivered' },
      { status: 'deferred', reply: { code: 451, enhanced: '4.2.1' } },
    ]);
  });
});

describe('TLS policy per MX', () => {
  it('opportunistic STARTTLS with a self-signed certificate delivers over TLS, unauthenticated', async () => {
    const { o, outcomes } = outbound();
    const msg = message('order.plain.test');
    const [result] = await o.deliver('order.plain.test', msg);
    expect(result).toMatchObject({ status: 'delivered', tls: { protocol: expect.stringMatching(/^TLSv1\.[23]$/), authenticated: 'none' } });
    expect(got('self', msg)!.secure).toBe(true);
    expect(outcomes).toMatchObject([{ policyType: 'no-policy-found', mxHost: 'up.plain.test', result: 'success', receivingIp: '127.0.0.1' }]);
  });

  it('DANE-EE 3 1 1 delivers, authenticated by DANE, and reports success under the TLSA policy', async () => {
    const { o, outcomes } = outbound();
    const msg = message('good.dane.test');
    expect((await o.deliver('good.dane.test', msg))[0]).toMatchObject({ status: 'delivered', mx: 'mx-good.dane.test', tls: { authenticated: 'dane' } });
    expect(got('good', msg)!.secure).toBe(true);
    expect(outcomes).toEqual([expect.objectContaining({
      policyType: 'tlsa', policyDomain: 'mx-good.dane.test', policyStrings: [expect.stringMatching(/^3 1 1 [0-9A-F]{64}$/)], result: 'success',
    })]);
  });

  it('DANE with an impostor certificate defers, reports validation-failure, and sends nothing to it', async () => {
    const { o, outcomes } = outbound();
    const msg = message('impostor.dane.test');
    expect((await o.deliver('impostor.dane.test', msg))[0]).toMatchObject({ status: 'deferred', reply: { code: 451, enhanced: '4.4.1', text: expect.stringContaining('validation-failure') } });
    expect(outcomes).toMatchObject([{ policyType: 'tlsa', mxHost: 'mx-imp.dane.test', result: 'validation-failure' }]);
    expect(receivers.impostor!.messages).toHaveLength(0);
  });

  it('a DANE MX that does not offer STARTTLS is not used in clear: deferred, starttls-not-supported', async () => {
    const { o, outcomes } = outbound();
    const msg = message('notls.dane.test');
    expect((await o.deliver('notls.dane.test', msg))[0]).toMatchObject({ status: 'deferred', reply: { text: expect.stringContaining('STARTTLS required') } });
    expect(outcomes).toMatchObject([{ policyType: 'tlsa', result: 'starttls-not-supported' }]);
    expect(receivers.notls!.messages).toHaveLength(0);
  });

  it('a bogus TLSA answer defers without connecting, reported as dnssec-invalid', async () => {
    const { o, outcomes } = outbound();
    const before = receivers.good!.connections;
    expect((await o.deliver('bogus.test', message('bogus.test')))[0]).toMatchObject({ status: 'deferred', reply: { text: expect.stringContaining('TLSA lookup') } });
    expect(outcomes).toMatchObject([{ policyType: 'tlsa', mxHost: 'mx.bogus.test', receivingIp: '', result: 'dnssec-invalid' }]);
    expect(receivers.good!.connections).toBe(before);
  });

  it('TLSA records in an unsigned zone do not count: opportunistic TLS delivers', async () => {
    const { o, outcomes } = outbound();
    expect((await o.deliver('ins.plain.test', message('ins.plain.test')))[0]).toMatchObject({ status: 'delivered', tls: { authenticated: 'none' } });
    expect(outcomes).toMatchObject([{ policyType: 'no-policy-found', result: 'success' }]);
  });

  it('MTA-STS enforce with an MX the policy does not list defers without connecting', async () => {
    const { o, outcomes } = outbound();
    const before = receivers.good!.connections;
    expect((await o.deliver('enf.sts.test', message('enf.sts.test')))[0]).toMatchObject({ status: 'deferred', reply: { text: expect.stringContaining('MTA-STS') } });
    expect(outcomes).toMatchObject([{ policyType: 'sts', policyDomain: 'enf.sts.test', policyStrings: expect.arrayContaining(['mode: enforce', 'mx: listed.sts.test']), result: 'validation-failure' }]);
    expect(receivers.good!.connections).toBe(before);
  });

  it('MTA-STS enforce with a certificate not naming the MX defers: certificate-host-mismatch', async () => {
    const { o, outcomes } = outbound();
    const msg = message('enfcert.sts.test');
    expect((await o.deliver('enfcert.sts.test', msg))[0]).toMatchObject({ status: 'deferred' });
    expect(outcomes).toMatchObject([{ policyType: 'sts', mxHost: 'mx.enfcert.sts.test', result: 'certificate-host-mismatch' }]);
    expect(got('wrongname', msg)).toBeUndefined();
  });

  it('MTA-STS enforce with a PKIX-valid certificate for a listed MX delivers, authenticated by STS', async () => {
    const { o, outcomes } = outbound();
    expect((await o.deliver('enfok.sts.test', message('enfok.sts.test')))[0]).toMatchObject({ status: 'delivered', tls: { authenticated: 'sts' } });
    expect(outcomes).toMatchObject([{ policyType: 'sts', policyDomain: 'enfok.sts.test', result: 'success' }]);
  });

  it('MTA-STS testing delivers despite an untrusted certificate and records the failure', async () => {
    const { o, outcomes } = outbound();
    const msg = message('testing.sts.test');
    expect((await o.deliver('testing.sts.test', msg))[0]).toMatchObject({ status: 'delivered', tls: { authenticated: 'none' } });
    expect(got('self', msg)).toBeDefined();
    expect(outcomes).toMatchObject([{ policyType: 'sts', policyDomain: 'testing.sts.test', result: 'certificate-not-trusted' }]);
  });
});

describe('TLS policy precedence, failures to get one, and connection reuse', () => {
  it('DANE wins over an MTA-STS policy that does not list the MX', async () => {
    const { o, outcomes } = outbound();
    expect((await o.deliver('both.dane.test', message('both.dane.test')))[0]).toMatchObject({ status: 'delivered', tls: { authenticated: 'dane' } });
    expect(outcomes).toMatchObject([{ policyType: 'tlsa', result: 'success' }]);
  });

  it('an announced MTA-STS policy that cannot be fetched is reported, and delivery goes on as without one', async () => {
    const { o, outcomes } = outbound();
    expect((await o.deliver(FETCH_FAILS, message(FETCH_FAILS)))[0]).toMatchObject({ status: 'delivered' });
    expect(outcomes[0]).toMatchObject({ policyType: 'sts', policyDomain: FETCH_FAILS, mxHost: '', receivingIp: '', result: 'sts-policy-fetch-error', detail: expect.stringContaining('404') });
  });

  it('a connection is reused only under the policy it was verified under', async () => {
    const { o, outcomes } = outbound();
    const before = receivers.good!.connections;
    for (let i = 0; i < 2; i++) expect((await o.deliver('good.dane.test', message('good.dane.test')))[0]!.tls?.authenticated).toBe('dane');
    expect(receivers.good!.connections - before).toBe(1);
    const viaRoute = await o.deliver('any.example', message('any.example'), { nextHop: { host: 'mx-good.dane.test', port: portMap['mx-good.dane.test']!, tls: 'may' } });
    expect(viaRoute[0]).toMatchObject({ status: 'delivered', tls: { authenticated: 'none' } });
    expect(receivers.good!.connections - before).toBe(2);
    expect(outcomes.map((x) => x.policyType)).toEqual(['tlsa', 'no-policy-found']);
  });
});

describe('REQUIRETLS (RFC 8689)', () => {
  it('fails with 5.7.30 when the MX has no DANE or STS policy, without sending', async () => {
    const msg = message('order.plain.test', ['rcpt'], { requireTls: true });
    expect((await outbound().o.deliver('order.plain.test', msg))[0]).toMatchObject({ status: 'failed', reply: { code: 550, enhanced: '5.7.30' } });
    expect(got('self', msg)).toBeUndefined();
  });

  it('fails with 5.7.30 over DANE when the server does not offer REQUIRETLS', async () => {
    const msg = message('nortls.dane.test', ['rcpt'], { requireTls: true });
    expect((await outbound().o.deliver('nortls.dane.test', msg))[0]).toMatchObject({ status: 'failed', reply: { enhanced: '5.7.30' } });
    expect(got('nortls', msg)).toBeUndefined();
  });

  it('delivers over DANE to a server that offers REQUIRETLS, with REQUIRETLS on MAIL', async () => {
    const msg = message('good.dane.test', ['rcpt'], { requireTls: true });
    expect((await outbound().o.deliver('good.dane.test', msg))[0]).toMatchObject({ status: 'delivered', tls: { authenticated: 'dane' } });
    expect(got('good', msg)!.mailArgs).toMatchObject({ REQUIRETLS: true });
  });
});

describe('TLS-Required: No (RFC 8689 §5)', () => {
  it('sets DANE aside: an MX whose certificate DANE refuses takes the message over opportunistic STARTTLS', async () => {
    const { o, outcomes } = outbound();
    const msg = message('impostor.dane.test', ['rcpt'], { ignoreTlsPolicies: true });
    expect((await o.deliver('impostor.dane.test', msg))[0]).toMatchObject({ status: 'delivered', tls: { authenticated: 'none' } });
    expect(got('impostor', msg)!.secure).toBe(true);
    expect(outcomes).toMatchObject([{ policyType: 'no-policy-found', result: 'success' }]);
  });

  it('sets MTA-STS aside: an MX an enforce policy does not list takes the message', async () => {
    const msg = message('enf.sts.test', ['rcpt'], { ignoreTlsPolicies: true });
    expect((await outbound().o.deliver('enf.sts.test', msg))[0]).toMatchObject({ status: 'delivered', mx: 'mx.enf.sts.test' });
    expect(got('good', msg)).toBeDefined();
  });

  it('is ignored with REQUIRETLS: still 5.7.30 where REQUIRETLS cannot be met', async () => {
    const msg = message('order.plain.test', ['rcpt'], { ignoreTlsPolicies: true, requireTls: true });
    expect((await outbound().o.deliver('order.plain.test', msg))[0]).toMatchObject({ status: 'failed', reply: { enhanced: '5.7.30' } });
    expect(got('self', msg)).toBeUndefined();
  });
});

describe('static next hop', () => {
  const hop = (host: string, name: string, tls: SmtpNextHop['tls']) => ({ nextHop: { host, port: receivers[name]!.port, tls } });

  it('tls none sends in clear even when STARTTLS is offered', async () => {
    const msg = message('any.example');
    const [result] = await outbound().o.deliver('any.example', msg, hop('127.0.0.1', 'self', 'none'));
    expect(result).toMatchObject({ status: 'delivered', mx: '127.0.0.1' });
    expect(result!.tls).toBeUndefined();
    expect(got('self', msg)!.secure).toBe(false);
  });

  it('tls may takes any certificate', async () => {
    const msg = message('any.example');
    expect((await outbound().o.deliver('any.example', msg, hop('127.0.0.1', 'self', 'may')))[0]).toMatchObject({ status: 'delivered', tls: { authenticated: 'none' } });
    expect(got('self', msg)!.secure).toBe(true);
  });

  it('tls verify delivers to a PKIX-valid certificate for the host and defers on a self-signed one', async () => {
    const { o, outcomes } = outbound();
    expect((await o.deliver('any.example', message('any.example'), hop('mx-good.dane.test', 'good', 'verify')))[0])
      .toMatchObject({ status: 'delivered', tls: { authenticated: 'pkix' } });
    const msg = message('any.example');
    expect((await o.deliver('any.example', msg, hop('up.plain.test', 'self', 'verify')))[0]).toMatchObject({ status: 'deferred' });
    expect(got('self', msg)).toBeUndefined();
    expect(outcomes.map((x) => x.result)).toEqual(['success', 'certificate-not-trusted']);
  });

  it('trust anchors are per outbound: one that lacks the test CA does not trust a certificate another one verified', async () => {
    const trusting = outbound();
    const hopGood = hop('mx-good.dane.test', 'good', 'verify');
    expect((await trusting.o.deliver('any.example', message('any.example'), hopGood))[0]).toMatchObject({ status: 'delivered', tls: { authenticated: 'pkix' } });
    const other = await selfSigned('Another CA', { ca: true });
    const stranger = createSmtpOutbound({
      hostname: 'out.node.test', resolver: dns, stsCache: new InMemoryStsPolicyCache(), stsFetch: { fetchTimeoutMs: 5000 },
      portMap, ca: other.pem, connectTimeoutMs: 5000, commandTimeoutMs: 10_000, dataTimeoutMs: 10_000,
    });
    outbounds.push(stranger);
    const msg = message('any.example');
    expect((await stranger.deliver('any.example', msg, hopGood))[0]).toMatchObject({ status: 'deferred', reply: { text: expect.stringContaining('certificate-not-trusted') } });
    expect(got('good', msg)).toBeUndefined();
    // And the first still verifies after the second made its own context.
    expect((await trusting.o.deliver('any.example', message('any.example'), hopGood))[0]).toMatchObject({ status: 'delivered', tls: { authenticated: 'pkix' } });
  });
});

describe('a real Postfix as the far end', () => {
  let postfix: PostfixReceiver | undefined;
  beforeAll(async () => {
    postfix = await startPostfixReceiver('legacy.test', { cert: postfixCert.pem + ca.pem, key: postfixCert.keyPem });
    portMap['mta.legacy.test'] = postfix.port;
  }, 60_000);
  afterAll(async () => { await postfix?.stop(); });

  it('delivers over STARTTLS authenticated by DANE, and the message lands in the maildir with its body', async () => {
    const { o, outcomes } = outbound();
    const msg = message('legacy.test', ['carol', 'dave']);
    const results = await o.deliver('legacy.test', msg);
    expect(results).toMatchObject([1, 2].map(() => ({ status: 'delivered', mx: 'mta.legacy.test', reply: { code: 250, enhanced: '2.0.0' }, tls: { authenticated: 'dane' } })));
    expect(outcomes).toMatchObject([{ policyType: 'tlsa', policyDomain: 'mta.legacy.test', result: 'success' }]);
    const stored = await until('the message in the maildir', async () => {
      const files = readdirSync(postfix!.maildir).map((f) => readFileSync(join(postfix!.maildir, f), 'utf8'));
      return files.find((text) => text.includes(msg.data.toString().split('\r\n').at(-2)!));
    }, 30_000);
    expect(stored).toMatch(/^Return-Path: <alice@node\.test>/);
    expect(stored).toMatch(/Received: from out\.node\.test [^\n]*\n[^\n]*by mta\.legacy\.test \(Postfix\) with ESMTPS/);
    // Postfix adds the headers the message lacks (Message-Id, Date, From) after the ones it has; the body is as sent.
    const [subject, , body] = msg.data.toString().split('\r\n');
    expect(stored).toContain(`\n${subject}\n`);
    expect(stored!.endsWith(`\n\n${body}\n`)).toBe(true);
  }, 60_000);
});
