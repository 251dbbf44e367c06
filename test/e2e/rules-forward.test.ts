// Compliance rules on addresses that forward elsewhere, through a real node process, its MX and a real SMTP
// receiver as the far end: an address with a forward is a recipient like a mailbox, so a legal hold keeps
// its mail from leaving, a redirect replaces the forward, a divert waits for the reviewer, a tag leaves as a
// header field, a reject refuses the message, a journal gets one copy; smtp-out rules act on the forward as
// it leaves. Each action is audited. A forward that fails is bounced to its sender, into the sender's
// mailbox when that is an address of the node.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { initNodeWithMailboxes, jsonLines, runCli, startNodeProcess, tempDir, until, stopNode, type RunningNode } from '../helpers.ts';
import { startReceiver, type Receiver } from '../bridge/smtp-receiver.ts';
import { startDnsServer, type TestDnsServer } from '../dns-server.ts';

interface Held { messageId: string; mailbox: string; transport: string; rule: string }

describe('rules on forwarded mail', { timeout: 120_000 }, () => {
  const dir = tempDir('rules-fwd-');
  let node: RunningNode;
  let receiver: Receiver;
  let dns: TestDnsServer;
  let data: string;
  const alice = join(dir.path, 'alice.json'); // the journal
  const bob = join(dir.path, 'bob.json'); // a mailbox, the redirect's target and the reviewer

  async function cli(args: string[]): Promise<string> {
    const r = await runCli(args);
    expect(r.code, `aftersmtp ${args.join(' ')}\n${r.stderr}`).toBe(0);
    return r.stdout;
  }

  /** Mail from origin.test (SPF passes for the loopback client) through the node's MX. */
  async function mail(to: string[], subject: string, from = 'dave@origin.test'): Promise<void> {
    const a = (node.ready as { smtp?: string }).smtp!;
    const transport = nodemailer.createTransport({ host: a.slice(0, a.lastIndexOf(':')), port: Number(a.slice(a.lastIndexOf(':') + 1)), secure: false, ignoreTLS: true, name: 'mta.origin.test' });
    try {
      await transport.sendMail({ envelope: { from, to }, from, to: to.join(', '), subject, text: `about ${subject}` });
    } finally {
      transport.close();
    }
  }

  const heldNow = async (): Promise<Held[]> => JSON.parse(await cli(['hold', 'list', '--data', data, '--json'])) as Held[];
  const arrived = (address: string) => receiver.messages.filter((m) => m.rcpts.some((r) => r.address === address));
  const subscribe = async (profile: string, count: number) => jsonLines(await cli(['subscribe', '--profile', profile, '--node', node.ready.grpc, '--count', String(count), '--json']));

  beforeAll(async () => {
    dns = await startDnsServer([
      { type: 'TXT', name: 'origin.test', data: 'v=spf1 ip4:127.0.0.1 -all' },
      { type: 'TXT', name: '_dmarc.origin.test', data: 'v=DMARC1; p=reject' },
    ]);
    receiver = await startReceiver({ refuseRcpt: { 'gone@far.test': [550, '5.1.1 no such user here'] } });
    ({ data } = await initNodeWithMailboxes(dir.path, 'a.test'));
    await cli(['route', 'add', '*', '--endpoint', `smtp://127.0.0.1:${receiver.port}?tls=may`, '--data', data]);
    for (const name of ['dan', 'eve', 'fay', 'gil', 'hal', 'ivy']) await cli(['mailbox', 'forward', `${name}@a.test`, '--to', `${name}@far.test`, '--data', data]);
    await cli(['mailbox', 'forward', 'jon@a.test', '--to', 'gone@far.test', '--data', data]);
    await cli(['mailbox', 'forward', 'kim@a.test', '--to', 'gone@far.test', '--data', data]);
    const rules: [string, string[], string][] = [
      ['archive', ['to:*@a.test', 'direction:smtp-in'], 'journal alice@a.test'],
      ['legal-dan', ['to:dan@a.test'], 'hold'],
      ['legal-jon', ['to:jon@a.test'], 'hold'],
      // Names the bounce's recipient: the node's own mail (a bounce, a report) is under no rule.
      ['not-own-mail', ['to:*@origin.test'], 'hold'],
      ['redirect-eve', ['to:eve@a.test'], 'redirect bob@a.test'],
      ['screen-fay', ['to:fay@a.test'], 'divert bob@a.test'],
      ['tag-gil', ['to:gil@a.test'], 'tag forwarded'],
      ['no-spam', ['from:spam@origin.test'], 'reject 550 no spam here'],
      ['out-hal', ['to:hal@far.test', 'direction:smtp-out'], 'hold'],
    ];
    for (const [name, when, then] of rules) await cli(['rules', 'add', name, ...when.flatMap((w) => ['--when', w]), '--then', then, '--data', data]);
    node = await startNodeProcess(data, { AFTERSMTP_DNS__SERVERS: JSON.stringify([dns.address]) });
  });
  afterAll(async () => {
    await stopNode(node);
    await receiver?.close();
    await dns?.close();
    dir.cleanup();
  });

  it('a reject refuses mail for a forwarding address alone, with the rule\'s reply; nothing leaves', async () => {
    await expect(mail(['ivy@a.test'], 'spam', 'spam@origin.test')).rejects.toMatchObject({ responseCode: 550, response: expect.stringContaining('no spam here') });
    await mail(['ivy@a.test'], 'plain forward');
    await until('the plain forward', async () => arrived('ivy@far.test')[0]);
    expect(arrived('ivy@far.test')).toHaveLength(1);
    expect(arrived('ivy@far.test')[0]!.data.toString()).toMatch(/^Subject: plain forward/m);
  });

  it('a legal hold keeps the forward from leaving until released; the journal gets one copy of a message to a mailbox and a forward', async () => {
    await mail(['dan@a.test', 'bob@a.test'], 'for dan and bob');
    const [held] = await until('the forward held', async () => (await heldNow()).filter((h) => h.mailbox === 'dan@far.test').length ? (await heldNow()).filter((h) => h.mailbox === 'dan@far.test') : undefined);
    expect(held).toMatchObject({ transport: 'smtp', rule: 'legal-dan' });
    expect((await subscribe(bob, 1)).map((m) => m.subject)).toEqual(['for dan and bob']);
    expect(arrived('dan@far.test')).toEqual([]);
    await cli(['hold', 'release', held!.messageId, '--data', data]);
    const sent = await until('the released forward', async () => arrived('dan@far.test')[0]);
    expect(sent.data.toString()).toMatch(/^Subject: for dan and bob/m);
    expect(sent.mailFrom).toMatch(/^SRS0=/);
  });

  it('a held forward the far end refuses once released is bounced to its original sender, as any forward', async () => {
    await mail(['jon@a.test'], 'for jon', 'erin@origin.test');
    const [held] = await until('jon\'s forward held', async () => (await heldNow()).filter((h) => h.mailbox === 'gone@far.test').length ? (await heldNow()).filter((h) => h.mailbox === 'gone@far.test') : undefined);
    await cli(['hold', 'release', held!.messageId, '--data', data]);
    const bounce = await until('the bounce', async () => arrived('erin@origin.test')[0]);
    expect(bounce.mailFrom).toBe('');
    expect(bounce.data.toString()).toMatch(/^Final-Recipient: rfc822; gone@far\.test\r\nAction: failed\r\nStatus: 5\.1\.1/m);
  });

  it('a forward of a local sender\'s mail that fails is bounced into the sender\'s mailbox, not over SMTP to the node itself', async () => {
    await mail(['kim@a.test'], 'for kim', 'bob@a.test');
    const [bounce] = await subscribe(bob, 1);
    expect(bounce).toMatchObject({ from: 'postmaster@a.test', verified: true, to: ['bob@a.test'] });
    expect(bounce.subject).toMatch(/deliver/i);
    expect(arrived('bob@a.test')).toEqual([]);
  });

  it('a redirect replaces the forward: the mailbox gets the message, nothing leaves', async () => {
    await mail(['eve@a.test'], 'for eve');
    const [got] = await subscribe(bob, 1);
    // The forward's copy: the node's, signed by it as its postmaster (the author's address is in the message).
    expect(got).toMatchObject({ subject: 'for eve', from: 'postmaster@a.test', verified: true });
    // The ivy mail of the first test came after nothing for eve: still nothing for eve after this one.
    await mail(['ivy@a.test'], 'after eve');
    await until('the later forward', async () => arrived('ivy@far.test').length === 2 || undefined);
    expect(arrived('eve@far.test')).toEqual([]);
  });

  it('a divert holds the forward and gives the reviewer the copy it releases', async () => {
    await mail(['fay@a.test'], 'for fay');
    const [copy] = await subscribe(bob, 1);
    expect(copy).toMatchObject({ subject: 'for fay' });
    const [held] = (await heldNow()).filter((h) => h.mailbox === 'fay@far.test');
    expect(held).toMatchObject({ messageId: copy.messageId, transport: 'smtp', rule: 'screen-fay' });
    expect(arrived('fay@far.test')).toEqual([]);
    expect(JSON.parse(await cli(['review', 'release', copy.messageId, '--profile', bob, '--node', node.ready.grpc, '--json']))).toMatchObject({ released: 1 });
    const sent = await until('the reviewed forward', async () => arrived('fay@far.test')[0]);
    expect(sent.data.toString()).toMatch(/^Subject: for fay/m);
  });

  it('a tag leaves with the forward as a header field; an smtp-out hold keeps a forward as it would leave', async () => {
    await mail(['gil@a.test', 'hal@a.test'], 'for gil and hal');
    const sent = await until('the tagged forward', async () => arrived('gil@far.test')[0]);
    expect(sent.data.toString()).toMatch(/^X-AfterSMTP-Tag: forwarded\r\n/m);
    expect(sent.data.toString()).toMatch(/^ARC-Seal: /m); // still the node's sealed forward
    const [held] = await until('hal held as it left', async () => (await heldNow()).filter((h) => h.mailbox === 'hal@far.test').length ? (await heldNow()).filter((h) => h.mailbox === 'hal@far.test') : undefined);
    expect(held).toMatchObject({ transport: 'smtp', rule: 'out-hal' });
    expect(arrived('hal@far.test')).toEqual([]);
    await cli(['hold', 'release', held!.messageId, '--data', data]);
    await until('hal\'s forward released', async () => arrived('hal@far.test')[0]);
  });

  it('the journal got one copy of each message taken, and every action is audited', async () => {
    // Eight messages taken (the spam refused; the bounce is the node's own): one journal leaf and one copy
    // each, a forward's included.
    const journal = await subscribe(alice, 8);
    expect(journal.map((m) => m.subject).sort()).toEqual(['after eve', 'for dan and bob', 'for eve', 'for fay', 'for gil and hal', 'for jon', 'for kim', 'plain forward']);
    const audits = JSON.parse(await cli(['audit', 'list', '--since', '2000-01-01', '--data', data, '--json'])) as { rule: string; action: string }[];
    const done = new Set(audits.map((a) => `${a.rule}:${a.action}`));
    for (const action of ['no-spam:reject', 'legal-dan:hold', 'legal-dan:release', 'redirect-eve:redirect', 'screen-fay:divert', 'screen-fay:release', 'tag-gil:tag', 'out-hal:hold', 'out-hal:release', 'archive:journal']) {
      expect(done, action).toContain(action);
    }
    expect(audits.filter((a) => a.rule === 'archive').length).toBe(8);
    expect(audits.filter((a) => a.rule === 'not-own-mail')).toEqual([]);
  });
});
