// Substrate anchoring against a real chain: chopsticks in-process (test/chain.ts), started once.
// Faults are injected only where no user would run them: a closed port, servers answering garbage,
// a TCP proxy that can be cut, a fork built with dev_setHead, an extrinsic that fails dispatch.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, connect as netConnect } from 'node:net';
import type { Server, Socket } from 'node:net';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { accountNonce, startChain } from '../chain.ts';
import type { TestChain } from '../chain.ts';
import { NODE_BIN } from '../helpers.ts';
import { ManualClock } from '../manual-clock.ts';
import {
  ANCHOR_STEPS, AnchorError, SubstrateAnchor, anchorPayload, connectChain, decodeSubstrateAddress,
  ed25519PublicKeyFromSeed, parseAnchorPayload, substrateAddress, verifyAnchor,
} from '../../ledger/anchor.ts';
import type { AnchorRecord, AnchorVerification } from '../../ledger/anchor.ts';

const ORIGIN = 'mail.example.org/ledger';

// ---------------------------------------------------------------------------------------------
// helpers

interface Key { seed: Uint8Array; publicKey: Uint8Array }
function newKey(): Key {
  const seed = randomBytes(32);
  return { seed, publicKey: ed25519PublicKeyFromSeed(seed) };
}

function rootOf(n: number): Uint8Array {
  return createHash('sha256').update(`root ${n}`).digest();
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function step(v: AnchorVerification, name: string): { status: string; detail: string } {
  const s = v.steps.find((x) => x.name === name);
  if (!s) throw new Error(`no step ${name}`);
  return s;
}

function failedNames(v: AnchorVerification): string[] {
  return v.steps.filter((s) => s.status === 'failed').map((s) => s.name);
}

function listen(server: Server | ReturnType<typeof createHttpServer>): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createNetServer();
  const port = await listen(s);
  await new Promise((r) => s.close(r));
  return port;
}

function wsFrame(text: string): Buffer {
  const p = Buffer.from(text);
  if (p.length < 126) return Buffer.concat([Buffer.from([0x81, p.length]), p]);
  const h = Buffer.alloc(4);
  h[0] = 0x81; h[1] = 126; h.writeUInt16BE(p.length, 2);
  return Buffer.concat([h, p]);
}

/** Reads the JSON-RPC ids out of masked client frames (enough for small requests). */
function clientFrames(buf: Buffer): string[] {
  const out: string[] = [];
  let i = 0;
  while (i + 2 <= buf.length) {
    let len = buf[i + 1]! & 0x7f;
    let off = i + 2;
    if (len === 126) { len = buf.readUInt16BE(off); off += 2; } else if (len === 127) { len = Number(buf.readBigUInt64BE(off)); off += 8; }
    const mask = buf.subarray(off, off + 4);
    off += 4;
    if (off + len > buf.length) break;
    const data = Buffer.from(buf.subarray(off, off + len));
    for (let j = 0; j < data.length; j++) data[j]! ^= mask[j % 4]!;
    out.push(data.toString());
    i = off + len;
  }
  return out;
}

