// The node's side of the SMTP bridge, on a real node with a real store, ledger and DNS (test/dns-lab.ts):
// the handler the listeners call makes received mail durable as an AfterSMTP message signed by the node,
// and the recipient's app shows it as bridged, verified only when DMARC passed. The messages handed to the
// handler are what the MX and submission listeners hand over: the bridge's Received (and, on MX,
// Authentication-Results from verifyMessage over the lab's DNS) on top of the message as received.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFileSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { dkimSign } from 'mailauth';
import { tempDir, initNodeWithMailboxes, runCli } from '../helpers.ts';
import { startDnsLab, type DnsLab } from '../dns-lab.ts';
import { AfterSmtpNode } from '../../gateway/node/index.ts';
import { connect, profileResolver, subscribe, type MailboxProfile, type ReceivedMessage } from '../../gateway/client/index.ts';
import { bridgeErrorFor, type SmtpHandler } from '../../gateway/smtp/index.ts';
import { databaseForTests } from '../../gateway/store/index.ts';
import { GatewayError } from '../../gateway/core/index.ts';
import { BridgeError, verifyMessage, type InboundMessage, type ListenerKind } from '../../bridge/index.ts';

const ALLOWED_IP = '192.0.2.10';
const OTHER_IP = '198.51.100.7';
const HOST = 'example.test';
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });

function publicKeyValue(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'der' }).toString('base64');
}

function txt(owner: string, value: string): string {
  return `${owner} IN TXT ${(value.match(/.{1,250}/g) ?? ['']).map((c) => `"${c}"`).join(' ')}`;
}

