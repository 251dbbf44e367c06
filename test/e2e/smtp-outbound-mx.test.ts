// Outbound SMTP from a node process, every lookup through a DNS lab (nsd + validating unbound): the MX found
// in DNS, DANE checked against a signed zone, the node's own DKIM keys and DMARC policy published where
// the far end looks them up. The far ends: a real Postfix (DANE, STARTTLS), a server that refuses once then
// takes the message, one that refuses for good or for as long as the message lives, and a null MX.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, type X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { verifyMessage } from '../../bridge/auth/verify.ts';
import { DnsPacketResolver } from '../../gateway/dns/index.ts';
import { selfSigned, signedBy } from '../bridge/dane-pki.ts';
import { closedPort, startPostfixReceiver, startReceiver, type PostfixReceiver, type Receiver } from '../bridge/smtp-receiver.ts';
import { until } from '../helpers.ts';
import { deliveryStatus, NODE_DOMAIN, OutboundLab } from './outbound-lab.ts';

const spki311 = (cert: X509Certificate) => `3 1 1 ${createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('hex').toUpperCase()}`;

describe('outbound SMTP by MX, through the DNS lab', () => {
  const lab = new OutboundLab();
  let postfix: PostfixReceiver;
  let flaky: Receiver;
  let refusing: Receiver;
  let mixed: Receiver;
  /** The node's own MX listener, which loop.test names as its MX. */
  let ownMxPort: number;
  /** What the server of mixed.test refuses; read at each RCPT, so a test can change it between attempts. */
  const mixedRefusals: Record<string, [number, string]> = { 'gone@mixed.test': [550, '5.1.1 gone'], 'later@mixed.test': [452, '4.2.2 mailbox full'] };
  let flakyMailCommands = 0;

  beforeAll(async () => {
    const ca = await selfSigned('Outbound E2E CA', { ca: true });
    const mta = await signedBy(ca, 'mta.legacy.test');
    postfix = await startPostfixReceiver('legacy.test', { cert: mta.pem + ca.pem, key: mta.keyPem });
    // 451 to the first MAIL it is given, 250 from then on.
    flaky = await startReceiver({
      onMailFrom(_address, _session, callback) {
        if (++flakyMailCommands === 1) return callback(Object.assign(new Error('4.3.0 not now, try again later'), { responseCode: 451 }));
        callback();
      },
    });
    refusing = await startReceiver({ size: 100_000, refuseRcpt: { 'nobody@refuse.test': [550, '5.1.1 no such user here'], 'slow@refuse.test': [451, '4.2.1 mailbox busy'] } });
    ownMxPort = await closedPort();
    mixed = await startReceiver({ refuseRcpt: mixedRefusals });
    const portMap = { 'mta.legacy.test': postfix.port, 'mx.retry.test': flaky.port, 'mx.refuse.test': refusing.port, 'mx.mixed.test': mixed.port, 'mx.bulk.test': refusing.port, 'mx.loop.test': ownMxPort };
    await lab.init([
      { name: 'legacy.test', signed: true, records: ['@ IN MX 10 mta', 'mta IN A 127.0.0.1', `_25._tcp.mta IN TLSA ${spki311(mta.cert)}`] },
      { name: 'nullmx.test', signed: true, records: ['@ IN MX 0 .'] },
      { name: 'retry.test', signed: true, records: ['@ IN MX 10 mx', 'mx IN A 127.0.0.1'] },
      { name: 'refuse.test', signed: false, records: ['@ IN MX 10 mx', 'mx IN A 127.0.0.1'] },
      { name: 'mixed.test', signed: false, records: ['@ IN MX 10 mx', 'mx IN A 127.0.0.1'] },
      { name: 'bulk.test', signed: true, records: ['@ IN MX 10 mx', 'mx IN A 127.0.0.1'] },
      { name: 'loop.test', signed: true, records: ['@ IN MX 10 mx', 'mx IN A 127.0.0.1'] },
    ], {
      AFTERSMTP_BRIDGE__SMTP__MX__PORT: String(ownMxPort),
      AFTERSMTP_BRIDGE__SMTP__OUTBOUND__PORT_MAP: JSON.stringify(portMap),
      AFTERSMTP_FEDERATION__RETRY__INITIAL_MS: '200',
      AFTERSMTP_FEDERATION__RETRY__MAX_MS: '1000',
    });
    await lab.start();
  }, 120_000);

  afterAll(async () => {
    await lab.close();
    await postfix?.stop();
    await flaky?.close();
    await refusing?.close();
    await mixed?.close();
  });

  it('a real Postfix found by MX takes the message over DANE-verified STARTTLS; both DKIM signatures pass, aligned, and DMARC p=reject passes', async () => {
    const { id, legacy } = await lab.send('alice', ['carol@legacy.test', 'dave@legacy.test'], 'to postfix', { text: 'Hello Carol and Dave.' });
    expect(legacy).toEqual(['carol@legacy.test', 'dave@legacy.test']);
    for (const r of ['carol@legacy.test', 'dave@legacy.test']) expect(await lab.queueRow(id, r, ['delivered', 'failed'])).toMatchObject({ transport: 'smtp', state: 'delivered', attempts: 1 });
    const files = await until('both copies in the maildir', async () => {
      const texts = readdirSync(postfix.maildir).map((f) => readFileSync(join(postfix.maildir, f), 'utf8')).filter((t) => t.includes('Subject: to postfix'));
      return texts.length === 2 ? texts : undefined;
    });
    const dns = new DnsPacketResolver({ servers: [lab.dns.resolver], timeoutMs: 2000 });
    for (const stored of files) {
      expect(stored).toMatch(/^Return-Path: <alice@a\.test>/);
      // Postfix says ESMTPS for a message that came over TLS.
      expect(stored).toMatch(/Received: from a\.test [^\n]*\n[^\n]*by mta\.legacy\.test \(Postfix\) with ESMTPS/);
      expect(stored).toMatch(/^From: <?alice@a\.test>?$/m);
      // The check a receiving MTA makes, on the message as it arrived (Postfix stores LF line ends).
      const verdicts = await verifyMessage({
        message: Buffer.from(stored.replace(/\r?\n/g, '\r\n')), ip: '127.0.0.1', helo: NODE_DOMAIN, mailFrom: `alice@${NODE_DOMAIN}`, resolver: dns, authservId: 'mta.legacy.test',
      });
      expect(verdicts.dkim.map((d) => ({ result: d.result, domain: d.domain, algo: d.algo, aligned: d.aligned })).sort((a, b) => a.algo.localeCompare(b.algo))).toEqual([
        { result: 'pass', domain: NODE_DOMAIN, algo: 'ed25519-sha256', aligned: true },
        { result: 'pass', domain: NODE_DOMAIN, algo: 'rsa-sha256', aligned: true },
      ]);
      expect(verdicts.dmarc).toMatchObject({ result: 'pass', domain: NODE_DOMAIN, alignment: { dkim: true } });
    }
    // The node recorded how it went: DANE-authenticated TLS to the MX it found in DNS.
    const receipts = lab.readStore((db) => db.prepare('SELECT receipt FROM outbound WHERE hex(message_id) = ?').all(id.toUpperCase()) as { receipt: string }[]);
    for (const r of receipts) expect(JSON.parse(r.receipt)).toMatchObject({ via: 'smtp', mx: 'mta.legacy.test', tls: { authenticated: 'dane' } });
  }, 60_000);

  it('a null MX (RFC 7505) fails the recipient at once: the queue says failed, and alice gets a notice with Status 5.1.10', async () => {
    const { id } = await lab.send('alice', ['erin@nullmx.test'], 'to nowhere');
    const row = await lab.queueRow(id, 'erin@nullmx.test', ['failed', 'delivered']);
    expect(row).toMatchObject({ state: 'failed', attempts: 1, lastError: expect.stringMatching(/^NULL_MX: /) });
    const [notice] = await lab.receive('alice', 1);
    expect(notice).toMatchObject({ from: `postmaster@${NODE_DOMAIN}`, subject: 'Undelivered Mail Returned to Sender', verified: true });
    const status = deliveryStatus(notice!);
    expect(status).toMatch(/^Final-Recipient: rfc822; erin@nullmx\.test\r$/m);
    expect(status).toMatch(/^Action: failed\r$/m);
    expect(status).toMatch(/^Status: 5\.1\.10\r$/m);
    expect(Buffer.from(notice!.body!).toString()).toMatch(/Reason: the recipient domain accepts no mail \(null MX\)/);
  }, 60_000);

  it('a 451 and then a 250: delivered once, on the second attempt', async () => {
    const { id } = await lab.send('alice', ['frank@retry.test'], 'second time lucky');
    const row = await lab.queueRow(id, 'frank@retry.test', ['delivered', 'failed']);
    expect(row).toMatchObject({ state: 'delivered', attempts: 2 });
    expect(flakyMailCommands).toBe(2);
    expect(flaky.messages.filter((m) => m.data.toString().includes('Subject: second time lucky'))).toHaveLength(1);
  }, 60_000);

  it('a 550 5.1.1 fails the recipient: the notice names the status, the server\'s reply and the server', async () => {
    const { id } = await lab.send('alice', ['nobody@refuse.test'], 'to nobody');
    expect(await lab.queueRow(id, 'nobody@refuse.test', ['failed', 'delivered'])).toMatchObject({ state: 'failed', attempts: 1 });
    const [notice] = await lab.receive('alice', 1);
    const status = deliveryStatus(notice!);
    expect(status).toMatch(/^Final-Recipient: rfc822; nobody@refuse\.test\r$/m);
    expect(status).toMatch(/^Status: 5\.1\.1\r$/m);
    expect(status).toMatch(/^Remote-MTA: dns; mx\.refuse\.test\r$/m);
    expect(status).toMatch(/^Diagnostic-Code: smtp; 550 5\.1\.1 no such user here\r$/m);
    expect(refusing.messages).toHaveLength(0);
  }, 60_000);

  it('a server that answers 451 for as long as the message lives: the recipient fails EXPIRED and the notice says 5.4.7 (delivery time expired)', async () => {
    const { id } = await lab.send('alice', ['slow@refuse.test'], 'short-lived', { lifetimeMs: 3000 });
    const row = await lab.queueRow(id, 'slow@refuse.test', ['failed', 'delivered']);
    expect(row).toMatchObject({ state: 'failed', lastError: expect.stringMatching(/^EXPIRED: /) });
    expect(row.attempts).toBeGreaterThanOrEqual(2); // deferred by the 451 at least once before it expired
    const [notice] = await lab.receive('alice', 1);
    const status = deliveryStatus(notice!);
    expect(status).toMatch(/^Final-Recipient: rfc822; slow@refuse\.test\r$/m);
    expect(status).toMatch(/^Status: 5\.4\.7\r$/m);
    expect(Buffer.from(notice!.body!).toString()).toMatch(/Reason: the message expired before the recipient domain accepted it/);
    expect(refusing.messages).toHaveLength(0);
  }, 60_000);

  it('one transaction, three outcomes: the accepted recipient gets one copy, the refused one a notice, the deferred one its copy on a later attempt', async () => {
    const to = ['ok@mixed.test', 'gone@mixed.test', 'later@mixed.test'];
    const { id } = await lab.send('alice', to, 'three ways');
    expect(await lab.queueRow(id, 'ok@mixed.test', ['delivered', 'failed'])).toMatchObject({ state: 'delivered', attempts: 1 });
    expect(await lab.queueRow(id, 'gone@mixed.test', ['delivered', 'failed'])).toMatchObject({ state: 'failed', attempts: 1 });
    expect(await lab.queueRow(id, 'later@mixed.test', ['deferred'])).toMatchObject({ lastError: expect.stringContaining('452 4.2.2') });
    delete mixedRefusals['later@mixed.test'];
    const later = await lab.queueRow(id, 'later@mixed.test', ['delivered', 'failed']);
    expect(later.state).toBe('delivered');
    expect(later.attempts).toBeGreaterThanOrEqual(2);
    const copies = mixed.messages.filter((m) => m.data.toString().includes('Subject: three ways'));
    // Each transaction names only the recipients still due: ok once, later once, gone never.
    expect(copies.map((m) => m.rcpts.map((r) => r.address))).toEqual([['ok@mixed.test'], ['later@mixed.test']]);
    const [notice] = await lab.receive('alice', 1);
    const status = deliveryStatus(notice!);
    expect(status.match(/^Final-Recipient: .*$/gm)).toEqual(['Final-Recipient: rfc822; gone@mixed.test']);
    expect(status).toMatch(/^Status: 5\.1\.1\r$/m);
  }, 60_000);

  it('twenty messages to one domain at once: each arrives exactly once, over reused connections', async () => {
    const connectionsBefore = refusing.connections;
    const sent = await Promise.all(Array.from({ length: 20 }, (_, i) => lab.send('alice', [`bulk${i % 3}@bulk.test`], `bulk ${i}`)));
    const ids = new Set(sent.map((m) => m.id));
    const rows = await until('all twenty finished', async () => {
      const mine = (await lab.queue()).filter((r) => ids.has(r.messageId));
      return mine.length === 20 && mine.every((r) => r.state === 'delivered' || r.state === 'failed') ? mine : undefined;
    });
    expect(rows.map((r) => `${r.state} ${r.attempts}`)).toEqual(Array(20).fill('delivered 1'));
    const subjects = refusing.messages.map((m) => /^Subject: (bulk \d+)\r$/m.exec(m.data.toString())?.[1]).filter(Boolean);
    expect(subjects.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `bulk ${i}`).sort());
    // At most maxConnectionsPerHost (8) connections for the burst, not one per message.
    expect(refusing.connections - connectionsBefore).toBeLessThanOrEqual(8);
  }, 60_000);

  it('a message larger than the far end takes (SIZE) fails with 5.3.4 and a notice; nothing is sent', async () => {
    const { id } = await lab.send('alice', ['big@refuse.test'], 'too big', { text: 'x'.repeat(76).concat('\n').repeat(2000) });
    const row = await lab.queueRow(id, 'big@refuse.test', ['failed', 'delivered']);
    expect(row).toMatchObject({ state: 'failed', attempts: 1 });
    const [notice] = await lab.receive('alice', 1);
    expect(deliveryStatus(notice!)).toMatch(/^Status: 5\.3\.4\r$/m);
    expect(refusing.messages.filter((m) => m.data.toString().includes('Subject: too big'))).toEqual([]);
  }, 60_000);

  it('a legacy domain whose MX is this node itself: the node\'s MX refuses to relay (5.7.1), no loop', async () => {
    const { id } = await lab.send('alice', ['max@loop.test'], 'round and round');
    const row = await lab.queueRow(id, 'max@loop.test', ['failed', 'delivered']);
    expect(row).toMatchObject({ state: 'failed', attempts: 1, lastError: expect.stringContaining('550 5.7.1') });
    const [notice] = await lab.receive('alice', 1);
    expect(deliveryStatus(notice!)).toMatch(/^Status: 5\.7\.1\r$/m);
    expect((await lab.queue()).filter((r) => r.recipient === 'max@loop.test')).toHaveLength(1);
  }, 60_000);
});
