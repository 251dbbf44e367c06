// Security issue #20, items 1, 4 and 5, between real nodes (separate processes, loopback): a signed
// sender address is shown verified only when a node vouched for it, another message under a known id
// cannot block the genuine one, and a peer's error text cannot shape the failure notices a node signs.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import * as grpc from '@grpc/grpc-js';
import { runCli, jsonLines, until, tempDir } from '../helpers.ts';
import { Store, STORE_VERSION, databaseForTests } from '../../gateway/store/index.ts';
import { NodeLab, type LabNode } from '../e2e/lab.ts';
import { readProfile, connect, profileResolver, submit, subscribe, unary, buildRfc5322, type MailboxProfile, type ReceivedMessage } from '../../gateway/client/index.ts';
import { openNodeFiles } from '../../gateway/datadir/index.ts';
import { fromB64u, envelopeToWire, envelopeFromWire } from '../../gateway/core/index.ts';
import { RelayChannel, PEER_TEXT_MAX } from '../../gateway/federation/index.ts';
import { QuicTransport, type MessageStream } from '../../gateway/transport/index.ts';
import { createDidResolver, didKeyAgreementKeyId, didKeyFromEd25519, generateSigningKeyPair, sealEnvelope, signMessage, x25519FromEd25519Public } from '../../identity/index.ts';
import { loadProto, type Envelope, type Envelope__Output, type ProofBundleReply__Output } from '../../proto/index.ts';

const ENV = {
  AFTERSMTP_FEDERATION__RETRY__INITIAL_MS: '200',
  AFTERSMTP_FEDERATION__RETRY__MAX_MS: '1000',
  AFTERSMTP_FEDERATION__ACK_TIMEOUT_MS: '2000',
  AFTERSMTP_FEDERATION__DIAL_TIMEOUT_MS: '1500',
  AFTERSMTP_FEDERATION__WITNESS__ENABLED: 'false',
  AFTERSMTP_LOG__LEVEL: 'warn',
};

/**
 * A message signed and sealed by `sender`'s own valid keys, whose signed header may name another sender
 * address and reuse a given message id (what a mailbox with a modified app can do).
 */
