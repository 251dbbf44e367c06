// Mail from an app to a domain without an AfterSMTP node: the node answers Resolve with its bridge key,
// opens the message, DKIM-signs it and delivers it over SMTP through the queue.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { initNodeWithMailboxes, jsonLines, runCli, startNodeProcess, tempDir, until, type RunningNode } from '../helpers.ts';
import { startReceiver, type Receiver } from '../bridge/smtp-receiver.ts';

describe('sending to a legacy domain over a static SMTP route', () => {
  const dir = tempDir('smtp-out-');
  let node: RunningNode;
  let receiver: Receiver;
  let data: string;

  beforeAll(async () => {
    receiver = await startReceiver({ refuseRcpt: { 'nobody@legacy.test': [550, '5.1.1 no such user'] } });
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
});
