// Real MTAs and clients against the inbound listeners: swaks (submission with STARTTLS and AUTH, smtps, and
// MX with STARTTLS and pipelining) and a private Postfix instance (own config and queue under a temp dir,
// loopback ports only, stopped at the end) relaying into the MX with STARTTLS, among them a message that a
// forwarder DKIM-signed and ARC-sealed with keys in the DNS lab, which must arrive with arc=pass.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { dkimSign } from 'mailauth';
import { arcSeal, verifyMessage } from '../../bridge/index.ts';
import { DnsPacketResolver } from '../../gateway/dns/index.ts';
import { startDnsLab, type DnsLab } from '../dns-lab.ts';
import { startPrivatePostfix } from '../../bench/helpers/private-postfix.ts';
import { until } from '../helpers.ts';
import { RawSmtp, message, selfSignedCert, startBridge, transaction, type Bridge } from './inbound-harness.ts';

const run = promisify(execFile);
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const cert = selfSignedCert();
let lab: DnsLab;
let dns: DnsPacketResolver;
let bridge: Bridge;

function txt(owner: string, value: string): string {
  return `${owner} IN TXT ${(value.match(/.{1,250}/g) ?? ['']).map((c) => `"${c}"`).join(' ')}`;
}

beforeAll(async () => {
  const key = rsa.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  lab = await startDnsLab([
    { name: 'open.test', signed: false, records: [txt('@', 'v=spf1 ip4:127.0.0.1 -all')] },
    { name: 'strict.test', signed: true, records: [txt('@', 'v=spf1 -all'), txt('_dmarc', 'v=DMARC1; p=reject'), txt('k._domainkey', `v=DKIM1; k=rsa; p=${key}`)] },
    { name: 'fwd.test', signed: true, records: [txt('@', 'v=spf1 ip4:127.0.0.1 -all'), txt('arc._domainkey', `v=DKIM1; k=rsa; p=${key}`)] },
  ]);
  dns = new DnsPacketResolver({ servers: [lab.resolver], timeoutMs: 2000 });
  bridge = await startBridge(cert, dns, { trustedArcSealers: ['fwd.test'] });
  for (const a of ['alice@node.test', 'bob@node.test']) bridge.handler.recipients.set(a, 'local');
  bridge.handler.users.set('alice@node.test', 'alice-token');
}, 60_000);
afterAll(async () => {
  await bridge?.close();
  await lab?.close();
});

async function swaks(args: string[]): Promise<string> {
  const { stdout } = await run('swaks', ['--timeout', '20', ...args], { timeout: 30_000 });
  return stdout;
}

function queuedIn(transcript: string): string {
  const m = /^<\S* +250 2\.0\.0 Ok: queued as (\S+)/m.exec(transcript);
  expect(m, transcript).not.toBeNull();
  return m![1]!;
}

describe('swaks', () => {
  it('submits with STARTTLS and AUTH PLAIN on submission, and AUTH LOGIN on smtps', async () => {
    const viaSubmission = await swaks(['--server', `127.0.0.1:${bridge.port('submission')}`, '--tls', '--auth', 'PLAIN',
      '--auth-user', 'alice@node.test', '--auth-password', 'alice-token', '--from', 'alice@node.test', '--to', 'bob@node.test',
      '--header', 'Subject: via swaks']);
    expect(viaSubmission).toMatch(/STARTTLS/);
    const id = queuedIn(viaSubmission);
    expect(bridge.handler.stored(id).toString()).toMatch(/^Received: from \S+ \(\[127\.0\.0\.1\]\)\r\n\tby mx\.node\.test with ESMTPSA/);
    const viaSmtps = await swaks(['--server', `127.0.0.1:${bridge.port('smtps')}`, '--tlsc', '--auth', 'LOGIN',
      '--auth-user', 'alice@node.test', '--auth-password', 'alice-token', '--from', 'alice@node.test', '--to', 'bob@node.test']);
    queuedIn(viaSmtps);
    expect(bridge.handler.accepted.at(-1)).toMatchObject({ listener: 'smtps', authenticated: 'alice@node.test' });
  });

  it('delivers to the MX with STARTTLS and pipelining, and is refused relaying', async () => {
    const ok = await swaks(['--server', `127.0.0.1:${bridge.port('mx')}`, '--tls', '--pipeline', '--from', 'carol@open.test', '--to', 'alice@node.test']);
    const id = queuedIn(ok);
    expect(bridge.handler.stored(id).toString()).toMatch(/^Authentication-Results: mx\.node\.test;[\s\S]*spf=pass[\s\S]*\r\nReceived: [\s\S]*with ESMTPS/);
    const relay = await run('swaks', ['--server', `127.0.0.1:${bridge.port('mx')}`, '--from', 'carol@open.test', '--to', 'dave@elsewhere.example'])
      .then(() => '', (err: { stdout: string }) => err.stdout);
    expect(relay).toMatch(/<\*\* 550 5\.7\.1 relay access denied/);
  });
});

