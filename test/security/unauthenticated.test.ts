// What an anonymous caller (no mailbox token), or a peer that is only a transport key, can make a node do
// (issue #20 items 6-9). The node runs as a separate process, so the memory measured is the node's own
// (/proc/PID/status), and every attack goes over real sockets on 127.0.0.1.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { get as httpGet } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { tempDir, initNodeWithMailboxes, startNodeProcess, until, type RunningNode } from '../helpers.ts';
import { AfterSmtpNode } from '../../gateway/node/index.ts';
import { connect, profileResolver, sealFor, type MailboxProfile } from '../../gateway/client/index.ts';
import { envelopeFromWire } from '../../gateway/core/index.ts';
import { RelayChannel, RELAY_METHOD, RESOLVE_METHOD, Router } from '../../gateway/federation/index.ts';
import { startDnsServer, type TestDnsServer } from '../dns-server.ts';
import { loadProto, loadRoot, messageCodec, PROTO_FILE, type Envelope__Output } from '../../proto/index.ts';
import { QuicTransport, type PeerConnection } from '../../gateway/transport/index.ts';
import { DnsPacketResolver } from '../../gateway/dns/index.ts';
import { createDidResolver, didKeyFromEd25519, generateSigningKeyPair, verifySignature, type Envelope } from '../../identity/index.ts';
import type { Store } from '../../gateway/store/index.ts';

const MiB = 1024 * 1024;

/** A protobuf varint. */
function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n = Math.floor(n / 128); }
  out.push(n);
  return Buffer.from(out);
}

/** `{ envelope (field 1): { recipients (field 15): [{}, {}, ...] } }`: 2 wire bytes per empty entry. */
function emptyRecipients(count: number): Buffer {
  const entries = Buffer.alloc(count * 2);
  for (let i = 0; i < count; i++) entries[2 * i] = (15 << 3) | 2;
  return Buffer.concat([Buffer.from([(1 << 3) | 2]), varint(entries.length), entries]);
}

/** Resident and peak resident memory of process `pid`, in bytes. */
function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status)![1]) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

interface CallResult { code: number; details: string; reply?: Buffer }

