// Webhooks against a real node process and a real HTTPS hook on 127.0.0.1 (its CA configured through
// webhooks.caFiles): a hook that fails and recovers, one that answers after the node's timeout, a node
// restarted with posts pending, a delivery a subscriber takes first, a delivery dead-lettered and retried,
// and hostile hooks (a redirect, an endless answer).
// Every request's signature is checked with the standardwebhooks library's own verifier, and the hook
// takes each webhook-id once, as a Standard Webhooks consumer does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricsOf, NodeLab, type LabNode } from './lab.ts';
import { Hook, hookRows, idOf, makeHookedNode, openPosted } from './webhook-lab.ts';
import { runCli, until } from '../helpers.ts';

describe('webhooks', () => {
  const lab = new NodeLab();
  const hook = new Hook();
  let a: LabNode;
  const bob = { address: 'bob@a.test', mailbox: 'bob' };
  const rows = () => hookRows(a);
  const setHook = async () => {
    const set = await lab.cli(['webhooks', 'set', 'bob@a.test', '--url', 'https://hooks.test/in', '--data', a.data]);
    expect(set.secret).toMatch(/^whsec_/);
    hook.secret = set.secret;
  };
  const list = (dead = false) => lab.cli(['webhooks', 'list', ...(dead ? ['--dead'] : []), '--data', a.data]);

  beforeAll(async () => {
    a = await makeHookedNode(lab, hook, 'a', 'a.test');
    await lab.addMailbox('alice@a.test', a, 'alice');
    await lab.addMailbox('bob@a.test', a, 'bob');
    // Bob's mail carries a label, which the POST gives as Subscribe does.
    await lab.cli(['rules', 'add', 'label-bob', '--when', 'to:bob@a.test', '--then', 'tag hooked', '--data', a.data]);
    await lab.start(a);
  }, 120_000);

  afterAll(async () => {
    await lab.close();
    await hook.close();
  });

  it('refuses a hook that is not https or names no mailbox, with the reason', async () => {
    const plain = await runCli(['webhooks', 'set', 'bob@a.test', '--url', 'http://hooks.test/in', '--data', a.data]);
    expect(plain.code).toBe(2);
    expect(plain.stderr).toMatch(/must be https/);
    const nobody = await runCli(['webhooks', 'set', 'nobody@a.test', '--url', 'https://hooks.test/in', '--data', a.data]);
    expect(nobody.code).not.toBe(0);
    expect(nobody.stderr).toMatch(/no mailbox/);
  });

  it('a failing hook is retried until it recovers; each message is taken once, signed, and a subscriber no longer gets it', async () => {
    await setHook();
    hook.mode = 'fail';
    const m1 = await lab.send('alice', a, bob, 'first');
    const m2 = await lab.send('alice', a, bob, 'second');
    await until('both failed twice', async () => (hook.attempts(idOf(m1, 1)).length >= 2 && hook.attempts(idOf(m2, 2)).length >= 2) || undefined);
    expect((await list())[0]).toMatchObject({ mailbox: 'bob@a.test', url: 'https://hooks.test/in', payload: 'inline', queued: 2, delivered: 0 });

    hook.mode = 'ok';
    await until('both taken', async () => (hook.taken.has(idOf(m1, 1)) && hook.taken.has(idOf(m2, 2))) || undefined);
    await until('both settled', async () => (rows().every((r) => r.state === 'delivered') ? true : undefined));
    expect(hook.badSignatures).toEqual([]);
    for (const [id, seq, subject] of [[idOf(m1, 1), 1, 'first'], [idOf(m2, 2), 2, 'second']] as const) {
      expect(hook.attempts(id).filter((s) => s.status === 200)).toHaveLength(1); // once: no POST after the 2xx
      const { data } = hook.taken.get(id)!;
      expect(data).toMatchObject({ mailbox: 'bob@a.test', seq, recipients: ['bob@a.test'], authenticatedSender: 'alice@a.test', senderDomain: 'a.test', labels: ['hooked'] });
      expect(data.receipt).toMatchObject({ leafIndex: expect.any(Number), logOrigin: expect.any(String) });
      // The node posts the sealed envelope (a hook's form is inline unless set otherwise); the app opens it with the mailbox's key.
      if (!('envelope' in data)) throw new Error('an inline hook got no envelope');
      expect(data).not.toHaveProperty('envelopeUrl');
      const opened = await openPosted(lab, 'bob', data, Buffer.from(data.envelope, 'base64'));
      expect(opened).toMatchObject({ verified: true, subject, from: 'alice@a.test' });
    }
    expect((await list())[0]).toMatchObject({ queued: 0, delivered: 2, dead: 0 });

    // Acknowledged by the hook: a subscriber starting from the beginning gets only what came after.
    await lab.cli(['webhooks', 'remove', 'bob@a.test', '--data', a.data]);
    const m3 = await lab.send('alice', a, bob, 'third');
    const got = await lab.receive('bob', a, 1);
    expect(got.map((m) => [m.seq, m.messageId])).toEqual([[3, m3]]);
  });

  it('a hook answering after the timeout gets the same webhook-id again and takes the message once', async () => {
    await setHook();
    hook.mode = 'slow';
    const m4 = await lab.send('alice', a, bob, 'slow');
    const id = idOf(m4, 4);
    await until('settled after a repeat', async () => (rows().find((r) => r.seq === 4)?.state === 'delivered' ? true : undefined));
    expect(hook.attempts(id).length).toBeGreaterThanOrEqual(2);
    expect([...hook.taken.keys()].filter((k) => k === id)).toHaveLength(1);
    expect(rows().find((r) => r.seq === 4)?.attempts).toBeGreaterThanOrEqual(2);
    expect(hook.badSignatures).toEqual([]);
  });

  it('posts pending when the node is killed are made after it starts again', async () => {
    hook.mode = 'fail';
    const m5 = await lab.send('alice', a, bob, 'across a crash');
    const id = idOf(m5, 5);
    await until('a failed attempt', async () => hook.attempts(id).length >= 1 || undefined);
    a.proc!.child.kill('SIGKILL'); // no drain: what is pending is only what the store holds
    await a.proc!.exited;
    a.proc = undefined;
    expect(rows().find((r) => r.seq === 5)?.state).toBe('queued');
    hook.mode = 'ok';
    await lab.start(a);
    await until('taken after the restart', async () => hook.taken.has(id) || undefined);
    await until('settled', async () => (rows().find((r) => r.seq === 5)?.state === 'delivered' ? true : undefined));
  });

  it('a hook answering 2xx with a flood of a body: the node reads a bounded part and counts it delivered', async () => {
    hook.mode = 'flood';
    const m = await lab.send('alice', a, bob, 'flood');
    await until('taken', async () => hook.taken.has(idOf(m, 6)) || undefined);
    await until('settled', async () => (rows().find((r) => r.seq === 6)?.state === 'delivered' ? true : undefined));
    expect(hook.attempts(idOf(m, 6))).toHaveLength(1);
    hook.mode = 'ok';
  });

  it('a delivery a subscriber acknowledges first is settled without a POST', async () => {
    hook.mode = 'fail';
    const m6 = await lab.send('alice', a, bob, 'taken by the app');
    hook.failing.add(idOf(m6, 7)); // its attempts keep failing, whether made before the ack or not
    hook.mode = 'ok';
    await until('a failed attempt', async () => hook.attempts(idOf(m6, 7)).length >= 1 || undefined);
    const got = await lab.receive('bob', a, 1); // receives and acknowledges
    expect(got.map((m) => [m.seq, m.messageId])).toEqual([[7, m6]]);
    await until('settled by the ack', async () => (rows().find((r) => r.seq === 7)?.state === 'acked' ? true : undefined));
    const attemptsAtAck = hook.attempts(idOf(m6, 7)).length;
    const m7 = await lab.send('alice', a, bob, 'after it');
    await until('the next one taken', async () => hook.taken.has(idOf(m7, 8)) || undefined);
    expect(hook.attempts(idOf(m6, 7)).length).toBeLessThanOrEqual(attemptsAtAck + 1); // at most one already in flight at the ack
    expect(hook.taken.has(idOf(m6, 7))).toBe(false);
    expect(rows().find((r) => r.seq === 7)?.state).toBe('acked');
  });

  it('a hook that redirects is not followed; past webhooks.maxAgeMs its deliveries are dead-lettered, listed, and delivered by `webhooks retry`', async () => {
    await lab.stop(a);
    a.env = { ...a.env, AFTERSMTP_WEBHOOKS__MAX_AGE_MS: '1500' };
    await lab.start(a);
    hook.mode = 'redirect';
    const ids = [idOf(await lab.send('alice', a, bob, 'dead letter'), 9), idOf(await lab.send('alice', a, bob, 'dead letter too'), 10)];
    const dead = await until('dead-lettered', async () => {
      const hooks = await list(true);
      return hooks[0]?.deadLettered?.length === 2 ? hooks[0] : undefined;
    });
    expect(dead).toMatchObject({ dead: 2, queued: 0 });
    expect(await metricsOf(a)).toMatch(/^aftersmtp_webhook_deliveries\{state="dead"\} 2$/m);
    expect(dead.deadLettered.map((d: { seq: number }) => d.seq)).toEqual([9, 10]);
    for (const d of dead.deadLettered) expect(d.lastError).toMatch(/HTTP 302 \(redirect not followed\)/);
    for (const id of ids) {
      expect(hook.attempts(id).every((s) => s.status === 302)).toBe(true);
      expect(hook.taken.has(id)).toBe(false);
    }

    hook.mode = 'ok';
    const retried = await lab.cli(['webhooks', 'retry', 'bob@a.test', '--data', a.data]);
    expect(retried).toMatchObject({ requeued: 2 });
    await until('taken after the retry', async () => ids.every((id) => hook.taken.has(id)) || undefined);
    await until('settled', async () => (rows().filter((r) => r.seq >= 9).every((r) => r.state === 'delivered') ? true : undefined));
    expect(await list()).toMatchObject([{ dead: 0, queued: 0 }]);
    expect(await metricsOf(a)).toMatch(/^aftersmtp_webhook_deliveries\{state="dead"\} 0$/m);
    expect(hook.badSignatures).toEqual([]);
  });

  it('a hook held after a failure is tried at once when set again, and its 2xx brings on what waits out a backoff', async () => {
    await lab.stop(a);
    // Backoff of ten minutes: anything posted within this test was brought on, not waited for.
    a.env = { ...a.env, AFTERSMTP_WEBHOOKS__RETRY__INITIAL_MS: '600000', AFTERSMTP_WEBHOOKS__RETRY__MAX_MS: '600000', AFTERSMTP_WEBHOOKS__MAX_AGE_MS: '86400000' };
    await lab.start(a);
    hook.mode = 'fail';
    const failed = idOf(await lab.send('alice', a, bob, 'fails once'), 11);
    await until('a failed attempt', async () => hook.attempts(failed).length >= 1 || undefined);
    hook.mode = 'ok';
    const waiting = idOf(await lab.send('alice', a, bob, 'waits behind the failure'), 12);
    await until('the failure recorded', async () => (rows().find((r) => r.seq === 11)?.attempts === 1 ? true : undefined));
    expect(rows().find((r) => r.seq === 12)).toMatchObject({ state: 'queued', attempts: 0 }); // held behind it
    await setHook(); // the operator's fix: the hook is tried now
    await until('both taken', async () => (hook.taken.has(failed) && hook.taken.has(waiting)) || undefined);
    await until('settled', async () => (rows().filter((r) => r.seq >= 11).every((r) => r.state === 'delivered') ? true : undefined));
    expect(hook.attempts(failed).filter((s) => s.status === 500)).toHaveLength(1);
    expect(hook.badSignatures).toEqual([]);
  });
});
