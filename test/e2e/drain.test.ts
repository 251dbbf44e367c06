// A node stopped (SIGINT) while a bulk sender streams into it: it answers what it took, refuses the
// rest without storing it, ends the stream instead of waiting out its grace period, and exits 0.
// After a restart every answered message is delivered once, and every refused one can be sent again.
import { describe, it, expect, afterAll } from 'vitest';
import { join } from 'node:path';
import { tempDir, runCli, startNodeProcess, type RunningNode } from '../helpers.ts';
import { readProfile, connect, profileResolver, sealFor, submit, subscribe } from '../../gateway/client/index.ts';
import type { Envelope } from '../../proto/index.ts';

describe('draining on SIGINT', { timeout: 90_000 }, () => {
  const dir = tempDir();
  const data = join(dir.path, 'node');
  const profile = (name: string) => join(dir.path, `${name}.json`);
  let node: RunningNode | undefined;

  afterAll(async () => {
    node?.child.kill('SIGKILL');
    await node?.exited;
    dir.cleanup();
  });

  it('answers what it accepted, refuses the rest unstored, ends the stream and exits 0', async () => {
    expect((await runCli(['init', '--data', data, '--domain', 'example.test', '--grpc-port', '0'])).code).toBe(0);
    for (const name of ['alice', 'bob']) {
      expect((await runCli(['mailbox', 'add', `${name}@example.test`, '--data', data, '--profile', profile(name)])).code).toBe(0);
    }
    node = await startNodeProcess(data, { AFTERSMTP_LOG__LEVEL: 'warn' });
    const alice = readProfile(profile('alice'));
    let clients = connect(alice, node.ready.grpc);
    const knownDids = { 'bob@example.test': readProfile(profile('bob')).did };
    const envelopes: Envelope[] = [];
    for (let i = 0; i < 300; i++) {
      envelopes.push((await sealFor(alice, clients, profileResolver(alice), { to: ['bob@example.test'], subject: `drain ${i}`, text: 'x', knownDids })).envelope);
    }
    const idOf = (i: number) => Buffer.from(envelopes[i]!.messageId!).toString('hex');

    const accepted = new Set<number>();
    const refused = new Map<number, string>();
    let stoppedAt = 0;
    const call = clients.mailbox.SubmitStream(clients.metadata);
    const outcome = new Promise<string>((resolve) => {
      call.on('end', () => resolve('end'));
      call.on('error', (err: Error) => resolve(`error: ${err.message}`));
    });
    call.on('data', (reply: any) => {
      if (reply.error) refused.set(Number(reply.clientRef), reply.error.code);
      else accepted.add(Number(reply.clientRef));
      if (accepted.size === 30 && !stoppedAt) {
        stoppedAt = Date.now();
        node!.child.kill('SIGINT');
      }
    });
    // A steady sender: one message every 4 ms, until the node ends the stream or all are written.
    let written = 0;
    let streamOpen = true;
    void outcome.then(() => { streamOpen = false; });
    while (streamOpen && written < envelopes.length) {
      call.write({ envelope: envelopes[written], clientRef: written });
      written++;
      await new Promise((r) => setTimeout(r, 4));
    }
    expect(await outcome).toBe('end'); // ended by the node, not cut off by a forced shutdown
    const exitCode = await node.exited;
    const stopMs = Date.now() - stoppedAt;
    expect(exitCode).toBe(0);
    expect(stopMs).toBeLessThan(4000); // well inside the 5 s grace for open calls
    expect(accepted.size).toBeGreaterThanOrEqual(30);
    expect([...refused.values()].every((code) => code === 'SHUTTING_DOWN')).toBe(true);
    clients.close();

    // Restart: every accepted message is there once; nothing refused was stored.
    node = await startNodeProcess(data, { AFTERSMTP_LOG__LEVEL: 'warn' });
    const bob = readProfile(profile('bob'));
    const bobClients = connect(bob, node.ready.grpc);
    const delivered: string[] = [];
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 3000); // then nothing more is coming
    await subscribe(bob, bobClients, profileResolver(bob), { signal: controller.signal, onMessage: (m) => { delivered.push(m.messageId); } });
    clearTimeout(timer);
    bobClients.close();
    // Exactly the answered ones, each once: every message the node took was answered before it ended
    // the stream, and nothing it did not answer was stored.
    expect([...delivered].sort()).toEqual([...accepted].map(idOf).sort());

    // A refused message was not recorded against replay either: sending it again is accepted.
    if (refused.size > 0) {
      clients = connect(alice, node.ready.grpc);
      const again = await submit(clients, envelopes[[...refused.keys()][0]!]!);
      expect(again.deliveredLocal).toEqual(['bob@example.test']);
      clients.close();
    }
  });
});
