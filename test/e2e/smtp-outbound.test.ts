// Mail from an app to a domain without an AfterSMTP node: the node answers Resolve with its bridge key,
// opens the message, DKIM-signs it and delivers it over SMTP through the queue.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { decodeSignedMessage } from '../../identity/index.ts';
import { initNodeWithMailboxes, jsonLines, runCli, startNodeProcess, tempDir, until, stopNode, type RunningNode } from '../helpers.ts';
import { connect, profileResolver, readProfile, sealFor, submit } from '../../gateway/client/index.ts';
import { startReceiver, type Receiver } from '../bridge/smtp-receiver.ts';
import { startDnsServer, type TestDnsServer } from '../dns-server.ts';
import nodemailer from 'nodemailer';

describe('sending to a legacy domain over a static SMTP route', () => {
  const dir = tempDir('smtp-out-');
  let node: RunningNode;
  let receiver: Receiver;
  let data: string;

  beforeAll(async () => {
    receiver = await startReceiver({ refuseRcpt: { 'nobody@legacy.test': [550, '5.1.1 no such user'], 'busy@legacy.test': [451, '4.2.1 mailbox busy'] } });
    const made = await initNodeWithMailboxes(dir.path, 'a.test');
    data = made.data;
    const route = await runCli(['route', 'add', 'legacy.test', '--endpoint', `smtp://127.0.0.1:${receiver.port}`, '--tls', 'may', '--data', data]);
    expect(route.code, route.stderr).toBe(0);
    node = await startNodeProcess(data);
  });
  afterAll(async () => {
    await stopNode(node);
    await receiver?.close();
    dir.cleanup();
  });

  it('an app sends to carol@legacy.test: told it leaves end-to-end encryption, delivered DKIM-signed with the receipt field', async () => {
    const sent = await runCli(['send', '--profile', join(dir.path, 'alice.json'), '--node', node.ready.grpc, '--to', 'carol@legacy.test', '--subject', 'hello', '--body', 'over smtp']);
    expect(sent.code, sent.stderr).toBe(0);
    expect(sent.stdout).toMatch(/carol@legacy\.test: no AfterSMTP node there; your node sends this copy on over SMTP, so end-to-end encryption ends at your node/);
    const got = await until('delivered', async () => receiver.messages.find((m) => m.rcpts.some((r) => r.address === 'carol@legacy.test')));
    expect(got.mailFrom).toBe('alice@a.test');
    const text = got.data.toString();
    expect(text).toMatch(/^DKIM-Signature: .*a=rsa-sha256/m);
    expect(text).toMatch(/^DKIM-Signature: .*a=ed25519-sha256/m);
    expect(text).toMatch(/^AfterSMTP-Receipt: origin=a\.test\/aftersmtp; leaf=\d+/m);
    expect(text).toMatch(/^Subject: hello/m);
    expect(text).toMatch(/over smtp/);
    const queue = await runCli(['queue', 'list', '--data', data, '--node', node.ready.grpc, '--json']);
    const items = JSON.parse(queue.stdout) as { recipient: string; transport: string; state: string }[];
    expect(items.find((i) => i.recipient === 'carol@legacy.test')).toMatchObject({ transport: 'smtp', state: 'delivered' });
  });

  it('mail submitted on the submission port to a legacy recipient goes out the same way, and only with the mailbox in From', async () => {
    const alice = JSON.parse(readFileSync(join(dir.path, 'alice.json'), 'utf8')) as { token: string };
    const ca = readFileSync(join(data, 'tls', 'ca.crt'), 'utf8');
    const a = (node.ready as { submission?: string }).submission!;
    const transport = nodemailer.createTransport({
      host: a.slice(0, a.lastIndexOf(':')), port: Number(a.slice(a.lastIndexOf(':') + 1)), secure: false, requireTLS: true,
      auth: { user: 'alice@a.test', pass: alice.token }, tls: { ca, servername: 'localhost' },
    });
    try {
      await transport.sendMail({ from: 'alice@a.test', to: 'dan@legacy.test', subject: 'from a mail client', text: 'submitted' });
      await expect(transport.sendMail({ envelope: { from: 'alice@a.test', to: ['dan@legacy.test'] }, from: 'ceo@a.test', to: 'dan@legacy.test', subject: 'spoof', text: 'x' }))
        .rejects.toMatchObject({ responseCode: 553 });
    } finally {
      transport.close();
    }
    const got = await until('delivered', async () => receiver.messages.find((m) => m.rcpts.some((r) => r.address === 'dan@legacy.test')));
    const text = got.data.toString();
    expect(got.mailFrom).toBe('alice@a.test');
    expect(text).toMatch(/^DKIM-Signature: .*d=a\.test/m);
    expect(text.replace(/\r\n[ \t]+/g, ' ')).toMatch(/^Received: from .* by a\.test with ESMTPSA/m);
    expect(text).toMatch(/^Subject: from a mail client/m);
    expect(receiver.messages.filter((m) => m.data.toString().includes('Subject: spoof'))).toHaveLength(0);
  });

  it('a 5xx for a recipient fails it and puts a delivery status notification in the sender\'s mailbox', async () => {
    const sent = await runCli(['send', '--profile', join(dir.path, 'alice.json'), '--node', node.ready.grpc, '--to', 'nobody@legacy.test', '--subject', 'x', '--body', 'y']);
    expect(sent.code, sent.stderr).toBe(0);
    const sub = await runCli(['subscribe', '--profile', join(dir.path, 'alice.json'), '--node', node.ready.grpc, '--count', '1', '--save-dir', join(dir.path, 'saved')]);
    expect(sub.code, sub.stderr).toBe(0);
    const [notice] = jsonLines(sub.stdout);
    expect(notice.from).toBe('postmaster@a.test');
    expect(notice.subject).toMatch(/Undelivered Mail Returned to Sender/);
    // An RFC 3464 report: the server's reply, where it came from, and the headers of the message as sent.
    const report = Buffer.from(decodeSignedMessage(readFileSync(join(dir.path, 'saved', `${notice.messageId}.signed`))).body).toString().replace(/\r\n[ \t]+/g, ' ');
    expect(report).toMatch(/^Content-Type: multipart\/report; report-type=delivery-status;/m);
    expect(report).toMatch(/^Final-Recipient: rfc822; nobody@legacy\.test\r\nAction: failed\r\nStatus: 5\.1\.1\r\nRemote-MTA: dns; 127\.0\.0\.1\r\nDiagnostic-Code: smtp; 550 5\.1\.1 no such user/m);
    expect(report).toMatch(/^Content-Type: text\/rfc822-headers\r\n[\s\S]*^DKIM-Signature: [\s\S]*^Subject: x\r\n/m);
    expect(report).not.toMatch(/^\r\ny\r\n/m); // RET not given: headers only
  });

  it('a message whose lifetime ends before its next retry (the default, a minute) fails at its expiry, not at that retry', async () => {
    const alice = readProfile(join(dir.path, 'alice.json'));
    const clients = connect(alice, node.ready.grpc);
    let id: string;
    try {
      const sealed = await sealFor(alice, clients, profileResolver(alice), { to: ['busy@legacy.test'], subject: 'soon gone', text: 'x', lifetimeMs: 3000 });
      id = Buffer.from((await submit(clients, sealed.envelope)).messageId).toString('hex');
    } finally {
      clients.close();
    }
    const row = await until('the recipient failed', async () => {
      const queue = await runCli(['queue', 'list', '--data', data, '--json']);
      const item = (JSON.parse(queue.stdout) as { messageId: string; state: string; lastError: string; attempts: number }[]).find((i) => i.messageId === id);
      return item?.state === 'failed' ? item : undefined;
    }, 20_000);
    expect(row).toMatchObject({ lastError: expect.stringMatching(/^EXPIRED: /), attempts: 2 });
  });
});

