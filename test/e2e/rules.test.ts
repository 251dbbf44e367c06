// Compliance rules through the real CLI and a real node process: a legal hold set with `rules add`, mail
// held across a restart and released with `hold release`, its audit leaves listed by `audit list` and
// proved and verified by `aftersmtp proof` / `verify` like any leaf; and what the CLI refuses.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import nodemailer from 'nodemailer';
import { startDnsServer, type TestDnsServer } from '../dns-server.ts';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import YAML from 'yaml';
import { setTimeout as sleep } from 'node:timers/promises';
import { RULES_REREAD_MS } from '../../gateway/store/index.ts';
import { tempDir, initNodeWithMailboxes, runCli, startNodeProcess, jsonLines, receiveMail, until, type RunningNode } from '../helpers.ts';
import { startReceiver, type Receiver } from '../bridge/smtp-receiver.ts';

describe('compliance rules from the command line', { timeout: 120_000 }, () => {
  const dir = tempDir();
  let data = '';
  let node: RunningNode | undefined;
  const alice = join(dir.path, 'alice.json');
  const bob = join(dir.path, 'bob.json');

  async function cli(args: string[]): Promise<string> {
    const r = await runCli(args);
    expect(r.code, `aftersmtp ${args.join(' ')}\n${r.stderr}`).toBe(0);
    return r.stdout;
  }

  async function stop(): Promise<void> {
    node?.child.kill('SIGTERM');
    await node?.exited;
    node = undefined;
  }

  beforeAll(async () => {
    ({ data } = await initNodeWithMailboxes(dir.path, 'example.test'));
  });

  afterAll(async () => {
    await stop();
    dir.cleanup();
  });

  it('refuses a rule without --data (only the operator of the data directory sets rules), and malformed rules, writing nothing', async () => {
    const noData = await runCli(['rules', 'add', 'legal', '--when', 'to:bob@example.test', '--then', 'hold']);
    expect(noData.code).toBe(2);
    expect(noData.stderr).toMatch(/--data is required/);
    for (const [when, then, reason] of [
      ['to:bob', 'hold', /to: needs an address/],
      ['size>x', 'hold', /unknown condition/],
      ['to:bob@example.test', 'reject 250 fine', /reject needs an SMTP code/],
      ['to:bob@example.test', 'journal nobody@example.test', /no mailbox nobody@example.test/],
      ['to:bob@example.test', 'redirect someone@elsewhere.test', /needs a mailbox of this node/],
    ] as const) {
      const r = await runCli(['rules', 'add', 'bad', '--when', when, '--then', then, '--data', data]);
      expect(r.code, r.stderr).not.toBe(0);
      expect(r.stderr).toMatch(reason);
    }
    expect(JSON.parse(await cli(['rules', 'list', '--data', data, '--json']))).toEqual([]);
  });

  it('shows which rules a message would trigger; a hostile header value is printed escaped, never as a line or terminal control of its own', async () => {
    await cli(['rules', 'add', 'case-4711', '--when', 'header:x-case=4711', '--then', 'tag case', '--data', data]);
    await cli(['rules', 'add', 'from-mail', '--when', 'from:*@mail.test', '--when', 'direction:smtp-in', '--then', 'journal alice@example.test', '--data', data]);
    const eml = join(dir.path, 'hostile.eml');
    writeFileSync(eml, 'From: <\x1b[2J\x1b[31mevil\u2028@mail.test>\r\nTo: bob@example.test\r\nX-Case: 4711\r\nSubject: x\r\n\r\nbody\r\n');
    const human = await cli(['rules', 'test', '--eml', eml, '--data', data]);
    expect(human).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f\u2028]/);
    expect(human).toContain('case-4711: when header:x-case=4711 then tag case');
    expect(human.split('\n').filter(Boolean)).toHaveLength(3); // the message, then one line per rule triggered
    const json = JSON.parse(await cli(['rules', 'test', '--eml', eml, '--data', data, '--json']));
    expect(json.triggered.map((t: { name: string }) => t.name)).toEqual(['case-4711', 'from-mail']);
    expect(json.from).toMatch(/^\x1b\[2j\x1b\[31mevil.+@mail\.test$/); // JSON carries the value itself, escaped by JSON
    const none = JSON.parse(await cli(['rules', 'test', '--from', 'x@y.test', '--to', 'bob@example.test', '--data', data, '--json']));
    expect(none.triggered).toEqual([]);
    await cli(['rules', 'remove', 'case-4711', '--data', data]);
    await cli(['rules', 'remove', 'from-mail', '--data', data]);
    expect((await runCli(['rules', 'remove', 'from-mail', '--data', data])).code).toBe(1);
  });

  it('holds bob\'s mail across a restart until `hold release`, then delivers it; the audit leaves are listed with their indexes and verify', async () => {
    await cli(['rules', 'add', 'legal', '--when', 'to:bob@example.test', '--then', 'hold', '--data', data]);
    node = await startNodeProcess(data);
    const sent = JSON.parse(await cli(['send', '--profile', alice, '--node', node.ready.grpc, '--to', 'bob@example.test', '--subject', 'held', '--body', 'for the record', '--json']));
    const held = JSON.parse(await cli(['hold', 'list', '--data', data, '--json']));
    expect(held).toMatchObject([{ messageId: sent.messageId, mailbox: 'bob@example.test', rule: 'legal', state: 'held' }]);
    await stop();

    await cli(['hold', 'release', sent.messageId, '--data', data]);
    expect((await runCli(['hold', 'release', 'ab'.repeat(16), '--data', data])).code).toBe(1);
    node = await startNodeProcess(data);
    await until('the release', async () => (JSON.parse(await cli(['hold', 'list', '--data', data, '--json'])).length === 0 || undefined));
    const got = jsonLines(await cli(['subscribe', '--profile', bob, '--node', node.ready.grpc, '--count', '1', '--json']));
    expect(got.find((m) => m.messageId === sent.messageId)).toMatchObject({ subject: 'held', verified: true });

    const audits = JSON.parse(await cli(['audit', 'list', '--since', '2000-01-01', '--data', data, '--json']));
    expect(audits.map((a: { rule: string; action: string }) => [a.rule, a.action])).toEqual([['legal', 'hold'], ['legal', 'release']]);
    expect(audits.every((a: { messageHash: string }) => a.messageHash === sent.messageHash)).toBe(true);
    expect(audits[0].leafIndex).toBeLessThan(audits[1].leafIndex);

    const bundle = join(dir.path, 'hold.json');
    writeFileSync(bundle, await cli(['proof', audits[0].leafHash, '--profile', bob, '--node', node.ready.grpc, '--json']));
    const report = JSON.parse(await cli(['verify', bundle, '--profile', bob, '--node', node.ready.grpc, '--json']));
    expect(report.steps.find((s: { name: string }) => s.name === 'leaf')).toMatchObject({ status: 'ok', detail: expect.stringContaining('audit') });
    expect(report.steps.find((s: { name: string }) => s.name === 'inclusion')).toMatchObject({ status: 'ok' });
  });

  it('takes rules from config.yaml: checked at load, applied first, listed as such, changed only there; a missing mailbox stops the start', async () => {
    const file = join(data, 'config.yaml');
    const original = readFileSync(file, 'utf8');
    const withRules = (rules: unknown) => {
      const config = YAML.parse(original);
      config.rules = rules;
      writeFileSync(file, YAML.stringify(config));
    };
    try {
      withRules([{ name: 'bad', when: ['subject:x'], then: 'hold' }]);
      const refused = await runCli(['rules', 'list', '--data', data]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/rule "bad": unknown condition "subject:x"/);
      withRules([{ name: 'archive', then: 'journal nobody@example.test' }]);
      await expect(startNodeProcess(data)).rejects.toThrow(/rule archive of config.yaml \(rules\) journals mail to nobody@example.test, which has no mailbox/);

      withRules([{ name: 'mark', when: ['to:bob@example.test'], then: 'tag from-config' }, { name: 'legal', when: ['from:nobody@example.test'], then: 'hold' }]);
      const listed = JSON.parse(await cli(['rules', 'list', '--data', data, '--json']));
      expect(listed.map((r: { name: string; source: string }) => [r.name, r.source])).toEqual([['mark', 'config'], ['legal', 'config']]);
      expect((await runCli(['rules', 'remove', 'mark', '--data', data])).stderr).toMatch(/set in config.yaml/);
      expect((await runCli(['rules', 'add', 'mark', '--then', 'hold', '--data', data])).stderr).toMatch(/set in config.yaml/);
      node = await startNodeProcess(data);
      const sent = JSON.parse(await cli(['send', '--profile', alice, '--node', node.ready.grpc, '--to', 'bob@example.test', '--subject', 'configured', '--body', 'x', '--json']));
      const got = jsonLines(await cli(['subscribe', '--profile', bob, '--node', node.ready.grpc, '--count', '1', '--json']));
      expect(got.find((m) => m.messageId === sent.messageId)).toMatchObject({ subject: 'configured', labels: ['from-config'] });
    } finally {
      await stop();
      writeFileSync(file, original);
    }
  });
});

