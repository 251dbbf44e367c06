// Accepted means durable: SIGKILL the node after some submits were acknowledged; after a restart every
// acknowledged message is delivered, and nothing whose ack the node confirmed is delivered again.
import { describe, it, expect, afterAll } from 'vitest';
import { join } from 'node:path';
import { tempDir, runCli, startNodeProcess, type RunningNode } from '../helpers.ts';
import { readProfile, connect, profileResolver, sealFor, submit, subscribe } from '../../gateway/client/index.ts';

describe('crash safety (SIGKILL)', () => {
  const dir = tempDir();
  const data = join(dir.path, 'node');
  let node: RunningNode | undefined;
  afterAll(() => { node?.child.kill('SIGKILL'); dir.cleanup(); });

  it('delivers every acknowledged message after a SIGKILL, and none twice after its ack', async () => {
    expect((await runCli(['init', '--data', data, '--domain', 'crash.test', '--grpc-port', '0'])).code).toBe(0);
    for (const name of ['alice', 'bob']) {
      const r = await runCli(['mailbox', 'add', `${name}@crash.test`, '--data', data, '--profile', join(dir.path, `${name}.json`)]);
      expect(r.code, r.stderr).toBe(0);
    }
    const alice = readProfile(join(dir.path, 'alice.json'));
    const bob = readProfile(join(dir.path, 'bob.json'));
    node = await startNodeProcess(data);
    let clients = connect(alice, node.ready.grpc);
    const resolver = profileResolver(alice);

    // Submit concurrently and kill the node while submits are still in flight.
    const acknowledged: string[] = [];
    const attempts: Promise<void>[] = [];
    for (let i = 0; i < 60; i++) {
      attempts.push((async () => {
        const sealed = await sealFor(alice, clients, resolver, { to: ['bob@crash.test'], subject: `m${i}`, text: 'x'.repeat(2000) });
        const reply = await submit(clients, sealed.envelope);
        acknowledged.push(Buffer.from(reply.messageId).toString('hex'));
        if (acknowledged.length === 25) node!.child.kill('SIGKILL');
      })().catch(() => {}));
    }
    await Promise.all(attempts);
    await node.exited;
    clients.close();
    expect(acknowledged.length).toBeGreaterThanOrEqual(25);

    // Restart; bob reads 10 and acks them (confirmed), then the node is killed again.
    node = await startNodeProcess(data);
    const firstBatch: string[] = [];
    let bobClients = connect(bob, node.ready.grpc);
    await subscribe(bob, bobClients, profileResolver(bob), { count: 10, maxInFlight: 1, onMessage: (m) => { firstBatch.push(m.messageId); } });
    bobClients.close();
    node.child.kill('SIGKILL');
    await node.exited;

    node = await startNodeProcess(data);
    bobClients = connect(bob, node.ready.grpc);
    const rest: string[] = [];
    const controller = new AbortController();
    const expectedRest = new Set(acknowledged.filter((id) => !firstBatch.includes(id)));
    const timer = setTimeout(() => controller.abort(), 8000);
    await subscribe(bob, bobClients, profileResolver(bob), {
      signal: controller.signal,
      onMessage: (m) => {
        rest.push(m.messageId);
        if ([...expectedRest].every((id) => rest.includes(id))) setTimeout(() => controller.abort(), 300);
      },
    });
    clearTimeout(timer);
    bobClients.close();

    const all = [...firstBatch, ...rest];
    for (const id of acknowledged) expect(all).toContain(id);
    for (const id of firstBatch) expect(rest).not.toContain(id); // confirmed acks are never redelivered
    expect(new Set(rest).size).toBe(rest.length);
    clients = connect(alice, node.ready.grpc);
    clients.close();
  });
});
