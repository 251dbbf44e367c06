// Mail to a legacy domain that enters the node over SMTP submission (AUTH = mailbox address + API token), and
// the ways the node must not be made to send: as another sender (an app signing someone else's address), or
// for an anonymous MX client (relay). The far end is found by MX in the DNS lab and authenticated by DANE;
// it does not offer REQUIRETLS.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes, type X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import nodemailer from 'nodemailer';
import { verifyMessage } from '../../bridge/auth/verify.ts';
import { connect, profileResolver, readProfile, submit, unary } from '../../gateway/client/index.ts';
import { envelopeToWire, fromB64u } from '../../gateway/core/index.ts';
import { DnsPacketResolver } from '../../gateway/dns/index.ts';
import { sealEnvelope, signMessage } from '../../identity/index.ts';
import { selfSigned, signedBy } from '../bridge/dane-pki.ts';
import { startReceiver, type Receiver } from '../bridge/smtp-receiver.ts';
import { until } from '../helpers.ts';
import { deliveryStatus, NODE_DOMAIN, OutboundLab } from './outbound-lab.ts';

const spki311 = (cert: X509Certificate) => `3 1 1 ${createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('hex').toUpperCase()}`;
const SOME_DID = 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK';
const hostPort = (text: string) => ({ host: text.slice(0, text.lastIndexOf(':')), port: Number(text.slice(text.lastIndexOf(':') + 1)) });

/** A submission client that says what nodemailer cannot: `MAIL FROM:<...> REQUIRETLS` (RFC 8689). */
async function submitWithRequireTls(address: string, ca: string, auth: { user: string; pass: string }, to: string, message: string): Promise<string[]> {
  const replies: string[] = [];
  let socket: Socket | TLSSocket = tcpConnect(hostPort(address));
  let buffer = '';
  let waiting: ((line: string) => void) | undefined;
  const lines: string[] = [];
  const onData = (chunk: Buffer) => {
    buffer += chunk.toString('latin1');
    let at;
    while ((at = buffer.indexOf('\r\n')) >= 0) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 2);
      if (line[3] === '-') continue; // a multi-line reply ends with its last line
      if (waiting) { const w = waiting; waiting = undefined; w(line); } else lines.push(line);
    }
  };
  const reply = () => new Promise<string>((resolve, reject) => {
    const ready = lines.shift();
    if (ready) return resolve(ready);
    waiting = resolve;
    socket.once('error', reject);
  });
  const command = async (line: string, expected: number) => {
    socket.write(`${line}\r\n`);
    const r = await reply();
    replies.push(r);
    if (!r.startsWith(String(expected))) throw new Error(`${line.split(' ')[0]}: ${r}`);
    return r;
  };
  socket.on('data', onData);
  try {
    await reply();
    await command('EHLO laptop.example', 250);
    await command('STARTTLS', 220);
    socket.off('data', onData);
    socket = await new Promise<TLSSocket>((resolve, reject) => {
      const secure = tlsConnect({ socket: socket as Socket, ca, servername: 'localhost' }, () => resolve(secure));
      secure.once('error', reject);
    });
    socket.on('data', onData);
    const ehlo = await command('EHLO laptop.example', 250);
    expect(ehlo).toBeDefined();
    await command(`AUTH PLAIN ${Buffer.from(`\0${auth.user}\0${auth.pass}`).toString('base64')}`, 235);
    await command(`MAIL FROM:<${auth.user}> REQUIRETLS`, 250);
    await command(`RCPT TO:<${to}>`, 250);
    await command('DATA', 354);
    await command(`${message.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..')}\r\n.`, 250);
    await command('QUIT', 221);
    return replies;
  } finally {
    socket.destroy();
  }
}

