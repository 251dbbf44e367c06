// Faults on the federation hop between real nodes (separate processes, loopback): a peer that takes
// envelopes but never acknowledges them, and a peer killed (SIGKILL) in the middle of a stream. In
// both cases nothing accepted is lost and every message reaches bob exactly once.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { tempDir, runCli, startNodeProcess, until, type RunningNode } from '../helpers.ts';
import { readProfile, connect, profileResolver, sealFor, submit, subscribe, type ReceivedMessage } from '../../gateway/client/index.ts';
import { openNodeFiles } from '../../gateway/datadir/index.ts';
import { RelayChannel, receiptFromStored, storedReceipt, verifyReceipt, type ReceiptFields, type SignedReceipt } from '../../gateway/federation/index.ts';
import { createDidResolver } from '../../identity/index.ts';
import { QuicTransport, type MessageStream } from '../../gateway/transport/index.ts';
import { loadProto, type Envelope__Output } from '../../proto/index.ts';
import { envelopeFromWire } from '../../gateway/core/index.ts';
import { randomBytes } from 'node:crypto';
import { createServer as createNetServer, type AddressInfo } from 'node:net';

const ENV = {
  AFTERSMTP_FEDERATION__RETRY__INITIAL_MS: '200',
  AFTERSMTP_FEDERATION__RETRY__MAX_MS: '1000',
  AFTERSMTP_FEDERATION__ACK_TIMEOUT_MS: '1500',
  AFTERSMTP_FEDERATION__DIAL_TIMEOUT_MS: '1500',
  AFTERSMTP_FEDERATION__WITNESS__ENABLED: 'false',
  AFTERSMTP_LOG__LEVEL: 'warn',
};

interface TestNode { name: string; domain: string; data: string; did: string; proc?: RunningNode }

/** Config overrides that make a restarted node listen where it listened before. */
function samePorts(proc: RunningNode): Record<string, string> {
  const port = (hostPort: string | null) => hostPort!.slice(hostPort!.lastIndexOf(':') + 1);
  return { AFTERSMTP_FEDERATION__QUIC__PORT: port(proc.ready.quic), AFTERSMTP_FEDERATION__RELAY__PORT: port(proc.ready.relay) };
}

const relayCodec = () => (loadProto().packageDefinition['aftersmtp.v1.Relay'] as unknown as Record<string, {
  requestSerialize(v: unknown): Buffer; requestDeserialize(b: Buffer): unknown;
}>).Stream!;