describe('unauthenticated surfaces of a node', { timeout: 180_000 }, () => {
  const dir = tempDir();
  let dns: TestDnsServer;
  let node: RunningNode;
  let alice: MailboxProfile;
  let client: grpc.Client;
  /** A TCP listener the attacks aim at: it counts every connection made to it. */
  let bait: Server;
  let baitPort = 0;
  const baitConnections: Socket[] = [];
  /** A port nothing listens on, and one whose listener drops every connection at once. */
  let closedPort = 0;
  let dropper: Server;

  const token = (profile: MailboxProfile) => {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${profile.token}`);
    return md;
  };

  /** One unary call with raw request bytes, answered with its status (and the raw reply). */
  const rawUnary = (path: string, body: Buffer, metadata = new grpc.Metadata()): Promise<CallResult> =>
    new Promise((resolve) => {
      client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, body, metadata, (err, reply) => {
        resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '', reply: reply as Buffer });
      });
    });

  const identityCodec = () => loadProto().packageDefinition['aftersmtp.v1.Identity'] as unknown as Record<string, { requestSerialize(v: unknown): Buffer; responseDeserialize(b: Buffer): unknown }>;
  const resolve = (request: { did?: string; address?: string }, metadata?: grpc.Metadata) =>
    rawUnary('/aftersmtp.v1.Identity/Resolve', identityCodec().Resolve!.requestSerialize(request), metadata);

  const listen = async (server: Server): Promise<number> => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return (server.address() as import('node:net').AddressInfo).port;
  };

  beforeAll(async () => {
    dns = await startDnsServer();
    bait = createServer((socket) => { baitConnections.push(socket); socket.on('error', () => {}); });
    baitPort = await listen(bait);
    dropper = createServer((socket) => socket.destroy());
    const dropperPort = await listen(dropper);
    const probe = createServer();
    closedPort = await listen(probe);
    await new Promise((r) => probe.close(r));

    const made = await initNodeWithMailboxes(dir.path, 'a.test');
    alice = made.alice;
    node = await startNodeProcess(made.data, {
      AFTERSMTP_LOG__LEVEL: 'warn',
      AFTERSMTP_FEDERATION__WITNESS__ENABLED: 'false',
      AFTERSMTP_FEDERATION__DNS_SERVERS: JSON.stringify([dns.address]),
      // Two did:web hosts the operator mapped (so they may be on loopback): one refuses, one hangs up.
      AFTERSMTP_IDENTITY__DID_WEB_HOSTS: JSON.stringify({ 'closed.test': `127.0.0.1:${closedPort}`, 'dropped.test': `127.0.0.1:${dropperPort}` }),
    });
    client = new grpc.Client(node.ready.grpc, grpc.credentials.createSsl(Buffer.from(alice.node.ca)), {
      'grpc.ssl_target_name_override': 'localhost',
      'grpc.max_send_message_length': 64 * MiB,
      'grpc.max_receive_message_length': 64 * MiB,
    });
    // Warm: the first calls load what every later call uses.
    expect((await resolve({ address: 'alice@a.test' }, token(alice))).code).toBe(grpc.status.OK);
  });

  afterAll(async () => {
    client?.close();
    node?.child.kill('SIGTERM');
    await node?.exited;
    for (const s of baitConnections) s.destroy();
    await Promise.all([bait, dropper].map((s) => new Promise((r) => s?.close(r))));
    await dns?.close();
    dir.cleanup();
  });

  it('6a a 24 MiB Submit of empty repeated entries without a token is refused and grows the node by < 50 MB', async () => {
    const attack = emptyRecipients(12 * MiB); // 24 MiB on the wire
    const before = memoryOf(node.child.pid!);
    const result = await rawUnary('/aftersmtp.v1.Mailbox/Submit', attack);
    const after = memoryOf(node.child.pid!);
    expect(result.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(after.rss - before.rss, 'resident memory growth').toBeLessThan(50 * MiB);
    expect(after.hwm - before.hwm, 'peak resident memory growth').toBeLessThan(50 * MiB);
    // The same on the streaming submit.
    const stream = client.makeBidiStreamRequest('/aftersmtp.v1.Mailbox/SubmitStream', (b: Buffer) => b, (b: Buffer) => b, new grpc.Metadata());
    const status = new Promise<grpc.StatusObject>((r) => stream.on('status', r));
    stream.on('error', () => {});
    stream.write(attack);
    expect((await status).code).toBe(grpc.status.UNAUTHENTICATED);
    expect(memoryOf(node.child.pid!).hwm - before.hwm, 'peak resident memory growth').toBeLessThan(50 * MiB);
  });

  it('6b the codec refuses 1,001 recipients and a packed flood; a token holder\'s flood is RESOURCE_EXHAUSTED', async () => {
    const root = loadRoot(PROTO_FILE);
    const submit = messageCodec(root, 'aftersmtp.v1.SubmitRequest')!;
    expect((submit.decode(emptyRecipients(1000)).envelope as { recipients: unknown[] }).recipients).toHaveLength(1000);
    expect(() => submit.decode(emptyRecipients(1001))).toThrow(/Envelope.recipients: more than 1000 entries/);
    const subscribe = messageCodec(root, 'aftersmtp.v1.SubscribeRequest')!;
    const seqs = Buffer.alloc(10_001, 1); // SubscribeRequest {ack (field 2): {seqs (field 1, packed): 1 x 10,001}}
    const ack = Buffer.concat([Buffer.from([0x0a]), varint(seqs.length), seqs]);
    const request = Buffer.concat([Buffer.from([(2 << 3) | 2]), varint(ack.length), ack]);
    expect(() => subscribe.decode(request)).toThrow(/Ack.seqs: more than 10000 entries/);

    const before = memoryOf(node.child.pid!);
    const result = await rawUnary('/aftersmtp.v1.Mailbox/Submit', emptyRecipients(12 * MiB), token(alice));
    expect(result.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(result.details).toMatch(/more than 1000 entries/);
    // The request's bytes are read (the caller is authenticated), but not built into 12 M objects.
    expect(memoryOf(node.child.pid!).rss - before.rss, 'resident memory growth').toBeLessThan(100 * MiB);
  });

  it('6c a relay stream whose first frame is 20 MiB, not a hello, is refused before it is buffered or decoded', async () => {
    const key = generateSigningKeyPair();
    const transport = new QuicTransport({ privateKey: key.privateKey, publicKey: key.publicKey });
    const [host, port] = node.ready.quic!.split(':');
    const before = memoryOf(node.child.pid!);
    try {
      const conn = await transport.dial({ host: host!, port: Number(port) });
      const stream = await conn.openStream(RELAY_METHOD);
      const sent = stream.send(emptyRecipients(10 * MiB)).then(() => 'sent', (err: Error) => err.message);
      const read = (async () => { for await (const _ of stream) { /* the node's hello would come first */ } return 'ended'; })()
        .catch((err: Error) => `refused: ${err.message}`);
      expect(await read).toMatch(/refused|MESSAGE_TOO_LARGE/i);
      await sent;
    } finally {
      await transport.close();
    }
    const after = memoryOf(node.child.pid!);
    expect(after.rss - before.rss, 'resident memory growth').toBeLessThan(50 * MiB);
    expect(after.hwm - before.hwm, 'peak resident memory growth').toBeLessThan(50 * MiB);
  });

  it('7a an anonymous Resolve of a did:web on a loopback port is UNAUTHENTICATED and the node never dials it', async () => {
    const result = await resolve({ did: `did:web:127.0.0.1%3A${baitPort}` });
    expect(result.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(baitConnections).toHaveLength(0);
  });

  it('7b a token holder\'s Resolve of a loopback did:web not in identity.didWebHosts is refused without a connection; failures read alike', async () => {
    const loopback = await resolve({ did: `did:web:127.0.0.1%3A${baitPort}` }, token(alice));
    expect(loopback.code).toBe(grpc.status.UNAVAILABLE);
    expect(loopback.details).toBe(`cannot resolve did:web:127.0.0.1%3A${baitPort}`);
    const named = await resolve({ did: 'did:web:localhost%3A' + baitPort }, token(alice));
    expect(named.code).toBe(grpc.status.UNAVAILABLE);
    // A name whose A record (from the node's own DNS client and server) points at loopback: refused too.
    dns.set([{ type: 'A', name: 'rebind.test', data: '127.0.0.1' }]);
    const rebound = await resolve({ did: `did:web:rebind.test%3A${baitPort}` }, token(alice));
    expect(rebound).toEqual({ code: grpc.status.UNAVAILABLE, details: `cannot resolve did:web:rebind.test%3A${baitPort}` });
    expect(dns.queries).toContain('A rebind.test');
    expect(baitConnections).toHaveLength(0);
    // Mapped hosts are dialed; a refused connection and a dropped one give the same answer.
    const refused = await resolve({ did: 'did:web:closed.test' }, token(alice));
    const dropped = await resolve({ did: 'did:web:dropped.test' }, token(alice));
    expect(refused).toEqual({ code: grpc.status.UNAVAILABLE, details: 'cannot resolve did:web:closed.test' });
    expect(dropped).toEqual({ code: grpc.status.UNAVAILABLE, details: 'cannot resolve did:web:dropped.test' });
  });

  it('7c maps stay bounded after many distinct failing lookups, and a failed one is not looked up again', async () => {
    // Over the node: each unknown domain costs one DNS lookup, however often it is named. A domain without
    // an AfterSMTP node is answered with the node's own bridge key (legacy), from the remembered failure.
    const decode = identityCodec().Resolve!.responseDeserialize;
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 20; i++) {
        const r = await resolve({ address: `x@nowhere${i}.test` }, token(alice));
        expect(r.code).toBe(grpc.status.OK);
        expect(decode(r.reply!)).toMatchObject({ did: node.ready.did, legacy: true });
      }
    }
    for (let i = 0; i < 20; i++) expect(dns.queries.filter((q) => q === `TXT _aftersmtp.nowhere${i}.test`)).toHaveLength(1);

    // The maps themselves, with small bounds.
    const router = new Router({
      storage: { routes: { for: () => undefined } } as unknown as Store, resolver: createDidResolver({}), configRoutes: [],
      dns: new DnsPacketResolver({ servers: [dns.address] }), localDomains: ['a.test'], maxDiscoveredDomains: 16,
    });
    for (let i = 0; i < 100; i++) await expect(router.route(`many${i}.test`)).rejects.toThrow();
    expect(router.rememberedDomains).toBe(16);
    const resolver = createDidResolver({ maxCacheEntries: 16, allowPrivateAddresses: false });
    for (let i = 0; i < 100; i++) await expect(resolver.resolveKeys(`did:web:10.0.0.${i}`)).rejects.toThrow(/private address/);
    expect(resolver.cachedEntries()).toBe(16);
  });

  it('8a a peer naming an unknown sender domain again and again triggers one discovery', async () => {
    const key = generateSigningKeyPair();
    const transport = new QuicTransport({ privateKey: key.privateKey, publicKey: key.publicKey });
    const codec = (loadProto().packageDefinition['aftersmtp.v1.Relay'] as unknown as Record<string, { requestSerialize(v: unknown): Buffer; requestDeserialize(b: Buffer): unknown }>).Stream!;
    const [host, port] = node.ready.quic!.split(':');
    try {
      const conn = await transport.dial({ host: host!, port: Number(port) });
      const stream = await conn.openStream(RELAY_METHOD);
      await stream.send(codec.requestSerialize({ frameId: 0, hello: { did: didKeyFromEd25519(key.publicKey), domains: ['p.test'], maxInFlight: 8 } }));
      const frames = stream[Symbol.asyncIterator]();
      await frames.next(); // the node's hello
      for (let i = 1; i <= 5; i++) {
        await stream.send(codec.requestSerialize({ frameId: i, senderDomain: 'unknown-sender.test', envelope: {} }));
        const ack = codec.requestDeserialize(Buffer.from((await frames.next()).value!)) as { ack: { error: { code: string } } };
        expect(ack.ack.error.code).toBe('PEER_REJECTED');
      }
    } finally {
      await transport.close();
    }
    expect(dns.queries.filter((q) => q === 'TXT _aftersmtp.unknown-sender.test')).toHaveLength(1);
  });

  it('8b a peer gets at most federation.peerBudget.maxConnections (8) connections; the rest are closed', async () => {
    const key = generateSigningKeyPair();
    const transport = new QuicTransport({ privateKey: key.privateKey, publicKey: key.publicKey });
    const [host, port] = node.ready.quic!.split(':');
    const lookup = async (conn: PeerConnection) => {
      const stream = await conn.openStream(RESOLVE_METHOD);
      await stream.send(identityCodec().Resolve!.requestSerialize({ address: 'alice@a.test' }));
      await stream.end();
      for await (const _ of stream) return true;
      return false;
    };
    try {
      const conns: PeerConnection[] = [];
      for (let i = 0; i < 8; i++) conns.push(await transport.dial({ host: host!, port: Number(port) }));
      // The ninth is closed by the node as it arrives (default maximum 8): its dial fails, or it is
      // closed right after, and then fails its lookup.
      const ninth = await transport.dial({ host: host!, port: Number(port) }).catch(() => undefined);
      if (ninth) await until('the ninth connection to be closed', async () => (await lookup(ninth).catch(() => false)) ? undefined : true, 20_000);
      for (const conn of conns) expect(await lookup(conn)).toBe(true);
    } finally {
      await transport.close();
    }
  });

  it('9a anonymous Resolve answers alike for a hosted and an unknown address', async () => {
    const known = await resolve({ address: 'alice@a.test' });
    const unknown = await resolve({ address: 'nobody@a.test' });
    expect(known.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(unknown).toEqual(known);
  });

  it('9b /metrics is not served on the public HTTPS listener, only on the loopback metrics listener', async () => {
    const [host, port] = node.ready.http!.split(':');
    const status = await new Promise<number>((resolve, reject) => {
      httpsRequest({ host, port: Number(port), path: '/metrics', ca: alice.node.ca, servername: 'localhost' }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      }).on('error', reject).end();
    });
    expect(status).toBe(404);
    expect(node.ready.metrics).toMatch(/^127\.0\.0\.1:\d+$/);
    const body = await new Promise<string>((resolve, reject) => {
      httpGet(`http://${node.ready.metrics}/metrics`, (res) => {
        let text = '';
        res.on('data', (c) => { text += c; });
        res.on('end', () => resolve(text));
      }).on('error', reject);
    });
    expect(body).toMatch(/^aftersmtp_mailboxes 2$/m);
  });
});