function sealAs(sender: MailboxProfile, to: MailboxProfile[], opts: { fromAddress?: string; messageId?: Uint8Array; subject: string }): { envelope: Envelope; messageId: Uint8Array; messageHash: Uint8Array } {
  const messageId = opts.messageId ?? new Uint8Array(randomBytes(16));
  const from = opts.fromAddress ?? sender.address;
  const createdMs = Date.now();
  const expiresMs = createdMs + 3600_000;
  const signingKey = fromB64u(sender.signing.privateKey);
  const signed = signMessage({
    header: { messageId, from: { did: sender.did, address: from }, to: to.map((r) => ({ did: r.did, address: r.address })), createdMs, expiresMs, contentType: 'message/rfc822' },
    body: buildRfc5322(from, to.map((r) => r.address), opts.subject, opts.subject, messageId),
    keyId: sender.signing.keyId,
    privateKey: signingKey,
  });
  const envelope = sealEnvelope({
    signedMessage: signed.signedMessage, messageId, messageHash: signed.messageHash,
    senderDid: sender.did, senderKeyId: sender.signing.keyId, senderPrivateKey: signingKey,
    recipientAddresses: to.map((r) => r.address),
    recipients: to.map((r) => ({ keyId: r.agreement.keyId, publicKey: fromB64u(r.agreement.publicKey) })),
    createdMs, expiresMs,
  });
  return { envelope: envelopeToWire(envelope), messageId, messageHash: signed.messageHash };
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('security #20: sender binding, replay keys, peer text in notices', { timeout: 180_000 }, () => {
  const lab = new NodeLab(ENV);
  let a: LabNode;
  let b: LabNode;
  const profile = (name: string) => readProfile(lab.profile(name));

  /** Submits `envelope` as mailbox `name` at `node`. */
  async function submitAs(name: string, node: LabNode, envelope: Envelope) {
    const clients = connect(profile(name), node.proc!.ready.grpc);
    try {
      return await submit(clients, envelope);
    } finally {
      clients.close();
    }
  }

  /** Mailbox `name`'s messages (acknowledged) until `done` says it has them all. */
  async function receiveUntil(name: string, node: LabNode, done: (got: ReceivedMessage[]) => boolean): Promise<ReceivedMessage[]> {
    const p = profile(name);
    const clients = connect(p, node.proc!.ready.grpc);
    const got: ReceivedMessage[] = [];
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 30_000);
    try {
      await subscribe(p, clients, profileResolver(p), { signal: controller.signal, onMessage: (m) => { got.push(m); if (done(got)) controller.abort(); } });
    } finally {
      clearTimeout(timer);
      clients.close();
    }
    return got;
  }

  beforeAll(async () => {
    [a, b] = await lab.pair(['alice@a.test', 'carol@a.test', 'bob@b.test', 'mallory@b.test']);
  });

  afterAll(() => lab.close());

  it('20.1a a local mailbox signing as another address of its domain is shown unverified (subscribe, CLI); its own address stays verified', async () => {
    const alice = profile('alice');
    const carol = profile('carol');
    const forged = sealAs(alice, [carol], { fromAddress: 'ceo@a.test', subject: 'wire the money' });
    const genuine = sealAs(alice, [carol], { subject: 'lunch?' });
    await submitAs('alice', a, forged.envelope);
    await submitAs('alice', a, genuine.envelope);

    const cli = await runCli(['subscribe', '--profile', lab.profile('carol'), '--node', a.proc!.ready.grpc, '--count', '2']);
    expect(cli.code, cli.stderr).toBe(0);
    const lines = jsonLines(cli.stdout) as { messageId: string; from: string; verified: boolean; reason?: string }[];
    const byId = new Map(lines.map((l) => [l.messageId, l]));
    expect(byId.get(hex(forged.messageId))).toMatchObject({ from: 'ceo@a.test', verified: false, reason: expect.stringMatching(/ceo@a\.test.*not the one the sending node vouched for \(alice@a\.test\)/) });
    expect(byId.get(hex(genuine.messageId))).toMatchObject({ from: 'alice@a.test', verified: true });
    expect(byId.get(hex(genuine.messageId))!.reason).toBeUndefined();
  });

  it('20.1b a mailbox on b.test claiming ceo@a.test (or another b.test address) is shown unverified at a.test; its own address stays verified', async () => {
    const mallory = profile('mallory');
    const carol = profile('carol');
    const otherDomain = sealAs(mallory, [carol], { fromAddress: 'ceo@a.test', subject: 'from the ceo' });
    const sameDomain = sealAs(mallory, [carol], { fromAddress: 'ceo@b.test', subject: 'from their ceo' });
    const genuine = sealAs(mallory, [carol], { subject: 'hello carol' });
    for (const m of [otherDomain, sameDomain, genuine]) expect((await submitAs('mallory', b, m.envelope)).queuedRemote).toEqual(['carol@a.test']);

    const ids = new Set([otherDomain, sameDomain, genuine].map((m) => hex(m.messageId)));
    const got = await receiveUntil('carol', a, (g) => [...ids].every((id) => g.some((m) => m.messageId === id)));
    const byId = new Map(got.map((m) => [m.messageId, m]));
    expect(byId.get(hex(otherDomain.messageId))).toMatchObject({ from: 'ceo@a.test', verified: false, reason: expect.stringMatching(/vouched for \(mallory@b\.test\)/) });
    expect(byId.get(hex(sameDomain.messageId))).toMatchObject({ from: 'ceo@b.test', verified: false });
    expect(byId.get(hex(genuine.messageId))).toMatchObject({ from: 'mallory@b.test', verified: true });
  });

  it('20.1c a relay frame whose vouched sender address is outside its sender domain is refused', async () => {
    // Speak for B (its node keys, its domain) on a relay stream of our own to A.
    const { keys } = openNodeFiles(b.data);
    const asB = new QuicTransport({ privateKey: fromB64u(keys.signing.privateKey), publicKey: fromB64u(keys.signing.publicKey) });
    const [host, port] = a.proc!.ready.quic!.split(':');
    const conn = await asB.dial({ host: host!, port: Number(port) });
    try {
      const channel = await RelayChannel.open(conn, { peerDid: a.did, nodeDid: b.did, domains: ['b.test'], maxInFlight: 4, resolver: createDidResolver({}), ackTimeoutMs: 10_000 });
      const sealed = sealAs(profile('mallory'), [profile('carol')], { fromAddress: 'ceo@a.test', subject: 'vouched' });
      const refusal = await channel.send(envelopeFromWire(sealed.envelope as unknown as Envelope__Output), 'b.test', { senderAddress: 'ceo@a.test' }).catch((e: { code: string; message: string }) => e);
      expect(refusal).toMatchObject({ code: 'PEER_REJECTED', message: expect.stringMatching(/not in its sender domain b\.test/) });
      channel.close();
    } finally {
      await conn.close().catch(() => {});
      await asB.close();
    }
  });

  it('20.4 another message sent first under the victim\'s message id does not make the genuine one a replay', async () => {
    const alice = profile('alice');
    const bob = profile('bob');
    const genuine = sealAs(alice, [bob], { subject: 'the genuine one' });
    // A co-recipient who learnt the id gets its own message (its own valid signature) in first.
    const attacker = sealAs(profile('mallory'), [bob], { messageId: genuine.messageId, subject: 'first under your id' });
    expect(hex(attacker.messageHash)).not.toBe(hex(genuine.messageHash));
    expect((await submitAs('mallory', b, attacker.envelope)).deliveredLocal).toEqual(['bob@b.test']);

    expect((await submitAs('alice', a, genuine.envelope)).queuedRemote).toEqual(['bob@b.test']);
    const delivered = await until('the genuine message delivered to b.test', async () => {
      const item = (await lab.queue(a)).find((i) => i.messageId === hex(genuine.messageId));
      return item && item.state !== 'queued' && item.state !== 'deferred' ? item : undefined;
    });
    expect(delivered, delivered.lastError).toMatchObject({ state: 'delivered' });
    const got = await receiveUntil('bob', b, (g) => g.filter((m) => m.messageId === hex(genuine.messageId)).length === 2);
    const genuineCopy = got.find((m) => m.messageHash === hex(genuine.messageHash));
    expect(genuineCopy).toMatchObject({ from: 'alice@a.test', verified: true, subject: 'the genuine one' });
    expect(got.find((m) => m.messageHash === hex(attacker.messageHash))).toMatchObject({ from: 'mallory@b.test', verified: true });

    // The identical envelope again through Submit is still a replay.
    const again = await submitAs('alice', a, genuine.envelope).catch((e: grpc.ServiceError) => e);
    expect((again as grpc.ServiceError).code).toBe(grpc.status.ALREADY_EXISTS);
    // A proof by id and hash finds each message; the id alone names no single one.
    const clients = connect(bob, b.proc!.ready.grpc);
    try {
      for (const m of [genuine, attacker]) {
        const bundle = await unary(clients.provenance.GetProof.bind(clients.provenance), { messageId: m.messageId, messageHash: m.messageHash }, clients.metadata) as ProofBundleReply__Output;
        expect(bundle.json).toContain(hex(m.messageHash));
      }
      const byIdOnly = await unary(clients.provenance.GetProof.bind(clients.provenance), { messageId: genuine.messageId }, clients.metadata).catch((e: grpc.ServiceError) => e);
      expect((byIdOnly as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
    } finally {
      clients.close();
    }
  });

  it('20.5 a peer\'s error code and text cannot inject MIME into the signed failure notice, and show as one line in queue list', async () => {
    // A peer of its own (fresh key, did:key) serving evil.test, answering every envelope with an error.
    const key = generateSigningKeyPair();
    const evilDid = didKeyFromEd25519(key.publicKey);
    const peer = new QuicTransport({ privateKey: key.privateKey, publicKey: key.publicKey });
    const codec = loadProto().packageDefinition['aftersmtp.v1.Relay'] as unknown as Record<string, { requestSerialize(v: unknown): Buffer; requestDeserialize(b: Buffer): unknown }>;
    const relay = codec.Stream!;
    const injected = 'no such user\r\n--boundary\r\nContent-Type: text/html\r\n\r\n<evil>';
    peer.onConnection((conn) => conn.onStream((_method, stream: MessageStream) => {
      void (async () => {
        let hello = true;
        for await (const message of stream) {
          if (hello) {
            hello = false;
            await stream.send(relay.requestSerialize({ frameId: 0, hello: { did: evilDid, domains: ['evil.test'], maxInFlight: 8 } }));
            continue;
          }
          const frame = relay.requestDeserialize(Buffer.from(message)) as { frameId: number; envelope: Envelope__Output };
          const permanent = frame.envelope.recipientAddresses.includes('x@evil.test');
          const code = permanent ? 'UNKNOWN_RECIPIENT' : 'NOPE\r\nContent-Type: text/html';
          await stream.send(relay.requestSerialize({ frameId: frame.frameId, ack: { frameId: frame.frameId, error: { code, status: 0, message: `${injected} ${'x'.repeat(5 * PEER_TEXT_MAX)}` } } }));
        }
      })().catch(() => {});
    }));
    const addr = await peer.listen({ host: '127.0.0.1', port: 0 });
    try {
      await lab.cli(['route', 'add', 'evil.test', '--did', evilDid, '--endpoint', `quic://${addr.host}:${addr.port}`, '--data', a.data]);
      const alice = profile('alice');
      const clients = connect(alice, a.proc!.ready.grpc);
      const agreement = { keyId: didKeyAgreementKeyId(evilDid), publicKey: Buffer.from(x25519FromEd25519Public(key.publicKey)).toString('base64url'), privateKey: '' };
      const evilRecipient = (address: string): MailboxProfile => ({ ...alice, address, did: evilDid, agreement });
      const bounced = sealAs(alice, [evilRecipient('x@evil.test')], { subject: 'to be refused' });
      const deferred = sealAs(alice, [evilRecipient('y@evil.test')], { subject: 'to be retried' });
      for (const m of [bounced, deferred]) expect((await submit(clients, m.envelope)).queuedRemote).toHaveLength(1);
      clients.close();

      const isNotice = (m: ReceivedMessage) => m.from === 'postmaster@a.test' && Buffer.from(m.body ?? []).toString('utf8').includes(hex(bounced.messageId));
      const notice = (await receiveUntil('alice', a, (g) => g.some(isNotice))).find(isNotice)!;
      expect(notice.verified, notice.reason).toBe(true); // a node-generated notice stays verified
      const body = Buffer.from(notice.body!).toString('utf8');
      const lines = body.replace(/\r\n[ \t]+/g, ' ').split('\r\n'); // header fields unfolded
      const boundary = /boundary="([^"]+)"/.exec(body)![1]!;
      expect(lines.filter((l) => l.startsWith('--'))).toEqual([`--${boundary}`, `--${boundary}`, `--${boundary}--`]);
      expect(lines.filter((l) => /^content-type:/i.test(l))).toEqual([
        `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
        'Content-Type: text/plain; charset=utf-8',
        'Content-Type: message/delivery-status',
      ]);
      expect(body).not.toMatch(/evil>|text\/html/);
      expect(lines).toContain("Reason: the recipient's node has no such mailbox");

      // queue list (the CLI, text): one line per item, the peer's words on it without control characters.
      await until('the unknown code recorded', async () => {
        const item = (await lab.queue(a)).find((i) => i.messageId === hex(deferred.messageId));
        return item?.lastError ? item : undefined;
      });
      const listed = await runCli(['queue', 'list', '--data', a.data]);
      expect(listed.code, listed.stderr).toBe(0);
      const rows = listed.stdout.trimEnd().split('\n');
      for (const [id, code] of [[hex(deferred.messageId), 'PEER_ERROR'], [hex(bounced.messageId), 'UNKNOWN_RECIPIENT']] as const) {
        const mine = rows.filter((r) => r.includes(id));
        expect(mine).toHaveLength(1);
        expect(mine[0]).toContain(`${code}: no such user --boundary Content-Type: text/html <evil> x`);
        expect(mine[0]).not.toMatch(/[\r\u0000-\u001f]/);
        expect(mine[0]).toMatch(/x…/); // cut: at most PEER_TEXT_MAX characters of the peer's words
        expect(mine[0]!.length).toBeLessThan(PEER_TEXT_MAX + 200);
      }
      expect(rows.every((r) => /^[0-9a-f]{32} /.test(r))).toBe(true);
    } finally {
      await peer.close();
    }
  });
});

describe('security #20: the store upgrades in place', () => {
  const dir = tempDir();
  afterAll(() => dir.cleanup());
  const id = (n: number) => new Uint8Array(16).fill(n);
  const hash = (n: number) => new Uint8Array(32).fill(n);

  it('20.1/20.4 a version 3 store gets vouched senders (empty: nobody) and a replay set keyed on id and hash (old ids block any hash)', async () => {
    const file = join(dir.path, 'v3.db');
    let storage = new Store(file, { durability: 'deferred' });
    storage.mailboxes.add({ address: 'bob@x.test', did: 'did:key:zbob', signingKeyId: 'k', signingPublicKey: new Uint8Array(32), agreementKeyId: 'bob#x',
      agreementPublicKey: new Uint8Array(32), tokenSha256: 'b'.repeat(64), documentJson: '{}', createdMs: 0 });
    for (const n of [1, 2]) {
      await storage.storeEnvelope({ messageId: id(n), messageHash: hash(n), expiresMs: Date.now() + 60_000, envelope: new Uint8Array(10).fill(n), mailboxes: ['bob@x.test'], logIndex: n, sender: { address: 'alice@y.test', domain: 'y.test' } });
    }
    await storage.close();
    // As layout 3 left it: a replay set of ids, envelopes without who vouched for their sender.
    const old = new DatabaseSync(file);
    old.exec(`CREATE TABLE seen_v3 (message_id BLOB PRIMARY KEY, expires_ms INTEGER NOT NULL, log_index INTEGER) STRICT, WITHOUT ROWID;
      INSERT INTO seen_v3 SELECT message_id, expires_ms, log_index FROM seen_messages; DROP TABLE seen_messages; ALTER TABLE seen_v3 RENAME TO seen_messages;
      CREATE INDEX seen_messages_expiry ON seen_messages (expires_ms);
      ALTER TABLE delivery_envelopes DROP COLUMN sender; ALTER TABLE delivery_envelopes DROP COLUMN sender_domain;
      PRAGMA user_version = 3;`);
    old.close();

    storage = new Store(file, { durability: 'deferred' });
    try {
      expect((databaseForTests(storage).prepare('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(STORE_VERSION);
      // Mail stored before: nobody vouched for its sender, so its client shows it unverified.
      expect(storage.deliveries.pending('bob@x.test', 0, 10).map((d) => [d.seq, d.authenticatedSender, d.senderDomain])).toEqual([[1, '', ''], [2, '', '']]);
      // Ids accepted before keep blocking every message under them until they expire, and keep their leaves.
      expect([storage.replay.has(id(1), hash(1)), storage.replay.has(id(1), hash(9))]).toEqual([true, true]);
      expect([1, 2].map((n) => storage.logIndexOf(id(n)))).toEqual([1, 2]);
      // New messages are keyed on id and hash, and keep who vouched for their sender.
      await storage.storeEnvelope({ messageId: id(3), messageHash: hash(3), expiresMs: Date.now() + 60_000, envelope: new Uint8Array(10), mailboxes: ['bob@x.test'], logIndex: 3, sender: { address: 'carol@y.test', domain: 'y.test' } });
      expect([storage.replay.has(id(3), hash(3)), storage.replay.has(id(3), hash(4))]).toEqual([true, false]);
      await storage.storeEnvelope({ messageId: id(3), messageHash: hash(4), expiresMs: Date.now() + 60_000, envelope: new Uint8Array(10), mailboxes: ['bob@x.test'], logIndex: 4 });
      await expect(storage.storeEnvelope({ messageId: id(3), messageHash: hash(3), expiresMs: Date.now() + 60_000, envelope: new Uint8Array(10), mailboxes: ['bob@x.test'] })).rejects.toMatchObject({ code: 'REPLAY' });
      expect([storage.replay.logIndexOf(id(3), hash(3)), storage.replay.logIndexOf(id(3), hash(4))]).toEqual([3, 4]);
      expect(storage.logIndexOf(id(3))).toBeNull(); // two messages under one id: ask by hash
      expect(storage.deliveries.pending('bob@x.test', 2, 10).map((d) => [d.seq, d.authenticatedSender, d.senderDomain])).toEqual([[3, 'carol@y.test', 'y.test'], [4, '', '']]);
    } finally {
      await storage.close();
    }
  });
});
