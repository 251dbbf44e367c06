// Federation between real nodes (separate processes) on loopback: QUIC with HTTP/2 fallback, static
// routes and DNS discovery, DID-bound peers, store-and-forward with retries, failure notices.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { until } from '../helpers.ts';
import { startDnsServer, type TestDnsServer } from '../dns-server.ts';
import { NodeLab, metricsOf, type LabNode } from './lab.ts';
import { DatabaseSync } from 'node:sqlite';
import { readProfile, connect, profileResolver, sealFor, submit } from '../../gateway/client/index.ts';
import { envelopeFromWire } from '../../gateway/core/index.ts';
import { createDidResolver, encodeEnvelope } from '../../identity/index.ts';
import { receiptFromStored, verifyReceipt, type StoredReceipt } from '../../gateway/federation/index.ts';
import type { Envelope__Output } from '../../proto/index.ts';

const FAST_RETRY = { AFTERSMTP_FEDERATION__RETRY__INITIAL_MS: '200', AFTERSMTP_FEDERATION__RETRY__MAX_MS: '1000', AFTERSMTP_FEDERATION__ACK_TIMEOUT_MS: '2000', AFTERSMTP_FEDERATION__DIAL_TIMEOUT_MS: '1500', AFTERSMTP_LOG__LEVEL: 'warn' };

