// Compliance rules on mail relayed from another AfterSMTP node (direction federation where it arrives):
// node A (a.test) relays alice's mail to node B (b.test), whose operator sets rules with the real CLI
// beside the running node. One test per action: what the users of both nodes see, and B's audit leaves.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { until } from '../helpers.ts';
import { NodeLab, type LabNode } from './lab.ts';
import { readProfile, type ComposeOptions } from '../../gateway/client/index.ts';
import { RULES_REREAD_MS } from '../../gateway/store/index.ts';

describe('compliance rules on mail from a peer node', { timeout: 120_000 }, () => {
  const lab = new NodeLab({ AFTERSMTP_LOG__LEVEL: 'warn' });
  let a: LabNode;
  let b: LabNode;

  beforeAll(async () => {
    [a, b] = await lab.pair(['alice@a.test', 'bob@b.test', 'carol@b.test', 'journal@b.test', 'review@b.test']);
  });
  afterEach(async () => {
    for (const r of await lab.cli(['rules', 'list', '--data', b.data]) as { name: string }[]) await lab.cli(['rules', 'remove', r.name, '--data', b.data]);
  });
  afterAll(() => lab.close());

  /**
   * Sets a rule on B. A running node re-reads its rules at most RULES_REREAD_MS after a change (the bound
   * it documents, not a guess at machine speed): once it has passed, B's next message sees the rule.
   */
  async function rule(name: string, when: string[], then: string): Promise<void> {
    await lab.cli(['rules', 'add', name, ...when.flatMap((w) => ['--when', w]), '--then', then, '--data', b.data]);
    await sleep(RULES_REREAD_MS);
  }

  /** alice@a.test's app sends a message through A; B gets it relayed. */
  const fromAlice = (compose: ComposeOptions) => lab.sendMail('alice', a, { text: compose.subject, ...compose });

  /** The audit leaves B lists for a message, as `rule:action`. */
  async function auditsOf(messageHash: string): Promise<string[]> {
    const all = await lab.cli(['audit', 'list', '--data', b.data]) as { rule: string; action: string; messageHash: string; leafIndex: number }[];
    return all.filter((x) => x.messageHash === messageHash).map((x) => `${x.rule}:${x.action}`);
  }

  /**
   * Mailbox `name` on B receives nothing it was not given before: carol@b.test sends it a message of B's own
   * (direction local, which no rule here matches), and that is the next message it receives.
   */
  async function nothingMoreFor(name: string): Promise<void> {
    const marker = await lab.sendMail('carol', b, { to: [`${name}@b.test`], subject: 'marker', text: 'marker' });
    const [next] = await lab.receive(name, b, 1);
    expect(next?.subject).toBe('marker');
    expect(next?.messageId).toBe(marker.messageId);
  }

  const queueItem = (messageId: string, state: string) =>
    until(`${messageId} ${state} at A`, async () => (await lab.queue(a)).find((i) => i.messageId === messageId && i.state === state));

  it('journal: one copy in the journal mailbox for two recipients, sealed to it by the sender; without that copy B refuses naming the key, and alice gets a notice', async () => {
    await rule('archive', ['direction:federation'], 'journal journal@b.test');
    const sent = await fromAlice({ to: ['bob@b.test', 'carol@b.test'], bcc: ['journal@b.test'], subject: 'for the archive' });
    for (const name of ['bob', 'carol', 'journal']) {
      const [got] = await lab.receive(name, b, 1);
      expect(got, name).toMatchObject({ messageId: sent.messageId, from: 'alice@a.test', verified: true, subject: 'for the archive' });
      expect(got!.to).toEqual(['bob@b.test', 'carol@b.test']); // the journal copy is hidden from the recipients
    }
    await nothingMoreFor('journal'); // exactly one copy
    expect(await auditsOf(sent.messageHash)).toEqual(['archive:journal']);

    const unsealed = await fromAlice({ to: ['bob@b.test'], subject: 'no archive copy' });
    const failed = await queueItem(unsealed.messageId, 'failed');
    const journalKey = readProfile(lab.profile('journal')).agreement.keyId;
    expect(failed.lastError).toContain(`rule archive of this node journals this mail to journal@b.test: seal a copy to journal@b.test's key ${journalKey} too`);
    const [notice] = await lab.receive('alice', a, 1);
    expect(notice).toMatchObject({ from: 'postmaster@a.test', verified: true, subject: expect.stringMatching(/Undelivered Mail Returned to Sender/) });
    const report = Buffer.from(notice!.body!).toString();
    expect(report).toContain(`Your message ${unsealed.messageId} could not be delivered to bob@b.test`);
    expect(report).toMatch(/Diagnostic-Code: smtp;\s+INVALID_ARGUMENT:/);
    await nothingMoreFor('bob');
    expect(await auditsOf(unsealed.messageHash)).toEqual([]); // refused: no action taken
  });

  it('hold: kept from bob, listed by `hold list`, delivered by `hold release`; hold and release audited', async () => {
    await rule('legal', ['direction:federation', 'to:bob@b.test'], 'hold');
    const sent = await fromAlice({ to: ['bob@b.test'], subject: 'on hold' });
    await queueItem(sent.messageId, 'delivered'); // B took it: its receipt is A's
    const held = await lab.cli(['hold', 'list', '--data', b.data]);
    expect(held).toMatchObject([{ messageId: sent.messageId, mailbox: 'bob@b.test', rule: 'legal', state: 'held' }]);
    await nothingMoreFor('bob');
    await lab.cli(['hold', 'release', sent.messageId, '--data', b.data]);
    const [got] = await lab.receive('bob', b, 1);
    expect(got).toMatchObject({ messageId: sent.messageId, from: 'alice@a.test', verified: true, subject: 'on hold' });
    expect(await lab.cli(['hold', 'list', '--data', b.data])).toEqual([]);
    expect(await until('the release audited', async () => {
      const audits = await auditsOf(sent.messageHash);
      return audits.length === 2 ? audits : undefined;
    })).toEqual(['legal:hold', 'legal:release']);
  });

  it('redirect: bob gets nothing, the redirect mailbox gets the copy the sender sealed to it', async () => {
    await rule('elsewhere', ['direction:federation', 'to:bob@b.test'], 'redirect journal@b.test');
    const sent = await fromAlice({ to: ['bob@b.test'], bcc: ['journal@b.test'], subject: 'redirected' });
    const [got] = await lab.receive('journal', b, 1);
    expect(got).toMatchObject({ messageId: sent.messageId, from: 'alice@a.test', verified: true, subject: 'redirected', to: ['bob@b.test'] });
    await nothingMoreFor('bob');
    expect(await auditsOf(sent.messageHash)).toEqual(['elsewhere:redirect']);
  });

  it('divert: held from bob, a copy to the reviewer, who releases it to bob with `review release`', async () => {
    await rule('screen', ['direction:federation', 'to:bob@b.test'], 'divert review@b.test');
    const sent = await fromAlice({ to: ['bob@b.test'], bcc: ['review@b.test'], subject: 'to screen' });
    const [seen] = await lab.receive('review', b, 1);
    expect(seen).toMatchObject({ messageId: sent.messageId, from: 'alice@a.test', verified: true, subject: 'to screen' });
    expect(await lab.cli(['hold', 'list', '--data', b.data])).toMatchObject([{ messageId: sent.messageId, mailbox: 'bob@b.test', rule: 'screen' }]);
    await nothingMoreFor('bob');
    const released = await lab.cli(['review', 'release', sent.messageId, '--profile', lab.profile('review'), '--node', b.proc!.ready.grpc]);
    expect(released).toMatchObject({ event: 'released', released: 1 });
    const [got] = await lab.receive('bob', b, 1);
    expect(got).toMatchObject({ messageId: sent.messageId, from: 'alice@a.test', verified: true, subject: 'to screen' });
    expect(await until('the release audited', async () => {
      const audits = await auditsOf(sent.messageHash);
      return audits.length === 2 ? audits : undefined;
    })).toEqual(['screen:divert', 'screen:release']);
  });

  it('reject: B refuses, A fails the recipient at once with the rule\'s reason and alice gets a notice; nothing is delivered', async () => {
    await rule('no-a', ['direction:federation', 'from:*@a.test'], 'reject 550 no mail from a.test here');
    const sent = await fromAlice({ to: ['bob@b.test'], subject: 'refused' });
    const failed = await queueItem(sent.messageId, 'failed');
    expect(failed).toMatchObject({ recipient: 'bob@b.test', attempts: 1 });
    expect(failed.lastError).toContain('refused by rule no-a: 550 no mail from a.test here');
    const [notice] = await lab.receive('alice', a, 1);
    expect(notice).toMatchObject({ from: 'postmaster@a.test', verified: true, subject: expect.stringMatching(/Undelivered Mail Returned to Sender/) });
    const report = Buffer.from(notice!.body!).toString();
    // The notice is signed by A: it says what the code means in A's words, never the peer's (SECURITY.md).
    expect(report).toContain(`Your message ${sent.messageId} could not be delivered to bob@b.test`);
    expect(report).toMatch(/Diagnostic-Code: smtp;\s+PERMISSION_DENIED:/);
    expect(report).not.toContain('no mail from a.test here');
    await nothingMoreFor('bob');
    expect(await auditsOf(sent.messageHash)).toEqual(['no-a:reject']);
  });

  it('tag: bob\'s delivery carries the label', async () => {
    await rule('label', ['direction:federation'], 'tag from a peer');
    const sent = await fromAlice({ to: ['bob@b.test'], subject: 'labelled' });
    const [got] = await lab.receive('bob', b, 1);
    expect(got).toMatchObject({ messageId: sent.messageId, verified: true, labels: ['from a peer'] });
    expect(await auditsOf(sent.messageHash)).toEqual(['label:tag']);
  });

  it('a rule for SMTP mail, or for another sender, leaves relayed mail alone: delivered, nothing audited', async () => {
    await rule('smtp-only', ['direction:smtp-in'], 'hold');
    await rule('not-alice', ['direction:federation', 'from:mallory@a.test'], 'reject 550 not mallory');
    const sent = await fromAlice({ to: ['bob@b.test'], subject: 'untouched' });
    const [got] = await lab.receive('bob', b, 1);
    expect(got).toMatchObject({ messageId: sent.messageId, from: 'alice@a.test', verified: true, subject: 'untouched' });
    expect(got!.labels).toBeUndefined();
    expect(await lab.cli(['hold', 'list', '--data', b.data])).toEqual([]);
    expect(await auditsOf(sent.messageHash)).toEqual([]);
  });
});