type GarbageMode = 'text' | 'jsonrpc' | 'http' | 'silent';
/** A server on 127.0.0.1:0 that completes the WebSocket handshake and then answers nonsense, or not even that. */
async function garbageServer(mode: GarbageMode): Promise<{ endpoint: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let server: Server | ReturnType<typeof createHttpServer>;
  if (mode === 'silent') {
    server = createNetServer((s) => { sockets.add(s); s.on('error', () => {}); });
  } else if (mode === 'http') {
    server = createHttpServer((_req, res) => { res.end('<html>not a chain</html>'); });
    server.on('upgrade', (_req, s: Socket) => { s.end('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello'); });
  } else {
    server = createHttpServer((_req, res) => { res.end('no'); });
    server.on('upgrade', (req, s: Socket) => {
      sockets.add(s);
      s.on('error', () => {});
      const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      s.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      s.on('data', (d: Buffer) => {
        if (mode === 'text') { s.write(wsFrame('this is not json {{{')); return; }
        for (const f of clientFrames(d)) {
          let id: unknown = 1;
          try { id = (JSON.parse(f) as { id?: unknown }).id; } catch { /* keep 1 */ }
          // Well-formed JSON-RPC envelopes whose results make no sense for any method.
          s.write(wsFrame(JSON.stringify({ jsonrpc: '2.0', id, result: { surprise: [1, 2, 3] } })));
        }
      });
    });
  }
  const port = await listen(server);
  return {
    endpoint: `ws://127.0.0.1:${port}`,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** TCP proxy on 127.0.0.1:0 to the chain that can be cut (every connection reset, new ones refused) and restored. */
async function cuttableProxy(targetPort: number): Promise<{ endpoint: string; down(): void; up(): void; close(): Promise<void> }> {
  let isDown = false;
  const live = new Set<Socket>();
  const server = createNetServer((client) => {
    client.on('error', () => {});
    if (isDown) { client.destroy(); return; }
    const upstream = netConnect({ host: '127.0.0.1', port: targetPort });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    live.add(client); live.add(upstream);
    client.on('close', () => { live.delete(client); live.delete(upstream); });
    client.pipe(upstream).pipe(client);
  });
  const port = await listen(server);
  return {
    endpoint: `ws://127.0.0.1:${port}`,
    down() { isDown = true; for (const s of live) s.destroy(); live.clear(); },
    up() { isDown = false; },
    async close() { isDown = true; for (const s of live) s.destroy(); await new Promise((r) => server.close(r)); },
  };
}

// ---------------------------------------------------------------------------------------------

describe('anchor payload and account (pure)', () => {
  it('encodes the 78-byte ASMTP v1 payload (golden vector) and parses it back', () => {
    const root = Uint8Array.from({ length: 32 }, (_, i) => i);
    const p = anchorPayload('example.com/log', 1234567, root);
    expect(p.length).toBe(78);
    expect(Buffer.from(p).toString('hex')).toBe(
      '41534d5450' + '01' + '4d3203c8f35cdf600e475f55fede6081a703d3d322f208865fca2ec4f0e030f8' + '000000000012d687'
      + '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
    );
    expect(anchorPayload('example.com/log', 1234567n, root)).toEqual(p);
    const parsed = parseAnchorPayload(p);
    expect(parsed.version).toBe(1);
    expect(parsed.size).toBe(1234567n);
    expect(parsed.root).toEqual(root);
    expect(Buffer.from(parsed.originHash).toString('hex')).toBe(createHash('sha256').update('example.com/log').digest('hex'));
    expect(parseAnchorPayload(anchorPayload('o', (1n << 64n) - 1n, root)).size).toBe((1n << 64n) - 1n);
  });

  it('rejects bad payload inputs and bytes', () => {
    const root = new Uint8Array(32);
    expect(() => anchorPayload('', 1, root)).toThrow(/origin/);
    expect(() => anchorPayload('o', -1, root)).toThrow(/size/);
    expect(() => anchorPayload('o', 1.5, root)).toThrow(/size/);
    expect(() => anchorPayload('o', 1n << 64n, root)).toThrow(/64-bit/);
    expect(() => anchorPayload('o', 1, new Uint8Array(31))).toThrow(/32 bytes/);
    const good = anchorPayload('o', 1, root);
    expect(() => parseAnchorPayload(good.subarray(0, 77))).toThrow(/78 bytes/);
    const badMagic = Uint8Array.from(good); badMagic[0] = 0x61;
    expect(() => parseAnchorPayload(badMagic)).toThrow(/ASMTP/);
    const badVersion = Uint8Array.from(good); badVersion[5] = 2;
    expect(() => parseAnchorPayload(badVersion)).toThrow(/version 2/);
  });

  it('derives the SS58 address of an Ed25519 key exactly as @polkadot/keyring does', async () => {
    const { Keyring } = await import('@polkadot/api');
    for (let i = 0; i < 4; i++) {
      const { seed, publicKey } = newKey();
      const pair = new Keyring({ type: 'ed25519' }).addFromSeed(seed);
      expect(Buffer.from(pair.publicKey)).toEqual(Buffer.from(publicKey));
      for (const format of [0, 2, 42, 69, 1284, 16383]) {
        const addr = substrateAddress(publicKey, format);
        expect(addr).toBe(new Keyring({ type: 'ed25519', ss58Format: format }).encodeAddress(publicKey));
        expect(decodeSubstrateAddress(addr)).toEqual({ publicKey, ss58Format: format });
      }
    }
    const { publicKey } = newKey();
    const addr = substrateAddress(publicKey);
    const tampered = addr.slice(0, -1) + (addr.endsWith('a') ? 'b' : 'a');
    expect(() => decodeSubstrateAddress(tampered)).toThrow(/checksum/);
    expect(() => ed25519PublicKeyFromSeed(new Uint8Array(31))).toThrow(/32-byte/);
  });
});

// Chain tests wait on real blocks and on @polkadot/api start-up: generous bounds for a loaded 2-core CI.
describe('Substrate anchoring on a real chain (chopsticks)', { timeout: 90_000 }, () => {
  let chain: TestChain;
  const key = newKey();
  let record: AnchorRecord;
  const root = rootOf(1);
  const expected = () => ({ origin: ORIGIN, size: 42, root, signerPublicKey: key.publicKey, genesisHash: chain.genesisHash });

  beforeAll(async () => {
    chain = await startChain();
    await chain.fund(key.publicKey);
  });
  afterAll(async () => {
    await chain?.close();
  });

  it('anchors a checkpoint with one remarkWithEvent and verifies it with every step ok', async () => {
    const seen: AnchorRecord[] = [];
    const saved: AnchorRecord[] = [];
    const anchor = new SubstrateAnchor({
      endpoint: chain.endpoint, seed: key.seed, origin: ORIGIN, intervalMs: 60_000, finality: 'finalized',
      source: () => ({ size: 42, root }),
      onAnchored: (r) => seen.push(r),
      store: { load: () => undefined, save: (r) => saved.push(r) },
    });
    const before = await accountNonce(chain.endpoint, key.publicKey);
    record = await anchor.anchorNow();
    await anchor.stop();
    expect(await accountNonce(chain.endpoint, key.publicKey)).toBe(before + 1);
    expect(record).toMatchObject({
      genesisHash: chain.genesisHash, size: 42, root: Buffer.from(root).toString('hex'), origin: ORIGIN,
      signer: { publicKey: Buffer.from(key.publicKey).toString('hex') },
    });
    expect(decodeSubstrateAddress(record.signer.address).publicKey).toEqual(key.publicKey);
    expect(record.blockHash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(record.extrinsicIndex).toBeGreaterThan(0); // 0.. are inherents
    expect(seen).toEqual([record]);
    expect(saved).toEqual([record]);
    expect(anchor.status()).toMatchObject({ lastAnchor: record, lastError: null, consecutiveFailures: 0, lag: { entries: 0, ms: 0 } });

    const v = await verifyAnchor({ endpoint: chain.endpoint, record, expected: expected() });
    expect(v.steps.map((s) => s.name)).toEqual(ANCHOR_STEPS);
    expect(v.steps.filter((s) => s.status !== 'ok')).toEqual([]);
    expect(v.ok).toBe(true);
    // The same check from {blockHash, extrinsicIndex} only.
    const v2 = await verifyAnchor({ endpoint: chain.endpoint, record: { blockHash: record.blockHash, extrinsicIndex: record.extrinsicIndex }, expected: expected() });
    expect(v2.ok).toBe(true);
  });

  it('names a wrong expected signer', async () => {
    const v = await verifyAnchor({ endpoint: chain.endpoint, record, expected: { ...expected(), signerPublicKey: newKey().publicKey } });
    expect(v.ok).toBe(false);
    expect(failedNames(v)).toEqual(['signer']);
    expect(step(v, 'signer').detail).toMatch(/signed by .* expected /);
  });

  it('names a wrong root, size or origin', async () => {
    const cases = [
      { change: { root: rootOf(2) }, detail: /root [0-9a-f]{64} != expected/ },
      { change: { size: 43 }, detail: /size 42 != expected 43/ },
      { change: { origin: 'other.example/log' }, detail: /origin hash .* is not SHA-256\("other.example\/log"\)/ },
    ];
    for (const c of cases) {
      const v = await verifyAnchor({ endpoint: chain.endpoint, record, expected: { ...expected(), ...c.change } });
      expect(v.ok).toBe(false);
      expect(failedNames(v)).toEqual(['payload']);
      expect(step(v, 'payload').detail).toMatch(c.detail);
    }
  });

  it('names an extrinsic index that is not our remark, a missing index, a missing block, another chain', async () => {
    const inherent = await verifyAnchor({ endpoint: chain.endpoint, record: { ...record, extrinsicIndex: 0 }, expected: expected() });
    expect(inherent.ok).toBe(false);
    expect(step(inherent, 'call')).toMatchObject({ status: 'failed' });
    expect(step(inherent, 'call').detail).toMatch(/not system.remarkWithEvent/);
    expect(step(inherent, 'signer').detail).toMatch(/not signed/);

    const beyond = await verifyAnchor({ endpoint: chain.endpoint, record: { ...record, extrinsicIndex: 99 }, expected: expected() });
    expect(beyond.ok).toBe(false);
    expect(step(beyond, 'extrinsic')).toMatchObject({ status: 'failed' });
    expect(step(beyond, 'extrinsic').detail).toMatch(/no index 99/);

    const missing = await verifyAnchor({ endpoint: chain.endpoint, record: { ...record, blockHash: `0x${'ab'.repeat(32)}` }, expected: expected() });
    expect(missing.ok).toBe(false);
    expect(failedNames(missing)).toEqual(['block']);
    expect(step(missing, 'block').detail).toMatch(/not found/);

    const otherChain = await verifyAnchor({ endpoint: chain.endpoint, record, expected: { ...expected(), genesisHash: `0x${'11'.repeat(32)}` } });
    expect(otherChain.ok).toBe(false);
    expect(failedNames(otherChain)).toEqual(['genesis']);

    const wrongNumber = await verifyAnchor({ endpoint: chain.endpoint, record: { ...record, blockNumber: record.blockNumber + 1 }, expected: expected() });
    expect(failedNames(wrongNumber)).toEqual(['block']);
  });

  it('names the same payload remarked by another account', async () => {
    const other = newKey();
    await chain.fund(other.publicKey);
    const copy = new SubstrateAnchor({ endpoint: chain.endpoint, seed: other.seed, origin: ORIGIN, intervalMs: 60_000, finality: 'inBlock', source: () => ({ size: 42, root }) });
    const r = await copy.anchorNow();
    const v = await verifyAnchor({ endpoint: chain.endpoint, record: r, expected: expected() });
    expect(v.ok).toBe(false);
    expect(failedNames(v)).toEqual(['signer']);
    expect(step(v, 'signature').status).toBe('ok'); // genuinely signed, by someone else
  });

  it('names a failed extrinsic (ExtrinsicFailed) carrying our payload', async () => {
    // On this runtime (statemine 900) system.remarkWithEvent cannot fail dispatch: no call filter,
    // no TxPause/SafeMode, and an account that cannot pay fees is rejected before inclusion (1010).
    // So the failing extrinsic is utility.batchAll([remarkWithEvent(payload), system.killStorage([])]),
    // signed by the anchoring key: the chain includes it and emits system.ExtrinsicFailed(BadOrigin).
    // Its own funded account: no nonce shared with transactions of other tests still in the pool.
    const failer = newKey();
    await chain.fund(failer.publicKey);
    const conn = await connectChain(chain.endpoint);
    try {
      const { Keyring } = await import('@polkadot/api');
      const pair = new Keyring({ type: 'ed25519' }).addFromSeed(failer.seed);
      const payloadHex = `0x${Buffer.from(anchorPayload(ORIGIN, 42, root)).toString('hex')}`;
      const tx = conn.api.tx['utility']!['batchAll']!([conn.api.tx['system']!['remarkWithEvent']!(payloadHex), conn.api.tx['system']!['killStorage']!([])]);
      let lastStatus = 'not submitted';
      const { blockHash, txIndex, failed } = await new Promise<{ blockHash: string; txIndex: number; failed: string }>((resolve, reject) => {
        setTimeout(() => reject(new Error(`no inclusion within 30 s (last status: ${lastStatus})`)), 30_000).unref();
        tx.signAndSend(pair, { nonce: -1 }, (res) => {
          lastStatus = res.status.type;
          // A busy subscriber may see the extrinsic first when it is already finalized: either names its block.
          if (res.status.isInBlock) resolve({ blockHash: res.status.asInBlock.toHex(), txIndex: res.txIndex!, failed: String(res.dispatchError) });
          else if (res.status.isFinalized) resolve({ blockHash: res.status.asFinalized.toHex(), txIndex: res.txIndex!, failed: String(res.dispatchError) });
          if (res.isError) reject(new Error(res.status.type));
        }).catch(reject);
      });
      expect(failed).toMatch(/BadOrigin/);
      const v = await verifyAnchor({ endpoint: chain.endpoint, record: { blockHash, extrinsicIndex: txIndex }, expected: { ...expected(), signerPublicKey: failer.publicKey } });
      expect(v.ok).toBe(false);
      expect(step(v, 'dispatch')).toMatchObject({ status: 'failed' });
      expect(step(v, 'dispatch').detail).toMatch(/ExtrinsicFailed: .*BadOrigin/);
      expect(step(v, 'call').detail).toMatch(/utility.batchAll/);
      expect(step(v, 'signer').status).toBe('ok');
    } finally {
      await conn.close();
    }
  });

  it('names a block that is no longer canonical (fork via dev_setHead)', async () => {
    const forker = newKey();
    await chain.fund(forker.publicKey);
    const froot = rootOf(77);
    const a = new SubstrateAnchor({ endpoint: chain.endpoint, seed: forker.seed, origin: ORIGIN, intervalMs: 60_000, source: () => ({ size: 77, root: froot }) });
    const r = await a.anchorNow();
    const exp = { origin: ORIGIN, size: 77, root: froot, signerPublicKey: forker.publicKey };
    expect((await verifyAnchor({ endpoint: chain.endpoint, record: r, expected: exp })).ok).toBe(true);

    expect(chain.headNumber()).toBe(r.blockNumber);
    await chain.setHead(r.blockNumber - 1);
    const sibling = await chain.newBlock();
    expect(chain.headNumber()).toBe(r.blockNumber);
    expect(sibling).not.toBe(r.blockHash);

    const v = await verifyAnchor({ endpoint: chain.endpoint, record: r, expected: exp });
    expect(v.ok).toBe(false);
    expect(failedNames(v)).toEqual(['canonical', 'finalized']);
    expect(step(v, 'canonical').detail).toContain(sibling);
    expect(step(v, 'finalized').detail).toMatch(/not canonical/);
  });

  it('fails, never ok, within a bounded time when the endpoint is down or answers garbage', async () => {
    const endpoints: { what: string; endpoint: string; detail: RegExp; close?: () => Promise<void> }[] = [
      { what: 'closed port', endpoint: `ws://127.0.0.1:${await closedPort()}`, detail: /connection refused/ },
    ];
    for (const mode of ['text', 'jsonrpc', 'http', 'silent'] as const) {
      const g = await garbageServer(mode);
      const detail = { text: /not JSON/, jsonrpc: /not a usable Substrate node/, http: /handshake failed/, silent: /no WebSocket handshake within/ }[mode];
      endpoints.push({ what: mode, endpoint: g.endpoint, detail, close: () => g.close() });
    }
    try {
      for (const e of endpoints) {
        const t0 = Date.now();
        const v = await verifyAnchor({ endpoint: e.endpoint, record, expected: expected(), timeoutMs: 3000, connectTimeoutMs: 1500 });
        const took = Date.now() - t0;
        expect(v.ok, e.what).toBe(false);
        expect(step(v, 'connect').status, e.what).toBe('failed');
        expect(step(v, 'connect').detail, e.what).toMatch(e.detail);
        expect(v.steps.slice(1).every((s) => s.status === 'skipped'), e.what).toBe(true);
        expect(took, e.what).toBeLessThan(4500);

        // The anchoring service reports the same outage instead of crashing or hanging.
        const a = new SubstrateAnchor({ endpoint: e.endpoint, seed: key.seed, origin: ORIGIN, intervalMs: 60_000, connectTimeoutMs: 1500, requestTimeoutMs: 1500, source: () => ({ size: 1, root }) });
        const t1 = Date.now();
        const err = await a.anchorNow().then(() => null, (x: unknown) => x);
        expect(err, e.what).toBeInstanceOf(AnchorError);
        expect((err as AnchorError).code, e.what).toBe('CHAIN_UNAVAILABLE');
        expect(Date.now() - t1, e.what).toBeLessThan(4500);
        expect(a.status().lastError?.code, e.what).toBe('CHAIN_UNAVAILABLE');
        await a.stop();
      }
    } finally {
      for (const e of endpoints) await e.close?.();
    }
  });

  it('reports an account that cannot pay fees as REJECTED, with nothing on chain', async () => {
    const poor = newKey();
    const a = new SubstrateAnchor({ endpoint: chain.endpoint, seed: poor.seed, origin: ORIGIN, intervalMs: 60_000, source: () => ({ size: 1, root }) });
    const err = await a.anchorNow().then(() => null, (x: unknown) => x);
    expect(err).toBeInstanceOf(AnchorError);
    expect((err as AnchorError).code).toBe('REJECTED');
    expect((err as AnchorError).message).toMatch(/payment/i);
    expect(await accountNonce(chain.endpoint, poor.publicKey)).toBe(0);
  });

  it('anchors at most once per interval whatever the growth: 1 vs 100 entries per tick', async () => {
    // The test owns the clock: it moves time in 50 ms steps and the source grows at each step, so the
    // count of anchors depends only on the interval, not on how fast this machine submits to the chain.
    const intervalMs = 2000;
    const stepMs = 50;
    const durationMs = 2.5 * intervalMs; // ticks at 0, 1, 2 intervals -> 3 anchors
    const counts: number[] = [];
    for (const perTick of [1, 100]) {
      const k = newKey();
      await chain.fund(k.publicKey);
      const clock = new ManualClock();
      let size = 1;
      const anchored: AnchorRecord[] = [];
      const a = new SubstrateAnchor({
        endpoint: chain.endpoint, seed: k.seed, origin: ORIGIN, intervalMs, clock,
        source: () => ({ size, root: rootOf(size) }),
        onAnchored: (r) => anchored.push(r),
      });
      try {
        a.start();
        for (let t = 0; t <= durationMs; t += stepMs) {
          if (t > 0) size += perTick;
          clock.advance(t > 0 ? stepMs : 0);
          // A tick that fired has finished once the loop has scheduled its next look at the source.
          await waitFor(() => { const next = a.status().nextAttemptAtMs; return next !== null && next > clock.now(); }, 60_000, 'the tick to finish');
        }
        await a.stop();
      } finally {
        await a.stop();
      }
      const onChain = await accountNonce(chain.endpoint, k.publicKey);
      expect(onChain).toBe(anchored.length);
      expect(onChain).toBe(Math.floor(durationMs / intervalMs) + 1);
      // Anchored at the interval boundaries, with the sizes the source had then.
      expect(anchored.map((r) => r.anchoredAtMs - clock.startMs)).toEqual([0, intervalMs, 2 * intervalMs]);
      expect(anchored.map((r) => r.size)).toEqual([0, 1, 2].map((i) => 1 + (i * intervalMs / stepMs) * perTick));
      counts.push(onChain);
    }
    expect(counts[0]).toBe(counts[1]);
  });

  it('keeps the source growing through an outage, retries with backoff, then covers everything in one extrinsic', async () => {
    const k = newKey();
    await chain.fund(k.publicKey);
    const proxy = await cuttableProxy(chain.port);
    let size = 10;
    const anchored: AnchorRecord[] = [];
    const a = new SubstrateAnchor({
      endpoint: proxy.endpoint, seed: k.seed, origin: ORIGIN, intervalMs: 1000,
      connectTimeoutMs: 1000, requestTimeoutMs: 2000, submitTimeoutMs: 10_000, backoff: { initialMs: 100, maxMs: 400 },
      source: () => ({ size, root: rootOf(size) }),
      onAnchored: (r) => anchored.push(r),
    });
    try {
      a.start();
      await waitFor(() => anchored.length === 1, 15_000, 'the first anchor');
      expect(anchored[0]!.size).toBe(10);
      proxy.down();
      const outageStart = Date.now();
      for (let i = 0; i < 20; i++) { size += 25; await new Promise((r) => setTimeout(r, 50)); } // keeps growing, never blocked
      await waitFor(() => a.status().consecutiveFailures >= 3, 10_000, 'failures during the outage');
      const during = a.status();
      expect(during.lastError?.code).toBe('CHAIN_UNAVAILABLE');
      expect(during.lag.entries).toBe(size - 10);
      // Age of the oldest unanchored checkpoint as the service saw it: positive, never more than the outage.
      expect(during.lag.ms).toBeGreaterThan(0);
      expect(during.lag.ms).toBeLessThanOrEqual(Date.now() - outageStart + 5);
      await new Promise((r) => setTimeout(r, 100));
      expect(a.status().lag.ms).toBeGreaterThanOrEqual(during.lag.ms + 90);
      expect(during.lastAnchor?.size).toBe(10);
      const nonceBefore = await accountNonce(chain.endpoint, k.publicKey);
      expect(nonceBefore).toBe(1);

      proxy.up();
      await waitFor(() => anchored.length === 2, 15_000, 'the anchor after the outage');
      const after = a.status();
      expect(anchored[1]!.size).toBe(size); // everything since the last anchor, in one extrinsic
      expect(after).toMatchObject({ consecutiveFailures: 0, lastError: null, lag: { entries: 0, ms: 0 } });
      await a.stop();
      expect(await accountNonce(chain.endpoint, k.publicKey)).toBe(2);
      const v = await verifyAnchor({ endpoint: chain.endpoint, record: anchored[1]!, expected: { origin: ORIGIN, size, root: rootOf(size), signerPublicKey: k.publicKey } });
      expect(v.ok).toBe(true);
    } finally {
      await a.stop();
      await proxy.close();
    }
  });

  it('does not re-anchor a checkpoint its store already holds', async () => {
    const stored: AnchorRecord = { ...record };
    let saves = 0;
    const a = new SubstrateAnchor({
      endpoint: chain.endpoint, seed: key.seed, origin: ORIGIN, intervalMs: 100,
      source: () => ({ size: 42, root }),
      store: { load: () => stored, save: () => { saves++; } },
    });
    a.start();
    await new Promise((r) => setTimeout(r, 450));
    expect(a.status()).toMatchObject({ running: true, anchoring: false, lastAnchor: stored, lag: { entries: 0 } });
    await a.stop();
    expect(saves).toBe(0);
    expect(a.status().running).toBe(false);

    // Lag from the checkpoint's own timestamp when the source gives one (never started: no chain traffic).
    const signedAt = Date.now() - 5000;
    const idle = new SubstrateAnchor({
      endpoint: chain.endpoint, seed: key.seed, origin: ORIGIN, intervalMs: 100,
      source: () => ({ size: 100, root: rootOf(100), timestampMs: signedAt }),
      store: { load: () => stored, save: () => { saves++; } },
    });
    const st = idle.status();
    expect(st).toMatchObject({ running: false, lastAnchor: stored, lag: { entries: 58 } });
    expect(st.lag.ms).toBeGreaterThanOrEqual(5000);
    await idle.stop();
  });

  it('leaves nothing running after stop(): a process with a live and a dead endpoint exits by itself', async () => {
    const k = newKey();
    await chain.fund(k.publicKey);
    const modUrl = new URL('../../ledger/anchor.ts', import.meta.url).href;
    const script = `
      import { SubstrateAnchor } from ${JSON.stringify(modUrl)};
      const root = new Uint8Array(32).fill(7);
      const seed = Buffer.from(process.env.SEED, 'hex');
      let anchored = 0;
      const live = new SubstrateAnchor({ endpoint: process.env.LIVE, seed, origin: 'o', intervalMs: 60000, source: () => ({ size: 1, root }), onAnchored: () => { anchored++; } });
      const dead = new SubstrateAnchor({ endpoint: process.env.DEAD, seed, origin: 'o', intervalMs: 60000, connectTimeoutMs: 500, backoff: { initialMs: 50, maxMs: 100 }, source: () => ({ size: 1, root }) });
      live.start(); dead.start();
      const t0 = Date.now();
      while ((anchored < 1 || dead.status().consecutiveFailures < 2) && Date.now() - t0 < 45000) await new Promise((r) => setTimeout(r, 50));
      await live.stop(); await dead.stop();
      console.log(JSON.stringify({ anchored, deadFailures: dead.status().consecutiveFailures }));
      console.log('STOPPED ' + Date.now());
    `;
    const child = spawn(NODE_BIN, ['--input-type=module', '-e', script], {
      env: { ...process.env, SEED: Buffer.from(k.seed).toString('hex'), LIVE: chain.endpoint, DEAD: `ws://127.0.0.1:${await closedPort()}` },
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const code = await new Promise<number | null>((resolve) => {
      const killer = setTimeout(() => { child.kill('SIGKILL'); resolve(-1); }, 70_000);
      child.on('exit', (c) => { clearTimeout(killer); resolve(c); });
    });
    const exitedAt = Date.now();
    expect(code, `${out}\n${err}`).toBe(0);
    const m = /STOPPED (\d+)/.exec(out);
    expect(m, `${out}\n${err}`).not.toBeNull();
    expect(exitedAt - Number(m![1])).toBeLessThan(3000); // nothing kept the event loop alive
    const summary = JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!) as { anchored: number; deadFailures: number };
    expect(summary.anchored).toBe(1);
    expect(summary.deadFailures).toBeGreaterThanOrEqual(2);
  }, 90_000);
});
