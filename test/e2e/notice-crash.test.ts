// A crash between recording a recipient's failure and storing the sender's failure notice. The node
// process is made to exit (code 137, as if killed) at one of two points by its test fault
// (TEST_FAULT_QUEUE_NOTICE): right after the failure is recorded, or right after the notice is stored and
// before it is marked so. After a restart without the fault the sender holds exactly one notice naming
// the recipient (or, for a forward, the original sender gets one bounce), and the queue still says
// failed: nothing lost, nothing twice.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { initNodeWithMailboxes, jsonLines, receiveMail, runCli, startNodeProcess, tempDir, until, stopNode, type RunningNode } from '../helpers.ts';
import { startReceiver, type Receiver } from '../bridge/smtp-receiver.ts';
import { startDnsServer, type TestDnsServer } from '../dns-server.ts';
import nodemailer from 'nodemailer';
import { deliveryStatus } from './outbound-lab.ts';

interface OutboundRow { state: string; noticed: number; last_error: string }

describe('a failure notice and a crash', () => {
  const dir = tempDir('notice-crash-');
  let node: RunningNode | undefined;
  let receiver: Receiver;
  let data: string;

  const start = async (fault?: string) => {
    node = await startNodeProcess(data, fault ? { TEST_FAULT_QUEUE_NOTICE: fault } : {});
    return node;
  };
  /** Reads the store beside the node (a WAL reader) or after it stopped. */
  const read = <T>(fn: (db: DatabaseSync) => T): T => {
    const db = new DatabaseSync(join(data, 'node.db'), { readOnly: true });
    try {
      return fn(db);
    } finally {
      db.close();
    }
  };
  const row = (id: string, recipient: string) =>
    read((db) => db.prepare('SELECT state, noticed, last_error FROM outbound WHERE hex(message_id) = ? AND recipient = ?').get(id.toUpperCase(), recipient) as OutboundRow | undefined);
  const heldEnvelope = (id: string) => read((db) => db.prepare('SELECT 1 AS one FROM outbound_envelopes WHERE hex(message_id) = ?').get(id.toUpperCase())) !== undefined;
  /** Every message alice's mailbox ever got (acknowledged ones stay until their retention). */
  const aliceMail = () => read((db) => Number((db.prepare(`SELECT count(*) AS n FROM deliveries WHERE mailbox = 'alice@a.test'`).get() as { n: number }).n));
  const send = async (to: string) => {
    const sent = await runCli(['send', '--profile', join(dir.path, 'alice.json'), '--node', node!.ready.grpc, '--to', to, '--subject', `to ${to}`, '--body', 'y', '--json']);
    expect(sent.code, sent.stderr).toBe(0);
    return jsonLines(sent.stdout)[0].messageId as string;
  };
  const crashed = async () => {
    expect(await node!.exited).toBe(137);
    node = undefined;
  };
  const queueState = async (id: string, recipient: string) => {
    const listed = await runCli(['queue', 'list', '--data', data, '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    return (JSON.parse(listed.stdout) as { messageId: string; recipient: string; state: string }[]).find((r) => r.messageId === id && r.recipient === recipient)?.state;
  };

  beforeAll(async () => {
    receiver = await startReceiver({ refuseRcpt: { 'gone@legacy.test': [550, '5.1.1 no such user'], 'left@legacy.test': [550, '5.1.1 no such user'] } });
    data = (await initNodeWithMailboxes(dir.path, 'a.test')).data;
    const route = await runCli(['route', 'add', 'legacy.test', '--endpoint', `smtp://127.0.0.1:${receiver.port}`, '--tls', 'may', '--data', data]);
    expect(route.code, route.stderr).toBe(0);
  });
  afterAll(async () => {
    await stopNode(node, 'SIGKILL');
    await receiver?.close();
    dir.cleanup();
  });

  it('killed after the failure is recorded and before its notice: the restarted node sends the notice, once', async () => {
    await start('failed-recorded');
    const id = await send('gone@legacy.test');
    await crashed();
    // The crash fell between the two writes: failed and owed its notice, the envelope kept, no notice yet.
    expect(row(id, 'gone@legacy.test')).toMatchObject({ state: 'failed', noticed: 0, last_error: expect.stringMatching(/^SMTP_REFUSED: /) });
    expect(heldEnvelope(id)).toBe(true);
    expect(aliceMail()).toBe(0);

    await start();
    await until('the notice marked stored', async () => (row(id, 'gone@legacy.test')?.noticed === 1 ? true : undefined));
    expect(aliceMail()).toBe(1);
    expect(heldEnvelope(id)).toBe(false); // nothing needs it any more
    const [notice] = await receiveMail(join(dir.path, 'alice.json'), node!.ready.grpc, 1, 30_000);
    expect(notice).toMatchObject({ from: 'postmaster@a.test', subject: 'Undelivered Mail Returned to Sender', verified: true });
    // Rebuilt from the queue's record: the code's status and reason, not the server's own reply.
    const status = deliveryStatus(notice!).replace(/\r\n[ \t]+/g, ' '); // unfolded
    expect(status).toMatch(/^Final-Recipient: rfc822; gone@legacy\.test\r$/m);
    expect(status).toMatch(/^Action: failed\r$/m);
    expect(status).toMatch(/^Status: 5\.0\.0\r$/m);
    expect(status).toMatch(/^Diagnostic-Code: smtp; SMTP_REFUSED: the recipient's mail server refused the message\r$/m);
    expect(await queueState(id, 'gone@legacy.test')).toBe('failed');
    node!.child.kill('SIGTERM');
    await node!.exited;
    node = undefined;
  }, 60_000);

  it('killed after the notice is stored and before it is marked so: after the restart still one notice, not two', async () => {
    const before = aliceMail();
    await start('notice-stored');
    const id = await send('left@legacy.test');
    await crashed();
    expect(row(id, 'left@legacy.test')).toMatchObject({ state: 'failed', noticed: 0 });
    expect(aliceMail()).toBe(before + 1); // stored, not yet marked

    await start();
    await until('the notice marked stored', async () => (row(id, 'left@legacy.test')?.noticed === 1 ? true : undefined));
    expect(aliceMail()).toBe(before + 1);
    expect(heldEnvelope(id)).toBe(false);
    const [notice] = await receiveMail(join(dir.path, 'alice.json'), node!.ready.grpc, 1, 30_000);
    // The one stored before the crash, with the server's own reply.
    expect(deliveryStatus(notice!).replace(/\r\n[ \t]+/g, ' ')).toMatch(/^Diagnostic-Code: smtp; 550 5\.1\.1 no such user\r$/m);
    expect(await queueState(id, 'left@legacy.test')).toBe('failed');
  }, 60_000);
});

// The node's own bounce of a forward that failed: the same two crash points, the bounce to the original
// sender sent once.
describe('a forward\'s bounce and a crash', () => {
  const dir = tempDir('bounce-crash-');
  let node: RunningNode | undefined;
  let receiver: Receiver;
  let dns: TestDnsServer;
  let data: string;

  const start = async (fault?: string) => {
    node = await startNodeProcess(data, { AFTERSMTP_DNS__SERVERS: JSON.stringify([dns.address]), ...(fault ? { TEST_FAULT_QUEUE_NOTICE: fault } : {}) });
  };
  const noticed = (recipient: string) => {
    const db = new DatabaseSync(join(data, 'node.db'), { readOnly: true });
    try {
      return (db.prepare('SELECT noticed FROM outbound WHERE recipient = ?').get(recipient) as { noticed: number } | undefined)?.noticed;
    } finally {
      db.close();
    }
  };
  const bouncesTo = (address: string) => receiver.messages.filter((m) => m.mailFrom === '' && m.rcpts.some((r) => r.address === address));
  /** Mail from `from` at origin.test to `to`, a forwarding address of the node whose target refuses it. */
  const sendInbound = async (from: string, to: string) => {
    const smtp = (node!.ready as { smtp?: string }).smtp!;
    const transport = nodemailer.createTransport({ host: smtp.slice(0, smtp.lastIndexOf(':')), port: Number(smtp.slice(smtp.lastIndexOf(':') + 1)), secure: false, ignoreTLS: true, name: 'mta.origin.test' });
    try {
      await transport.sendMail({ envelope: { from, to: [to] }, from, to, subject: `from ${from}`, text: 'x' });
    } finally {
      transport.close();
    }
  };

  beforeAll(async () => {
    dns = await startDnsServer([
      { type: 'TXT', name: 'origin.test', data: 'v=spf1 ip4:127.0.0.1 -all' },
      { type: 'TXT', name: '_dmarc.origin.test', data: 'v=DMARC1; p=reject' },
    ]);
    receiver = await startReceiver({ refuseRcpt: { 'gone@far.test': [550, '5.1.1 no such user here'], 'lost@far.test': [550, '5.1.1 no such user here'] } });
    data = (await initNodeWithMailboxes(dir.path, 'a.test')).data;
    expect((await runCli(['route', 'add', '*', '--endpoint', `smtp://127.0.0.1:${receiver.port}?tls=may`, '--data', data])).code).toBe(0);
    expect((await runCli(['mailbox', 'forward', 'bob@a.test', '--to', 'gone@far.test', '--data', data])).code).toBe(0);
    expect((await runCli(['mailbox', 'forward', 'alice@a.test', '--to', 'lost@far.test', '--data', data])).code).toBe(0);
  });
  afterAll(async () => {
    await stopNode(node, 'SIGKILL');
    await receiver?.close();
    await dns?.close();
    dir.cleanup();
  });

  for (const [fault, from, to, target] of [
    ['failed-recorded', 'erin@origin.test', 'bob@a.test', 'gone@far.test'],
    ['notice-stored', 'fred@origin.test', 'alice@a.test', 'lost@far.test'],
  ] as const) {
    it(`killed at ${fault}: after the restart the original sender gets one bounce`, async () => {
      await start(fault);
      await sendInbound(from, to);
      expect(await node!.exited).toBe(137);
      node = undefined;
      expect(noticed(target)).toBe(0);
      await start();
      await until('the failure marked noticed', async () => (noticed(target) === 1 ? true : undefined));
      await until('the bounce delivered', async () => (bouncesTo(from).length ? true : undefined));
      // The bounce's own queue record is delivered: nothing else of it is on its way.
      await until('the bounce finished', async () => (await runCli(['queue', 'list', '--data', data, '--json']).then((r) =>
        (JSON.parse(r.stdout) as { recipient: string; state: string }[]).every((i) => i.recipient !== from || i.state === 'delivered') ? true : undefined)));
      expect(bouncesTo(from)).toHaveLength(1);
      expect(bouncesTo(from)[0]!.data.toString()).toMatch(new RegExp(`^Final-Recipient: rfc822; ${target.replace('.', '\\.')}\\r$`, 'm'));
      node!.child.kill('SIGTERM');
      await node!.exited;
      node = undefined;
    }, 60_000);
  }
});
