// Witnessing between three real nodes (separate processes) on loopback: each cosigns the others'
// checkpoints over the authenticated peer transport, proof bundles carry the cosignatures, `verify`
// counts them; a forked history presented to a witness is flagged as a split view and not cosigned.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { randomBytes } from 'node:crypto';
import { tempDir, runCli, startNodeProcess, until, type RunningNode } from '../helpers.ts';
import { metricsOf } from './lab.ts';
import { openNodeFiles } from '../../gateway/datadir/index.ts';
import { QuicTransport } from '../../gateway/transport/index.ts';
import { requestCosign } from '../../gateway/federation/index.ts';
import { TransparencyLog, encodeLeaf, parseNote } from '../../ledger/index.ts';
import { generateSigningKeyPair } from '../../identity/index.ts';

const ENV = {
  AFTERSMTP_FEDERATION__WITNESS__INTERVAL_MS: '300',
  AFTERSMTP_LEDGER__CHECKPOINT_INTERVAL_MS: '200',
  AFTERSMTP_FEDERATION__RETRY__INITIAL_MS: '200',
  AFTERSMTP_FEDERATION__DIAL_TIMEOUT_MS: '1500',
  AFTERSMTP_LOG__LEVEL: 'warn',
};

interface TestNode { name: string; domain: string; data: string; did: string; proc?: RunningNode }

const fromB64u = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));
const unb64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));

