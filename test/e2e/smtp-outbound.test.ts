// Mail from an app to a domain without an AfterSMTP node: the node answers Resolve with its bridge key,
// opens the message, DKIM-signs it and delivers it over SMTP through the queue.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { initNodeWithMailboxes, jsonLines, runCli, startNodeProcess, tempDir, until, type RunningNode } from '../helpers.ts';
import { connect, profileResolver, readProfile, sealFor, submit } from '../../gateway/client/index.ts';
import { startReceiver, type Receiver } from '../bridge/smtp-receiver.ts';

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
    node?.child.kill('SIGTERM');
    await node?.exited;
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

  it('a 5xx for a recipient fails it and puts a delivery status notification in the sender\'s mailbox', async () => {
    const sent = await runCli(['send', '--profile', join(dir.path, 'alice.json'), '--node', node.ready.grpc, '--to', 'nobody@legacy.test', '--subject', 'x', '--body', 'y']);
    expect(sent.code, sent.stderr).toBe(0);
    const sub = await runCli(['subscribe', '--profile', join(dir.path, 'alice.json'), '--node', node.ready.grpc, '--count', '1', '--save-dir', join(dir.path, 'saved')]);
    expect(sub.code, sub.stderr).toBe(0);
    const [notice] = jsonLines(sub.stdout);
    expect(notice.from).toBe('postmaster@a.test');
    expect(notice.subject).toMatch(/Delivery Status Notification/);
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