function rfc5322(from: string, subject: string, to = 'bob@example.test'): Buffer {
  return Buffer.from([
    `From: Sender <${from}>`,
    `To: <${to}>`,
    `Subject: ${subject}`,
    'Date: Mon, 07 Dec 2026 01:00:00 +0000',
    `Message-ID: <${Math.random().toString(36).slice(2)}@mail.test>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Hello through the bridge.',
    '',
  ].join('\r\n'));
}

async function dkimSigned(message: Buffer): Promise<Buffer> {
  const { signatures, errors } = await dkimSign(message, {
    canonicalization: 'relaxed/relaxed',
    signatureData: [{ signingDomain: 'mail.test', selector: 'rsa', privateKey: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string }],
  } as Parameters<typeof dkimSign>[1]);
  expect(errors).toEqual([]);
  return Buffer.concat([Buffer.from(signatures), message]);
}

describe('the SMTP bridge on the node', () => {
  const dir = tempDir();
  let lab: DnsLab;
  let node: AfterSmtpNode;
  let handler: SmtpHandler;
  let alice: MailboxProfile;
  let bob: MailboxProfile;
  let grpcAddress = '';
  let session = 0;

  /** What the MX listener hands over: verdicts over the lab's DNS, then the bridge's trace fields on top. */
  async function fromMx(raw: Buffer, opts: { ip: string; helo: string; mailFrom: string; from: string; to?: string[] }): Promise<InboundMessage> {
    const verdicts = await verifyMessage({ message: raw, ip: opts.ip, helo: opts.helo, mailFrom: opts.mailFrom, resolver: node.dns, authservId: HOST });
    const sessionId = `s${++session}`;
    // As bridge/inbound writes them: its Authentication-Results above its Received (RFC 5321 §4.4 form).
    const trace = `Authentication-Results: ${verdicts.authenticationResults}\r\n`
      + `Received: from ${opts.helo} ([${opts.ip}])\r\n\tby ${HOST} with ESMTPS (TLSv1.3 TLS_AES_256_GCM_SHA384)\r\n\tid ${sessionId}\r\n\tfor <bob@example.test>;\r\n\tMon, 07 Dec 2026 01:00:01 +0000\r\n`;
    return {
      sessionId, listener: 'mx', clientIp: opts.ip, helo: opts.helo, tls: true, mailFrom: opts.mailFrom,
      recipients: (opts.to ?? ['bob@example.test']).map((address) => ({ address })), dsn: {}, requireTls: false,
      headerFrom: opts.from, message: Buffer.concat([Buffer.from(trace), raw]), verdicts,
    };
  }

  /** What the submission listener hands over after AUTH: its Received (ESMTPSA, RFC 3848), no verdicts. */
  function fromSubmission(raw: Buffer, authenticated: string, to: string[], listener: ListenerKind = 'submission'): InboundMessage {
    const sessionId = `s${++session}`;
    const trace = `Received: from client.example ([127.0.0.1])\r\n\tby ${HOST} with ESMTPSA id ${sessionId};\r\n\tMon, 07 Dec 2026 01:00:01 +0000\r\n`;
    return {
      sessionId, listener, clientIp: '127.0.0.1', helo: 'client.example', tls: true, authenticated, mailFrom: authenticated,
      recipients: to.map((address) => ({ address })), dsn: {}, requireTls: false, headerFrom: authenticated,
      message: Buffer.concat([Buffer.from(trace), raw]),
    };
  }

  /** The next message in bob's mailbox, as his app opens it (acknowledged). */
  async function nextForBob(): Promise<ReceivedMessage> {
    const clients = connect(bob, grpcAddress);
    try {
      let got: ReceivedMessage | undefined;
      await subscribe(bob, clients, profileResolver(bob), { count: 1, onMessage: (m) => { got = m; } });
      return got!;
    } finally {
      clients.close();
    }
  }

  beforeAll(async () => {
    lab = await startDnsLab([{
      name: 'mail.test', signed: true, records: [
        txt('@', `v=spf1 ip4:${ALLOWED_IP} -all`),
        txt('rsa._domainkey', `v=DKIM1; k=rsa; p=${publicKeyValue(rsa.publicKey)}`),
        txt('_dmarc', 'v=DMARC1; p=none'),
      ],
    }]);
    const made = await initNodeWithMailboxes(dir.path, HOST);
    ({ alice, bob } = made);
    node = new AfterSmtpNode({ dataDir: made.data, env: { AFTERSMTP_DNS__SERVERS: JSON.stringify([lab.resolver]) }, logger: pino({ level: 'silent' }) });
    grpcAddress = (await node.start()).grpc;
    handler = node.smtp!.handler;
  }, 60_000);

  afterAll(async () => {
    await node?.stop(500);
    await lab?.close();
    dir.cleanup();
  });

  it('says which recipients are local mailboxes, unknown ones of its domains, and elsewhere without a lookup for an anonymous client', async () => {
    expect(await handler.recipient('bob@example.test', { listener: 'mx' })).toBe('local');
    expect(await handler.recipient('BOB@Example.Test', { listener: 'mx' })).toBe('local');
    expect(await handler.recipient('nobody@example.test', { listener: 'mx' })).toBe('unknown');
    expect(await handler.recipient('someone@mail.test', { listener: 'mx' })).toBe('legacy');
  });

  it('makes an MX message durable, and bob sees it via smtp, verified, with the envelope sender, client and verdicts when DMARC passed', async () => {
    const raw = await dkimSigned(rfc5322('carol@mail.test', 'dmarc pass'));
    const inbound = await fromMx(raw, { ip: ALLOWED_IP, helo: 'mta.mail.test', mailFrom: 'bounce@mail.test', from: 'carol@mail.test' });
    expect(inbound.verdicts!.dmarc.result).toBe('pass');
    const leavesBefore = node.ledger.log.size;
    const { messageId } = await handler.accept(inbound, new AbortController().signal);
    expect(messageId).toMatch(/^[0-9a-f]{32}$/);
    expect(node.ledger.log.size).toBe(leavesBefore + 1);
    const stored = node.storage.deliveries.pending('bob@example.test', 0, 100).at(-1)!;
    expect(stored.authenticatedSender).toBe('carol@mail.test');

    const m = await nextForBob();
    expect(m.messageId).toBe(messageId);
    expect(m.fromDid).toBe(node.keys.did);
    expect(m).toMatchObject({
      via: 'smtp', from: 'carol@mail.test', subject: 'dmarc pass', verified: true,
      mailFrom: 'bounce@mail.test', clientIp: ALLOWED_IP, helo: 'mta.mail.test',
      auth: { spf: 'pass', dkim: 'pass', dmarc: 'pass', dmarcDomain: 'mail.test', arc: 'none' },
    });
    expect(m.reason).toBeUndefined();
    // The body is the message as received with the bridge's trace fields on top.
    expect(Buffer.from(m.body!).equals(inbound.message)).toBe(true);
  });

  it('shows an MX message without DKIM from a host SPF does not allow as not verified, saying DMARC failed, and vouches for no sender', async () => {
    const raw = rfc5322('carol@mail.test', 'spf fail');
    const inbound = await fromMx(raw, { ip: OTHER_IP, helo: 'spoofer.example', mailFrom: 'carol@mail.test', from: 'carol@mail.test' });
    expect(inbound.verdicts!.spf.result).toBe('fail');
    expect(inbound.verdicts!.dmarc.result).toBe('fail');
    await handler.accept(inbound, new AbortController().signal);
    const stored = node.storage.deliveries.pending('bob@example.test', 0, 100).at(-1)!;
    expect(stored.authenticatedSender).toBe('');
    expect(stored.senderDomain).toBe('');

    const m = await nextForBob();
    expect(m).toMatchObject({ via: 'smtp', from: 'carol@mail.test', verified: false, clientIp: OTHER_IP, helo: 'spoofer.example', auth: { spf: 'fail', dkim: 'none', dmarc: 'fail' } });
    expect(m.reason).toMatch(/DMARC did not pass for mail\.test \(dmarc=fail, spf=fail, dkim=none\)/);
  });

  it('refuses MX mail for another domain (no open relay) with nothing stored', async () => {
    const inbound = await fromMx(rfc5322('carol@mail.test', 'relay'), { ip: ALLOWED_IP, helo: 'mta.mail.test', mailFrom: 'bounce@mail.test', from: 'carol@mail.test', to: ['bob@example.test', 'dave@elsewhere.test'] });
    const leaves = node.ledger.log.size;
    await expect(handler.accept(inbound, new AbortController().signal)).rejects.toMatchObject({ name: 'BridgeError', code: 'RELAY_DENIED' });
    expect(node.ledger.log.size).toBe(leaves);
  });

  it('authenticates a submission client by mailbox address and its API token, and no other token', async () => {
    expect(await handler.authenticate('alice@example.test', alice.token)).toEqual({ address: 'alice@example.test' });
    expect(await handler.authenticate('Alice@Example.Test', alice.token)).toEqual({ address: 'alice@example.test' });
    expect(await handler.authenticate('alice@example.test', bob.token)).toBeNull();
    expect(await handler.authenticate('alice@example.test', `${alice.token}x`)).toBeNull();
    expect(await handler.authenticate('nobody@example.test', alice.token)).toBeNull();
    expect(await handler.authenticate('alice@mail.test', alice.token)).toBeNull();
  });

  it('delivers a submitted message to a local mailbox: bob sees it via submission, verified as the authenticated mailbox', async () => {
    const inbound = fromSubmission(rfc5322('alice@example.test', 'submitted'), 'alice@example.test', ['bob@example.test']);
    const { messageId } = await handler.accept(inbound, new AbortController().signal);
    const m = await nextForBob();
    expect(m).toMatchObject({ messageId, via: 'submission', from: 'alice@example.test', subject: 'submitted', verified: true, helo: 'client.example', clientIp: '127.0.0.1' });
    expect(m.auth).toBeUndefined();
  });

  it('keeps the client\'s DSN parameters (RET, ENVID, NOTIFY, ORCPT) with the message, and none when it gave none', async () => {
    const inbound = fromSubmission(rfc5322('alice@example.test', 'dsn'), 'alice@example.test', ['bob@example.test']);
    const asked = {
      ...inbound,
      dsn: { ret: 'HDRS' as const, envid: 'env-42' },
      recipients: [{ address: 'bob@example.test', notify: ['SUCCESS' as const, 'FAILURE' as const], orcpt: 'rfc822;Bob@Example.test' }],
    };
    const { messageId } = await handler.accept(asked, new AbortController().signal);
    expect(node.storage.dsn.forMessage(Buffer.from(messageId, 'hex'))).toEqual({
      ret: 'HDRS', envid: 'env-42', recipients: [{ address: 'bob@example.test', notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;Bob@Example.test' }],
    });
    await nextForBob();
    const plain = await handler.accept(fromSubmission(rfc5322('alice@example.test', 'no dsn'), 'alice@example.test', ['bob@example.test']), new AbortController().signal);
    expect(node.storage.dsn.forMessage(Buffer.from(plain.messageId, 'hex'))).toBeUndefined();
    await nextForBob();
  });

  it('delivers one copy to a recipient the client named twice', async () => {
    const inbound = fromSubmission(rfc5322('alice@example.test', 'twice'), 'alice@example.test', ['bob@example.test', 'BOB@example.test']);
    const before = node.storage.deliveries.pending('bob@example.test', 0, 100_000).length;
    const { messageId } = await handler.accept(inbound, new AbortController().signal);
    expect(node.storage.deliveries.pending('bob@example.test', 0, 100_000).length).toBe(before + 1);
    expect((await nextForBob()).messageId).toBe(messageId);
  });

  it('saves a bridged message as <id>.eml (mode 0600) with subscribe --save-dir, and aftersmtp proof proves it is in the log', async () => {
    const raw = await dkimSigned(rfc5322('carol@mail.test', 'proof me'));
    const inbound = await fromMx(raw, { ip: ALLOWED_IP, helo: 'mta.mail.test', mailFrom: 'bounce@mail.test', from: 'carol@mail.test' });
    const { messageId } = await handler.accept(inbound, new AbortController().signal);
    const bobFile = join(dir.path, 'bob.json');
    const saveDir = join(dir.path, 'saved');
    const sub = await runCli(['subscribe', '--profile', bobFile, '--node', grpcAddress, '--count', '1', '--save-dir', saveDir, '--json']);
    expect(sub.code, sub.stderr).toBe(0);
    const line = JSON.parse(sub.stdout.trim().split('\n').at(-1)!);
    expect(line).toMatchObject({ messageId, via: 'smtp', from: 'carol@mail.test', verified: true, mailFrom: 'bounce@mail.test', auth: { dmarc: 'pass' } });
    const eml = join(saveDir, `${messageId}.eml`);
    expect(readFileSync(eml).equals(inbound.message)).toBe(true);
    expect(statSync(eml).mode & 0o777).toBe(0o600);

    const proof = await runCli(['proof', messageId, '--profile', bobFile, '--node', grpcAddress, '--json']);
    expect(proof.code, proof.stderr).toBe(0);
    const bundleFile = join(dir.path, 'bridged-proof.json');
    writeFileSync(bundleFile, proof.stdout);
    const verify = await runCli(['verify', bundleFile, '--profile', bobFile, '--node', grpcAddress, '--signed', join(saveDir, `${messageId}.signed`), '--json']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    const report = JSON.parse(verify.stdout);
    expect(report.result).toBe('valid-unanchored'); // this node anchors nowhere
    const steps = Object.fromEntries(report.steps.map((s: { name: string; status: string }) => [s.name, s.status]));
    expect(steps).toMatchObject({ 'message-hash': 'ok', 'message-signature': 'ok', leaf: 'ok', inclusion: 'ok' });
  }, 60_000);

  it('maps the node errors to the bridge refusals in one place', () => {
    const cases: [GatewayError, string][] = [
      [new GatewayError('STORAGE_FULL', 'full'), 'STORE_FULL'],
      [new GatewayError('SHUTTING_DOWN', 'bye'), 'SHUTTING_DOWN'],
      [new GatewayError('STORAGE', 'disk I/O error at /var/lib/x'), 'TEMPORARY'],
      [new GatewayError('UNKNOWN_RECIPIENT', 'no mailbox'), 'UNKNOWN_RECIPIENT'],
      [new GatewayError('TOO_LARGE', 'too big'), 'REFUSED'],
      [new GatewayError('DISCOVERY', 'dns'), 'TEMPORARY'],
    ];
    for (const [err, code] of cases) expect(bridgeErrorFor(err).code, err.code).toBe(code);
    // A fault of the node says nothing of its internals to the SMTP client.
    expect(bridgeErrorFor(new GatewayError('STORAGE', 'disk I/O error at /var/lib/x')).message).not.toMatch(/var\/lib/);
    expect(bridgeErrorFor(new Error('boom'))).toBeInstanceOf(BridgeError);
  });

  // Last: the store stays refusing for FULL_RECHECK_MS after it ran out of room.
  it('refuses with STORE_FULL and stores nothing when the store is full', async () => {
    // Injected fault: no page beyond those the store has now, as on a full disk.
    const pages = (databaseForTests(node.storage).prepare('PRAGMA page_count').get() as { page_count: number }).page_count;
    databaseForTests(node.storage).exec(`PRAGMA max_page_count=${pages}`);
    const big = (subject: string) => fromSubmission(Buffer.concat([rfc5322('alice@example.test', subject), Buffer.from('x'.repeat(60_000))]), 'alice@example.test', ['bob@example.test']);
    let refused: unknown;
    for (let i = 0; i < 200 && !refused; i++) {
      refused = await handler.accept(big(`fill ${i}`), new AbortController().signal).then(() => undefined, (err: unknown) => err);
    }
    expect(refused).toMatchObject({ name: 'BridgeError', code: 'STORE_FULL' });
    const leaves = node.ledger.log.size;
    const waiting = node.storage.deliveries.pending('bob@example.test', 0, 100_000).length;
    await expect(handler.accept(big('one more'), new AbortController().signal)).rejects.toMatchObject({ code: 'STORE_FULL' });
    expect(node.ledger.log.size).toBe(leaves);
    expect(node.storage.deliveries.pending('bob@example.test', 0, 100_000).length).toBe(waiting);
  }, 60_000);
});