describe('outbound SMTP for mail submitted over SMTP, and who may make the node send', () => {
  const lab = new OutboundLab();
  let receiver: Receiver;
  /** strict.test's MX: DANE-authenticated and offering REQUIRETLS. */
  let strict: Receiver;
  let ca: string;
  let alice: ReturnType<typeof readProfile>;
  const ready = () => lab.node!.ready as { smtp?: string; submission?: string };
  const arrived = (subject: string) => receiver.messages.filter((m) => m.data.toString().includes(`Subject: ${subject}\r\n`));

  beforeAll(async () => {
    const testCa = await selfSigned('Submission E2E CA', { ca: true });
    const mx = await signedBy(testCa, 'mx.legacy.test');
    receiver = await startReceiver({ key: mx.keyPem, cert: mx.pem + testCa.pem, hideREQUIRETLS: true, refuseRcpt: { 'gone@legacy.test': [550, '5.1.1 gone'] } });
    const strictMx = await signedBy(testCa, 'mx.strict.test');
    strict = await startReceiver({ key: strictMx.keyPem, cert: strictMx.pem + testCa.pem });
    await lab.init([
      { name: 'legacy.test', signed: true, records: ['@ IN MX 10 mx', 'mx IN A 127.0.0.1', `_25._tcp.mx IN TLSA ${spki311(mx.cert)}`] },
      // A domain with an AfterSMTP node whose discovery record is altered on the way: DNSSEC makes it bogus.
      {
        name: 'forged.test', signed: true, records: ['@ IN MX 10 mx', 'mx IN A 127.0.0.1', `_aftersmtp IN TXT "v=aftersmtp1; did=${SOME_DID}"`],
        tamper: (zone) => zone.replace(/(_aftersmtp\.forged\.test\.\s+\d+\s+IN\s+TXT\s+"v=aftersmtp1; did=did:key:z)(.)/, (_m, head: string, c: string) => head + (c === 'A' ? 'B' : 'A')),
      },
      // An MX whose TLSA record matches no certificate it has: DANE refuses it.
      { name: 'broken.test', signed: true, records: ['@ IN MX 10 mx', 'mx IN A 127.0.0.1', `_25._tcp.mx IN TLSA 3 1 1 ${randomBytes(32).toString('hex').toUpperCase()}`] },
      { name: 'strict.test', signed: true, records: ['@ IN MX 10 mx', 'mx IN A 127.0.0.1', `_25._tcp.mx IN TLSA ${spki311(strictMx.cert)}`] },
    ], { AFTERSMTP_BRIDGE__SMTP__OUTBOUND__PORT_MAP: JSON.stringify({ 'mx.legacy.test': receiver.port, 'mx.strict.test': strict.port, 'mx.broken.test': receiver.port }) });
    await lab.start();
    ca = readFileSync(join(lab.data, 'tls', 'ca.crt'), 'utf8');
    alice = readProfile(lab.profile('alice'));
  }, 120_000);

  afterAll(async () => {
    await lab.close();
    await receiver?.close();
    await strict?.close();
  });

  it('a message submitted with AUTH is delivered over DANE, from the authenticated mailbox, DKIM-signed so that it passes', async () => {
    const transport = nodemailer.createTransport({
      ...hostPort(ready().submission!), secure: false, requireTLS: true, name: 'laptop.example',
      auth: { user: `alice@${NODE_DOMAIN}`, pass: alice.token }, tls: { ca, servername: 'localhost' },
    });
    try {
      const info = await transport.sendMail({ from: `Alice <alice@${NODE_DOMAIN}>`, to: 'ivan@legacy.test', subject: 'submitted to legacy', text: 'From my mail client.' });
      expect(info.accepted).toEqual(['ivan@legacy.test']);
    } finally {
      transport.close();
    }
    const [got] = await until('the submitted message at the far end', async () => { const m = arrived('submitted to legacy'); return m.length ? m : undefined; });
    expect(got!.mailFrom).toBe(`alice@${NODE_DOMAIN}`);
    expect(got!.rcpts.map((r) => r.address)).toEqual(['ivan@legacy.test']);
    expect(got!.secure).toBe(true);
    const text = got!.data.toString();
    expect(text).toMatch(/^From: .*<?alice@a\.test>?\r$/m);
    const verdicts = await verifyMessage({
      message: got!.data, ip: '127.0.0.1', helo: NODE_DOMAIN, mailFrom: `alice@${NODE_DOMAIN}`,
      resolver: new DnsPacketResolver({ servers: [lab.dns.resolver], timeoutMs: 2000 }), authservId: 'mx.legacy.test',
    });
    expect(verdicts.dkim.map((d) => `${d.algo}=${d.result}${d.aligned ? ' aligned' : ''}`).sort()).toEqual(['ed25519-sha256=pass aligned', 'rsa-sha256=pass aligned']);
    expect(verdicts.dmarc.result).toBe('pass');
    expect(arrived('submitted to legacy')).toHaveLength(1);
  }, 60_000);

  it('the client\'s DSN parameters go on to the far end, and NOTIFY=NEVER means no failure notice', async () => {
    const submitOne = async (subject: string, to: string, dsn: object) => {
      const transport = nodemailer.createTransport({
        ...hostPort(ready().submission!), secure: false, requireTLS: true, name: 'laptop.example',
        auth: { user: `alice@${NODE_DOMAIN}`, pass: alice.token }, tls: { ca, servername: 'localhost' },
      });
      try {
        const info = await transport.sendMail({ from: `alice@${NODE_DOMAIN}`, to, subject, text: subject, dsn });
        return /queued as ([0-9a-f]{32})/.exec(info.response)![1]!;
      } finally {
        transport.close();
      }
    };
    await submitOne('dsn asked', 'ivan@legacy.test', { id: 'env-42', return: 'headers', notify: ['failure', 'delay'], recipient: 'ivan@legacy.test' });
    const [got] = await until('the message with DSN parameters', async () => { const m = arrived('dsn asked'); return m.length ? m : undefined; });
    expect(got!.dsn).toMatchObject({ ret: 'HDRS', envid: 'env-42' });
    expect(got!.rcpts[0]!.dsn).toMatchObject({ notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;ivan@legacy.test' });

    const quiet = await submitOne('no news wanted', 'gone@legacy.test', { notify: 'never' });
    expect(await lab.queueRow(quiet, 'gone@legacy.test', ['failed', 'delivered'])).toMatchObject({ state: 'failed' });
    // A second failure, with the default NOTIFY: its notice is the next one alice gets, none came before it.
    const loud = await submitOne('news wanted', 'gone@legacy.test', {});
    expect(await lab.queueRow(loud, 'gone@legacy.test', ['failed', 'delivered'])).toMatchObject({ state: 'failed' });
    const [notice] = await lab.receive('alice', 1);
    expect(Buffer.from(notice!.body!).toString()).toContain(`Your message ${loud} could not be delivered`);
  }, 60_000);

  it('REQUIRETLS on submission to a server that does not offer it: failed with 5.7.30, a notice, nothing sent', async () => {
    const replies = await submitWithRequireTls(ready().submission!, ca, { user: `alice@${NODE_DOMAIN}`, pass: alice.token }, 'judy@legacy.test', [
      `From: alice@${NODE_DOMAIN}`, 'To: judy@legacy.test', 'Subject: must be over tls', '', 'Secret.', '',
    ].join('\r\n'));
    const id = /queued as ([0-9a-f]{32})/.exec(replies.at(-2)!)?.[1];
    expect(id, replies.join(' | ')).toBeDefined();
    const row = await lab.queueRow(id!, 'judy@legacy.test', ['failed', 'delivered']);
    expect(row).toMatchObject({ state: 'failed', lastError: expect.stringMatching(/^REQUIRETLS: .*5\.7\.30/) });
    const [notice] = await lab.receive('alice', 1);
    const status = deliveryStatus(notice!);
    expect(status).toMatch(/^Final-Recipient: rfc822; judy@legacy\.test\r$/m);
    expect(status).toMatch(/^Status: 5\.7\.30\r$/m);
    expect(arrived('must be over tls')).toHaveLength(0);
  }, 60_000);

  it('REQUIRETLS to a DANE-authenticated server that offers it: delivered, with REQUIRETLS on its MAIL FROM', async () => {
    const replies = await submitWithRequireTls(ready().submission!, ca, { user: `alice@${NODE_DOMAIN}`, pass: alice.token }, 'olga@strict.test', [
      `From: alice@${NODE_DOMAIN}`, 'To: olga@strict.test', 'Subject: over verified tls', '', 'Secret.', '',
    ].join('\r\n'));
    const id = /queued as ([0-9a-f]{32})/.exec(replies.at(-2)!)![1]!;
    expect(await lab.queueRow(id, 'olga@strict.test', ['failed', 'delivered'])).toMatchObject({ state: 'delivered' });
    const got = strict.messages.find((m) => m.data.toString().includes('Subject: over verified tls'));
    expect(got).toMatchObject({ secure: true, mailArgs: { REQUIRETLS: true } });
  }, 60_000);

  it('REQUIRETLS wins over a "TLS-Required: No" field (RFC 8689 §5 says the field is then ignored): still failed with 5.7.30', async () => {
    const replies = await submitWithRequireTls(ready().submission!, ca, { user: `alice@${NODE_DOMAIN}`, pass: alice.token }, 'judy@legacy.test', [
      `From: alice@${NODE_DOMAIN}`, 'To: judy@legacy.test', 'Subject: both asked', 'TLS-Required: No', '', 'Which one?', '',
    ].join('\r\n'));
    const id = /queued as ([0-9a-f]{32})/.exec(replies.at(-2)!)![1]!;
    expect(await lab.queueRow(id, 'judy@legacy.test', ['failed', 'delivered'])).toMatchObject({ state: 'failed', lastError: expect.stringMatching(/5\.7\.30/) });
    expect(arrived('both asked')).toHaveLength(0);
    const [notice] = await lab.receive('alice', 1);
    expect(deliveryStatus(notice!)).toMatch(/^Status: 5\.7\.30\r$/m);
  }, 60_000);

  it('"TLS-Required: No" (without REQUIRETLS) sets the recipient\'s DANE policy aside: delivered where the same message without it is deferred', async () => {
    const eml = (subject: string, field: string[]) => [`From: <alice@${NODE_DOMAIN}>`, 'To: <quinn@broken.test>', `Subject: ${subject}`, ...field, '', 'Delivery over security.', ''].join('\r\n');
    const held = await lab.send('alice', ['quinn@broken.test'], 'dane says no', { eml: eml('dane says no', []) });
    expect(await lab.queueRow(held.id, 'quinn@broken.test', ['deferred', 'delivered', 'failed'])).toMatchObject({ state: 'deferred', lastError: expect.stringContaining('validation-failure') });
    const sent = await lab.send('alice', ['quinn@broken.test'], 'send it anyway', { eml: eml('send it anyway', ['TLS-Required: No']) });
    expect(await lab.queueRow(sent.id, 'quinn@broken.test', ['delivered', 'failed'])).toMatchObject({ state: 'delivered' });
    const [got] = arrived('send it anyway');
    expect(got).toMatchObject({ secure: true }); // still over STARTTLS, only unauthenticated
    expect(got!.data.toString()).toMatch(/^TLS-Required: No\r$/m);
    expect(arrived('dane says no')).toHaveLength(0);
  }, 60_000);

  it('an app cannot make the node send as someone else: a message signed as alice but sent with bob\'s token fails SENDER_MISMATCH, nothing leaves', async () => {
    const bob = readProfile(lab.profile('bob'));
    const clients = connect(bob, lab.grpc);
    let id: string;
    try {
      // What Identity.Resolve answers for a legacy address: the node itself, whose key agreement key opens the copy.
      const found = await unary(clients.identity.Resolve.bind(clients.identity), { address: 'kate@legacy.test' }, clients.metadata) as { did: string; legacy: boolean };
      expect(found.legacy).toBe(true);
      const keys = await profileResolver(bob).resolveKeys(found.did);
      const [keyId, publicKey] = [...keys.keyAgreement.entries()][0]!;
      const messageId = new Uint8Array(randomBytes(16));
      const createdMs = Date.now();
      const expiresMs = createdMs + 3600_000;
      const body = new TextEncoder().encode(`From: <alice@${NODE_DOMAIN}>\r\nTo: <kate@legacy.test>\r\nSubject: forged\r\n\r\nI am alice, honest.\r\n`);
      const signingKey = fromB64u(bob.signing.privateKey);
      // Bob's DID and key (so the envelope is bob's, as his token requires), alice's address in the signed From.
      const signed = signMessage({
        header: { messageId, from: { did: bob.did, address: `alice@${NODE_DOMAIN}` }, to: [{ did: found.did, address: 'kate@legacy.test' }], createdMs, expiresMs, contentType: 'message/rfc822' },
        body, keyId: bob.signing.keyId, privateKey: signingKey,
      });
      const envelope = sealEnvelope({
        signedMessage: signed.signedMessage, messageId, messageHash: signed.messageHash, senderDid: bob.did, senderKeyId: bob.signing.keyId,
        senderPrivateKey: signingKey, recipientAddresses: ['kate@legacy.test'], recipients: [{ keyId, publicKey }], createdMs, expiresMs,
      });
      id = Buffer.from((await submit(clients, envelopeToWire(envelope))).messageId).toString('hex');
    } finally {
      clients.close();
    }
    const row = await lab.queueRow(id, 'kate@legacy.test', ['failed', 'delivered']);
    expect(row).toMatchObject({ state: 'failed', lastError: expect.stringMatching(/^SENDER_MISMATCH: /) });
    expect(receiver.messages.filter((m) => m.rcpts.some((r) => r.address === 'kate@legacy.test'))).toHaveLength(0);
    // The notice goes to the mailbox that sent it (bob), not to the address it claimed.
    const [notice] = await lab.receive('bob', 1);
    expect(deliveryStatus(notice!)).toMatch(/^Status: 5\.7\.1\r$/m);
  }, 60_000);

  it('an app cannot put another author in the header From of what it signed as itself: SENDER_MISMATCH, nothing leaves', async () => {
    const eml = ['From: The CEO <ceo@bank.example>', 'To: <mia@legacy.test>', 'Subject: wire the money', '', 'Urgent.', ''].join('\r\n');
    const { id } = await lab.send('alice', ['mia@legacy.test'], 'wire the money', { eml });
    const row = await lab.queueRow(id, 'mia@legacy.test', ['failed', 'delivered']);
    expect(row).toMatchObject({ state: 'failed', lastError: expect.stringMatching(/^SENDER_MISMATCH: .*From is not alice@a\.test/) });
    expect(arrived('wire the money')).toHaveLength(0);
    const [notice] = await lab.receive('alice', 1);
    expect(deliveryStatus(notice!)).toMatch(/^Final-Recipient: rfc822; mia@legacy\.test\r$/m);
  }, 60_000);

  it('an app\'s legacy copy sealed to a key other than the node\'s bridge key is refused at submission (INVALID_ARGUMENT); the node keeps serving', async () => {
    const bob = readProfile(lab.profile('bob'));
    const clients = connect(bob, lab.grpc);
    try {
      const messageId = new Uint8Array(randomBytes(16));
      const createdMs = Date.now();
      const expiresMs = createdMs + 3600_000;
      const signingKey = fromB64u(bob.signing.privateKey);
      const signed = signMessage({
        header: { messageId, from: { did: bob.did, address: bob.address }, to: [{ did: bob.node.did, address: 'pete@legacy.test' }], createdMs, expiresMs, contentType: 'message/rfc822' },
        body: new TextEncoder().encode(`From: <${bob.address}>\r\nSubject: sealed wrong\r\n\r\nx\r\n`), keyId: bob.signing.keyId, privateKey: signingKey,
      });
      // Sealed to bob's own key: the node could not open it to send it on.
      const envelope = sealEnvelope({
        signedMessage: signed.signedMessage, messageId, messageHash: signed.messageHash, senderDid: bob.did, senderKeyId: bob.signing.keyId, senderPrivateKey: signingKey,
        recipientAddresses: ['pete@legacy.test'], recipients: [{ keyId: bob.agreement.keyId, publicKey: fromB64u(bob.agreement.publicKey) }], createdMs, expiresMs,
      });
      await expect(submit(clients, envelopeToWire(envelope))).rejects.toMatchObject({ message: expect.stringMatching(/INVALID_ARGUMENT: .*seal pete@legacy\.test's copy to this node's bridge key/) });
    } finally {
      clients.close();
    }
    expect((await lab.queue()).filter((r) => r.recipient === 'pete@legacy.test')).toEqual([]);
    const { id: next } = await lab.send('alice', ['ivan@legacy.test'], 'after the bad one');
    expect(await lab.queueRow(next, 'ivan@legacy.test', ['failed', 'delivered'])).toMatchObject({ state: 'delivered' });
  }, 60_000);

  it('a forged (DNSSEC-bogus) discovery record does not turn a domain with an AfterSMTP node into one the node sends to over SMTP', async () => {
    // The lab's validating resolver refuses the altered answer (SERVFAIL), as the node's lookup sees it.
    await expect(new DnsPacketResolver({ servers: [lab.dns.resolver], timeoutMs: 2000 }).txt('_aftersmtp.forged.test')).rejects.toThrow();
    await expect(lab.send('alice', ['nora@forged.test'], 'downgrade?')).rejects.toThrow(/cannot resolve nora@forged\.test/);
    expect((await lab.queue()).filter((r) => r.recipient === 'nora@forged.test')).toEqual([]);
    expect(receiver.messages.filter((m) => m.rcpts.some((r) => r.address === 'nora@forged.test'))).toEqual([]);
  }, 60_000);

  it('an anonymous client on the MX port cannot relay to a legacy domain: 550 5.7.1, nothing queued or sent', async () => {
    const transport = nodemailer.createTransport({ ...hostPort(ready().smtp!), secure: false, name: 'mta.sender.invalid', tls: { ca, servername: 'localhost' } });
    try {
      await expect(transport.sendMail({
        envelope: { from: 'spam@sender.invalid', to: ['leo@legacy.test'] }, from: `alice@${NODE_DOMAIN}`, to: 'leo@legacy.test', subject: 'relay me', text: 'x',
      })).rejects.toMatchObject({ responseCode: 550, response: expect.stringMatching(/5\.7\.1/) });
    } finally {
      transport.close();
    }
    expect((await lab.queue()).filter((r) => r.recipient === 'leo@legacy.test')).toEqual([]);
    expect(arrived('relay me')).toHaveLength(0);
  }, 60_000);
});