describe('federation between two nodes', { timeout: 120_000 }, () => {
  const lab = new NodeLab(FAST_RETRY);
  const nodes: Record<string, LabNode> = {};
  let dns: TestDnsServer;
  const makeNode = async (name: string, domain: string, method: 'key' | 'web' = 'key', env: NodeJS.ProcessEnv = {}) =>
    (nodes[name] = await lab.makeNode(name, domain, { method, env }));
  const start = (node: LabNode) => lab.start(node);
  const cli = (args: string[]) => lab.cli(args);
  const profile = (name: string) => lab.profile(name);
  const receive = (name: string, node: LabNode, count: number, timeoutMs?: number) => lab.receive(name, node, count, timeoutMs);
  const queue = (node: LabNode) => lab.queue(node);

  beforeAll(async () => {
    dns = await startDnsServer();
    const a = await makeNode('a', 'a.test');
    const b = await makeNode('b', 'b.test');
    await start(a);
    await start(b);
    expect(a.proc!.ready).toMatchObject({ quic: expect.stringMatching(/^127\.0\.0\.1:\d+$/), relay: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
    await cli(['route', 'add', 'b.test', '--did', b.did, '--endpoint', `quic://${b.proc!.ready.quic},relay://${b.proc!.ready.relay}`, '--data', a.data]);
    await cli(['route', 'add', 'a.test', '--did', a.did, '--endpoint', `quic://${a.proc!.ready.quic},relay://${a.proc!.ready.relay}`, '--data', b.data]);
    await cli(['mailbox', 'add', 'alice@a.test', '--data', a.data, '--profile', profile('alice')]);
    await cli(['mailbox', 'add', 'bob@b.test', '--data', b.data, '--profile', profile('bob')]);
  });

  afterAll(async () => {
    await lab.close();
    await dns?.close();
  });

  it('relays alice@a.test -> bob@b.test over QUIC; bob verifies; A records the receipt', async () => {
    const a = nodes.a!;
    const b = nodes.b!;
    const sent = await cli(['send', '--profile', profile('alice'), '--node', a.proc!.ready.grpc, '--to', 'bob@b.test', '--subject', 'over quic', '--body', 'hello from a']);
    expect(sent.queuedRemote).toEqual(['bob@b.test']);
    const got = await receive('bob', b, 1);
    expect(got[0]!.messageId).toBe(sent.messageId);
    expect(got[0]!.verified, got[0]!.reason).toBe(true);
    expect(got[0]!.from).toBe('alice@a.test');
    const items = await until('delivered state', async () => (await queue(a)).find((i) => i.messageId === sent.messageId && i.state === 'delivered'));
    expect(items.recipient).toBe('bob@b.test');
    const peers = (await cli(['peers', '--data', a.data])) as { domain: string; transport: string; did: string; rttMs: number }[];
    const peer = peers.find((p) => p.domain === 'b.test')!;
    expect(peer.transport).toBe('quic');
    expect(peer.did).toBe(b.did);
    expect(peer.rttMs).toBeGreaterThan(0);
  });

  it('queues while the peer is down and delivers exactly once when it is back', async () => {
    const a = nodes.a!;
    const b = nodes.b!;
    b.proc!.child.kill('SIGKILL');
    await b.proc!.exited;
    // With B down its node cannot be asked for bob's DID: the app uses the DID it already knows.
    const alice = readProfile(profile('alice'));
    const clients = connect(alice, a.proc!.ready.grpc);
    const knownDids = { 'bob@b.test': readProfile(profile('bob')).did };
    const sealed = await sealFor(alice, clients, profileResolver(alice), { to: ['bob@b.test'], subject: 'while down', text: 'queued', knownDids });
    const reply = await submit(clients, sealed.envelope);
    expect(reply.queuedRemote).toEqual(['bob@b.test']);
    const messageId = Buffer.from(reply.messageId).toString('hex');
    clients.close();
    const deferred = await until('a deferred attempt', async () => (await queue(a)).find((i) => i.messageId === messageId && i.state === 'deferred' && i.attempts >= 1));
    expect(deferred.lastError).toMatch(/PEER_UNAVAILABLE|cannot reach/);
    // B's QUIC and relay ports change on restart: update the route (like an operator would).
    await start(b);
    await cli(['route', 'add', 'b.test', '--did', b.did, '--endpoint', `quic://${b.proc!.ready.quic},relay://${b.proc!.ready.relay}`, '--data', a.data]);
    await until('delivery after restart', async () => (await queue(a)).find((i) => i.messageId === messageId && i.state === 'delivered'));
    const got = await receive('bob', b, 1);
    expect(got.map((m) => m.messageId)).toEqual([messageId]);
  });

  /** alice -> bob, relayed and marked delivered at A; returns the envelope, its id and B's receipt as A keeps it. */
  async function relayOne(subject: string) {
    const a = nodes.a!;
    const alice = readProfile(profile('alice'));
    const clients = connect(alice, a.proc!.ready.grpc);
    const knownDids = { 'bob@b.test': readProfile(profile('bob')).did };
    const sealed = await sealFor(alice, clients, profileResolver(alice), { to: ['bob@b.test'], subject, text: subject, knownDids });
    const reply = await submit(clients, sealed.envelope);
    clients.close();
    const id = Buffer.from(reply.messageId);
    const messageId = id.toString('hex');
    await until('delivered', async () => (await queue(a)).find((i) => i.messageId === messageId && i.state === 'delivered'));
    return { envelope: sealed.envelope as Envelope__Output, id, messageId, receipt: receiptAtA(id) };
  }
  function receiptAtA(id: Buffer): { leafIndex: number; signature: string } {
    const db = new DatabaseSync(join(nodes.a!.data, 'node.db'), { readOnly: true });
    try { return JSON.parse((db.prepare('SELECT receipt FROM outbound WHERE message_id = ?').get(id) as { receipt: string }).receipt); } finally { db.close(); }
  }
  /** Crashes A and puts its queue back as it was between B's ack and A's durable update; A sends again. */
  async function crashAfterAck(sent: { envelope: Envelope__Output; id: Buffer; messageId: string }): Promise<void> {
    const a = nodes.a!;
    a.proc!.child.kill('SIGKILL');
    await a.proc!.exited;
    const db = new DatabaseSync(join(a.data, 'node.db'));
    db.prepare(`UPDATE outbound SET state = 'queued', attempts = 0, receipt = '', next_attempt_ms = 0 WHERE message_id = ?`).run(sent.id);
    db.prepare('INSERT INTO outbound_envelopes VALUES (?,?,?,?,?)').run(sent.id, encodeEnvelope(envelopeFromWire(sent.envelope)), 'alice@a.test', 'a.test', null);
    db.close();
    await start(a);
    await cli(['route', 'add', 'a.test', '--did', a.did, '--endpoint', `quic://${a.proc!.ready.quic},relay://${a.proc!.ready.relay}`, '--data', nodes.b!.data]);
    await until('delivered again', async () => (await queue(a)).find((i) => i.messageId === sent.messageId && i.state === 'delivered' && i.attempts === 1));
  }
  const storedAtB = (id: Buffer) => {
    const db = new DatabaseSync(join(nodes.b!.data, 'node.db'), { readOnly: true });
    try { return (db.prepare('SELECT count(*) AS n FROM deliveries WHERE message_id = ?').get(id) as { n: number }).n; } finally { db.close(); }
  };

  it('sends again a relay whose delivered state a crash lost after the ack, and the peer stores it once', async () => {
    const sent = await relayOne('crash after ack');
    expect(sent.receipt.signature).toMatch(/^[0-9a-f]{128}$/); // B's Ed25519 signature, kept in hex
    await crashAfterAck(sent);
    expect(receiptAtA(sent.id).leafIndex).toBe(sent.receipt.leafIndex); // B answered the re-send with its original receipt
    const got = await receive('bob', nodes.b!, 1);
    expect(got.map((m) => m.messageId)).toEqual([sent.messageId]);
    expect(storedAtB(sent.id)).toBe(1);
  });

  it('answers such a re-send with the original receipt also after its retention deleted the message', async () => {
    const sent = await relayOne('deleted after its ack');
    const newer = await relayOne('newer');
    expect((await receive('bob', nodes.b!, 2)).map((m) => m.messageId).sort()).toEqual([sent.messageId, newer.messageId].sort());
    // As B's housekeeping leaves it after storage.ackedRetentionMs: the acknowledged row gone (bob's
    // newest stays), the id still in the replay set, the hash in the log.
    const bdb = new DatabaseSync(join(nodes.b!.data, 'node.db'));
    bdb.prepare('DELETE FROM deliveries WHERE message_id = ?').run(sent.id);
    bdb.close();
    await crashAfterAck(sent); // before the fix: REPLAY, a permanent failure and a notice to alice
    expect(receiptAtA(sent.id).leafIndex).toBe(sent.receipt.leafIndex);
    expect(storedAtB(sent.id)).toBe(0);
    expect(await receive('bob', nodes.b!, 1, 1500)).toEqual([]);
    expect(await receive('alice', nodes.a!, 1, 1500)).toEqual([]); // no failure notice
  });

  it('delivers a backlog larger than the outbound loop takes at once, each message once', async () => {
    const a = nodes.a!;
    const b = nodes.b!;
    b.proc!.child.kill('SIGKILL');
    await b.proc!.exited;
    const alice = readProfile(profile('alice'));
    const clients = connect(alice, a.proc!.ready.grpc);
    const resolver = profileResolver(alice);
    const knownDids = { 'bob@b.test': readProfile(profile('bob')).did };
    const count = 300; // the loop works on at most 256 deliveries at once; the rest wait in the store
    const ids = new Set<string>();
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < count) {
        next++;
        const sealed = await sealFor(alice, clients, resolver, { to: ['bob@b.test'], subject: 'backlog', text: 'x', knownDids });
        const reply = await submit(clients, sealed.envelope);
        ids.add(Buffer.from(reply.messageId).toString('hex'));
      }
    }));
    clients.close();
    await start(b);
    await cli(['route', 'add', 'b.test', '--did', b.did, '--endpoint', `quic://${b.proc!.ready.quic},relay://${b.proc!.ready.relay}`, '--data', a.data]);
    const got = await receive('bob', b, count);
    expect(new Set(got.map((m) => m.messageId))).toEqual(ids);
    await until('all delivered', async () => {
      const delivered = (await queue(a)).filter((i) => ids.has(i.messageId) && i.state === 'delivered');
      return delivered.length === count ? delivered : undefined;
    }, 30_000);
    // Every receipt A kept verifies on its own against B's DID; B signed them in batches (one
    // signature per group it made durable together), so there are fewer signatures than receipts.
    const adb = new DatabaseSync(join(a.data, 'node.db'), { readOnly: true });
    const kept = (adb.prepare(`SELECT message_id, receipt FROM outbound WHERE state = 'delivered'`).all() as { message_id: Uint8Array; receipt: string }[])
      .filter((r) => ids.has(Buffer.from(r.message_id).toString('hex')))
      .map((r) => JSON.parse(r.receipt) as StoredReceipt);
    adb.close();
    expect(kept).toHaveLength(count);
    const didResolver = createDidResolver();
    for (const r of kept) await verifyReceipt(receiptFromStored(r), Buffer.from(r.messageHash, 'hex'), b.did, didResolver);
    expect(new Set(kept.map((r) => r.signature)).size).toBeLessThan(count);
    expect(kept.some((r) => (r.batchSize ?? 0) > 1)).toBe(true);
    // B's metrics count the same: receipts signed since its restart, and fewer signatures.
    const metrics = await metricsOf(b);
    const counter = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(metrics)?.[1]);
    expect(counter('aftersmtp_relay_receipts_signed_total')).toBeGreaterThanOrEqual(count);
    expect(counter('aftersmtp_relay_receipt_signatures_total')).toBeGreaterThan(0);
    expect(counter('aftersmtp_relay_receipt_signatures_total')).toBeLessThan(counter('aftersmtp_relay_receipts_signed_total'));
  });

  it('drains a queue deeper than the loop takes at once without waiting for the periodic re-read', async () => {
    const a = nodes.a!;
    const b = nodes.b!;
    // Only the queue's own signals may move A here: no periodic re-read within the test, and two envelopes
    // on the wire at a time, so deliveries pile up past the 256 the loop works on at once.
    const saved = a.env;
    a.env = { ...saved, AFTERSMTP_FEDERATION__QUEUE_SCAN_MS: '600000', AFTERSMTP_FEDERATION__MAX_IN_FLIGHT_PER_PEER: '2' };
    a.proc!.child.kill('SIGTERM');
    await a.proc!.exited;
    await start(a);
    try {
      const alice = readProfile(profile('alice'));
      const clients = connect(alice, a.proc!.ready.grpc);
      const resolver = profileResolver(alice);
      const knownDids = { 'bob@b.test': readProfile(profile('bob')).did };
      const count = 800;
      const sealed = [];
      for (let i = 0; i < count; i++) sealed.push(await sealFor(alice, clients, resolver, { to: ['bob@b.test'], subject: 'deep', text: `n${i}`, knownDids }));
      const ids = new Set(sealed.map((s) => Buffer.from(s.messageId).toString('hex')));
      const call = clients.mailbox.SubmitStream(clients.metadata);
      const errors: string[] = [];
      const done = new Promise<void>((resolve, reject) => {
        call.on('data', (r: { error: { message: string } | null }) => { if (r.error) errors.push(r.error.message); });
        call.on('end', resolve);
        call.on('error', reject);
      });
      for (let i = 0; i < count; i++) call.write({ envelope: sealed[i]!.envelope, clientRef: i });
      call.end();
      await done;
      clients.close();
      expect(errors).toEqual([]);
      const got = await receive('bob', b, count, 60_000);
      expect(new Set(got.map((m) => m.messageId))).toEqual(ids);
    } finally {
      a.env = saved;
      a.proc!.child.kill('SIGTERM');
      await a.proc!.exited;
      await start(a);
      await cli(['route', 'add', 'a.test', '--did', a.did, '--endpoint', `quic://${a.proc!.ready.quic},relay://${a.proc!.ready.relay}`, '--data', b.data]);
    }
  });

  it('falls back to HTTP/2 when QUIC is unreachable', async () => {
    const a = nodes.a!;
    const b = nodes.b!;
    await cli(['route', 'add', 'b.test', '--did', b.did, '--endpoint', `quic://127.0.0.1:9,relay://${b.proc!.ready.relay}`, '--data', a.data]);
    // A new connection is needed for the new route: restart A's view by restarting A.
    a.proc!.child.kill('SIGTERM');
    await a.proc!.exited;
    await start(a);
    await cli(['route', 'add', 'a.test', '--did', a.did, '--endpoint', `quic://${a.proc!.ready.quic},relay://${a.proc!.ready.relay}`, '--data', b.data]);
    const sent = await cli(['send', '--profile', profile('alice'), '--node', a.proc!.ready.grpc, '--to', 'bob@b.test', '--subject', 'over h2', '--body', 'fallback']);
    const got = await receive('bob', b, 1);
    expect(got[0]!.messageId).toBe(sent.messageId);
    expect(got[0]!.verified).toBe(true);
    const peers = (await cli(['peers', '--data', a.data])) as { domain: string; transport: string }[];
    expect(peers.find((p) => p.domain === 'b.test')!.transport).toBe('http2');
  });

  it('refuses a peer whose transport key is not in its DID document, and notifies the sender', async () => {
    const a = nodes.a!;
    const b = nodes.b!;
    const impostor = 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK';
    await cli(['route', 'add', 'c.test', '--did', impostor, '--endpoint', `relay://${b.proc!.ready.relay}`, '--data', a.data]);
    const alice = readProfile(profile('alice'));
    const clients = connect(alice, a.proc!.ready.grpc);
    const resolver = profileResolver(alice);
    // The impostor cannot be asked for carol's DID; seal to a DID the app knows (bob's keys).
    const knownDids = { 'carol@c.test': readProfile(profile('bob')).did };
    const sealed = await sealFor(alice, clients, resolver, { to: ['carol@c.test'], subject: 'to impostor', text: 'x', knownDids });
    const reply = await submit(clients, sealed.envelope);
    clients.close();
    const id = Buffer.from(reply.messageId).toString('hex');
    const failed = await until('failure', async () => (await queue(a)).find((i) => i.messageId === id && i.state === 'failed'));
    expect(failed.lastError).toMatch(/PEER_REJECTED.*not in .*DID document/);
    const notice = await receive('alice', a, 1);
    expect(notice[0]!.from).toBe('postmaster@a.test');
    expect(notice[0]!.subject).toMatch(/Undelivered Mail Returned to Sender/);
    expect(notice[0]!.verified).toBe(true);
    expect(Buffer.from(notice[0]!.body!).toString()).toContain('carol@c.test');
  });

  it("refuses an envelope whose sender domain is not the peer's", async () => {
    const a = nodes.a!;
    const b = nodes.b!;
    await cli(['route', 'remove', 'a.test', '--data', b.data]); // B no longer knows A serves a.test
    const sent = await cli(['send', '--profile', profile('alice'), '--node', a.proc!.ready.grpc, '--to', 'bob@b.test', '--subject', 'spoof?', '--body', 'x']);
    const failed = await until('refusal', async () => (await queue(a)).find((i) => i.messageId === sent.messageId && i.state === 'failed'));
    expect(failed.lastError).toMatch(/PEER_REJECTED.*sender domain/);
    await cli(['route', 'add', 'a.test', '--did', a.did, '--endpoint', `quic://${a.proc!.ready.quic},relay://${a.proc!.ready.relay}`, '--data', b.data]);
    // The refusal notice reaches alice.
    const notice = await receive('alice', a, 1);
    expect(notice[0]!.subject).toMatch(/Undelivered Mail Returned to Sender/);
  });

  it('discovers a did:web node through DNS and its DID document over HTTPS', async () => {
    const c = await makeNode('c', 'c.test', 'web');
    const cProc = await start(c);
    // c.test's node is found by DNS; its did:web document (served by C over HTTPS) names the endpoints.
    dns.set([{ type: 'TXT', name: '_aftersmtp.c.test', data: `v=aftersmtp1; did=${c.did}` }]);
    const a = nodes.a!;
    a.proc!.child.kill('SIGTERM');
    await a.proc!.exited;
    a.env = {
      ...a.env,
      AFTERSMTP_FEDERATION__DNS_SERVERS: JSON.stringify([dns.address]),
      AFTERSMTP_IDENTITY__DID_WEB_HOSTS: JSON.stringify({ 'c.test': cProc.ready.http }),
      AFTERSMTP_IDENTITY__CA_FILES: JSON.stringify([join(c.data, 'tls/ca.crt')]),
    };
    await start(a);
    await cli(['route', 'remove', 'c.test', '--data', a.data]);
    // C learns A by a static route (A is did:key: nothing to discover).
    await cli(['route', 'add', 'a.test', '--did', a.did, '--endpoint', `quic://${a.proc!.ready.quic}`, '--data', c.data]);
    await cli(['mailbox', 'add', 'carol@c.test', '--data', c.data, '--profile', profile('carol')]);
    const sent = await cli(['send', '--profile', profile('alice'), '--node', a.proc!.ready.grpc, '--to', 'carol@c.test', '--subject', 'found you', '--body', 'via dns']);
    expect(dns.queries).toContain('TXT _aftersmtp.c.test');
    const state = await until('relay to c.test', async () => (await queue(a)).find((i) => i.messageId === sent.messageId && i.state !== 'queued'));
    expect(state.state, `${state.lastError}\n${a.proc!.stderr().slice(-3000)}`).toBe('delivered');
    const got = await receive('carol', c, 1);
    expect(got[0]!.messageId).toBe(sent.messageId);
    expect(got[0]!.verified, got[0]!.reason).toBe(true);
    const peers = (await cli(['peers', '--data', a.data])) as { domain: string; source: string }[];
    expect(peers.find((p) => p.domain === 'c.test')!.source).toBe('dns');
    expect(readFileSync(join(c.data, 'config.yaml'), 'utf8')).toContain('didMethod: web');
  });

  it('refuses a did:web peer whose document is not served over trusted HTTPS, and keeps the mail queued', async () => {
    const d = await makeNode('d', 'd.test', 'web');
    const dProc = await start(d);
    const c = nodes.c!;
    dns.set([
      { type: 'TXT', name: '_aftersmtp.c.test', data: `v=aftersmtp1; did=${c.did}` },
      { type: 'TXT', name: '_aftersmtp.d.test', data: `v=aftersmtp1; did=${d.did}` },
    ]);
    const a = nodes.a!;
    a.proc!.child.kill('SIGTERM');
    await a.proc!.exited;
    // A can reach d.test's HTTPS server, but D's certificate is from a CA that A does not trust.
    const hosts = JSON.parse(a.env.AFTERSMTP_IDENTITY__DID_WEB_HOSTS ?? '{}') as Record<string, string>;
    a.env = { ...a.env, AFTERSMTP_IDENTITY__DID_WEB_HOSTS: JSON.stringify({ ...hosts, 'd.test': dProc.ready.http }) };
    await start(a);
    const alice = readProfile(profile('alice'));
    const clients = connect(alice, a.proc!.ready.grpc);
    const knownDids = { 'dave@d.test': readProfile(profile('bob')).did };
    const sealed = await sealFor(alice, clients, profileResolver(alice), { to: ['dave@d.test'], subject: 'untrusted', text: 'x', knownDids });
    const reply = await submit(clients, sealed.envelope);
    clients.close();
    const id = Buffer.from(reply.messageId).toString('hex');
    const item = await until('a failed attempt', async () => (await queue(a)).find((i) => i.messageId === id && i.attempts > 0));
    expect(item.state).toBe('deferred');
    expect(item.lastError).toMatch(/did:web:d\.test/);
    expect(item.lastError).toMatch(/certificate|self-signed|issuer/i);
    // The node keeps serving: mail to the trusted did:web peer still goes through.
    const sent = await cli(['send', '--profile', profile('alice'), '--node', a.proc!.ready.grpc, '--to', 'carol@c.test', '--subject', 'still here', '--body', 'x']);
    const ok = await until('delivery to c.test', async () => (await queue(a)).find((i) => i.messageId === sent.messageId && i.state === 'delivered'));
    expect(ok.recipient).toBe('carol@c.test');
  });
});