describe('faults on the federation hop', { timeout: 180_000 }, () => {
  const dir = tempDir();
  const profile = (name: string) => join(dir.path, `${name}.json`);
  let a: TestNode;
  let b: TestNode;

  async function cli(args: string[]) {
    const r = await runCli([...args, '--json']);
    expect(r.code, `${args.join(' ')}\n${r.stderr}`).toBe(0);
    return r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
  }
  const queue = (n: TestNode) => cli(['queue', 'list', '--data', n.data]) as Promise<{ messageId: string; state: string; lastError: string; attempts: number }[]>;
  const routeTo = (from: TestNode, domain: string, did: string, quic: string) =>
    cli(['route', 'add', domain, '--did', did, '--endpoint', `quic://${quic}`, '--data', from.data]);
  /** Points A's route for b.test at `quic`; A's open channel follows the route change within a second. */
  async function routeA(quic: string): Promise<void> {
    await routeTo(a, 'b.test', b.did, quic);
    await new Promise((r) => setTimeout(r, 1100));
  }

  async function sendMany(count: number): Promise<Set<string>> {
    const alice = readProfile(profile('alice'));
    const clients = connect(alice, a.proc!.ready.grpc);
    const resolver = profileResolver(alice);
    const knownDids = { 'bob@b.test': readProfile(profile('bob')).did };
    const ids = new Set<string>();
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < count) {
        next++;
        const sealed = await sealFor(alice, clients, resolver, { to: ['bob@b.test'], subject: `m${next}`, text: 'x'.repeat(2000), knownDids });
        ids.add(Buffer.from((await submit(clients, sealed.envelope)).messageId).toString('hex'));
      }
    }));
    clients.close();
    return ids;
  }

  async function receiveAll(count: number): Promise<ReceivedMessage[]> {
    const p = readProfile(profile('bob'));
    const clients = connect(p, b.proc!.ready.grpc);
    const got: ReceivedMessage[] = [];
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 30_000);
    await subscribe(p, clients, profileResolver(p), { count, signal: controller.signal, onMessage: (m) => { got.push(m); } });
    clearTimeout(timer);
    clients.close();
    return got;
  }

  /** A QUIC transport authenticated with `n`'s node key (to impersonate it towards the other node). */
  function transportHolding(n: TestNode): QuicTransport {
    const { keys } = openNodeFiles(n.data);
    return new QuicTransport({ privateKey: Buffer.from(keys.signing.privateKey, 'base64url'), publicKey: Buffer.from(keys.signing.publicKey, 'base64url') });
  }

  /** Bob's messages until every id in `ids` has arrived (others that arrive too are returned as well). */
  async function receiveIds(ids: Set<string>): Promise<ReceivedMessage[]> {
    const p = readProfile(profile('bob'));
    const clients = connect(p, b.proc!.ready.grpc);
    const got: ReceivedMessage[] = [];
    const seen = new Set<string>();
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 60_000);
    await subscribe(p, clients, profileResolver(p), {
      signal: controller.signal,
      onMessage: (m) => {
        got.push(m);
        if (ids.has(m.messageId)) seen.add(m.messageId);
        if (seen.size === ids.size) controller.abort();
      },
    });
    clearTimeout(timer);
    clients.close();
    return got;
  }

  beforeAll(async () => {
    const nodes: TestNode[] = [];
    for (const [name, domain] of [['a', 'a.test'], ['b', 'b.test']] as const) {
      const data = join(dir.path, name);
      // Ports 0: a port picked ahead and bound later could be taken meanwhile by a parallel test.
      const init = await runCli(['init', '--data', data, '--domain', domain, '--grpc-port', '0', '--json']);
      expect(init.code, init.stderr).toBe(0);
      nodes.push({ name, domain, data, did: JSON.parse(init.stdout).did });
    }
    [a, b] = nodes as [TestNode, TestNode];
    a.proc = await startNodeProcess(a.data, ENV);
    b.proc = await startNodeProcess(b.data, ENV);
    await routeTo(a, 'b.test', b.did, b.proc.ready.quic!);
    await routeTo(b, 'a.test', a.did, a.proc.ready.quic!);
    await cli(['mailbox', 'add', 'alice@a.test', '--data', a.data, '--profile', profile('alice')]);
    await cli(['mailbox', 'add', 'bob@b.test', '--data', b.data, '--profile', profile('bob')]);
  });

  afterAll(async () => {
    for (const n of [a, b]) {
      n?.proc?.child.kill('SIGTERM');
      await n?.proc?.exited;
    }
    dir.cleanup();
  });

  it('deliveries that wait on one failed dial dial again once between them, not once each', async () => {
    // First in this file: A has no channel to B yet, so every delivery needs a dial. B's relay endpoint
    // is a black hole: TCP accepts, TLS never answers, so every dial fails after
    // dialTimeoutMs. All of A's waiting deliveries share each attempt; a second connection open at once
    // would be a dial of its own (before the fix, one per waiting delivery: past a real peer's
    // federation.peerBudget.maxConnections, which then refused them all).
    let open = 0;
    let mostOpen = 0;
    let seen = 0;
    const hole = createNetServer((socket) => {
      seen++;
      mostOpen = Math.max(mostOpen, ++open);
      socket.resume(); // reads and drops what comes, so it sees the dialer close
      socket.on('error', () => {});
      socket.on('close', () => { open--; });
    });
    await new Promise<void>((r) => hole.listen(0, '127.0.0.1', () => r()));
    try {
      await cli(['route', 'add', 'b.test', '--did', b.did, '--endpoint', `relay://127.0.0.1:${(hole.address() as AddressInfo).port}`, '--data', a.data]);
      const ids = await sendMany(20);
      await until('A dialing the black hole three times', async () => (seen >= 3 ? true : undefined), 60_000);
      // A connection A just gave up on can still count here when the next dial opens: at most two at once.
      expect(mostOpen).toBeLessThanOrEqual(2);
      await cli(['queue', 'purge', '--domain', 'b.test', '--data', a.data]);
      expect((await queue(a)).filter((i) => ids.has(i.messageId))).toEqual([]);
    } finally {
      await routeTo(a, 'b.test', b.did, b.proc!.ready.quic!);
      hole.close();
    }
  });

  it('a peer that takes envelopes and never acknowledges them times out; the mail is retried and delivered once', async () => {
    // The stuck peer holds B's keys (so it passes the DID check), says hello, then stops reading.
    const fake = transportHolding(b);
    const codec = relayCodec();
    let envelopesSeen = 0;
    const held: MessageStream[] = [];
    fake.onConnection((conn) => conn.onStream((method, stream) => {
      held.push(stream);
      void (async () => {
        const it = stream[Symbol.asyncIterator]();
        await it.next(); // A's hello
        await stream.send(codec.requestSerialize({ frameId: 0, hello: { did: b.did, domains: ['b.test'], maxInFlight: 4 } }));
        const first = await it.next(); // one envelope, then nothing is read or answered
        if (!first.done) envelopesSeen++;
      })().catch(() => {});
    }));
    const addr = await fake.listen({ host: '127.0.0.1', port: 0 });
    await routeA(`${addr.host}:${addr.port}`);
    try {
      const ids = await sendMany(6);
      const stuck = await until('an ack timeout', async () => {
        const items = (await queue(a)).filter((i) => ids.has(i.messageId));
        return items.some((i) => i.state === 'deferred' && /did not acknowledge/.test(i.lastError)) ? items : undefined;
      });
      expect(envelopesSeen).toBeGreaterThan(0);
      expect(stuck.every((i) => i.state !== 'delivered')).toBe(true);
      // The real B comes back on the route: everything arrives, once.
      await routeA(b.proc!.ready.quic!);
      const got = await receiveAll(ids.size);
      expect(new Set(got.map((m) => m.messageId))).toEqual(ids);
      expect(got).toHaveLength(ids.size);
      await until('all delivered', async () => {
        const items = (await queue(a)).filter((i) => ids.has(i.messageId));
        return items.every((i) => i.state === 'delivered') ? items : undefined;
      });
    } finally {
      await fake.close();
    }
  });

  it('a receipt that does not verify is not an acknowledgement: the mail stays queued and is delivered once', async () => {
    // A peer with B's keys that acknowledges every envelope with a receipt B never signed.
    const fake = transportHolding(b);
    const codec = relayCodec();
    let forged = 0;
    fake.onConnection((conn) => conn.onStream((_method, stream) => {
      void (async () => {
        let hello = true;
        for await (const message of stream) {
          if (hello) {
            hello = false;
            await stream.send(codec.requestSerialize({ frameId: 0, hello: { did: b.did, domains: ['b.test'], maxInFlight: 8 } }));
            continue;
          }
          const frame = codec.requestDeserialize(Buffer.from(message)) as { frameId: number; envelope: Envelope__Output };
          const messageHash = envelopeFromWire(frame.envelope).messageHash;
          forged++;
          await stream.send(codec.requestSerialize({
            frameId: frame.frameId,
            ack: { frameId: frame.frameId, receipt: { logOrigin: 'b.test/aftersmtp', leafIndex: 7, checkpointSize: 8, messageHash, signature: randomBytes(64) } },
          }));
        }
      })().catch(() => {});
    }));
    const addr = await fake.listen({ host: '127.0.0.1', port: 0 });
    await routeA(`${addr.host}:${addr.port}`);
    try {
      const ids = await sendMany(3);
      const refused = await until('a refused receipt', async () => {
        const items = (await queue(a)).filter((i) => ids.has(i.messageId));
        return items.length === 3 && items.every((i) => i.state === 'deferred' && /BAD_RECEIPT/.test(i.lastError)) ? items : undefined;
      });
      expect(refused[0]!.lastError).toMatch(/not signed by a key of its DID document/);
      expect(forged).toBeGreaterThanOrEqual(3);
      await routeA(b.proc!.ready.quic!);
      const got = await receiveAll(ids.size);
      expect(new Set(got.map((m) => m.messageId))).toEqual(ids);
      await until('delivered with a signed receipt', async () => {
        const items = (await queue(a)).filter((i) => ids.has(i.messageId));
        return items.every((i) => i.state === 'delivered') ? items : undefined;
      });
    } finally {
      await fake.close();
    }
  });

  it('a relayed envelope that was tampered with is refused with its reason; a replayed one is stored once', async () => {
    // Speak for A (its keys, its domain) on a relay stream of our own to B.
    const asA = transportHolding(a);
    const [host, port] = b.proc!.ready.quic!.split(':');
    const conn = await asA.dial({ host: host!, port: Number(port) });
    try {
      const channel = await RelayChannel.open(conn, { peerDid: b.did, nodeDid: a.did, domains: ['a.test'], maxInFlight: 4, resolver: createDidResolver({}), ackTimeoutMs: 10_000 });
      const alice = readProfile(profile('alice'));
      const clients = connect(alice, a.proc!.ready.grpc);
      const seal = async (subject: string) => envelopeFromWire((await sealFor(alice, clients, profileResolver(alice), {
        to: ['bob@b.test'], subject, text: 'once', knownDids: { 'bob@b.test': readProfile(profile('bob')).did },
      })).envelope as unknown as Envelope__Output);
      const envelope = await seal('direct');
      // Tampered copies of messages B has never seen (a re-send of a held message is acknowledged
      // with its receipt whatever else changed: the receipt is about the hash, which B holds).
      const other = await seal('tampered signature');
      const third = await seal('tampered recipients');
      clients.close();
      const refusedBefore = (await cli(['status', '--data', b.data])).refused as Record<string, string>;

      const receipt = await channel.send(envelope, 'a.test');
      expect(Buffer.from(receipt.messageHash as Uint8Array)).toEqual(Buffer.from(envelope.messageHash));
      // The same envelope again (a replay, or a re-send after a lost ack): same receipt, stored once.
      const again = await channel.send(envelope, 'a.test');
      expect(Number(again.leafIndex)).toBe(Number(receipt.leafIndex));

      const badSignature = { ...other, outerSignature: Uint8Array.from(other.outerSignature, (x, i) => (i === 5 ? x ^ 1 : x)) };
      const refusal = await channel.send(badSignature, 'a.test').catch((e: { code: string; message: string; permanent: boolean }) => e);
      expect(refusal).toMatchObject({ code: 'SIGNATURE', permanent: true });
      const otherHash = { ...third, messageHash: Uint8Array.from(third.messageHash, (x, i) => (i === 0 ? x ^ 1 : x)) };
      const refusal2 = await channel.send(otherHash, 'a.test').catch((e: { code: string; permanent: boolean }) => e);
      expect(refusal2).toMatchObject({ permanent: true });
      expect(['SIGNATURE', 'HASH_MISMATCH']).toContain((refusal2 as { code: string }).code);

      const got = await receiveAll(1);
      expect(got.map((m) => m.messageId)).toEqual([Buffer.from(envelope.messageId).toString('hex')]);
      const refusedAfter = (await cli(['status', '--data', b.data])).refused as Record<string, string>;
      const signatureRefusals = Number(refusedAfter.SIGNATURE ?? 0) - Number(refusedBefore.SIGNATURE ?? 0);
      expect(signatureRefusals).toBeGreaterThanOrEqual(1);
      channel.close();
    } finally {
      await conn.close().catch(() => {});
      await asA.close();
    }
  });

  it('receipts: signed alone for a sender that did not announce batches, in batches for one that did; all verify', async () => {
    const asA = transportHolding(a);
    const [host, port] = b.proc!.ready.quic!.split(':');
    const alice = readProfile(profile('alice'));
    const clients = connect(alice, a.proc!.ready.grpc);
    const knownDids = { 'bob@b.test': readProfile(profile('bob')).did };
    const sealMany = (n: number, subject: string) => Promise.all(Array.from({ length: n }, async (_, i) => envelopeFromWire((await sealFor(alice, clients, profileResolver(alice), {
      to: ['bob@b.test'], subject: `${subject} ${i}`, text: 'receipts', knownDids,
    })).envelope as unknown as Envelope__Output)));
    const resolver = createDidResolver({});
    try {
      const results: Record<string, { batchSize: number; signature: string }[]> = {};
      for (const batchedReceipts of [false, true]) {
        const envelopes = await sealMany(24, `batched ${batchedReceipts}`);
        const conn = await asA.dial({ host: host!, port: Number(port) });
        try {
          const channel = await RelayChannel.open(conn, { peerDid: b.did, nodeDid: a.did, domains: ['a.test'], maxInFlight: 64, resolver, ackTimeoutMs: 10_000, batchedReceipts });
          // channel.send verifies each receipt against B's DID; here each is checked once more on its own, as kept.
          const receipts = await Promise.all(envelopes.map((e) => channel.send(e, 'a.test')));
          for (const [i, r] of receipts.entries()) {
            await verifyReceipt(receiptFromStored(JSON.parse(JSON.stringify(storedReceipt(r as ReceiptFields & Partial<SignedReceipt>)))), envelopes[i]!.messageHash, b.did, resolver);
          }
          results[String(batchedReceipts)] = receipts.map((r) => ({ batchSize: Number(r.batchSize ?? 0), signature: Buffer.from(r.signature as Uint8Array).toString('hex') }));
          channel.close();
        } finally {
          await conn.close().catch(() => {});
        }
      }
      expect(results.false!.every((r) => r.batchSize === 0)).toBe(true);
      expect(new Set(results.false!.map((r) => r.signature)).size).toBe(24);
      // 24 envelopes on the wire at once: B makes them durable in a few commits and signs each group once.
      expect(results.true!.some((r) => r.batchSize > 1)).toBe(true);
      expect(new Set(results.true!.map((r) => r.signature)).size).toBeLessThan(24);
      await receiveAll(48);
    } finally {
      clients.close();
      await asA.close();
    }
  });

  it('a peer killed in the middle of a stream: every message is retried and delivered exactly once', async () => {
    const count = 300;
    const before = Number((await cli(['status', '--data', b.data])).storedEnvelopes);
    const sending = sendMany(count);
    // Kill B (no goodbye) once part of the stream has landed.
    const storedAtKill = await until('B storing part of the stream', async () => {
      const stored = Number((await cli(['status', '--data', b.data])).storedEnvelopes) - before;
      return stored >= 20 ? stored : undefined;
    }, 60_000);
    b.proc!.child.kill('SIGKILL');
    await b.proc!.exited;
    expect(storedAtKill).toBeLessThan(count); // the stream was cut part way
    const ids = await sending; // A keeps accepting while B is down
    expect(ids.size).toBe(count);
    b.proc = await startNodeProcess(b.data, { ...ENV, ...samePorts(b.proc!) }); // where A's route points
    const got = await receiveIds(ids);
    const received = got.map((m) => m.messageId).filter((id) => ids.has(id));
    expect(new Set(received)).toEqual(ids);
    expect(received).toHaveLength(count); // none twice
    await until('all delivered at A', async () => {
      const items = (await queue(a)).filter((i) => ids.has(i.messageId));
      return items.length === count && items.every((i) => i.state === 'delivered') ? items : undefined;
    }, 60_000);
  }, 150_000); // A's retries back off while B is down; on a loaded CI machine this takes a while

});
