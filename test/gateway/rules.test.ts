// Compliance rules: the pure engine (parsing, matching, deciding), then every action on a real node on the
// two paths a message enters by: the SMTP bridge (MX, which can read the message) and an app's submission
// (end-to-end encrypted: the node cannot re-seal it). Each action taken leaves an audit leaf in the log.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import pino from 'pino';
import { tempDir, initNodeWithMailboxes, until } from '../helpers.ts';
import { AfterSmtpNode } from '../../gateway/node/index.ts';
import { addMailbox } from '../../gateway/datadir/index.ts';
import { connect, profileResolver, sealFor, submit, subscribe, type Clients, type MailboxProfile, type ReceivedMessage } from '../../gateway/client/index.ts';
import { bridgeErrorFor, type SmtpHandler } from '../../gateway/smtp/index.ts';
import { auditHash, decide, parseAction, parseCondition, readHeaders, retarget, RuleSyntaxError, type Rule } from '../../gateway/rules/index.ts';
import { smtpReplyFor, type InboundMessage } from '../../bridge/index.ts';
import { decodeLeaf } from '../../ledger/index.ts';

const HOST = 'example.test';

function rule(name: string, when: string[], then: string): Rule {
  return { name, when: when.map(parseCondition), then: parseAction(then) };
}

describe('the rules engine', () => {
  it('parses conditions and actions, and refuses malformed ones with the reason', () => {
    expect(parseCondition('from:*@mail.test')).toEqual({ kind: 'from', pattern: '*@mail.test' });
    expect(parseCondition('size>1000')).toEqual({ kind: 'size', above: 1000 });
    expect(parseCondition('header:X-Case=4711')).toEqual({ kind: 'header', name: 'x-case', value: '4711' });
    expect(parseAction('reject 550 no thanks')).toEqual({ kind: 'reject', code: 550, text: 'no thanks' });
    for (const bad of ['from:', 'to:a@b', 'from:\x1b[2Jx@mail.test', 'direction:sideways', 'size>-1', 'header:=x', 'header:X-A=\u0007', 'subject:x']) {
      expect(() => parseCondition(bad), bad).toThrow(RuleSyntaxError);
    }
    for (const bad of ['reject 250 ok', 'reject 550', 'journal', 'journal a@b.test c@d.test', 'tag', 'tag a\r\nb', 'hold now', 'delete']) {
      expect(() => parseAction(bad), bad).toThrow(RuleSyntaxError);
    }
  });

  it('triggers a rule only when every condition holds; to: chooses the recipients; a header never matches unreadable mail', () => {
    const rules = [
      rule('legal', ['from:*@mail.test', 'to:bob@example.test'], 'hold'),
      rule('big', ['size>100'], 'tag large'),
      rule('case', ['header:x-case=4711'], 'journal archive@example.test'),
      rule('none', ['direction:federation'], 'reject 550 no'),
    ];
    const headers = readHeaders(Buffer.from('From: carol@mail.test\r\nX-Case:  4711\r\n\r\nX-Case: 9\r\n'));
    const d = decide(rules, { from: 'carol@mail.test', to: ['bob@example.test', 'alice@example.test'], direction: 'smtp-in', size: 50, headers });
    expect(d.triggered.map((t) => [t.rule.name, t.recipients])).toEqual([['legal', ['bob@example.test']], ['case', ['bob@example.test', 'alice@example.test']]]);
    expect([...d.hold]).toEqual([['bob@example.test', 'legal']]);
    expect([...d.journal]).toEqual([['archive@example.test', 'case']]);
    expect(d.reject).toBeUndefined();
    // The same message end-to-end encrypted: no header to read.
    const e2e = decide(rules, { from: 'carol@mail.test', to: ['bob@example.test'], direction: 'local', size: 500 });
    expect(e2e.triggered.map((t) => t.rule.name)).toEqual(['legal', 'big']);
    expect(decide(rules, { from: 'x@y.test', to: ['z@example.test'], direction: 'local', size: 1 }).triggered).toEqual([]);
  });

  it('carries a decision on forwarding addresses over to their targets: a hold wins, a redirect needs every source, a journal copy is made once', () => {
    const rules = [
      rule('legal', ['to:dan@example.test'], 'hold'),
      rule('elsewhere', ['to:eve@example.test'], 'redirect review@example.test'),
      rule('screen', ['to:fay@example.test'], 'divert review@example.test'),
      rule('archive', [], 'journal archive@example.test'),
      rule('label', [], 'tag seen'),
    ];
    const facts = { from: 'carol@mail.test', direction: 'smtp-in' as const, size: 1 };
    // dan and eve forward to one address, fay to hers, gus (no rule) to his own.
    const targetOf = new Map([['dan@example.test', 'team@far.test'], ['eve@example.test', 'team@far.test'], ['fay@example.test', 'fay@far.test'], ['gus@example.test', 'gus@far.test']]);
    const onForward = retarget(decide(rules, { ...facts, to: [...targetOf.keys()] }), targetOf, new Map([['archive@example.test', 'archive'], ['review@example.test', 'screen']]));
    expect([...onForward.hold]).toEqual([['team@far.test', 'legal'], ['fay@far.test', 'screen']]);
    expect([...onForward.redirect]).toEqual([]); // team@far.test is dan's target too, and dan is not redirected
    // The mailboxes' copy journals already; the reviewer still gets this copy, which it must release.
    expect([...onForward.journal]).toEqual([['review@example.test', 'screen']]);
    expect([...onForward.tags]).toEqual([['seen', 'label']]);
    expect(onForward.triggered.map((t) => [t.rule.name, t.recipients])).toEqual([['legal', ['team@far.test']], ['screen', ['fay@far.test']], ['label', ['team@far.test', 'fay@far.test', 'gus@far.test']]]);
    // eve alone: her target redirected; with no other copy the journal gets this one.
    const eve = new Map([['eve@example.test', 'eve@far.test']]);
    const alone = retarget(decide(rules, { ...facts, to: ['eve@example.test'] }), eve);
    expect([...alone.redirect]).toEqual([['eve@far.test', { rule: 'elsewhere', address: 'review@example.test' }]]);
    expect([...alone.journal]).toEqual([['archive@example.test', 'archive']]);
    expect(alone.triggered.map((t) => t.rule.name)).toEqual(['elsewhere', 'archive', 'label']);
  });

  it('separates the fields of an audit hash: no two (rule, action) pairs collide', () => {
    const h = new Uint8Array(32);
    expect(Buffer.from(auditHash('ab', 'c', h))).not.toEqual(Buffer.from(auditHash('a', 'bc', h)));
  });
});

