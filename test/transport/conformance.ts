/**
 * Transport conformance suite, in the spirit of libp2p's transport compliance tests: the same tests,
 * on real sockets, against every PeerTransport. Each transport's test file calls
 * `transportConformance(name, factory)`.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { generateSigningKeyPair } from '../../identity/index.ts';
import { TransportError } from '../../gateway/transport/index.ts';
import type { MessageStream, PeerConnection, PeerTransport, TransportLimits } from '../../gateway/transport/index.ts';
import type { TransportFactory } from './factories.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/peer-process.ts', import.meta.url));
const LOCALHOST = '127.0.0.1';
const MiB = 1024 * 1024;

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Settles within `ms`? Resolves 'pending' otherwise. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'pending'>((resolve) => {
    timer = setTimeout(() => resolve('pending'), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function rejection(p: Promise<unknown>): Promise<TransportError> {
  try {
    await p;
  } catch (err) {
    return err as TransportError;
  }
  throw new Error('expected a rejection');
}

async function collect(stream: MessageStream): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const m of stream) out.push(m);
  return out;
}

/** Echo every message of every stream, then half-close; '/test.Sink/*' streams are never read. */
function echo(conn: PeerConnection): void {
  conn.onStream((method, stream) => {
    if (method.startsWith('/test.Sink/')) return;
    void (async () => {
      try {
        for await (const m of stream) await stream.send(m);
        await stream.end();
      } catch {
        // the test decides what the client must see
      }
    })();
  });
}

async function echoOnce(conn: PeerConnection, message: Uint8Array, method = '/test.Echo/Once'): Promise<Uint8Array[]> {
  const s = await conn.openStream(method);
  const replies = collect(s);
  await s.send(message);
  await s.end();
  return replies;
}