/** A private Postfix: accepts from 127.0.0.0/8 on its port and relays everything to the bridge's MX with STARTTLS. */
async function startPostfix(relayPort: number): Promise<{ port: number; stop: () => void }> {
  const postfix = await startPrivatePostfix({
    name: 'inbound-postfix',
    listeners: 1,
    configure: () => [
      'myhostname = mta.legacy.test',
      'mydomain = legacy.test',
      'mydestination =',
      `relayhost = [127.0.0.1]:${relayPort}`,
      'smtp_tls_security_level = encrypt',
      'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
    ],
  });
  return { port: postfix.ports[0]!, stop: () => postfix.stop() };
}

describe('Postfix relaying into the MX', () => {
  let postfix: Awaited<ReturnType<typeof startPostfix>> | undefined;
  afterAll(() => { postfix?.stop(); });

  it('delivers over STARTTLS (ESMTPS), and a forwarder\'s ARC-sealed message arrives with arc=pass', async () => {
    postfix = await startPostfix(bridge.port('mx'));
    const plainId = `plain-${randomUUID()}`;
    const c = await RawSmtp.open(postfix.port);
    await c.read();
    expect((await transaction(c, 'carol@open.test', ['alice@node.test'], message({ from: 'carol@open.test', messageId: plainId }))).at(-1)).toMatch(/^250 /);

    // A list at fwd.test received a DKIM-signed message from strict.test (p=reject), tagged its subject (the DKIM
    // signature breaks) and sealed what it verified; it goes out through Postfix.
    const original = message({ from: 'ceo@strict.test', to: 'list@fwd.test', subject: 'news' });
    const { signatures } = await dkimSign(Buffer.from(original), {
      canonicalization: 'relaxed/relaxed',
      signatureData: [{ signingDomain: 'strict.test', selector: 'k', privateKey: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string }],
    } as Parameters<typeof dkimSign>[1]);
    const signed = Buffer.from(signatures + original);
    const atList = await verifyMessage({ message: signed, ip: '127.0.0.1', helo: 'mta.strict.test', mailFrom: 'ceo@strict.test', resolver: dns, authservId: 'lists.fwd.test' });
    expect(atList.dkim[0]?.result).toBe('pass');
    const tagged = Buffer.from(signed.toString().replace('Subject: news', 'Subject: [list] news'));
    const set = arcSeal({ message: tagged, domain: 'fwd.test', selector: 'arc', privateKey: rsa.privateKey, authservId: 'lists.fwd.test', authResults: atList.results, chainValidation: 'none' });
    const sealed = Buffer.concat([set!.headers, tagged]).toString();
    expect((await transaction(c, 'list-bounces@fwd.test', ['alice@node.test'], sealed, false)).at(-1)).toMatch(/^250 /);
    c.close();

    const arrived = await until('both messages relayed by Postfix', async () => {
      const got = bridge.handler.accepted.filter((m) => m.mailFrom === 'carol@open.test' || m.mailFrom === 'list-bounces@fwd.test').filter((m) => m.helo === 'mta.legacy.test');
      return got.length >= 2 ? got : undefined;
    }, 30_000);
    const plain = arrived.find((m) => m.message.toString().includes(plainId))!;
    expect(plain).toMatchObject({ listener: 'mx', tls: true, clientIp: '127.0.0.1' });
    expect(plain.message.toString()).toMatch(/^Authentication-Results: mx\.node\.test;[\s\S]*\r\nReceived: from mta\.legacy\.test \(\[127\.0\.0\.1\]\)\r\n\tby mx\.node\.test with ESMTPS/);
    const forwarded = arrived.find((m) => m.mailFrom === 'list-bounces@fwd.test')!;
    expect(forwarded.verdicts).toMatchObject({ arc: { result: 'pass', trustedSealer: true }, dmarc: { result: 'fail', policy: 'reject' } });
    expect(forwarded.message.toString()).toMatch(/^Authentication-Results: mx\.node\.test;[\s\S]*arc=pass/);
  }, 60_000);
});
