// `aftersmtp backup` of a running node that is taking mail: the copy starts as the same node, holds every
// message acknowledged before the backup began, verified, and its transparency log already covers them.
import { describe, it, expect, afterAll } from 'vitest';
import { join } from 'node:path';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tempDir, runCli, startNodeProcess, type RunningNode } from '../helpers.ts';
import { readProfile, connect, profileResolver, sealFor, submit, subscribe } from '../../gateway/client/index.ts';
import { metricsOf } from './lab.ts';

describe('backup of a running node', { timeout: 120_000 }, () => {
  const dir = tempDir();
  const data = join(dir.path, 'node');
  const copy = join(dir.path, 'copy');
  const profile = (name: string) => join(dir.path, `${name}.json`);
  const running: RunningNode[] = [];

  afterAll(async () => {
    for (const node of running) {
      node.child.kill('SIGKILL');
      await node.exited;
    }
    dir.cleanup();
  });

  it('copies it consistently while it takes mail; the copy starts as the same node with everything acknowledged', async () => {
    expect((await runCli(['init', '--data', data, '--domain', 'example.test', '--grpc-port', '0'])).code).toBe(0);
    for (const name of ['alice', 'bob']) {
      expect((await runCli(['mailbox', 'add', `${name}@example.test`, '--data', data, '--profile', profile(name)])).code).toBe(0);
    }
    const node = await startNodeProcess(data, { AFTERSMTP_LOG__LEVEL: 'warn' });
    running.push(node);
    const alice = readProfile(profile('alice'));
    const clients = connect(alice, node.ready.grpc);
    const knownDids = { 'bob@example.test': readProfile(profile('bob')).did };
    const seal = async (i: number) => (await sealFor(alice, clients, profileResolver(alice), { to: ['bob@example.test'], subject: `backup ${i}`, text: 'x'.repeat(3000), knownDids })).envelope;
    const before: string[] = [];
    for (let i = 0; i < 5; i++) before.push(Buffer.from((await submit(clients, await seal(i))).messageId).toString('hex'));

    // Mail keeps arriving, one message after another, for as long as the backup runs.
    let backingUp = true;
    let sentDuring = 0;
    const writer = (async () => {
      for (let i = 5; backingUp; i++) {
        await submit(clients, await seal(i));
        sentDuring++;
      }
    })();
    const backup = await runCli(['backup', '--data', data, '--out', copy, '--json']);
    backingUp = false;
    await writer;
    clients.close();
    expect(backup.code, backup.stderr).toBe(0);
    expect(JSON.parse(backup.stdout).databases).toEqual(['node.db', 'ledger.db']); // the store, then the log
    expect(sentDuring).toBeGreaterThan(0);

    // The copy keeps secrets secret and holds no SQLite side files or run state.
    expect(statSync(copy).mode & 0o777).toBe(0o700);
    for (const secret of ['keys/node.json', 'tls/server.key', 'admin.token', 'node.db', 'ledger.db']) {
      expect(statSync(join(copy, secret)).mode & 0o077, secret).toBe(0);
    }
    expect(readdirSync(copy).filter((f) => /-(wal|shm)$|ready/.test(f))).toEqual([]);

    // Start the copy (the original stops first, as when a machine is replaced).
    node.child.kill('SIGTERM');
    expect(await node.exited).toBe(0);
    const restored = await startNodeProcess(copy, { AFTERSMTP_LOG__LEVEL: 'warn' });
    running.push(restored);
    expect(restored.ready.did).toBe(node.ready.did);
    const bob = readProfile(profile('bob'));
    const bobClients = connect(bob, restored.ready.grpc);
    const got: { messageId: string; verified: boolean }[] = [];
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 4000);
    await subscribe(bob, bobClients, profileResolver(bob), { signal: controller.signal, onMessage: (m) => { got.push(m); } });
    clearTimeout(timer);
    bobClients.close();
    const ids = got.map((m) => m.messageId);
    expect(ids).toEqual(expect.arrayContaining(before));
    expect(ids.length).toBeLessThanOrEqual(before.length + sentDuring);
    expect(new Set(ids).size).toBe(ids.length);
    expect(got.every((m) => m.verified)).toBe(true);
    // Every stored message already had its leaf in the copy's log: no repair at start, receipts unchanged.
    expect(restored.stderr()).not.toMatch(/restored transparency log leaves/);
    const metrics = await metricsOf({ data: copy, proc: restored });
    const gauge = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(metrics)![1]);
    expect(gauge('aftersmtp_ledger_tree_size')).toBeGreaterThanOrEqual(ids.length);
  });

  it('refuses to write into a directory that is not empty, and needs a node to copy', async () => {
    const busy = join(dir.path, 'busy');
    mkdirSync(busy);
    writeFileSync(join(busy, 'something'), 'x');
    const refused = await runCli(['backup', '--data', data, '--out', busy]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/exists and is not empty/);
    const within = await runCli(['backup', '--data', data, '--out', join(data, 'backup')]);
    expect(within.code).not.toBe(0);
    expect(within.stderr).toMatch(/is inside the data directory/);
    const nothing = await runCli(['backup', '--data', join(dir.path, 'none'), '--out', join(dir.path, 'fresh')]);
    expect(nothing.code).not.toBe(0);
    expect(nothing.stderr).toMatch(/no AfterSMTP node/);
  });
});
