// The operator's hands on the outbound queue (`aftersmtp queue list|retry|hold|release|purge`), on real
// nodes: A holds mail for b.test while B is down. Retries back off for a minute here, so anything
// delivered within seconds was sent because of the command, not because its time came.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { runCli, until } from '../helpers.ts';
import { NodeLab, metricsOf, type LabNode } from './lab.ts';

const lab = new NodeLab({
  AFTERSMTP_FEDERATION__RETRY__INITIAL_MS: '60000',
  AFTERSMTP_FEDERATION__RETRY__MAX_MS: '60000',
  AFTERSMTP_FEDERATION__DIAL_TIMEOUT_MS: '1500',
  AFTERSMTP_FEDERATION__ACK_TIMEOUT_MS: '2000',
  AFTERSMTP_FEDERATION__WITNESS__ENABLED: 'false',
  AFTERSMTP_LOG__LEVEL: 'warn',
});
const bob = { address: 'bob@b.test', mailbox: 'bob' };

describe('outbound queue administration', { timeout: 120_000 }, () => {
  let a: LabNode;
  let b: LabNode;
  const itemOf = async (messageId: string) => (await lab.queue(a)).find((i) => i.messageId === messageId);
  /** Sends alice -> bob while B is down and waits for A's failed first attempt (next one a minute away). */
  async function sendWhileBIsDown(subject: string): Promise<string> {
    if (b.proc) await lab.stop(b);
    const id = await lab.send('alice', a, bob, subject);
    await until('a deferred first attempt', async () => {
      const item = await itemOf(id);
      return item?.state === 'deferred' && item.attempts === 1 ? item : undefined;
    });
    return id;
  }
  async function bringBBack(): Promise<void> {
    await lab.start(b);
    await lab.route(a, b); // B's ports change on restart, as an operator would update them
  }

  beforeAll(async () => {
    [a, b] = await lab.pair(['alice@a.test', 'bob@b.test']);
  });

  afterAll(() => lab.close());

  it('hold keeps a message from being sent while its peer is back; release sends it, once', async () => {
    const id = await sendWhileBIsDown('held');
    expect(await lab.cli(['queue', 'hold', id, '--data', a.data])).toMatchObject({ event: 'queue-hold', affected: 1 });
    expect((await itemOf(id))?.state).toBe('held');
    const held = await lab.cli(['queue', 'list', '--state', 'held', '--data', a.data]);
    expect(held.map((i: { messageId: string }) => i.messageId)).toEqual([id]);
    // Queue depth by state, for the operator: in `status` and as a Prometheus gauge.
    const status = await lab.cli(['status', '--data', a.data]);
    expect(Object.fromEntries(Object.entries(status.outbound).map(([k, v]) => [k, Number(v)]))).toEqual({ queued: 0, deferred: 0, held: 1, failed: 0 });
    expect(await metricsOf(a)).toMatch(/^aftersmtp_outbound_recipients\{state="held"\} 1$/m);
    await bringBBack();
    // A retry would make it due now (see the next test); a held item ignores it and stays put.
    expect(await lab.cli(['queue', 'retry', id, '--data', a.data])).toMatchObject({ affected: 0 });
    await new Promise((r) => setTimeout(r, 1500));
    expect(await itemOf(id)).toMatchObject({ state: 'held', attempts: 1 });

    expect(await lab.cli(['queue', 'release', id, '--data', a.data])).toMatchObject({ affected: 1 });
    await until('delivery after release', async () => ((await itemOf(id))?.state === 'delivered' ? true : undefined), 15_000);
    expect((await lab.receive('bob', b, 1)).map((m) => m.messageId)).toEqual([id]);
  });

  it('retry sends a deferred message now instead of after its backoff', async () => {
    const id = await sendWhileBIsDown('retried');
    await bringBBack();
    await new Promise((r) => setTimeout(r, 1500));
    expect(await itemOf(id)).toMatchObject({ state: 'deferred', attempts: 1 }); // waiting out its minute
    expect(await lab.cli(['queue', 'retry', id, '--data', a.data])).toMatchObject({ affected: 1 });
    await until('delivery after retry', async () => ((await itemOf(id))?.state === 'delivered' ? true : undefined), 15_000);
    expect((await lab.receive('bob', b, 1)).map((m) => m.messageId)).toEqual([id]);
    const delivered = (await itemOf(id)) as unknown as Record<string, unknown>;
    expect(Date.parse(delivered.finishedAt as string)).toBeGreaterThan(Date.now() - 60_000); // when, not a next attempt
    expect(delivered.nextAttempt).toBeUndefined();
    // A delivered item is left alone by a second retry.
    expect(await lab.cli(['queue', 'retry', id, '--data', a.data])).toMatchObject({ affected: 0 });
  });

  it('acts on every waiting recipient of a domain at once: hold --all, release and retry --domain', async () => {
    const first = await sendWhileBIsDown('domain 1');
    const second = await lab.send('alice', a, bob, 'domain 2');
    await until('both deferred', async () => {
      const items = await lab.queue(a);
      return [first, second].every((id) => items.find((i) => i.messageId === id)?.state === 'deferred') ? true : undefined;
    });
    expect(await lab.cli(['queue', 'hold', '--all', '--data', a.data])).toMatchObject({ domain: '*', affected: 2 });
    expect(await lab.cli(['queue', 'release', '--domain', 'b.test', '--data', a.data])).toMatchObject({ affected: 2 });
    // Released means due now, but B is still down: both fail again and wait out their minute.
    await until('both deferred again', async () => {
      const items = await lab.queue(a);
      return [first, second].every((id) => items.find((i) => i.messageId === id)?.attempts === 2) ? true : undefined;
    });
    await bringBBack();
    expect(await lab.cli(['queue', 'retry', '--domain', 'B.TEST', '--data', a.data])).toMatchObject({ affected: 2 });
    await until('both delivered', async () => {
      const items = await lab.queue(a);
      return [first, second].every((id) => items.find((i) => i.messageId === id)?.state === 'delivered') ? true : undefined;
    }, 15_000);
    expect((await lab.receive('bob', b, 2)).map((m) => m.messageId).sort()).toEqual([first, second].sort());
  });

  it('purge drops a message for good: out of the queue, its envelope deleted, never delivered', async () => {
    const purged = await sendWhileBIsDown('purged');
    expect(await lab.cli(['queue', 'purge', purged, '--data', a.data])).toMatchObject({ affected: 1 });
    expect(await itemOf(purged)).toBeUndefined();
    const db = new DatabaseSync(join(a.data, 'node.db'), { readOnly: true });
    try {
      expect(db.prepare('SELECT count(*) AS n FROM outbound_envelopes WHERE message_id = ?').get(Buffer.from(purged, 'hex'))).toEqual({ n: 0 });
    } finally {
      db.close();
    }
    // Once B is back, the next message arrives and the purged one never does.
    await bringBBack();
    const later = await lab.send('alice', a, bob, 'after the purge');
    await until('delivery of the next message', async () => ((await itemOf(later))?.state === 'delivered' ? true : undefined), 15_000);
    expect((await lab.receive('bob', b, 2, 3000)).map((m) => m.messageId)).toEqual([later]);
  });

  it('a peer whose store is full refuses as transient: the mail waits with the reason, and goes once the peer has room', async () => {
    await lab.stop(b);
    b.env.AFTERSMTP_STORAGE__MAX_BYTES = '1'; // B's operator capped its store below what it holds
    await bringBBack();
    const id = await lab.send('alice', a, bob, 'to a full store');
    const deferred = await until('a deferred attempt refused by the full store', async () => {
      const item = await itemOf(id);
      return item?.state === 'deferred' && item.attempts === 1 ? item : undefined;
    });
    expect(deferred.lastError).toMatch(/STORAGE_FULL.*storage\.maxBytes/);
    // B's operator sees why: the store's size against its cap, in `status` and /metrics.
    const status = await lab.cli(['status', '--data', b.data]);
    expect(Number(status.storeMaxBytes)).toBe(1);
    expect(Number(status.storeBytes)).toBeGreaterThan(1);
    expect(Number(status.minFreeBytes)).toBe(64 * 1024 * 1024);
    expect(Number(status.diskFreeBytes)).toBeGreaterThan(Number(status.minFreeBytes));
    expect(await metricsOf(b)).toMatch(/^aftersmtp_store_max_bytes 1$/m);
    // The operator makes room (here: lifts the cap) and flushes A's queue instead of waiting out the backoff.
    await lab.stop(b);
    delete b.env.AFTERSMTP_STORAGE__MAX_BYTES;
    await bringBBack();
    expect(await lab.cli(['queue', 'retry', '--domain', 'b.test', '--data', a.data])).toMatchObject({ affected: 1 });
    await until('delivery once B has room', async () => ((await itemOf(id))?.state === 'delivered' ? true : undefined), 15_000);
    expect((await lab.receive('bob', b, 2, 3000)).map((m) => m.messageId)).toEqual([id]);
  });

  it('answers an unknown message id and a malformed one with clear errors, and keeps serving', async () => {
    const unknown = await runCli(['queue', 'hold', '0'.repeat(32), '--data', a.data, '--json']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/no queued recipient matches/);
    const malformed = await runCli(['queue', 'purge', 'not-an-id', '--data', a.data, '--json']);
    expect(malformed.code).not.toBe(0);
    expect(malformed.stderr).toMatch(/usage: aftersmtp queue purge \(MESSAGE_ID/);
    const both = await runCli(['queue', 'retry', '0'.repeat(32), '--domain', 'b.test', '--data', a.data, '--json']);
    expect(both.code).not.toBe(0); // a message id or a domain, not both
    // A domain with nothing waiting is an answer (0), not an error.
    expect(await lab.cli(['queue', 'retry', '--domain', 'nowhere.test', '--data', a.data])).toMatchObject({ affected: 0 });
    expect(Array.isArray(await lab.queue(a))).toBe(true);
  });
});
