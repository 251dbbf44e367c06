// The Mailbox service over real gRPC/HTTP2+TLS on a loopback port, with a real SQLite store:
// bad input gets the right status, nothing stored is lost, the node keeps serving.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { tempDir } from '../helpers.ts';
import { initNode, addMailbox } from '../../gateway/datadir/index.ts';
import { AfterSmtpNode } from '../../gateway/node/index.ts';
import { connect, profileResolver, sealFor, submit, subscribe, openDelivery, type MailboxProfile, type Clients } from '../../gateway/client/index.ts';
import { generateSigningKeyPair, signMessage, sealEnvelope } from '../../identity/index.ts';
import { fromB64u, envelopeToWire } from '../../gateway/core/index.ts';
import type { Envelope } from '../../proto/index.ts';

const MAX_ENVELOPE = 16 * 1024;

describe('Mailbox service', () => {
  const dir = tempDir();
  const data = join(dir.path, 'node');
  let node: AfterSmtpNode;
  const profiles: Record<string, MailboxProfile> = {};
  const clients: Record<string, Clients> = {};

  beforeAll(async () => {
    await initNode({ dataDir: data, domain: 'example.test', grpcPort: 0 });
    for (const name of ['alice', 'bob', 'carol', 'dave']) {
      profiles[name] = addMailbox({ dataDir: data, address: `${name}@example.test`, profileFile: join(dir.path, `${name}.json`) });
    }
    node = new AfterSmtpNode({ dataDir: data, env: { AFTERSMTP_LIMITS__MAX_ENVELOPE_BYTES: String(MAX_ENVELOPE) }, logger: pino({ level: 'silent' }) });
    const ready = await node.start();
    for (const name of Object.keys(profiles)) clients[name] = connect(profiles[name]!, ready.grpc);
  });

  afterAll(async () => {
    for (const c of Object.values(clients)) c.close();
    await node?.stop(500);
    dir.cleanup();
  });

  const seal = (from: string, to: string[], text = 'hi') => sealFor(profiles[from]!, clients[from]!, profileResolver(profiles[from]!), { to, subject: 's', text });

  function expectStatus(promise: Promise<unknown>, code: grpc.status, pattern?: RegExp) {
    return promise.then(
      () => { throw new Error(`expected gRPC status ${grpc.status[code]}`); },
      (err: grpc.ServiceError) => {
        expect(grpc.status[err.code]).toBe(grpc.status[code]);
        if (pattern) expect(err.details).toMatch(pattern);
        return err;
      },
    );
  }

  function withToken(base: Clients, token: string | null): Clients {
    const metadata = new grpc.Metadata();
    if (token !== null) metadata.set('authorization', `Bearer ${token}`);
    return { ...base, metadata };
  }

  it('accepts a sealed message and delivers it to the recipient, verified', async () => {
    const sealed = await seal('alice', ['bob@example.test'], 'first');
    const reply = await submit(clients.alice!, sealed.envelope);
    expect(Buffer.from(reply.messageHash).equals(Buffer.from(sealed.messageHash))).toBe(true);
    const got: string[] = [];
    await subscribe(profiles.bob!, clients.bob!, profileResolver(profiles.bob!), {
      count: 1,
      onMessage: (m) => { expect(m.verified, m.reason).toBe(true); got.push(m.messageId); },
    });
    expect(got).toEqual([Buffer.from(sealed.messageId).toString('hex')]);
  });

  it('looks a call\'s token up once: the guard\'s check before the request is read serves the handler too', async () => {
    const sealed = await seal('alice', ['bob@example.test'], 'one lookup');
    const mailboxes = node.storage.mailboxes;
    const original = mailboxes.byToken.bind(mailboxes);
    let lookups = 0;
    mailboxes.byToken = (sha256: string) => { lookups++; return original(sha256); };
    try {
      await submit(clients.alice!, sealed.envelope);
    } finally {
      mailboxes.byToken = original;
    }
    expect(lookups).toBe(1);
    await subscribe(profiles.bob!, clients.bob!, profileResolver(profiles.bob!), { count: 1, onMessage: () => {} }); // bob takes it
  });

  it('rejects a missing or unknown token with UNAUTHENTICATED', async () => {
    const sealed = await seal('alice', ['bob@example.test']);
    await expectStatus(submit(withToken(clients.alice!, null), sealed.envelope), grpc.status.UNAUTHENTICATED, /bearer token/);
    await expectStatus(submit(withToken(clients.alice!, 'asmtp_wrong'), sealed.envelope), grpc.status.UNAUTHENTICATED, /unknown/);
  });

  it("rejects a token for another mailbox than the envelope's sender with PERMISSION_DENIED", async () => {
    const sealed = await seal('alice', ['bob@example.test']);
    await expectStatus(submit(withToken(clients.alice!, profiles.carol!.token), sealed.envelope), grpc.status.PERMISSION_DENIED, /carol@example\.test/);
  });

  it('rejects an unknown recipient with NOT_FOUND', async () => {
    const sealed = await seal('alice', ['bob@example.test']);
    const envelope = { ...sealed.envelope, recipientAddresses: ['nobody@example.test'] };
    await expectStatus(submit(clients.alice!, envelope), grpc.status.NOT_FOUND, /nobody@example\.test/);
  });

  it('rejects an oversized envelope with RESOURCE_EXHAUSTED', async () => {
    const sealed = await seal('alice', ['bob@example.test'], 'x'.repeat(MAX_ENVELOPE * 2));
    await expectStatus(submit(clients.alice!, sealed.envelope), grpc.status.RESOURCE_EXHAUSTED, /exceeds the limit/);
  });

  it('rejects malformed envelopes with INVALID_ARGUMENT', async () => {
    const sealed = await seal('alice', ['bob@example.test']);
    const tampered: Envelope = { ...sealed.envelope, ciphertext: Buffer.from(randomBytes(40)), messageHash: Buffer.alloc(32, 1) };
    await expectStatus(submit(clients.alice!, tampered), grpc.status.INVALID_ARGUMENT);
    const shortId: Envelope = { ...sealed.envelope, messageId: Buffer.alloc(3) };
    await expectStatus(submit(clients.alice!, shortId), grpc.status.INVALID_ARGUMENT);
    await expectStatus(submit(clients.alice!, {} as Envelope), grpc.status.PERMISSION_DENIED);
  });

  it('rejects an envelope signed by a key that is not in the sender DID document', async () => {
    const alice = profiles.alice!;
    const bobKeys = await profileResolver(alice).resolveKeys(profiles.bob!.did);
    const [keyId, publicKey] = [...bobKeys.keyAgreement.entries()][0]!;
    const messageId = new Uint8Array(randomBytes(16));
    const now = Date.now();
    const inner = signMessage({
      header: { messageId, from: { did: alice.did, address: alice.address }, to: [{ did: profiles.bob!.did, address: 'bob@example.test' }], createdMs: now, expiresMs: now + 60_000, contentType: 'message/rfc822' },
      body: new TextEncoder().encode('Subject: x\r\n\r\nx'),
      keyId: alice.signing.keyId,
      privateKey: fromB64u(alice.signing.privateKey),
    });
    // The outer header claims alice's key id but is signed by a key that is not in her DID document.
    const env = sealEnvelope({
      signedMessage: inner.signedMessage, messageId, messageHash: inner.messageHash,
      senderDid: alice.did, senderKeyId: alice.signing.keyId, senderPrivateKey: generateSigningKeyPair().privateKey,
      recipientAddresses: ['bob@example.test'], recipients: [{ keyId, publicKey }], createdMs: now, expiresMs: now + 60_000,
    });
    await expectStatus(submit(clients.alice!, envelopeToWire(env)), grpc.status.INVALID_ARGUMENT, /signature/i);
    // A key id that is not in alice's document at all.
    const env2 = sealEnvelope({
      signedMessage: inner.signedMessage, messageId, messageHash: inner.messageHash,
      senderDid: alice.did, senderKeyId: `${alice.did}#not-a-key`, senderPrivateKey: fromB64u(alice.signing.privateKey),
      recipientAddresses: ['bob@example.test'], recipients: [{ keyId, publicKey }], createdMs: now, expiresMs: now + 60_000,
    });
    await expectStatus(submit(clients.alice!, envelopeToWire(env2)), grpc.status.INVALID_ARGUMENT, /not-a-key|authentication|DID/i);
  });

  it('rejects a replayed message id with ALREADY_EXISTS, and keeps the original', async () => {
    const sealed = await seal('alice', ['carol@example.test'], 'only once');
    await submit(clients.alice!, sealed.envelope);
    await expectStatus(submit(clients.alice!, sealed.envelope), grpc.status.ALREADY_EXISTS, /replay/);
    const got: string[] = [];
    await subscribe(profiles.carol!, clients.carol!, profileResolver(profiles.carol!), { count: 1, onMessage: (m) => { got.push(m.messageId); } });
    expect(got).toEqual([Buffer.from(sealed.messageId).toString('hex')]);
  });

  it('reports verified:false when the inner signature does not verify', async () => {
    const alice = profiles.alice!;
    const resolver = profileResolver(alice);
    const bobKeys = await resolver.resolveKeys(profiles.bob!.did);
    const [keyId, publicKey] = [...bobKeys.keyAgreement.entries()][0]!;
    const messageId = new Uint8Array(randomBytes(16));
    const now = Date.now();
    // Inner message signed by a rogue key under alice's key id; outer header properly signed by alice.
    const forged = signMessage({
      header: { messageId, from: { did: alice.did, address: alice.address }, to: [{ did: profiles.bob!.did, address: 'bob@example.test' }], createdMs: now, expiresMs: now + 60_000, contentType: 'message/rfc822' },
      body: new TextEncoder().encode('Subject: forged\r\n\r\nforged'),
      keyId: alice.signing.keyId,
      privateKey: generateSigningKeyPair().privateKey,
    });
    const env = sealEnvelope({
      signedMessage: forged.signedMessage, messageId, messageHash: forged.messageHash,
      senderDid: alice.did, senderKeyId: alice.signing.keyId, senderPrivateKey: fromB64u(alice.signing.privateKey),
      recipientAddresses: ['bob@example.test'], recipients: [{ keyId, publicKey }], createdMs: now, expiresMs: now + 60_000,
    });
    await submit(clients.alice!, envelopeToWire(env));
    const seen: { verified: boolean; reason?: string }[] = [];
    await subscribe(profiles.bob!, clients.bob!, profileResolver(profiles.bob!), { count: 1, onMessage: (m) => { seen.push(m); } });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.verified).toBe(false);
    expect(seen[0]!.reason).toMatch(/signature/i);
  });

  it('redelivers unacknowledged messages after a subscriber disconnects mid-stream', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const sealed = await seal('alice', ['carol@example.test'], `n${i}`);
      await submit(clients.alice!, sealed.envelope);
      ids.push(Buffer.from(sealed.messageId).toString('hex'));
    }
    // Read raw deliveries without acking, then drop the stream.
    const call = clients.carol!.mailbox.Subscribe(clients.carol!.metadata);
    call.on('error', () => { /* CANCELLED below, on purpose */ });
    const firstSeen: number[] = [];
    await new Promise<void>((resolve) => {
      call.on('data', (d: { seq: number }) => { if (d.seq) firstSeen.push(d.seq); if (firstSeen.length === 3) resolve(); });
      call.write({ start: { fromCursor: 0 } });
    });
    call.cancel();
    const again: string[] = [];
    await subscribe(profiles.carol!, clients.carol!, profileResolver(profiles.carol!), { count: 3, onMessage: (m) => { again.push(m.messageId); } });
    expect(again.sort()).toEqual([...ids].sort());
    // The node still serves.
    const sealed = await seal('alice', ['bob@example.test']);
    await expect(submit(clients.alice!, sealed.envelope)).resolves.toBeTruthy();
  });

  it('streams bulk submits, answering each in order and refusing one bad message without ending the stream', async () => {
    const good1 = await seal('alice', ['bob@example.test'], 'bulk 1');
    const good2 = await seal('alice', ['bob@example.test'], 'bulk 2');
    const bad = { ...good1.envelope, recipientAddresses: ['ghost@example.test'] };
    const call = clients.alice!.mailbox.SubmitStream(clients.alice!.metadata);
    const replies: { clientRef: number; error: { code: string } | null }[] = [];
    const done = new Promise<void>((resolve, reject) => { call.on('data', (r: any) => replies.push(r)); call.on('end', resolve); call.on('error', reject); });
    call.write({ envelope: good1.envelope, clientRef: 1 });
    call.write({ envelope: bad, clientRef: 2 });
    call.write({ envelope: good2.envelope, clientRef: 3 });
    call.end();
    await done;
    expect(replies.map((r) => r.clientRef)).toEqual([1, 2, 3]);
    expect(replies[0]!.error).toBeNull();
    expect(replies[1]!.error?.code).toBe('UNKNOWN_RECIPIENT');
    expect(replies[2]!.error).toBeNull();
  });

  it('opens deliveries only with the right key (a wrong key reports verified:false)', async () => {
    const sealed = await seal('alice', ['bob@example.test'], 'private');
    await submit(clients.alice!, sealed.envelope);
    const carolAsBob = { ...profiles.carol!, token: profiles.bob!.token };
    const seen: { verified: boolean }[] = [];
    const bobClients = clients.bob!;
    const call = bobClients.mailbox.Subscribe(bobClients.metadata);
    call.on('error', () => { /* CANCELLED below, on purpose */ });
    await new Promise<void>((resolve) => {
      call.on('data', async (d: any) => {
        if (!d.seq) return;
        seen.push(await openDelivery(carolAsBob, profileResolver(carolAsBob), d));
        call.cancel();
        resolve();
      });
      call.write({ start: { fromCursor: 0 } });
    });
    expect(seen[0]!.verified).toBe(false);
  });

  it('a live subscriber with a small window gets each new message once, in order, while submits stream in', async () => {
    const dave = clients.dave!;
    const call = dave.mailbox.Subscribe(dave.metadata);
    call.on('error', () => { /* CANCELLED at the end, on purpose */ });
    const seqs: number[] = [];
    const ids: string[] = [];
    const frames: any[] = [];
    let confirmed = 0;
    const N = 40;
    const allConfirmed = new Promise<void>((resolve) => {
      call.on('data', (d: any) => {
        if (d.confirmedAcks?.length) { confirmed += d.confirmedAcks.length; if (confirmed === N) resolve(); return; }
        seqs.push(d.seq);
        ids.push(Buffer.from(d.envelope.messageId).toString('hex'));
        frames.push(d);
        // Ack a little later, so the window (3) fills and empties while messages keep arriving.
        setTimeout(() => call.write({ ack: { seqs: [d.seq] } }), 2);
      });
    });
    call.write({ start: { fromCursor: 0, maxInFlight: 3 } });
    await new Promise((r) => setTimeout(r, 50));
    const sealed = await Promise.all(Array.from({ length: N }, (_, i) => seal('alice', ['dave@example.test'], `live ${i}`)));
    const submitCall = clients.alice!.mailbox.SubmitStream(clients.alice!.metadata);
    const replies: any[] = [];
    const submitted = new Promise<void>((resolve, reject) => { submitCall.on('data', (r: any) => replies.push(r)); submitCall.on('end', resolve); submitCall.on('error', reject); });
    sealed.forEach((s2, i) => submitCall.write({ envelope: s2.envelope, clientRef: i }));
    submitCall.end();
    await submitted;
    expect(replies.filter((r) => r.error)).toEqual([]);
    await allConfirmed;
    call.cancel();
    expect(seqs).toEqual(Array.from({ length: N }, (_, i) => seqs[0]! + i)); // consecutive, none twice
    expect([...ids].sort()).toEqual(sealed.map((s2) => Buffer.from(s2.messageId).toString('hex')).sort());
    const opened = await Promise.all([frames[0], frames[N - 1]].map((f) => openDelivery(profiles.dave!, profileResolver(profiles.dave!), f)));
    expect(opened.map((m) => m.verified)).toEqual([true, true]);
    // Everything was acknowledged: a new subscription has nothing to deliver.
    const again = dave.mailbox.Subscribe(dave.metadata);
    again.on('error', () => { /* CANCELLED below */ });
    const late: number[] = [];
    again.on('data', (d: any) => { if (d.seq) late.push(d.seq); });
    again.write({ start: { fromCursor: 0 } });
    await new Promise((r) => setTimeout(r, 200));
    again.cancel();
    expect(late).toEqual([]);
  });

  it('keeps every answered message of a bulk sender that disconnects mid-stream, each once, and keeps serving', async () => {
    const hex = (id: Uint8Array) => Buffer.from(id).toString('hex');
    const N = 40;
    const sealed = await Promise.all(Array.from({ length: N }, (_, i) => seal('alice', ['carol@example.test'], `cut ${i}`)));
    const call = clients.alice!.mailbox.SubmitStream(clients.alice!.metadata);
    call.on('error', () => { /* CANCELLED below, on purpose */ });
    const answered: string[] = [];
    await new Promise<void>((resolve) => {
      call.on('data', (r: any) => {
        if (r.error) return;
        answered.push(hex(r.messageId));
        if (answered.length === 5) { call.cancel(); resolve(); }
      });
      sealed.forEach((s2, i) => call.write({ envelope: s2.envelope, clientRef: i }));
    });
    // Replies still in flight when the client left are dropped by the node, not written to a dead call.
    const after = await seal('alice', ['carol@example.test'], 'after the cut');
    await expect(submit(clients.alice!, after.envelope)).resolves.toBeTruthy();

    // Read carol's mailbox: up to the message sent after the cut, then whatever of the cut stream the node
    // was still storing meanwhile.
    const carol = clients.carol!;
    const sub = carol.mailbox.Subscribe(carol.metadata);
    sub.on('error', () => { /* CANCELLED below */ });
    const delivered: { seq: number; id: string }[] = [];
    await new Promise<void>((resolve) => {
      sub.on('data', (d: any) => {
        if (!d.seq) return;
        delivered.push({ seq: d.seq, id: hex(d.envelope.messageId) });
        if (delivered.at(-1)!.id === hex(after.messageId)) resolve();
      });
      sub.write({ start: { fromCursor: 0, maxInFlight: 256 } });
    });
    await new Promise((r) => setTimeout(r, 300));
    const confirmed = new Promise<void>((resolve) => sub.on('data', (d: any) => { if (d.confirmedAcks?.length) resolve(); }));
    sub.write({ ack: { seqs: delivered.map((d) => d.seq) } }); // leave the mailbox empty for later tests
    await confirmed;
    sub.cancel();

    const ids = delivered.map((d) => d.id);
    expect(new Set(ids).size).toBe(ids.length); // nothing twice
    expect(ids).toEqual(expect.arrayContaining(answered)); // nothing answered is lost
    const sent = new Set(sealed.map((s2) => hex(s2.messageId)));
    expect(ids.filter((id) => id !== hex(after.messageId)).every((id) => sent.has(id))).toBe(true); // nothing else
  });
});