describe('rules on a node', () => {
  const dir = tempDir();
  let node: AfterSmtpNode;
  let handler: SmtpHandler;
  let alice: MailboxProfile;
  let bob: MailboxProfile;
  let archive: MailboxProfile;
  let review: MailboxProfile;
  let aliceClients: Clients;
  let grpcAddress = '';
  let session = 0;

  function fromMx(subject: string, to: string[], extra = ''): InboundMessage {
    const message = Buffer.from([
      'Received: from mta.mail.test ([192.0.2.10])\r\n\tby example.test with ESMTPS id x;\r\n\tMon, 07 Dec 2026 01:00:01 +0000',
      'From: Carol <carol@mail.test>', `To: ${to.join(', ')}`, `Subject: ${subject}`, ...(extra ? [extra] : []),
      `Message-ID: <${++session}@mail.test>`, '', 'Hello.', '',
    ].join('\r\n'));
    return {
      sessionId: `s${session}`, listener: 'mx', clientIp: '192.0.2.10', helo: 'mta.mail.test', tls: true, mailFrom: 'carol@mail.test',
      recipients: to.map((address) => ({ address })), dsn: {}, requireTls: false, headerFrom: 'carol@mail.test', message,
    };
  }

  function inbox(address: string): string[] {
    return node.storage.deliveries.pending(address, 0, 1000).map((d) => Buffer.from(d.messageId).toString('hex'));
  }

  /** The mailbox's unread messages as its app opens them (acknowledged). */
  async function read(profile: MailboxProfile, count: number): Promise<ReceivedMessage[]> {
    const clients = connect(profile, grpcAddress);
    const got: ReceivedMessage[] = [];
    try {
      await subscribe(profile, clients, profileResolver(profile), { count, onMessage: (m) => { got.push(m); } });
      return got;
    } finally {
      clients.close();
    }
  }

  async function withRules(rules: Rule[], run: () => Promise<void>): Promise<void> {
    for (const r of rules) await node.storage.rules.set(r);
    try {
      await run();
    } finally {
      for (const r of rules) await node.storage.rules.remove(r.name);
    }
  }

  const appSend = async (opts: { to: string[]; subject: string; bcc?: string[] }) => {
    const sealed = await sealFor(alice, aliceClients, profileResolver(alice), { ...opts, text: 'hi' });
    await submit(aliceClients, sealed.envelope);
    return Buffer.from(sealed.messageId).toString('hex');
  };

  beforeAll(async () => {
    const made = await initNodeWithMailboxes(dir.path, HOST);
    ({ alice, bob } = made);
    archive = addMailbox({ dataDir: made.data, address: `archive@${HOST}`, profileFile: join(dir.path, 'archive.json') });
    review = addMailbox({ dataDir: made.data, address: `review@${HOST}`, profileFile: join(dir.path, 'review.json') });
    node = new AfterSmtpNode({ dataDir: made.data, logger: pino({ level: 'silent' }) });
    grpcAddress = (await node.start()).grpc;
    handler = node.smtp!.handler;
    aliceClients = connect(alice, grpcAddress);
  }, 60_000);

  afterAll(async () => {
    aliceClients?.close();
    await node?.stop(500);
    dir.cleanup();
  });

  it('reject: SMTP in answers with the rule\'s own code and text; an app gets PERMISSION_DENIED naming the rule; both leave an audit leaf', async () => {
    await withRules([rule('no-carol', ['from:carol@mail.test'], 'reject 554 mail from carol is not taken here'), rule('no-alice', ['from:alice@example.test', 'to:bob@example.test'], 'reject 550 not to bob')], async () => {
      const before = node.storage.rules.audits(0).length;
      const err = await handler.accept(fromMx('rejected', ['bob@example.test']), new AbortController().signal).catch((e: unknown) => e);
      expect(smtpReplyFor(bridgeErrorFor(err))).toEqual({ code: 554, enhanced: '5.7.1', text: 'mail from carol is not taken here' });
      await expect(appSend({ to: ['bob@example.test'], subject: 'rejected' })).rejects.toMatchObject({ details: expect.stringContaining('refused by rule no-alice: 550 not to bob') });
      const audits = node.storage.rules.audits(0).slice(before);
      expect(audits.map((a) => [a.rule, a.action])).toEqual([['no-carol', 'reject'], ['no-alice', 'reject']]);
      expect(inbox('bob@example.test')).toEqual([]);
    });
  });

  it('redirect: bob\'s copy goes to review instead, over SMTP; an app must seal to review, or is told so', async () => {
    await withRules([rule('divert-bob', ['to:bob@example.test'], 'redirect review@example.test')], async () => {
      const { messageId } = await handler.accept(fromMx('redirected', ['bob@example.test', 'alice@example.test']), new AbortController().signal);
      expect(inbox('bob@example.test')).toEqual([]);
      expect(inbox('review@example.test')).toContain(messageId);
      expect(inbox('alice@example.test')).toContain(messageId);
      await expect(appSend({ to: ['bob@example.test'], subject: 'e2e' })).rejects.toMatchObject({ details: expect.stringContaining('seal a copy to review@example.test') });
      const id = await appSend({ to: ['bob@example.test'], subject: 'e2e', bcc: ['review@example.test'] });
      expect(inbox('bob@example.test')).toEqual([]);
      expect(inbox('review@example.test')).toContain(id);
      const opened = await read(review, 2);
      expect(opened.map((m) => m.subject)).toEqual(['redirected', 'e2e']);
      await read(alice, 1);
    });
  });

  it('journal: one copy of a message with several recipients, sealed to the journal mailbox and readable there; the recipients\' copies untouched', async () => {
    await withRules([rule('archive-all', [], 'journal archive@example.test'), rule('archive-again', ['to:alice@example.test'], 'journal archive@example.test')], async () => {
      const { messageId } = await handler.accept(fromMx('journaled', ['bob@example.test', 'alice@example.test']), new AbortController().signal);
      expect(inbox('archive@example.test')).toEqual([messageId]);
      const [copy] = await read(archive, 1);
      expect(copy).toMatchObject({ subject: 'journaled', to: ['bob@example.test', 'alice@example.test'] });
      const [bobs] = await read(bob, 1);
      expect(bobs!.to).toEqual(['bob@example.test', 'alice@example.test']);
      await read(alice, 1);
      // An app's mail: refused until the app seals a copy to the journal, then journaled once.
      await expect(appSend({ to: ['bob@example.test'], subject: 'e2e' })).rejects.toMatchObject({ details: expect.stringContaining('journals this mail to archive@example.test') });
      const id = await appSend({ to: ['bob@example.test', 'alice@example.test'], subject: 'e2e journaled', bcc: ['archive@example.test'] });
      const [e2e] = await read(archive, 1);
      expect(e2e).toMatchObject({ subject: 'e2e journaled', to: ['bob@example.test', 'alice@example.test'] });
      expect(e2e!.messageId).toBe(id);
      await read(bob, 1);
      await read(alice, 1);
    });
  });

  it('tag: a label kept with the message, on both paths; a header condition matches SMTP mail only', async () => {
    await withRules([rule('label', ['header:x-priority=1'], 'tag urgent'), rule('label-app', ['direction:local'], 'tag from-app')], async () => {
      const { messageId } = await handler.accept(fromMx('tagged', ['bob@example.test'], 'X-Priority: 1'), new AbortController().signal);
      expect(node.storage.rules.tagsOf(Buffer.from(messageId, 'hex'))).toEqual([{ tag: 'urgent', rule: 'label' }]);
      const id = await appSend({ to: ['bob@example.test'], subject: 'X-Priority: 1' });
      expect(node.storage.rules.tagsOf(Buffer.from(id, 'hex'))).toEqual([{ tag: 'from-app', rule: 'label-app' }]);
      // The recipient's app sees each message's labels.
      const got = await read(bob, 2);
      expect(got.map((m) => m.labels)).toEqual([['urgent'], ['from-app']]);
    });
  });

  it('hold: kept from bob (not from alice) until released, then delivered; an expired hold is never delivered; each step audited', async () => {
    await withRules([rule('legal-hold', ['to:bob@example.test'], 'hold')], async () => {
      const { messageId } = await handler.accept(fromMx('held', ['bob@example.test', 'alice@example.test']), new AbortController().signal);
      const appId = await appSend({ to: ['bob@example.test'], subject: 'held e2e' });
      expect(inbox('bob@example.test')).toEqual([]);
      expect(inbox('alice@example.test')).toContain(messageId);
      expect(node.storage.rules.held().map((h) => [Buffer.from(h.messageId).toString('hex'), h.mailbox, h.rule])).toEqual([
        [messageId, 'bob@example.test', 'legal-hold'], [appId, 'bob@example.test', 'legal-hold'],
      ]);
      expect(await node.storage.rules.ask(Buffer.from(messageId, 'hex'), 'release')).toBe(1);
      expect(await node.storage.rules.ask(Buffer.from(appId, 'hex'), 'expire')).toBe(1);
      await until('the release', async () => (inbox('bob@example.test').includes(messageId) && node.storage.rules.held().length === 0) || undefined);
      const [released] = await read(bob, 1);
      expect(released).toMatchObject({ subject: 'held' });
      expect(inbox('bob@example.test')).toEqual([]);
      await read(alice, 1);
      const actions = node.storage.rules.audits(0).filter((a) => a.rule === 'legal-hold').map((a) => a.action);
      await until('the expiry audit', async () => (node.storage.rules.audits(0).some((a) => a.action === 'expire') || undefined));
      expect(actions.slice(0, 2)).toEqual(['hold', 'hold']);
    });
  });

  it('divert on an app\'s mail: held from bob, the reviewer\'s sealed copy delivered, released to bob; the sender is answered about bob alone', async () => {
    await withRules([rule('screen-app', ['to:bob@example.test', 'direction:local'], 'divert review@example.test')], async () => {
      await expect(appSend({ to: ['bob@example.test'], subject: 'screen me' })).rejects.toMatchObject({ details: expect.stringContaining('seal a copy to review@example.test') });
      const sealed = await sealFor(alice, aliceClients, profileResolver(alice), { to: ['bob@example.test'], bcc: ['review@example.test'], subject: 'screen me', text: 'hi' });
      const answer = await submit(aliceClients, sealed.envelope);
      expect(answer.deliveredLocal).toEqual(['bob@example.test']); // no sign of the reviewer or the hold
      const id = Buffer.from(sealed.messageId).toString('hex');
      expect(inbox('bob@example.test')).toEqual([]);
      expect(inbox('review@example.test')).toEqual([id]);
      expect(node.storage.rules.held().map((h) => [h.mailbox, h.transport, h.rule])).toEqual([['bob@example.test', '', 'screen-app']]);
      await read(review, 1);
      expect(await node.storage.rules.ask(Buffer.from(id, 'hex'), 'release')).toBe(1);
      await until('the release', async () => inbox('bob@example.test').includes(id) || undefined);
      const [got] = await read(bob, 1);
      expect(got).toMatchObject({ subject: 'screen me', verified: true });
    });
  });

  it('a rule that matches nothing changes nothing and logs nothing', async () => {
    await withRules([rule('nobody', ['from:nobody@nowhere.test'], 'reject 550 no')], async () => {
      const audits = node.storage.rules.audits(0).length;
      const { messageId } = await handler.accept(fromMx('plain', ['bob@example.test']), new AbortController().signal);
      expect(inbox('bob@example.test')).toEqual([messageId]);
      expect(node.storage.rules.audits(0).length).toBe(audits);
      await read(bob, 1);
    });
  });

  it('keeps each audit leaf in the log: type audit, its hash over rule, action and message hash and nothing else', async () => {
    const audits = node.storage.rules.audits(0);
    expect(audits.length).toBeGreaterThan(5);
    for (const a of audits) {
      const leaf = decodeLeaf(node.ledger.log.leaf(a.logIndex));
      expect(leaf.type).toBe('audit');
      expect(Buffer.from(leaf.messageHash)).toEqual(Buffer.from(auditHash(a.rule, a.action, a.messageHash)));
      expect(node.ledger.log.leafIndexOf(a.leafHash)).toBe(a.logIndex);
      expect(node.ledger.log.leaf(a.logIndex).length).toBe(34); // version, type, hash: room for nothing else
    }
  });

  it('catch-all: SMTP and app mail for an address without a mailbox goes to the domain\'s catch-all; without one it is refused', async () => {
    expect(await handler.recipient('whoever@example.test', { listener: 'mx' })).toBe('unknown');
    await node.storage.rules.setCatchall(HOST, 'review@example.test');
    try {
      expect(await handler.recipient('whoever@example.test', { listener: 'mx' })).toBe('local');
      const { messageId } = await handler.accept(fromMx('for anyone', ['whoever@example.test', 'someone@example.test']), new AbortController().signal);
      expect(inbox('review@example.test')).toEqual([messageId]);
      expect((await read(review, 1))[0]).toMatchObject({ subject: 'for anyone' });
      // An app (or a peer node) resolves the address to the catch-all's key, and its mail lands there too.
      const id = await appSend({ to: ['whoever@example.test'], subject: 'e2e for anyone' });
      expect(inbox('review@example.test')).toEqual([id]);
      expect((await read(review, 1))[0]).toMatchObject({ subject: 'e2e for anyone', to: ['whoever@example.test'] });
    } finally {
      await node.storage.rules.removeCatchall(HOST);
    }
    await expect(handler.accept(fromMx('nobody', ['whoever@example.test']), new AbortController().signal)).rejects.toMatchObject({ code: 'UNKNOWN_RECIPIENT' });
  });
});
