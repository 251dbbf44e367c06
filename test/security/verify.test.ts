// Issue #20 item 2: `aftersmtp verify` and Provenance.Verify must not trust what a proof bundle says about
// itself. A real node anchored on a real chain (chopsticks) produces the genuine bundle; the forged ones are
// made as an attacker would: a self-made log with its own key, a witness's cosignature passed off as the
// log's signature (type 0x04 vkey), made-up did:key witnesses, a bundle naming its own chain, and a bundle
// naming a did:web the node would have to fetch.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { tempDir, runCli, startAnchoringNode, until, type RunningNode } from '../helpers.ts';
import { startChain, type TestChain } from '../chain.ts';
import { connect, readProfile, unary } from '../../gateway/client/index.ts';
import { generateIdentity } from '../../gateway/datadir/index.ts';
import {
  TransparencyLog, encodeLeaf, cosignCheckpoint, addSignatures, formatVerifierKey, SIG_TYPE_COSIGNATURE_V1,
} from '../../ledger/index.ts';

const fromB64u = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

interface Report { ok: boolean; result: string; anchored: boolean; cosigners: string[]; missing: string[]; steps: { name: string; status: string; detail: string }[] }

describe('20.2 verify takes its trust from the verifier, not from the bundle', { timeout: 180_000 }, () => {
  const dir = tempDir();
  const data = join(dir.path, 'node');
  const bob = join(dir.path, 'bob.json');
  let chain: TestChain;
  let node: RunningNode;
  let nodeDid: string;
  let nodeKey: { privateKey: Uint8Array; publicKey: Uint8Array; keyId: string };
  let genuineFile: string;
  let genuine: any;

  /** A log of its own, with its own did:key identity: what anyone can make. */
  function selfMadeLog(name: string, messageHash = randomBytes(32)) {
    const id = generateIdentity({ method: 'key', domain: `${name}.test` });
    const key = { privateKey: fromB64u(id.signing.privateKey), publicKey: fromB64u(id.signing.publicKey) };
    const origin = `${name}.test/aftersmtp`;
    const log = TransparencyLog.open(join(dir.path, `${name}-${hex(randomBytes(4))}.db`), { origin, signingKey: key });
    log.append([encodeLeaf({ version: 1, type: 'message', messageHash: randomBytes(32) }), encodeLeaf({ version: 1, type: 'message', messageHash })]);
    const note = log.signCheckpoint({ size: 2 }).note;
    const bundle = {
      version: 1, type: 'aftersmtp-proof', messageHash: hex(messageHash),
      log: { origin, verifierKey: log.verifierKey, nodeDid: id.did, keyId: id.signing.keyId },
      leafIndex: 1, leaf: hex(log.leaf(1)), checkpoint: note, inclusion: log.inclusionProof(1, 2).map(hex), anchor: null,
    };
    return { did: id.did, key, origin, log, note, bundle };
  }

  function madeUpWitnesses(n: number) {
    return Array.from({ length: n }, (_, i) => {
      const id = generateIdentity({ method: 'key', domain: `w${i}.test` });
      return { did: id.did, key: { privateKey: fromB64u(id.signing.privateKey), publicKey: fromB64u(id.signing.publicKey) } };
    });
  }

  function save(bundle: unknown): string {
    const file = join(dir.path, `bundle-${hex(randomBytes(4))}.json`);
    writeFileSync(file, JSON.stringify(bundle));
    return file;
  }

  async function verify(args: string[]): Promise<{ code: number | null; report: Report; stderr: string }> {
    const r = await runCli(['verify', ...args, '--json'], { timeoutMs: 60_000 });
    let report: Report;
    try {
      report = JSON.parse(r.stdout);
    } catch {
      throw new Error(`verify ${args.join(' ')} printed no report (exit ${r.code}): ${r.stderr}`);
    }
    return { code: r.code, report, stderr: r.stderr };
  }
  const stepOf = (report: Report, name: string) => report.steps.find((s) => s.name === name);

  beforeAll(async () => {
    chain = await startChain();
    const started = await startAnchoringNode({ data, domain: 'ver.test', profilesDir: dir.path, chain, env: { AFTERSMTP_LOG__LEVEL: 'warn' } });
    node = started.node;
    nodeDid = started.did;
    nodeKey = { privateKey: fromB64u(started.signing.privateKey), publicKey: fromB64u(started.signing.publicKey), keyId: started.signing.keyId };
    const sent = await runCli(['send', '--profile', join(dir.path, 'alice.json'), '--node', node.ready.grpc, '--to', 'bob@ver.test', '--subject', 's', '--body', 'prove me', '--json']);
    expect(sent.code, sent.stderr).toBe(0);
    const messageId = JSON.parse(sent.stdout).messageId as string;
    // The genuine bundle, once an anchor covers the message.
    genuine = await until('an anchored proof', async () => {
      const r = await runCli(['proof', messageId, '--profile', bob, '--node', node.ready.grpc, '--json']);
      if (r.code !== 0) return undefined;
      const b = JSON.parse(r.stdout);
      return b.anchor ? b : undefined;
    }, 60_000);
    genuineFile = save(genuine);
  }, 120_000);

  afterAll(async () => {
    node?.child.kill('SIGTERM');
    await node?.exited;
    await chain?.close();
    dir.cleanup();
  });

  it('20.2 the genuine bundle verifies with --profile and the pinned chain; without trust inputs it is not called valid', async () => {
    const full = await verify([genuineFile, '--profile', bob, '--substrate', chain.endpoint, '--genesis', chain.genesisHash, '--require-anchor']);
    expect(full.code, JSON.stringify(full.report)).toBe(0);
    expect(full.report.result).toBe('valid');
    expect(full.report.missing).toEqual([]);
    expect(stepOf(full.report, 'checkpoint-signature')?.status).toBe('ok');

    const bare = await verify([genuineFile]);
    expect(bare.code).toBe(1);
    expect(bare.report.result).toBe('unverified');
    expect(bare.report.missing.join('\n')).toMatch(/--profile or --node-did/);
    expect(stepOf(bare.report, 'checkpoint-signature')?.status).toBe('skipped');
    expect(bare.report.steps.filter((s) => s.status === 'ok').map((s) => s.name)).not.toContain('checkpoint-signature');

    // The trusted log named by DID alone (did:key: resolved offline) verifies it as well.
    const byDid = await verify([genuineFile, '--node-did', nodeDid]);
    expect(byDid.code).toBe(0);
    expect(byDid.report.result).toBe('valid-unanchored');
    expect(byDid.report.missing.join('\n')).toMatch(/--witness/);
    expect(byDid.report.missing.join('\n')).toMatch(/--genesis/);
  });

  it('20.2a verify refuses a cosignature (0x04) key as the log key', async () => {
    // The attacker runs a peer whose log the real node witnesses (its operator configured a route to it),
    // gets a genuine cosignature of its own checkpoint, then presents the node's 0x04 cosignature as if
    // it were the log's signature.
    const attacker = selfMadeLog('rogue-a');
    const routed = await runCli(['route', 'add', 'rogue-a.test', '--did', attacker.did, '--endpoint', 'quic://127.0.0.1:9', '--data', data]);
    expect(routed.code, routed.stderr).toBe(0);
    const clients = connect(readProfile(bob), node.ready.grpc);
    let line: string;
    try {
      // The node reads a new route within moments; until then it refuses an unconfigured log.
      line = await until('the attacker\'s checkpoint cosigned', async () => {
        const reply = await unary(clients.provenance.Cosign.bind(clients.provenance), { note: attacker.note, oldSize: 0, consistency: [], logDid: attacker.did }, new grpc.Metadata())
          .catch(() => undefined) as { cosignatureLine: string } | undefined;
        return reply?.cosignatureLine || undefined;
      });
      expect(line).toMatch(new RegExp(`^— ${nodeDid} `));
    } finally {
      clients.close();
    }
    const forged = {
      ...attacker.bundle,
      log: { origin: attacker.origin, verifierKey: formatVerifierKey(nodeDid, SIG_TYPE_COSIGNATURE_V1, nodeKey.publicKey), nodeDid, keyId: nodeKey.keyId },
      checkpoint: addSignatures(attacker.note, [line]),
    };
    const file = save(forged);
    for (const trust of [['--profile', bob], ['--node-did', nodeDid]]) {
      const v = await verify([file, ...trust]);
      expect(v.code, JSON.stringify(v.report)).toBe(1);
      expect(v.report.result).toBe('invalid');
      expect(stepOf(v.report, 'checkpoint-signature')).toMatchObject({ status: 'failed', detail: expect.stringContaining('type 0x01') });
    }
    // A 0x01 key whose name is not the origin is refused too (the name is part of what the key signs).
    const renamed = { ...genuine, log: { ...genuine.log, verifierKey: formatVerifierKey('other.test/aftersmtp', 0x01, nodeKey.publicKey) } };
    const v = await verify([save(renamed), '--profile', bob]);
    expect(v.code).toBe(1);
    expect(stepOf(v.report, 'checkpoint-signature')).toMatchObject({ status: 'failed', detail: expect.stringContaining('origin') });
  });

  it('20.2b verify refuses a log the verifier never asked about', async () => {
    // A self-made log, consistent in itself: its own key, its own did:key, its own origin.
    const attacker = selfMadeLog('rogue-b');
    const file = save(attacker.bundle);
    for (const trust of [['--profile', bob], ['--node-did', nodeDid]]) {
      const v = await verify([file, ...trust]);
      expect(v.code, JSON.stringify(v.report)).toBe(1);
      expect(v.report.result).toBe('invalid');
      expect(stepOf(v.report, 'checkpoint-signature')).toMatchObject({ status: 'failed', detail: expect.stringContaining(`not of the trusted ${nodeDid}`) });
    }
    // Naming the trusted node's DID does not help when the key is the attacker's.
    const claimed = save({ ...attacker.bundle, log: { ...attacker.bundle.log, nodeDid, keyId: nodeKey.keyId } });
    const v = await verify([claimed, '--profile', bob]);
    expect(v.code).toBe(1);
    expect(stepOf(v.report, 'checkpoint-signature')).toMatchObject({ status: 'failed', detail: expect.stringContaining(`not an assertion key of ${nodeDid}`) });
    // And with no trust input at all the self-made log is "unverified", never valid.
    const bare = await verify([file]);
    expect(bare.code).toBe(1);
    expect(bare.report.result).toBe('unverified');
  });

  it('20.2c verify counts only configured witnesses: made-up did:key cosignatures do not reach --min-cosignatures', async () => {
    const witnesses = madeUpWitnesses(3);
    const cosigned = (note: string) => addSignatures(note, witnesses.map((w) => cosignCheckpoint(w.key, w.did, note)));
    // A self-made log with three made-up witnesses, each cosignature valid over the attacker's checkpoint.
    const attacker = selfMadeLog('rogue-c');
    const selfMade = save({ ...attacker.bundle, checkpoint: cosigned(attacker.note) });
    const bare = await verify([selfMade, '--min-cosignatures', '3']);
    expect(bare.code).toBe(1);
    expect(bare.report.result).not.toMatch(/^valid/);
    // Even a verifier who trusts that log counts no witness it did not configure.
    const trustedLog = await verify([selfMade, '--node-did', attacker.did, '--min-cosignatures', '3']);
    expect(trustedLog.code).toBe(1);
    expect(trustedLog.report.cosigners).toEqual([]);
    const others = madeUpWitnesses(3).flatMap((w) => ['--witness', w.did]);
    const configured = await verify([selfMade, '--node-did', attacker.did, ...others, '--min-cosignatures', '3']);
    expect(configured.code).toBe(1);
    expect(stepOf(configured.report, 'cosignatures')).toMatchObject({ status: 'failed', detail: expect.stringContaining('at least 3') });

    // The genuine bundle with the made-up lines added: the node (the trusted source through --profile)
    // has no witnesses configured, so none of them counts.
    const padded = save({ ...genuine, checkpoint: cosigned(genuine.checkpoint) });
    const viaProfile = await verify([padded, '--profile', bob, '--min-cosignatures', '3']);
    expect(viaProfile.code).toBe(1);
    expect(viaProfile.report.cosigners).toEqual([]);
    expect(stepOf(viaProfile.report, 'cosignatures')).toMatchObject({ status: 'failed', detail: expect.stringContaining('at least 3') });
    // Configured by the user, the same witnesses do count (they did cosign this checkpoint).
    const chosen = await verify([padded, '--profile', bob, ...witnesses.flatMap((w) => ['--witness', w.did]), '--min-cosignatures', '3']);
    expect(chosen.code, JSON.stringify(chosen.report)).toBe(0);
    expect(chosen.report.cosigners.sort()).toEqual(witnesses.map((w) => w.did).sort());
  });

  it('20.2d verify checks an anchor only on the pinned --substrate and --genesis, never on the chain the bundle names', async () => {
    // The bundle names a chain endpoint the attacker controls and a genesis of its choosing.
    const dialed: string[] = [];
    const rogue: Server = createServer((s) => { dialed.push('rogue'); s.destroy(); });
    await new Promise<void>((r) => rogue.listen(0, '127.0.0.1', r));
    const roguePort = (rogue.address() as { port: number }).port;
    try {
      const named = save({ ...genuine, anchor: { ...genuine.anchor, endpoint: `ws://127.0.0.1:${roguePort}`, genesisHash: `0x${'ab'.repeat(32)}` } });
      // Without a pinned chain the anchor is not checked (and the bundle's endpoint is not dialed).
      const unpinned = await verify([named, '--profile', bob]);
      expect(unpinned.code).toBe(0);
      expect(unpinned.report.result).toBe('valid-unanchored');
      expect(unpinned.report.anchored).toBe(false);
      expect(stepOf(unpinned.report, 'anchor-chain')?.status).toBe('skipped');
      expect(unpinned.report.missing.join('\n')).toMatch(/--genesis/);
      // The genuine bundle names the chain the node anchored on: still not checked without --genesis.
      const genuineUnpinned = await verify([genuineFile, '--profile', bob]);
      expect(genuineUnpinned.report.anchored).toBe(false);
      expect(genuineUnpinned.report.result).toBe('valid-unanchored');
      const noGenesis = await verify([named, '--profile', bob, '--substrate', chain.endpoint, '--require-anchor']);
      expect(noGenesis.code).toBe(1);
      expect(stepOf(noGenesis.report, 'anchor-chain')?.status).toBe('skipped');
      // Pinned: checked on that chain and that genesis only, whatever the bundle names.
      const pinned = await verify([named, '--profile', bob, '--substrate', chain.endpoint, '--genesis', chain.genesisHash, '--require-anchor']);
      expect(pinned.code, JSON.stringify(pinned.report)).toBe(0);
      expect(pinned.report.result).toBe('valid');
      expect(stepOf(pinned.report, 'anchor-genesis')).toMatchObject({ status: 'ok', detail: chain.genesisHash });
      const otherGenesis = await verify([genuineFile, '--profile', bob, '--substrate', chain.endpoint, '--genesis', `0x${'cd'.repeat(32)}`]);
      expect(otherGenesis.code).toBe(1);
      expect(stepOf(otherGenesis.report, 'anchor-genesis')?.status).toBe('failed');
      expect(dialed).toEqual([]);
    } finally {
      rogue.close();
    }
  });

  it('20.2 Provenance.Verify needs a mailbox token and never fetches a DID a bundle names', async () => {
    let connections = 0;
    const listener: Server = createServer((s) => { connections++; s.destroy(); });
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    const webDid = `did:web:127.0.0.1%3A${(listener.address() as { port: number }).port}`;
    const clients = connect(readProfile(bob), node.ready.grpc);
    try {
      // A self-made log claiming to be the did:web's, with a cosignature line in its name.
      const attacker = selfMadeLog('rogue-rpc');
      const witness = madeUpWitnesses(1)[0]!;
      const bundleJson = JSON.stringify({
        ...attacker.bundle,
        log: { ...attacker.bundle.log, nodeDid: webDid, keyId: `${webDid}#sig-1` },
        checkpoint: addSignatures(attacker.note, [cosignCheckpoint(witness.key, webDid, attacker.note)]),
      });
      const anonymous = await unary(clients.provenance.Verify.bind(clients.provenance), { bundleJson }, new grpc.Metadata()).then(() => undefined, (err: grpc.ServiceError) => err);
      expect(anonymous?.code).toBe(grpc.status.UNAUTHENTICATED);
      const authed = await unary(clients.provenance.Verify.bind(clients.provenance), { bundleJson }, clients.metadata) as { ok: boolean; steps: { name: string; status: string; detail: string }[] };
      expect(authed.ok).toBe(false);
      expect(authed.steps.find((s) => s.name === 'checkpoint-signature')).toMatchObject({ status: 'failed', detail: expect.stringContaining(nodeDid) });
      // This node's own bundle still verifies there.
      const own = await unary(clients.provenance.Verify.bind(clients.provenance), { bundleJson: JSON.stringify(genuine) }, clients.metadata) as { ok: boolean };
      expect(own.ok).toBe(true);
      expect(connections).toBe(0);
    } finally {
      clients.close();
      listener.close();
    }
  });
});