export function transportConformance(name: string, factory: TransportFactory): void {
  describe(`transport conformance: ${name}`, () => {
    const open: PeerTransport[] = [];

    async function make(limits?: Partial<TransportLimits>): Promise<PeerTransport> {
      const t = await factory.create(limits === undefined ? {} : { limits });
      open.push(t);
      return t;
    }

    interface Pair {
      server: PeerTransport;
      client: PeerTransport;
      clientConn: PeerConnection;
      serverConn: PeerConnection;
      addr: { host: string; port: number };
    }

    /** Listener + dialer; `onServerConn` runs before any stream can arrive. */
    async function pair(
      opts: { serverLimits?: Partial<TransportLimits>; clientLimits?: Partial<TransportLimits>; onServerConn?: (c: PeerConnection) => void } = {},
    ): Promise<Pair> {
      const server = await make(opts.serverLimits);
      const client = await make(opts.clientLimits);
      const inbound = new Promise<PeerConnection>((resolve) => {
        server.onConnection((c) => {
          (opts.onServerConn ?? echo)(c);
          resolve(c);
        });
      });
      const addr = await server.listen({ host: LOCALHOST, port: 0 });
      const clientConn = await client.dial(addr);
      const serverConn = await inbound;
      return { server, client, clientConn, serverConn, addr };
    }

    afterEach(async () => {
      await Promise.all(open.splice(0).map((t) => t.close()));
    });

    it('listens on port 0, dials, and both ends see the other side\'s authenticated key', async () => {
      const serverKeys = generateSigningKeyPair();
      const clientKeys = generateSigningKeyPair();
      const server = await factory.create({ keys: serverKeys });
      const client = await factory.create({ keys: clientKeys });
      open.push(server, client);
      const inbound = new Promise<PeerConnection>((resolve) => server.onConnection(resolve));
      const addr = await server.listen({ host: LOCALHOST, port: 0 });
      expect(addr.host).toBe(LOCALHOST);
      expect(addr.port).toBeGreaterThan(0);
      const conn = await client.dial(addr, { expectedPeerKey: serverKeys.publicKey });
      const serverConn = await inbound;
      expect(Buffer.from(conn.remotePublicKey)).toEqual(Buffer.from(serverKeys.publicKey));
      expect(Buffer.from(serverConn.remotePublicKey)).toEqual(Buffer.from(clientKeys.publicKey));
      expect(Buffer.from(server.publicKey)).toEqual(Buffer.from(serverKeys.publicKey));
      expect(conn.transport).toBe(factory.kind);
      expect(serverConn.transport).toBe(factory.kind);
      expect(conn.direction).toBe('outbound');
      expect(serverConn.direction).toBe('inbound');
      expect(conn.remoteAddress).toBe(`${LOCALHOST}:${addr.port}`);
      expect(serverConn.remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    });

    it('refuses a peer whose key differs from expectedPeerKey, before any stream is opened', async () => {
      let streams = 0;
      const server = await make();
      const client = await make();
      server.onConnection((c) => c.onStream(() => streams++));
      const addr = await server.listen({ host: LOCALHOST, port: 0 });
      const wrong = generateSigningKeyPair().publicKey;
      const err = await rejection(client.dial(addr, { expectedPeerKey: wrong }));
      expect(err).toBeInstanceOf(TransportError);
      expect(err.code).toBe('PEER_KEY_MISMATCH');
      // The right key still works afterwards.
      const conn = await client.dial(addr, { expectedPeerKey: server.publicKey });
      expect(Buffer.from(conn.remotePublicKey)).toEqual(Buffer.from(server.publicKey));
      await sleep(50);
      expect(streams).toBe(0);
    });

    it('echoes one message, an empty message, and tells the handler the method', async () => {
      const methods: string[] = [];
      const { clientConn } = await pair({
        onServerConn: (c) => {
          c.onStream((method, s) => {
            methods.push(method);
            void (async () => {
              for await (const m of s) await s.send(m);
              await s.end();
            })().catch(() => {}); // teardown may close the connection under it
          });
        },
      });
      const replies = await echoOnce(clientConn, new TextEncoder().encode('hello, peer'), '/aftersmtp.v1.Relay/Stream');
      expect(replies.map((r) => new TextDecoder().decode(r))).toEqual(['hello, peer']);
      const empty = await echoOnce(clientConn, new Uint8Array(0));
      expect(empty.map((r) => r.length)).toEqual([0]);
      expect(methods).toEqual(['/aftersmtp.v1.Relay/Stream', '/test.Echo/Once']);
    });

    it('carries 1 MiB and 8 MiB messages intact', async () => {
      const { clientConn } = await pair();
      for (const size of [1 * MiB, 8 * MiB]) {
        const message = randomBytes(size);
        const replies = await echoOnce(clientConn, message);
        expect(replies).toHaveLength(1);
        expect(replies[0]!.length).toBe(size);
        expect(sha256(replies[0]!)).toBe(sha256(message));
      }
    });

    it('keeps order for sends issued without awaiting, and runs full duplex on one stream', async () => {
      const { clientConn } = await pair();
      // 100 sends fired at once, then end(): all arrive, in order.
      const s = await clientConn.openStream('/test.Echo/Burst');
      const replies = collect(s);
      const sends = Array.from({ length: 100 }, (_, i) => s.send(new Uint8Array([i, i, i])));
      await Promise.all([...sends, s.end()]);
      expect((await replies).map((m) => m[0])).toEqual(Array.from({ length: 100 }, (_, i) => i));

      // Both directions carry 16 MiB at the same time (echo server reads and writes concurrently).
      const d = await clientConn.openStream('/test.Echo/Duplex');
      const chunk = randomBytes(1 * MiB);
      let back = 0;
      const reading = (async () => {
        for await (const m of d) {
          if (m.length === MiB && m[0] === chunk[0]) back++;
        }
      })();
      for (let i = 0; i < 16; i++) await d.send(chunk);
      await d.end();
      await reading;
      expect(back).toBe(16);
    });

    it('a reader that breaks out of its loop does not stall the sender', async () => {
      const { clientConn } = await pair({
        onServerConn: (c) =>
          c.onStream((_m, st) => {
            void (async () => {
              for await (const _m of st) break; // reads one message, then leaves
              await st.send(new TextEncoder().encode('bye'));
              await st.end();
            })().catch(() => {}); // teardown may close the connection under it
          }),
      });
      const s = await clientConn.openStream('/test.Break');
      const replies = collect(s);
      for (let i = 0; i < 8; i++) await s.send(new Uint8Array(1 * MiB)); // 8 MiB > window: must not stall
      await s.end();
      expect((await replies).map((m) => new TextDecoder().decode(m))).toEqual(['bye']);
    });

    it('a stream handler that throws aborts only that stream', async () => {
      let calls = 0;
      const { clientConn } = await pair({
        onServerConn: (c) =>
          c.onStream((method, st) => {
            calls++;
            if (method === '/test.Throw') throw Object.assign(new Error('handler bug'), { code: 'HANDLER_FAILED' });
            void (async () => {
              for await (const m of st) await st.send(m);
              await st.end();
            })().catch(() => {}); // teardown may close the connection under it
          }),
      });
      const bad = await clientConn.openStream('/test.Throw');
      const badReplies = collect(bad);
      await bad.send(new Uint8Array(1)).catch(() => {});
      const err = await rejection(badReplies);
      expect(err.code).toBe('STREAM_RESET');
      expect((await echoOnce(clientConn, new Uint8Array([9])))[0]).toEqual(new Uint8Array([9]));
      expect(calls).toBe(2);
    });

    it('runs 200 concurrent streams, each echoing', async () => {
      const { clientConn } = await pair();
      const t0 = performance.now();
      const results = await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const message = randomBytes(512 + i);
          const replies = await echoOnce(clientConn, message);
          return replies.length === 1 && sha256(replies[0]!) === sha256(message);
        }),
      );
      expect(results.every(Boolean)).toBe(true);
      expect(performance.now() - t0).toBeLessThan(10_000);
    });

    it('aborts a stream whose incoming message exceeds maxMessageBytes, and the connection keeps working', async () => {
      const serverErrors: TransportError[] = [];
      const { clientConn } = await pair({
        serverLimits: { maxMessageBytes: 1 * MiB },
        onServerConn: (c) => {
          c.onStream((_m, s) => {
            void (async () => {
              try {
                for await (const m of s) await s.send(m);
                await s.end();
              } catch (err) {
                serverErrors.push(err as TransportError);
              }
            })();
          });
        },
      });
      // Exactly the limit passes.
      const atLimit = randomBytes(1 * MiB);
      expect(sha256((await echoOnce(clientConn, atLimit))[0]!)).toBe(sha256(atLimit));

      const s = await clientConn.openStream('/test.Echo/Big');
      const replies = collect(s);
      const sent = s.send(randomBytes(1 * MiB + 1));
      const readErr = await rejection(replies);
      expect(readErr.code).toBe('MESSAGE_TOO_LARGE');
      expect(readErr.remote).toBe(true);
      const sendErr = await rejection(sent);
      expect(sendErr.code).toBe('MESSAGE_TOO_LARGE');
      await expect.poll(() => serverErrors.map((e) => e.code)).toEqual(['MESSAGE_TOO_LARGE']);
      expect(serverErrors[0]!.remote).toBe(false);

      // Same connection, new stream: fine.
      const again = randomBytes(4096);
      expect(sha256((await echoOnce(clientConn, again))[0]!)).toBe(sha256(again));
    });

    it('rejects sending a message over the local limit without breaking the stream', async () => {
      const { clientConn } = await pair({ clientLimits: { maxMessageBytes: 1000 } });
      const s = await clientConn.openStream('/test.Echo/Local');
      const replies = collect(s);
      const err = await rejection(s.send(new Uint8Array(1001)));
      expect(err.code).toBe('MESSAGE_TOO_LARGE');
      expect(err.remote).toBe(false);
      await s.send(new Uint8Array(1000));
      await s.end();
      expect((await replies).map((r) => r.length)).toEqual([1000]);
    });

    it('applies backpressure: a receiver that stops reading stalls the sender, memory stays bounded, nothing is lost', async () => {
      let serverStream: MessageStream | undefined;
      const { clientConn } = await pair({
        onServerConn: (c) =>
          c.onStream((_m, s) => {
            serverStream = s; // not read for now
          }),
      });
      const chunk = randomBytes(1 * MiB);
      const total = 64;
      const s = await clientConn.openStream('/test.Sink/Slow');
      global.gc?.();
      const rss0 = process.memoryUsage().rss;
      let accepted = 0;
      const sending = (async () => {
        for (let i = 0; i < total; i++) {
          chunk[0] = i;
          await s.send(chunk);
          accepted++;
        }
        await s.end();
      })();
      await sleep(1000);
      const rss1 = process.memoryUsage().rss;
      expect(await within(sending, 0)).toBe('pending');
      // The window is 1 MiB: a few messages at most were accepted while nobody read.
      expect(accepted).toBeLessThanOrEqual(8);
      expect(rss1 - rss0).toBeLessThan(40 * MiB);
      expect(serverStream).toBeDefined();
      // Resume reading: everything arrives, in order.
      let received = 0;
      let ordered = true;
      for await (const m of serverStream!) {
        if (m.length !== MiB || m[0] !== received % 256) ordered = false;
        received++;
      }
      await sending;
      expect(received).toBe(total);
      expect(ordered).toBe(true);
    });

    it('propagates an abort to the other side, in both directions', async () => {
      const serverStreams = new Map<string, MessageStream>();
      const serverErrors = new Map<string, TransportError>();
      const gotFirst = Promise.withResolvers<void>();
      const { clientConn } = await pair({
        onServerConn: (c) =>
          c.onStream((method, s) => {
            serverStreams.set(method, s);
            void (async () => {
              try {
                for await (const _m of s) gotFirst.resolve();
              } catch (err) {
                serverErrors.set(method, err as TransportError);
              }
            })();
          }),
      });
      // client aborts
      const s1 = await clientConn.openStream('/test.Abort/Client');
      await s1.send(new Uint8Array(10));
      await gotFirst.promise;
      const boom = new Error('client gave up');
      s1.abort(boom);
      await expect(rejection(s1.send(new Uint8Array(1)))).resolves.toBe(boom);
      await expect.poll(() => serverErrors.get('/test.Abort/Client')?.code).toBe('STREAM_RESET');
      expect(serverErrors.get('/test.Abort/Client')!.remote).toBe(true);

      // server aborts
      const s2 = await clientConn.openStream('/test.Abort/Server');
      const reading = collect(s2);
      await s2.send(new Uint8Array(10));
      await expect.poll(() => serverStreams.has('/test.Abort/Server')).toBe(true);
      serverStreams.get('/test.Abort/Server')!.abort(Object.assign(new Error('server gave up'), { code: 'RELAY_SHUTDOWN' }));
      const err = await rejection(reading);
      expect(err).toBeInstanceOf(TransportError);
      expect(err.code).toBe('STREAM_RESET');
      expect(err.remote).toBe(true);
    });

    it('fails pending sends and reads promptly when the remote closes the connection abruptly', async () => {
      const { clientConn, serverConn } = await pair({ onServerConn: (c) => c.onStream(() => {}) });
      const s = await clientConn.openStream('/test.Sink/Never');
      const reading = collect(s);
      reading.catch(() => {});
      const big = new Uint8Array(1 * MiB);
      let pending: Promise<void> | undefined;
      for (let i = 0; i < 16; i++) {
        const p = s.send(big);
        if ((await within(p, 100)) === 'pending') {
          pending = p;
          break;
        }
      }
      expect(pending).toBeDefined();
      const t0 = performance.now();
      await serverConn.close();
      const [sendErr, readErr] = await Promise.all([rejection(pending!), rejection(reading)]);
      await clientConn.closed;
      expect(performance.now() - t0).toBeLessThan(2000);
      expect(sendErr.code).toBe('CONNECTION_CLOSED');
      expect(readErr.code).toBe('CONNECTION_CLOSED');
      const late = await rejection(clientConn.openStream('/test.Late'));
      expect(late.code).toBe('CONNECTION_CLOSED');
    });

    it('detects a killed remote process (no goodbye) and fails pending operations', async () => {
      const idleMs = 1500;
      const child = spawn(process.execPath, [FIXTURE, 'serve', factory.kind, String(idleMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        const line = await new Promise<string>((resolve, reject) => {
          let buf = '';
          child.stdout.on('data', (d: Buffer) => {
            buf += d.toString();
            const nl = buf.indexOf('\n');
            if (nl >= 0) resolve(buf.slice(0, nl));
          });
          child.once('exit', (code) => reject(new Error(`child exited ${code}`)));
        });
        const info = JSON.parse(line) as { port: number; publicKey: string };
        const client = await make({ idleTimeoutMs: idleMs });
        const conn = await client.dial({ host: LOCALHOST, port: info.port }, { expectedPeerKey: Buffer.from(info.publicKey, 'hex') });
        expect((await echoOnce(conn, new Uint8Array([1, 2, 3])))[0]).toEqual(new Uint8Array([1, 2, 3]));
        const s = await conn.openStream('/sink');
        const reading = collect(s);
        reading.catch(() => {});
        let pending: Promise<void> | undefined;
        for (let i = 0; i < 16 && pending === undefined; i++) {
          const p = s.send(new Uint8Array(1 * MiB));
          if ((await within(p, 100)) === 'pending') pending = p;
        }
        expect(pending).toBeDefined();
        const t0 = performance.now();
        child.kill('SIGKILL');
        const [sendErr, readErr] = await Promise.all([rejection(pending!), rejection(reading)]);
        await conn.closed;
        expect(performance.now() - t0).toBeLessThan(idleMs + 2500);
        expect(['CONNECTION_CLOSED', 'STREAM_RESET']).toContain(sendErr.code);
        expect(['CONNECTION_CLOSED', 'STREAM_RESET']).toContain(readErr.code);
      } finally {
        child.kill('SIGKILL');
      }
    });

    it('half-close: the other side finishes sending its reply after end()', async () => {
      const { clientConn } = await pair({
        onServerConn: (c) =>
          c.onStream((_m, s) => {
            void (async () => {
              const got: Uint8Array[] = [];
              for await (const m of s) got.push(m);
              // The client has ended; we still answer, in several messages.
              await s.send(new TextEncoder().encode(`got ${got.length}`));
              for (const m of got) await s.send(m);
              await s.end();
            })().catch(() => {}); // teardown may close the connection under it
          }),
      });
      const s = await clientConn.openStream('/test.Half/Close');
      const replies = collect(s);
      await s.send(new Uint8Array([1]));
      await s.send(new Uint8Array([2, 2]));
      await s.end();
      await expect(rejection(s.send(new Uint8Array(1)))).resolves.toMatchObject({ code: 'STREAM_CLOSED' });
      const out = await replies;
      expect(new TextDecoder().decode(out[0])).toBe('got 2');
      expect(out.slice(1).map((m) => [...m])).toEqual([[1], [2, 2]]);
    });

    it('fails dialing a closed port within timeoutMs with a clear code', async () => {
      const client = await make();
      const port = await factory.closedPort();
      const t0 = performance.now();
      const err = await rejection(client.dial({ host: LOCALHOST, port }, { timeoutMs: 1000 }));
      expect(performance.now() - t0).toBeLessThan(1000 + 500);
      expect(err).toBeInstanceOf(TransportError);
      expect(['DIAL_FAILED', 'DIAL_TIMEOUT']).toContain(err.code);
    });

    it('fails listen() on a port already in use (LISTEN_FAILED) and rejects bad arguments', async () => {
      const busy = await factory.blackHole();
      try {
        const t = await make();
        const err = await rejection(t.listen({ host: LOCALHOST, port: busy.port }));
        expect(err.code).toBe('LISTEN_FAILED');
        // the transport is still usable
        const addr = await t.listen({ host: LOCALHOST, port: 0 });
        expect(addr.port).toBeGreaterThan(0);
        expect((await rejection(t.listen({ host: LOCALHOST, port: 0 }))).code).toBe('INVALID_ARGUMENT');
        expect((await rejection(t.dial({ host: LOCALHOST, port: 0 }))).code).toBe('INVALID_ARGUMENT');
        expect((await rejection(t.dial(addr, { expectedPeerKey: new Uint8Array(31) }))).code).toBe('INVALID_ARGUMENT');
      } finally {
        await busy.close();
      }
    });

    it('times out a dial to a peer that never completes the handshake (DIAL_TIMEOUT)', async () => {
      const client = await make();
      const hole = await factory.blackHole();
      try {
        const t0 = performance.now();
        const err = await rejection(client.dial({ host: LOCALHOST, port: hole.port }, { timeoutMs: 300 }));
        expect(err.code).toBe('DIAL_TIMEOUT');
        expect(performance.now() - t0).toBeLessThan(300 + 500);
      } finally {
        await hole.close();
      }
    });

    it('aborts a dial and a send with an AbortSignal', async () => {
      const client = await make();
      const hole = await factory.blackHole();
      try {
        const pre = await rejection(client.dial({ host: LOCALHOST, port: hole.port }, { signal: AbortSignal.abort() }));
        expect(pre.code).toBe('ABORTED');
        const ac = new AbortController();
        const dialing = client.dial({ host: LOCALHOST, port: hole.port }, { signal: ac.signal, timeoutMs: 10_000 });
        await sleep(100);
        const t0 = performance.now();
        ac.abort();
        const err = await rejection(dialing);
        expect(err.code).toBe('ABORTED');
        expect(performance.now() - t0).toBeLessThan(200);
      } finally {
        await hole.close();
      }

      // A send blocked by backpressure.
      const { clientConn } = await pair();
      const s = await clientConn.openStream('/test.Sink/Abort');
      const ac = new AbortController();
      let blocked: Promise<void> | undefined;
      for (let i = 0; i < 16 && blocked === undefined; i++) {
        const p = s.send(new Uint8Array(1 * MiB), { signal: ac.signal });
        if ((await within(p, 100)) === 'pending') blocked = p;
      }
      expect(blocked).toBeDefined();
      ac.abort();
      const err = await rejection(blocked!);
      expect(err.code).toBe('ABORTED');
      // An already-aborted signal rejects before anything is written.
      const s2 = await clientConn.openStream('/test.Echo/Pre');
      const replies = collect(s2);
      expect((await rejection(s2.send(new Uint8Array(1), { signal: AbortSignal.abort() }))).code).toBe('ABORTED');
      await s2.send(new Uint8Array([7]));
      await s2.end();
      expect((await replies).map((m) => [...m])).toEqual([[7]]);
      expect((await rejection(clientConn.openStream('/x', { signal: AbortSignal.abort() }))).code).toBe('ABORTED');
    });

    it('makes openStream wait while the peer\'s concurrent-stream limit is reached', async () => {
      const held: MessageStream[] = [];
      const { clientConn } = await pair({
        serverLimits: { maxConcurrentStreams: 4 },
        onServerConn: (c) => c.onStream((_m, s) => held.push(s)),
      });
      // One after the other, so that held[i] is the server's end of first[i].
      const first: MessageStream[] = [];
      for (let i = 0; i < 4; i++) {
        const s = await clientConn.openStream('/test.Hold');
        await s.send(new Uint8Array(1));
        first.push(s);
        await expect.poll(() => held.length).toBe(i + 1);
      }
      const fifth = clientConn.openStream('/test.Hold').then(async (s) => {
        await s.send(new Uint8Array(1));
        return s;
      });
      await sleep(300);
      expect(held.length).toBe(4);
      // Finish one stream (both directions): the fifth gets through.
      const done = held[0]!;
      void collect(done);
      await done.end();
      await first[0]!.end();
      for await (const _m of first[0]!) {
        // drain
      }
      await fifth;
      await expect.poll(() => held.length).toBe(5);
    });

    it('lets the accepting side open streams when the transport allows it', async () => {
      const { serverConn, clientConn } = await pair();
      echo(clientConn);
      if (factory.acceptorOpensStreams) {
        const replies = await echoOnce(serverConn, new Uint8Array([4, 2]));
        expect(replies.map((m) => [...m])).toEqual([[4, 2]]);
      } else {
        const err = await rejection(serverConn.openStream('/test.Reverse'));
        expect(err.code).toBe('UNSUPPORTED');
      }
    });

    it('measures rtt', async () => {
      const { clientConn, serverConn } = await pair();
      await expect.poll(() => clientConn.rtt?.(), { timeout: 3000 }).toBeGreaterThan(0);
      await expect.poll(() => serverConn.rtt?.(), { timeout: 3000 }).toBeGreaterThan(0);
      expect(clientConn.rtt!()!).toBeLessThan(1000);
    });

    it('close() stops the listener, closes connections, and a new dial fails', async () => {
      const { server, client, clientConn, serverConn, addr } = await pair();
      await server.close();
      await Promise.all([clientConn.closed, serverConn.closed]);
      const other = await make();
      const err = await rejection(other.dial(addr, { timeoutMs: 1000 }));
      expect(['DIAL_FAILED', 'DIAL_TIMEOUT']).toContain(err.code);
      const late = await rejection(server.listen({ host: LOCALHOST, port: 0 }));
      expect(late.code).toBe('TRANSPORT_CLOSED');
      await client.close();
      expect((await rejection(client.dial(addr))).code).toBe('TRANSPORT_CLOSED');
    });

    it('leaves no handles and no busy loop: an idle process after close uses ~no CPU and exits by itself', async () => {
      const child = spawn(process.execPath, [FIXTURE, 'idle', factory.kind], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      let printedAt = 0;
      const printed = new Promise<void>((resolve) =>
        child.stdout.on('data', () => {
          if (out.includes('\n')) {
            printedAt ||= performance.now();
            resolve();
          }
        }),
      );
      try {
        const code = await within(
          exit.then((c) => c),
          20_000,
        );
        await printed;
        expect(code).toBe(0);
        const result = JSON.parse(out.trim()) as { cpuAfterConnectionClosedMs: number; cpuAfterTransportsClosedMs: number; resources: string[] };
        // A spinning accept loop would burn ~1000 ms of CPU per second.
        expect(result.cpuAfterConnectionClosedMs).toBeLessThan(100);
        expect(result.cpuAfterTransportsClosedMs).toBeLessThan(100);
        // It exited on its own, promptly after its last line.
        expect(performance.now() - printedAt).toBeLessThan(3000);
      } finally {
        child.kill('SIGKILL');
      }
    });
  });
}
