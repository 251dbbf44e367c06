// Submission through the SMTP bridge to a mailbox of a peer node: the node seals the message to the
// peer recipient's key as its node answers for it (as an app would) and queues it like an app's
// submission; the peer delivers it as mail from the submitting mailbox, vouched for by its node.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { NodeLab, type LabNode } from './lab.ts';
import { AfterSmtpNode } from '../../gateway/node/index.ts';
import type { InboundMessage } from '../../bridge/index.ts';

describe('submission through the SMTP bridge to a peer node', () => {
  const lab = new NodeLab();
  let a: LabNode;
  let b: LabNode;
  let nodeA: AfterSmtpNode;

  beforeAll(async () => {
    a = await lab.makeNode('a', 'a.test');
    b = await lab.makeNode('b', 'b.test');
    await lab.addMailbox('alice@a.test', a, 'alice');
    await lab.addMailbox('bob@b.test', b, 'bob');
    nodeA = new AfterSmtpNode({ dataDir: a.data, logger: pino({ level: 'silent' }) });
    const readyA = await nodeA.start();
    await lab.start(b);
    await lab.route(a, b);
    await lab.cli(['route', 'add', a.domain, '--did', a.did, '--endpoint', `quic://${readyA.quic},relay://${readyA.relay}`, '--data', b.data]);
  }, 60_000);

  afterAll(async () => {
    await nodeA?.stop(500);
    await lab.close();
  });

  it('says a peer domain is peer for an authenticated client, seals to the peer mailbox, and bob at the peer sees it verified from alice', async () => {
    const handler = nodeA.smtp!.handler;
    expect(await handler.recipient('bob@b.test', { listener: 'submission', authenticated: 'alice@a.test' })).toBe('peer');
    const raw = Buffer.from([
      'Received: from client.example ([127.0.0.1])\r\n\tby a.test with ESMTPSA id s1;\r\n\tMon, 07 Dec 2026 01:00:01 +0000',
      'From: <alice@a.test>', 'To: <bob@b.test>', 'Subject: across', 'Date: Mon, 07 Dec 2026 01:00:00 +0000', '', 'Hello, bob.', '',
    ].join('\r\n'));
    const inbound: InboundMessage = {
      sessionId: 's1', listener: 'submission', clientIp: '127.0.0.1', helo: 'client.example', tls: true, authenticated: 'alice@a.test',
      mailFrom: 'alice@a.test', recipients: [{ address: 'bob@b.test' }], dsn: {}, requireTls: false, headerFrom: 'alice@a.test', message: raw,
    };
    const { messageId } = await handler.accept(inbound, new AbortController().signal);
    const [m] = await lab.receive('bob', b, 1);
    expect(m).toMatchObject({ messageId, from: 'alice@a.test', fromDid: a.did, subject: 'across', verified: true });
    // Bridged by a.test's node, not bob's: his app shows it as a.test vouched for it, not as SMTP mail.
    expect(m!.via).toBeUndefined();
  }, 60_000);
});