describe('smtp-out rules', { timeout: 120_000 }, () => {
  const dir = tempDir('rules-out-');
  let node: RunningNode;
  let receiver: Receiver;
  let data = '';

  beforeAll(async () => {
    receiver = await startReceiver({});
    ({ data } = await initNodeWithMailboxes(dir.path, 'a.test'));
    for (const args of [
      ['route', 'add', 'legacy.test', '--endpoint', `smtp://127.0.0.1:${receiver.port}`, '--tls', 'may'],
      // A domain whose server is down: its batch defers.
      ['route', 'add', 'other-legacy.test', '--endpoint', 'smtp://127.0.0.1:1', '--tls', 'may'],
      ['rules', 'add', 'label-out', '--when', 'direction:smtp-out', '--then', 'tag outbound-reviewed'],
      ['rules', 'add', 'not-eve', '--when', 'direction:smtp-out', '--when', 'to:eve@legacy.test', '--then', 'reject 550 not to eve'],
    ]) {
      const r = await runCli([...args, '--data', data]);
      expect(r.code, r.stderr).toBe(0);
    }
    for (const box of ['archive', 'review']) {
      const r = await runCli(['mailbox', 'add', `${box}@a.test`, '--data', data, '--profile', join(dir.path, `${box}.json`)]);
      expect(r.code, r.stderr).toBe(0);
    }
    node = await startNodeProcess(data);
  });
  afterAll(async () => {
    node?.child.kill('SIGTERM');
    await node?.exited;
    await receiver?.close();
    dir.cleanup();
  });

  it('tags the message as it leaves (an X-AfterSMTP-Tag field) and refuses the recipient a reject rule names; both audited', async () => {
    const sent = await runCli(['send', '--profile', join(dir.path, 'alice.json'), '--node', node.ready.grpc, '--to', 'carol@legacy.test', '--to', 'eve@legacy.test', '--subject', 'out', '--body', 'x', '--json']);
    expect(sent.code, sent.stderr).toBe(0);
    const got = await until('delivered', async () => receiver.messages.find((m) => m.rcpts.some((r) => r.address === 'carol@legacy.test')));
    expect(got.rcpts.map((r) => r.address)).toEqual(['carol@legacy.test']);
    expect(got.data.toString()).toMatch(/^X-AfterSMTP-Tag: outbound-reviewed\r$/m);
    const queue = await until('eve refused', async () => {
      const items = JSON.parse((await runCli(['queue', 'list', '--data', data, '--node', node.ready.grpc, '--json'])).stdout) as { recipient: string; state: string; lastError: string }[];
      return items.find((i) => i.recipient === 'eve@legacy.test' && i.state === 'failed');
    });
    expect(queue.lastError).toMatch(/refused by rule not-eve: 550 not to eve/);
    const audits = JSON.parse((await runCli(['audit', 'list', '--data', data, '--json'])).stdout) as { rule: string; action: string }[];
    expect(audits.map((a) => [a.rule, a.action]).sort()).toEqual([['label-out', 'tag'], ['not-eve', 'reject']]);
  });

  const cli = async (args: string[]): Promise<string> => {
    const r = await runCli(args);
    expect(r.code, `aftersmtp ${args.join(' ')}\n${r.stderr}`).toBe(0);
    return r.stdout;
  };
  /**
   * A rule set or removed beside the running node: it re-reads its rules at most RULES_REREAD_MS after a
   * change (the bound it documents, not a guess at machine speed), so once that has passed its next
   * message sees the change.
   */
  const setRule = async (args: string[]) => {
    await cli(['rules', 'add', ...args, '--data', data]);
    await sleep(RULES_REREAD_MS);
  };
  const dropRule = async (name: string) => {
    await cli(['rules', 'remove', name, '--data', data]);
    await sleep(RULES_REREAD_MS);
  };
  const send = async (to: string[], subject: string, bcc: string[] = []): Promise<{ messageId: string; messageHash: string; queuedRemote: string[] }> => JSON.parse(await cli([
    'send', '--profile', join(dir.path, 'alice.json'), '--node', node.ready.grpc, ...to.flatMap((t) => ['--to', t]), ...bcc.flatMap((b) => ['--bcc', b]),
    '--subject', subject, '--body', 'x', '--json',
  ]));
  const held = async (): Promise<{ messageId: string; mailbox: string; transport: string; rule: string }[]> => JSON.parse(await cli(['hold', 'list', '--data', data, '--json']));
  const queued = async (): Promise<{ messageId: string; recipient: string; state: string; receipt: string; attempts: number }[]> => JSON.parse(await cli(['queue', 'list', '--data', data, '--node', node.ready.grpc, '--json']));
  const audits = async (hash: string): Promise<string[][]> => (JSON.parse(await cli(['audit', 'list', '--data', data, '--json'])) as { rule: string; action: string; messageHash: string }[])
    .filter((a) => a.messageHash === hash).map((a) => [a.rule, a.action]).sort();
  const receivedBy = (address: string) => receiver.messages.filter((m) => m.rcpts.some((r) => r.address === address));

  it('holds a recipient as the mail leaves (out of the queue, listed with its agent) until `hold release`, then sends it and does not hold it again', async () => {
    await setRule(['hold-dave', '--when', 'direction:smtp-out', '--when', 'to:dave@legacy.test', '--then', 'hold']);
    try {
      const sent = await send(['dave@legacy.test', 'carol@legacy.test'], 'kept');
      await until('carol served', async () => receiver.messages.find((m) => m.data.toString().includes(sent.messageId.slice(0, 16)) || m.data.toString().includes('Subject: kept')));
      const [hold] = await until('dave held', async () => (await held()).filter((h) => h.messageId === sent.messageId).length ? (await held()).filter((h) => h.messageId === sent.messageId) : undefined);
      expect(hold).toMatchObject({ mailbox: 'dave@legacy.test', transport: 'smtp', rule: 'hold-dave' });
      expect((await queued()).filter((q) => q.messageId === sent.messageId).map((q) => [q.recipient, q.state])).toEqual([['carol@legacy.test', 'delivered']]);
      expect(receivedBy('dave@legacy.test')).toEqual([]);
      await cli(['hold', 'release', sent.messageId, '--data', data]);
      const got = await until('dave served', async () => receivedBy('dave@legacy.test')[0]);
      expect(got.data.toString()).toMatch(/^Subject: kept\r$/m);
      await until('dave delivered', async () => (await queued()).find((q) => q.messageId === sent.messageId && q.recipient === 'dave@legacy.test' && q.state === 'delivered'));
      expect(await held()).toEqual([]);
      expect(await audits(sent.messageHash)).toEqual([['hold-dave', 'hold'], ['hold-dave', 'release'], ['label-out', 'tag'], ['label-out', 'tag']]);
    } finally {
      await dropRule('hold-dave');
    }
  });

  it('journals and redirects as the mail leaves: one copy of the message as it left for the journal, the redirected recipient\'s copy to the mailbox instead', async () => {
    await setRule(['journal-out', '--when', 'direction:smtp-out', '--when', 'from:alice@a.test', '--then', 'journal archive@a.test']);
    await setRule(['redirect-gina', '--when', 'direction:smtp-out', '--when', 'to:gina@legacy.test', '--then', 'redirect review@a.test']);
    try {
      const sent = await send(['gina@legacy.test', 'frank@legacy.test', 'fred@other-legacy.test'], 'copied');
      await until('frank served', async () => receivedBy('frank@legacy.test')[0]);
      await until('gina settled', async () => (await queued()).find((q) => q.messageId === sent.messageId && q.recipient === 'gina@legacy.test' && q.state === 'delivered'));
      expect(receivedBy('gina@legacy.test')).toEqual([]);
      // fred's domain has no route: its batch defers and retries, and makes no second journal copy.
      const [copy] = await receiveMail(join(dir.path, 'archive.json'), node.ready.grpc, 1, 30_000);
      const text = Buffer.from(copy!.body!).toString();
      expect(text).toMatch(/^X-AfterSMTP-Tag: outbound-reviewed\r$/m);
      expect(text).toMatch(/^DKIM-Signature: /m);
      expect(text).toMatch(/^Subject: copied\r$/m);
      expect(copy).toMatchObject({ from: 'alice@a.test', verified: true });
      const [redirected] = await receiveMail(join(dir.path, 'review.json'), node.ready.grpc, 1, 30_000);
      expect(Buffer.from(redirected!.body!).toString()).toMatch(/^Subject: copied\r$/m);
      await cli(['queue', 'retry', sent.messageId, '--data', data, '--node', node.ready.grpc]);
      await until('fred tried again', async () => (await queued()).find((q) => q.messageId === sent.messageId && q.recipient === 'fred@other-legacy.test' && q.state === 'deferred' && q.attempts >= 2));
      const again = await receiveMail(join(dir.path, 'archive.json'), node.ready.grpc, 1, 1500).catch(() => []);
      expect(again).toEqual([]);
      expect(await audits(sent.messageHash)).toEqual(expect.arrayContaining([['journal-out', 'journal'], ['redirect-gina', 'redirect']]));
      expect((await audits(sent.messageHash)).filter((a) => a[1] === 'journal')).toHaveLength(1);
    } finally {
      await dropRule('journal-out');
      await dropRule('redirect-gina');
    }
  });

  it('diverts as the mail leaves: the reviewer gets the message as it left, the recipient is held until the reviewer releases it', async () => {
    await setRule(['screen-ivan', '--when', 'direction:smtp-out', '--when', 'to:ivan@legacy.test', '--then', 'divert review@a.test']);
    try {
      const sent = await send(['ivan@legacy.test'], 'screened');
      const [copy] = await receiveMail(join(dir.path, 'review.json'), node.ready.grpc, 1, 30_000);
      expect(Buffer.from(copy!.body!).toString()).toMatch(/^Subject: screened\r$/m);
      expect((await held()).map((h) => [h.messageId, h.mailbox, h.transport, h.rule])).toEqual([[sent.messageId, 'ivan@legacy.test', 'smtp', 'screen-ivan']]);
      expect(receivedBy('ivan@legacy.test')).toEqual([]);
      const released = JSON.parse(await cli(['review', 'release', sent.messageId, '--profile', join(dir.path, 'review.json'), '--node', node.ready.grpc, '--json']));
      expect(released).toMatchObject({ released: 1 });
      const got = await until('ivan served', async () => receivedBy('ivan@legacy.test')[0]);
      expect(got.data.toString()).toMatch(/^Subject: screened\r$/m);
      expect(await audits(sent.messageHash)).toEqual([['label-out', 'tag'], ['label-out', 'tag'], ['screen-ivan', 'divert'], ['screen-ivan', 'release']]);
    } finally {
      await dropRule('screen-ivan');
    }
  });

  it('redirects a remote recipient when the mail is accepted: the copy the app sealed to the mailbox goes there, nothing over SMTP, the app told of its recipient only', async () => {
    await setRule(['redirect-judy', '--when', 'to:judy@legacy.test', '--then', 'redirect review@a.test']);
    try {
      const refused = await runCli(['send', '--profile', join(dir.path, 'alice.json'), '--node', node.ready.grpc, '--to', 'judy@legacy.test', '--subject', 'x', '--body', 'x']);
      expect(refused.stderr).toMatch(/seal a copy to review@a\.test/);
      const sent = await send(['judy@legacy.test'], 'for judy', ['review@a.test']);
      expect(sent.queuedRemote).toEqual(['judy@legacy.test']);
      const [copy] = await receiveMail(join(dir.path, 'review.json'), node.ready.grpc, 1, 30_000);
      expect(copy).toMatchObject({ messageId: sent.messageId, subject: 'for judy', verified: true });
      expect((await queued()).filter((q) => q.messageId === sent.messageId)).toEqual([]);
      expect(receivedBy('judy@legacy.test')).toEqual([]);
      expect(await audits(sent.messageHash)).toEqual([['redirect-judy', 'redirect']]);
    } finally {
      await dropRule('redirect-judy');
    }
  });

  it('holds a remote recipient when the mail is accepted (a rule without a direction): never queued until released; an expired hold never leaves, and the sender hears nothing; its labels leave as fields', async () => {
    await setRule(['hold-hank', '--when', 'to:hank@legacy.test', '--then', 'hold']);
    await setRule(['mark-hank', '--when', 'to:hank@legacy.test', '--then', 'tag kept for review']);
    try {
      const kept = await send(['hank@legacy.test'], 'for hank');
      const dropped = await send(['hank@legacy.test'], 'never for hank');
      expect((await held()).map((h) => [h.messageId, h.mailbox, h.transport])).toEqual([[kept.messageId, 'hank@legacy.test', 'smtp'], [dropped.messageId, 'hank@legacy.test', 'smtp']]);
      expect((await queued()).filter((q) => q.recipient === 'hank@legacy.test')).toEqual([]);
      await cli(['hold', 'expire', dropped.messageId, '--data', data]);
      await cli(['hold', 'release', kept.messageId, '--data', data]);
      const got = await until('hank served', async () => receivedBy('hank@legacy.test')[0]);
      expect(got.data.toString()).toMatch(/^Subject: for hank\r$/m);
      expect(got.data.toString()).toMatch(/^X-AfterSMTP-Tag: kept for review\r$/m); // a label put on at acceptance leaves as a field
      await until('settled', async () => ((await held()).length === 0 || undefined));
      expect(receivedBy('hank@legacy.test')).toHaveLength(1);
      expect((await queued()).filter((q) => q.recipient === 'hank@legacy.test').map((q) => [q.messageId, q.state])).toEqual([[kept.messageId, 'delivered']]);
      expect(await audits(dropped.messageHash)).toEqual([['hold-hank', 'expire'], ['hold-hank', 'hold'], ['mark-hank', 'tag']]);
    } finally {
      await dropRule('hold-hank');
      await dropRule('mark-hank');
    }
  });
});