describe('witnessing between three nodes', { timeout: 180_000 }, () => {
  const dir = tempDir();
  const nodes: TestNode[] = [];
  const byName = (n: string) => nodes.find((x) => x.name === n)!;
  const profile = (name: string) => join(dir.path, `${name}.json`);

  async function cli(args: string[], expectCode = 0) {
    const r = await runCli([...args, '--json']);
    expect(r.code, `${args.join(' ')}\n${r.stderr}`).toBe(expectCode);
    return r.stdout.trim() ? JSON.parse(r.stdout.trim().split('\n').pop()!) : undefined;
  }
  const status = (n: TestNode) => cli(['status', '--data', n.data]) as Promise<{ splitViews: string | number; cosignedCheckpoints: string | number; refused: Record<string, string | number> }>;
  const peers = (n: TestNode) => cli(['peers', '--data', n.data]) as Promise<{ domain: string; did: string; cosignedSize: string | number; witnessError: string }[]>;

  async function httpsGet(n: TestNode, path: string): Promise<string> {
    const [host, port] = n.proc!.ready.http!.split(':');
    const ca = readFileSync(join(n.data, 'tls/ca.crt'));
    return new Promise((resolve, reject) => {
      request({ host, port: Number(port), path, ca, servername: 'localhost' }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks).toString()));
      }).on('error', reject).end();
    });
  }

  /** A QUIC connection to `target`'s node authenticated with the given key. */
  async function dialAs(target: TestNode, keys: { privateKey: Uint8Array; publicKey: Uint8Array }) {
    const transport = new QuicTransport({ privateKey: keys.privateKey, publicKey: keys.publicKey });
    const [host, port] = target.proc!.ready.quic!.split(':');
    const conn = await transport.dial({ host: host!, port: Number(port) });
    return { conn, close: () => transport.close() };
  }

  /** A log with `size` random leaves, signed with `node`'s own log key and origin: a forked history. */
  function forkedCheckpoint(node: TestNode, size: number): { note: string; log: TransparencyLog } {
    const { config, keys } = openNodeFiles(node.data);
    const log = TransparencyLog.open(join(dir.path, `fork-${node.name}-${size}-${Date.now()}.db`), {
      origin: config.ledger.origin ?? `${node.domain}/aftersmtp`,
      signingKey: { privateKey: fromB64u(keys.signing.privateKey), publicKey: fromB64u(keys.signing.publicKey) },
    });
    log.append(Array.from({ length: size }, () => encodeLeaf({ version: 1, type: 'message', messageHash: randomBytes(32) })));
    return { note: log.signCheckpoint({ size }).note, log };
  }

  beforeAll(async () => {
    for (const [name, domain] of [['a', 'a.test'], ['b', 'b.test'], ['c', 'c.test']] as const) {
      const data = join(dir.path, name);
      const init = await runCli(['init', '--data', data, '--domain', domain, '--grpc-port', '0', '--json']);
      expect(init.code, init.stderr).toBe(0);
      nodes.push({ name, domain, data, did: JSON.parse(init.stdout).did });
    }
    await Promise.all(nodes.map(async (n) => { n.proc = await startNodeProcess(n.data, ENV); }));
    for (const from of nodes) {
      for (const to of nodes) {
        if (from === to) continue;
        await cli(['route', 'add', to.domain, '--did', to.did, '--endpoint', `quic://${to.proc!.ready.quic},relay://${to.proc!.ready.relay}`, '--data', from.data]);
      }
    }
    await cli(['mailbox', 'add', 'alice@a.test', '--data', byName('a').data, '--profile', profile('alice')]);
    await cli(['mailbox', 'add', 'bob@b.test', '--data', byName('b').data, '--profile', profile('bob')]);
  });

  afterAll(async () => {
    for (const n of nodes) {
      n.proc?.child.kill('SIGTERM');
      await n.proc?.exited;
    }
    dir.cleanup();
  });

  it('peers cosign each other\'s checkpoints; bob\'s proof carries two cosignatures and verify counts them', async () => {
    const [a, b, c] = [byName('a'), byName('b'), byName('c')];
    const sent = await cli(['send', '--profile', profile('alice'), '--node', a.proc!.ready.grpc, '--to', 'bob@b.test', '--subject', 'witnessed', '--body', 'hello']);
    // B logs the message when it accepts it; A and C then cosign a checkpoint of B's log covering it.
    const bundleFile = join(dir.path, 'bundle.json');
    const bundle = await until('a proof with two cosignatures', async () => {
      const r = await runCli(['proof', sent.messageId, '--profile', profile('bob'), '--node', b.proc!.ready.grpc, '--json']);
      if (r.code !== 0) return undefined;
      const parsed = JSON.parse(r.stdout) as { checkpoint: string };
      const cosigners = parseNote(parsed.checkpoint).signatures.filter((s) => s.name.startsWith('did:')).map((s) => s.name);
      return cosigners.length === 2 ? { json: r.stdout, cosigners } : undefined;
    });
    expect(bundle.cosigners.sort()).toEqual([a.did, c.did].sort());
    writeFileSync(bundleFile, bundle.json);

    // Trusted through bob's profile: B's log key, and the witnesses B is configured to ask (A and C).
    const trusted = ['--profile', profile('bob'), '--node', b.proc!.ready.grpc];
    const report = await cli(['verify', bundleFile, ...trusted, '--min-cosignatures', '2']);
    expect(report.ok).toBe(true);
    expect(report.cosigners.sort()).toEqual([a.did, c.did].sort());
    expect(report.steps.find((s: { name: string }) => s.name === 'cosignatures').status).toBe('ok');
    // Or named by the verifier: only the witnesses it lists count.
    const named = await cli(['verify', bundleFile, '--node-did', b.did, '--witness', a.did, '--witness', c.did, '--min-cosignatures', '2']);
    expect(named.cosigners.sort()).toEqual([a.did, c.did].sort());
    const onlyA = await cli(['verify', bundleFile, '--node-did', b.did, '--witness', a.did, '--min-cosignatures', '2'], 1);
    expect(onlyA.cosigners).toEqual([a.did]);

    // Asking for more witnesses than signed fails; so does a cosignature that was tampered with.
    const tooFew = await cli(['verify', bundleFile, ...trusted, '--min-cosignatures', '3'], 1);
    expect(tooFew.steps.find((s: { name: string }) => s.name === 'cosignatures')).toMatchObject({ status: 'failed', detail: expect.stringContaining('at least 3') });
    const parsed = JSON.parse(bundle.json) as { checkpoint: string };
    const lines = parsed.checkpoint.split('\n');
    const witnessLine = lines.findIndex((l) => l.startsWith(`— ${a.did} `));
    const sig = unb64(lines[witnessLine]!.split(' ')[2]!);
    sig[20]! ^= 0x01;
    lines[witnessLine] = `— ${a.did} ${Buffer.from(sig).toString('base64')}`;
    const tamperedFile = join(dir.path, 'tampered.json');
    writeFileSync(tamperedFile, JSON.stringify({ ...parsed, checkpoint: lines.join('\n') }));
    const tampered = await cli(['verify', tamperedFile, ...trusted], 1);
    expect(tampered.steps.find((s: { name: string }) => s.name === 'cosignatures')).toMatchObject({ status: 'failed', detail: expect.stringContaining(a.did) });

    // Every node reports what its peers cosigned.
    // A (alice's message) and B (its delivery) have logs that grew; C's is empty: nothing to cosign.
    for (const n of [a, b]) expect(Number((await status(n)).cosignedCheckpoints)).toBeGreaterThan(0);
    expect(Number((await status(c)).cosignedCheckpoints)).toBe(0);
    const bPeers = await peers(b);
    expect(Number(bPeers.find((p) => p.domain === 'a.test')!.cosignedSize)).toBeGreaterThan(0);
  });

  it('flags a forked checkpoint as a split view, never cosigns it, and keeps cosigning the real history', async () => {
    const [a, b] = [byName('a'), byName('b')];
    const seen = Number((await peers(b)).find((p) => p.domain === 'a.test')!.cosignedSize);
    expect(seen).toBeGreaterThan(0);
    const { keys } = openNodeFiles(b.data);
    const bKeys = { privateKey: fromB64u(keys.signing.privateKey), publicKey: fromB64u(keys.signing.publicKey) };
    const { conn, close } = await dialAs(a, bKeys);
    try {
      // Same size as the checkpoint A cosigned, another root.
      const sameSize = forkedCheckpoint(b, seen);
      const r1 = await requestCosign(conn, { note: sameSize.note, oldSize: seen, consistency: [], logDid: b.did });
      expect(r1.errorCode).toBe('SPLIT_VIEW');
      expect(r1.cosignatureLine).toBe('');
      // A larger fork with a valid-looking consistency proof from the fork's own smaller tree.
      const bigger = forkedCheckpoint(b, seen + 3);
      const r2 = await requestCosign(conn, { note: bigger.note, oldSize: seen, consistency: bigger.log.consistencyProof(seen, seen + 3), logDid: b.did });
      expect(r2.errorCode).toBe('SPLIT_VIEW');
      // A stale old_size gets CONFLICT with the size the witness has seen, so an honest log can retry.
      const r3 = await requestCosign(conn, { note: bigger.note, oldSize: seen + 1, consistency: [], logDid: b.did });
      expect(r3).toMatchObject({ errorCode: 'CONFLICT', knownSize: expect.any(Number) });
      sameSize.log.close();
      bigger.log.close();
    } finally {
      await close();
    }
    // A key that is not in B's DID document cannot speak for B's log, whatever it signs. (Another root
    // of the size A saw, signed by B's key, would be a split view whoever presented it: a larger one.)
    const stranger = generateSigningKeyPair();
    const other = await dialAs(a, { privateKey: stranger.privateKey, publicKey: stranger.publicKey });
    try {
      const fork = forkedCheckpoint(b, seen + 1);
      const r = await requestCosign(other.conn, { note: fork.note, oldSize: seen, consistency: [], logDid: b.did });
      expect(r.errorCode).toBe('PEER_REJECTED');
      fork.log.close();
    } finally {
      await other.close();
    }

    const st = await status(a);
    expect(Number(st.splitViews)).toBe(2);
    expect(Number(st.refused['cosign.SPLIT_VIEW'])).toBe(2);
    expect(Number(st.refused['cosign.PEER_REJECTED'])).toBe(1);
    const metrics = await metricsOf(a);
    expect(metrics).toMatch(/^aftersmtp_witness_split_views 2$/m);
    expect(metrics).toMatch(/^aftersmtp_refused_total\{code="cosign.SPLIT_VIEW"\} 2$/m);

    // B's honest log goes on: a new message grows it, and A still cosigns B's next checkpoint.
    await cli(['send', '--profile', profile('alice'), '--node', a.proc!.ready.grpc, '--to', 'bob@b.test', '--subject', 'after the fork', '--body', 'still fine']);
    await until('A cosigns a newer checkpoint of B', async () => {
      const p = (await peers(b)).find((x) => x.domain === 'a.test')!;
      return Number(p.cosignedSize) > seen && !p.witnessError ? p : undefined;
    });
  });

  it('a witness remembers what it saw across a restart', async () => {
    const [a, b] = [byName('a'), byName('b')];
    const before = Number((await peers(b)).find((p) => p.domain === 'a.test')!.cosignedSize);
    a.proc!.child.kill('SIGKILL');
    await a.proc!.exited;
    a.proc = await startNodeProcess(a.data, ENV);
    await cli(['route', 'add', 'a.test', '--did', a.did, '--endpoint', `quic://${a.proc.ready.quic},relay://${a.proc.ready.relay}`, '--data', b.data]);
    // The fork of the size A cosigned before the kill is still refused after it.
    const { keys } = openNodeFiles(b.data);
    const { conn, close } = await dialAs(a, { privateKey: fromB64u(keys.signing.privateKey), publicKey: fromB64u(keys.signing.publicKey) });
    try {
      const fork = forkedCheckpoint(b, before);
      const r = await requestCosign(conn, { note: fork.note, oldSize: before, consistency: [], logDid: b.did });
      expect(r.errorCode).toBe('SPLIT_VIEW');
      fork.log.close();
    } finally {
      await close();
    }
    expect(Number((await status(a)).splitViews)).toBe(3);
  });
});