describe('forwarding to an address elsewhere', () => {
  const dir = tempDir('smtp-fwd-');
  let node: RunningNode;
  let receiver: Receiver;
  let dns: TestDnsServer;
  let data: string;
  const mx = () => { const a = (node.ready as { smtp?: string }).smtp!; return { host: a.slice(0, a.lastIndexOf(':')), port: Number(a.slice(a.lastIndexOf(':') + 1)) }; };

  beforeAll(async () => {
    // origin.test's SPF allows the loopback client: its mail to the MX passes SPF, and DMARC by alignment.
    dns = await startDnsServer([
      { type: 'TXT', name: 'origin.test', data: 'v=spf1 ip4:127.0.0.1 -all' },
      { type: 'TXT', name: '_dmarc.origin.test', data: 'v=DMARC1; p=reject' },
    ]);
    receiver = await startReceiver({ refuseRcpt: { 'gone@far.test': [550, '5.1.1 no such user here'] } });
    const made = await initNodeWithMailboxes(dir.path, 'a.test');
    data = made.data;
    // Every domain without an AfterSMTP node goes to the receiver (a smarthost).
    expect((await runCli(['route', 'add', '*', '--endpoint', `smtp://127.0.0.1:${receiver.port}?tls=may`, '--data', data])).code).toBe(0);
    const fwd = await runCli(['mailbox', 'forward', 'alice@a.test', '--to', 'carol@far.test', '--data', data, '--json']);
    expect(fwd.code, fwd.stderr).toBe(0);
    expect(JSON.parse(fwd.stdout)).toEqual({ event: 'forward-set', address: 'alice@a.test', to: 'carol@far.test', keep: false });
    expect((await runCli(['mailbox', 'forward', 'nobody@elsewhere.test', '--to', 'x@far.test', '--data', data])).code).not.toBe(0);
    expect((await runCli(['mailbox', 'forward', 'bob@a.test', '--to', 'gone@far.test', '--data', data])).code).toBe(0);
    node = await startNodeProcess(data, { AFTERSMTP_DNS__SERVERS: JSON.stringify([dns.address]) });
  });
  afterAll(async () => {
    await stopNode(node);
    await receiver?.close();
    await dns?.close();
    dir.cleanup();
  });

  it('mail to a forwarding address goes on ARC-sealed by the node with an SRS envelope sender; a bounce to that address returns to the original sender', async () => {
    const transport = nodemailer.createTransport({ ...mx(), secure: false, ignoreTLS: true, name: 'mta.origin.test' });
    try {
      await transport.sendMail({ envelope: { from: 'dave@origin.test', to: ['alice@a.test'] }, from: 'dave@origin.test', to: 'alice@a.test', subject: 'to be forwarded', text: 'fwd body' });
    } finally {
      transport.close();
    }
    const forwarded = await until('forwarded', async () => receiver.messages.find((m) => m.rcpts.some((r) => r.address === 'carol@far.test')));
    expect(forwarded.mailFrom).toMatch(/^SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=origin\.test=dave@a\.test$/);
    const text = forwarded.data.toString().replace(/\r\n[ \t]+/g, ' '); // unfolded
    const seal = /^ARC-Seal: (.*)$/m.exec(text)?.[1] ?? '';
    expect(seal.split(/;\s*/)).toEqual(expect.arrayContaining(['i=1', 'cv=none', 'd=a.test']));
    expect(text).toMatch(/^ARC-Authentication-Results: i=1; .*spf=pass/m);
    expect(text).toMatch(/^Subject: to be forwarded/m);

    // The far end bounces to the SRS address: the node sends it back to dave, with the null sender.
    const bounce = nodemailer.createTransport({ ...mx(), secure: false, ignoreTLS: true, name: 'mta.far.test' });
    try {
      await bounce.sendMail({ envelope: { from: '', to: [forwarded.mailFrom] }, from: 'MAILER-DAEMON@far.test', to: forwarded.mailFrom, subject: 'Undelivered Mail', text: 'no such user carol' } as nodemailer.SendMailOptions);
    } finally {
      bounce.close();
    }
    const returned = await until('returned', async () => receiver.messages.find((m) => m.rcpts.some((r) => r.address === 'dave@origin.test')));
    expect(returned.mailFrom).toBe('');
    expect(returned.data.toString()).toMatch(/no such user carol/);

    // A made-up SRS address is no address of the node.
    const forged = nodemailer.createTransport({ ...mx(), secure: false, ignoreTLS: true, name: 'mta.far.test' });
    try {
      await expect(forged.sendMail({ envelope: { from: '', to: ['SRS0=AAAA=AA=origin.test=dave@a.test'] }, from: 'x@far.test', to: 'y@a.test', subject: 's', text: 't' } as nodemailer.SendMailOptions))
        .rejects.toMatchObject({ responseCode: 550 });
    } finally {
      forged.close();
    }
  });


  it('a forward the far end refuses is bounced by the node to the original sender, with the null sender', async () => {
    const transport = nodemailer.createTransport({ ...mx(), secure: false, ignoreTLS: true, name: 'mta.origin.test' });
    try {
      await transport.sendMail({ envelope: { from: 'erin@origin.test', to: ['bob@a.test'] }, from: 'erin@origin.test', to: 'bob@a.test', subject: 'to a gone forward', text: 'x' });
    } finally {
      transport.close();
    }
    const bounce = await until('the bounce', async () => receiver.messages.find((m) => m.rcpts.some((r) => r.address === 'erin@origin.test')));
    expect(bounce.mailFrom).toBe('');
    const text = bounce.data.toString().replace(/\r\n[ \t]+/g, ' ');
    expect(text).toMatch(/^From: Mail Delivery System <postmaster@a\.test>/m);
    expect(text).toMatch(/^Final-Recipient: rfc822; gone@far\.test\r\nAction: failed\r\nStatus: 5\.1\.1/m);
    expect(text).toMatch(/^Subject: to a gone forward/m); // the returned headers
  });
});