describe('divert: mail kept for a reviewer, who releases it', { timeout: 120_000 }, () => {
  const dir = tempDir();
  let data = '';
  let node: RunningNode | undefined;
  let dns: TestDnsServer | undefined;
  const bob = join(dir.path, 'bob.json');
  const review = join(dir.path, 'review.json');

  async function cli(args: string[]): Promise<string> {
    const r = await runCli(args);
    expect(r.code, `aftersmtp ${args.join(' ')}\n${r.stderr}`).toBe(0);
    return r.stdout;
  }

  beforeAll(async () => {
    ({ data } = await initNodeWithMailboxes(dir.path, 'example.test'));
    await cli(['mailbox', 'add', 'review@example.test', '--data', data, '--profile', review]);
    await cli(['rules', 'add', 'screen', '--when', 'to:bob@example.test', '--when', 'direction:smtp-in', '--then', 'divert review@example.test', '--data', data]);
    dns = await startDnsServer([]);
    node = await startNodeProcess(data, { AFTERSMTP_DNS__SERVERS: JSON.stringify([dns.address]) });
  });

  afterAll(async () => {
    node?.child.kill('SIGTERM');
    await node?.exited;
    await dns?.close();
    dir.cleanup();
  });

  it('holds bob\'s copy, gives the reviewer one, and only the reviewer can release it to bob; each step audited', async () => {
    const mx = (node!.ready as { smtp?: string }).smtp!;
    const transport = nodemailer.createTransport({ host: mx.slice(0, mx.lastIndexOf(':')), port: Number(mx.slice(mx.lastIndexOf(':') + 1)), secure: false, ignoreTLS: true, name: 'mta.outside.test' });
    try {
      await transport.sendMail({ envelope: { from: 'x@outside.test', to: ['bob@example.test'] }, from: 'x@outside.test', to: 'bob@example.test', subject: 'to screen', text: 'look first' });
    } finally {
      transport.close();
    }
    const [held] = JSON.parse(await cli(['hold', 'list', '--data', data, '--json'])) as { messageId: string; mailbox: string; rule: string }[];
    expect(held).toMatchObject({ mailbox: 'bob@example.test', rule: 'screen' });
    const seen = jsonLines(await cli(['subscribe', '--profile', review, '--node', node!.ready.grpc, '--count', '1', '--json']));
    expect(seen[0]).toMatchObject({ messageId: held!.messageId, subject: 'to screen' });
    // bob is no reviewer of his own mail; a made-up id is nobody's.
    const byBob = await runCli(['review', 'release', held!.messageId, '--profile', bob, '--node', node!.ready.grpc]);
    expect(byBob.code).not.toBe(0);
    expect(byBob.stderr).toMatch(/no mail diverted to this mailbox for review/);
    expect((await runCli(['review', 'release', 'cd'.repeat(16), '--profile', review, '--node', node!.ready.grpc])).code).not.toBe(0);
    const released = JSON.parse(await cli(['review', 'release', held!.messageId, '--profile', review, '--node', node!.ready.grpc, '--json']));
    expect(released).toMatchObject({ event: 'released', released: 1 });
    const got = jsonLines(await cli(['subscribe', '--profile', bob, '--node', node!.ready.grpc, '--count', '1', '--json']));
    expect(got[0]).toMatchObject({ messageId: held!.messageId, subject: 'to screen' });
    const audits = JSON.parse(await cli(['audit', 'list', '--since', '2000-01-01', '--data', data, '--json'])) as { rule: string; action: string }[];
    expect(audits.map((a) => `${a.rule}:${a.action}`)).toEqual(['screen:divert', 'screen:release']);
  });
});
