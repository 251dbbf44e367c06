// A bulk sender that writes far ahead of the node: the node works on at most limits.maxInFlightSubmits
// messages of one SubmitStream and stops reading the rest until replies go out (HTTP/2 flow control then
// holds the sender back), so a flood costs the sender time, not the node memory. The node's Ed25519 check
// is slowed on purpose (an injected fault): every message then waits in verification, where it can be
// counted.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import pino from 'pino';
import { tempDir, initNodeWithMailboxes, until } from '../helpers.ts';
import { AfterSmtpNode } from '../../gateway/node/index.ts';
import { connect, profileResolver, sealFor, submit, type Clients, type MailboxProfile } from '../../gateway/client/index.ts';
import { verifySignature } from '../../identity/index.ts';
import type { Envelope } from '../../proto/index.ts';

const LIMIT = 4;
const COUNT = 40;

describe('SubmitStream flow control', () => {
  const dir = tempDir();
  let node: AfterSmtpNode;
  let alice: MailboxProfile;
  let clients: Clients;
  let bobDid = '';
  let verifying = 0;
  let mostVerifying = 0;
  // Verification waits at this gate until a test opens it; each test closes it anew.
  let openGate: () => void = () => {};
  let gate = Promise.resolve();
  const closeGate = () => { gate = new Promise<void>((resolve) => { openGate = resolve; }); mostVerifying = 0; };

  beforeAll(async () => {
    const made = await initNodeWithMailboxes(dir.path, 'example.test');
    alice = made.alice;
    bobDid = made.bob.did;
    node = new AfterSmtpNode({
      dataDir: made.data,
      env: { AFTERSMTP_LIMITS__MAX_IN_FLIGHT_SUBMITS: String(LIMIT), AFTERSMTP_GRPC__MAX_CONCURRENT_STREAMS: String(LIMIT) },
      logger: pino({ level: 'silent' }),
      verify: async (publicKey, message, signature) => {
        mostVerifying = Math.max(mostVerifying, ++verifying);
        await gate;
        verifying--;
        return verifySignature(publicKey, message, signature);
      },
    });
    clients = connect(alice, (await node.start()).grpc);
  });

  afterAll(async () => {
    openGate();
    clients?.close();
    await node?.stop(500);
    dir.cleanup();
  });

  it(`works on at most ${LIMIT} messages of a stream at once, then answers all ${COUNT} in order`, async () => {
    closeGate();
    const envelopes: Envelope[] = [];
    for (let i = 0; i < COUNT; i++) {
      envelopes.push((await sealFor(alice, clients, profileResolver(alice), { to: ['bob@example.test'], subject: `flood ${i}`, text: 'x'.repeat(4000), knownDids: { 'bob@example.test': bobDid } })).envelope);
    }
    const call = clients.mailbox.SubmitStream(clients.metadata);
    const refs: number[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (reply: any) => { if (reply.error) reject(new Error(reply.error.message)); else refs.push(Number(reply.clientRef)); });
      call.on('end', resolve);
      call.on('error', reject);
    });
    envelopes.forEach((envelope, i) => call.write({ envelope, clientRef: i })); // all at once, no window
    call.end();

    try {
      // Everything is written; the node takes LIMIT of them and no more. The pause after that is only
      // room for a flood past the limit to show: it cannot make a correct node fail, however slow.
      await until(`${LIMIT} messages in verification`, async () => (verifying === LIMIT ? true : undefined));
      await new Promise((r) => setTimeout(r, 200));
      expect(verifying).toBe(LIMIT);
      expect(refs).toEqual([]);
    } finally {
      openGate();
    }
    await done;
    expect(refs).toEqual(Array.from({ length: COUNT }, (_, i) => i));
    expect(mostVerifying).toBe(LIMIT);
  });

  it(`takes at most ${LIMIT} concurrent calls from one connection; the others wait in the client, none fails`, async () => {
    closeGate();
    const envelopes = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      sealFor(alice, clients, profileResolver(alice), { to: ['bob@example.test'], subject: `unary ${i}`, text: 'y', knownDids: { 'bob@example.test': bobDid } }).then((s) => s.envelope)));
    const replies = Promise.all(envelopes.map((envelope) => submit(clients, envelope)));
    try {
      await until(`${LIMIT} calls in verification`, async () => (verifying === LIMIT ? true : undefined));
      await new Promise((r) => setTimeout(r, 200)); // room for a call past the limit to show
      expect(verifying).toBe(LIMIT);
    } finally {
      openGate();
    }
    expect((await replies).every((r) => r.deliveredLocal[0] === 'bob@example.test')).toBe(true);
    expect(mostVerifying).toBe(LIMIT);
  });
});