describe('per-peer budgets', { timeout: 120_000 }, () => {
  const dir = tempDir();
  const peerP = generateSigningKeyPair();
  const peerQ = generateSigningKeyPair();
  let node: AfterSmtpNode;
  const envelopes: Envelope[] = [];
  /** Signatures of the envelopes being verified now; verification waits while the gate is shut. */
  const verifying = new Set<string>();
  let openGate: () => void = () => {};
  const gate = new Promise<void>((r) => { openGate = r; });

  beforeAll(async () => {
    const made = await initNodeWithMailboxes(dir.path, 'n.test');
    const routes = [peerP, peerQ].map((k, i) => ({ domain: `${'pq'[i]}.test`, did: didKeyFromEd25519(k.publicKey), endpoint: 'quic://127.0.0.1:9' }));
    node = new AfterSmtpNode({
      dataDir: made.data,
      logger: pino({ level: 'silent' }),
      env: {
        AFTERSMTP_FEDERATION__ROUTES: JSON.stringify(routes),
        AFTERSMTP_FEDERATION__WITNESS__ENABLED: 'false',
        AFTERSMTP_FEDERATION__PEER_BUDGET__MAX_IN_FLIGHT_MESSAGES: '4',
      },
      verify: async (publicKey, message, signature) => {
        const id = Buffer.from(signature).toString('hex');
        verifying.add(id);
        await gate;
        verifying.delete(id);
        return verifySignature(publicKey, message, signature);
      },
    });
    const ready = await node.start();
    const clients = connect(made.alice, ready.grpc);
    for (let i = 0; i < 13; i++) {
      const sealed = await sealFor(made.alice, clients, profileResolver(made.alice), { to: ['bob@n.test'], subject: `relayed ${i}`, text: 'x', knownDids: { 'bob@n.test': made.bob.did } });
      envelopes.push(envelopeFromWire(sealed.envelope as unknown as Envelope__Output));
    }
    clients.close();
  });

  afterAll(async () => {
    openGate();
    await node?.stop();
    dir.cleanup();
  });

  it('8c a peer over its in-flight budget is held while another peer proceeds', async () => {
    const [host, port] = node.federation!.addresses.quic!.split(':');
    const transports = [peerP, peerQ].map((k) => new QuicTransport({ privateKey: k.privateKey, publicKey: k.publicKey }));
    const channel = async (i: number, lanes: number) => RelayChannel.open(await transports[i]!.dial({ host: host!, port: Number(port) }), {
      peerDid: node.keys.did, nodeDid: didKeyFromEd25519([peerP, peerQ][i]!.publicKey), domains: [`${'pq'[i]}.test`],
      maxInFlight: 64, resolver: createDidResolver({}), ackTimeoutMs: 60_000, lanes,
    });
    const sigOf = (e: Envelope) => Buffer.from(e.outerSignature).toString('hex');
    try {
      // P spreads 12 envelopes over 4 relay streams (each stream's own window is 64).
      const p = await channel(0, 4);
      const fromP = envelopes.slice(0, 12);
      const pAcks = fromP.map((e) => p.send(e, 'p.test'));
      for (const ack of pAcks) ack.catch(() => {}); // awaited below; a failing run must not leave them unhandled
      const pSigs = new Set(fromP.map(sigOf));
      const pVerifying = () => [...verifying].filter((s) => pSigs.has(s)).length;
      await until('P reaching its budget', async () => (pVerifying() >= 4 ? true : undefined));
      // Q's envelope is taken at once, while P's others wait for P's budget.
      const q = await channel(1, 1);
      const qAck = q.send(envelopes[12]!, 'q.test');
      qAck.catch(() => {});
      await until('Q proceeding', async () => (verifying.has(sigOf(envelopes[12]!)) ? true : undefined));
      expect(pVerifying()).toBe(4);
      openGate();
      // Held, not dropped: every envelope of P is accepted once P's earlier ones are done.
      const receipts = await Promise.all([...pAcks, qAck]);
      expect(receipts).toHaveLength(13);
    } finally {
      for (const t of transports) await t.close();
    }
  });
});
