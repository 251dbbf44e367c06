// Provenance end to end: a node anchored on a real Substrate chain (chopsticks, in-process), messages
// sent and received through the CLI, `aftersmtp proof` and `aftersmtp verify` run as subprocesses, then
// the same verification against every fault the issue lists.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { tempDir, runCli, startAnchoringNode, type RunningNode } from '../helpers.ts';
import { startChain, type TestChain } from '../chain.ts';
import { generateEd25519KeyPair, ed25519NoteSigner, parseNote, signNote } from '../../ledger/index.ts';

describe('provenance: proof bundles and verify, anchored on a real chain', () => {
  const dir = tempDir();
  const data = join(dir.path, 'node');
  const saved = join(dir.path, 'received');
  let chain: TestChain;
  let node: RunningNode;
  let bundleFile: string;
  let signedFile: string;
  // The verifier's trust: the log key from bob's node (his profile), the chain pinned by its genesis.
  const bob = join(dir.path, 'bob.json');
  const trust = () => ['--profile', bob, '--genesis', chain.genesisHash];

  beforeAll(async () => {
    chain = await startChain();
    ({ node } = await startAnchoringNode({ data, domain: 'prov.test', profilesDir: dir.path, chain }));
  }, 120_000);

  afterAll(async () => {
    node?.child.kill('SIGTERM');
    await node?.exited;
    await chain?.close();
    dir.cleanup();
  });

  it('anchors, proves and verifies a message end to end', async () => {
    const alice = join(dir.path, 'alice.json');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await runCli(['send', '--profile', alice, '--node', node.ready.grpc, '--to', 'bob@prov.test', '--subject', `p${i}`, '--body', 'proof me', '--json']);
      expect(r.code, r.stderr).toBe(0);
      ids.push(JSON.parse(r.stdout).messageId);
    }
    const sub = await runCli(['subscribe', '--profile', bob, '--node', node.ready.grpc, '--count', '3', '--save-dir', saved, '--json']);
    expect(sub.code, sub.stderr).toBe(0);
    expect(readdirSync(saved)).toHaveLength(3);

    // Wait (bounded) until an anchor covers all three leaves.
    let status: any;
    for (let i = 0; i < 60; i++) {
      const r = await runCli(['ledger', 'status', '--profile', bob, '--node', node.ready.grpc, '--json']);
      expect(r.code, r.stderr).toBe(0);
      status = JSON.parse(r.stdout);
      if (status.latestAnchor && status.latestAnchor.size >= 3) break;
      await new Promise((res) => setTimeout(res, 500));
    }
    expect(status.anchoring).toBe(chain.endpoint);
    expect(status.treeSize).toBeGreaterThanOrEqual(3);
    expect(status.latestAnchor?.size).toBeGreaterThanOrEqual(3);
    expect(status.latestAnchor.genesisHash).toBe(chain.genesisHash);

    const proof = await runCli(['proof', ids[1]!, '--profile', bob, '--node', node.ready.grpc, '--json']);
    expect(proof.code, proof.stderr).toBe(0);
    const bundle = JSON.parse(proof.stdout);
    expect(bundle.anchor).not.toBeNull();
    bundleFile = join(dir.path, 'proof.json');
    writeFileSync(bundleFile, proof.stdout);
    signedFile = join(saved, `${ids[1]}.signed`);

    const v = await runCli(['verify', bundleFile, '--signed', signedFile, ...trust(), '--substrate', chain.endpoint, '--require-anchor', '--json']);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    const report = JSON.parse(v.stdout);
    expect(report.result).toBe('valid');
    const byName = Object.fromEntries(report.steps.map((s: any) => [s.name, s.status]));
    for (const name of ['message-hash', 'message-signature', 'leaf', 'checkpoint-signature', 'inclusion', 'anchor-consistency', 'anchor-payload', 'anchor-signer', 'anchor-dispatch', 'anchor-canonical', 'anchor-finalized', 'anchor-signer-in-did']) {
      expect(byName[name], name).toBe('ok');
    }
  }, 120_000);

  async function verifyTampered(mutate: (b: any) => void, extra: string[] = []): Promise<Record<string, string>> {
    const bundle = JSON.parse(readFileSync(bundleFile, 'utf8'));
    mutate(bundle);
    const file = join(dir.path, `tampered-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(bundle));
    const v = await runCli(['verify', file, '--signed', signedFile, ...trust(), '--substrate', chain.endpoint, '--json', ...extra], { timeoutMs: 60_000 });
    expect(v.code, v.stdout).toBe(1);
    const report = JSON.parse(v.stdout);
    expect(report.result).toBe('invalid');
    return Object.fromEntries(report.steps.map((s: any) => [s.name, s.status]));
  }

  const flipHex = (h: string, at = 10) => h.slice(0, at) + (h[at] === '0' ? '1' : '0') + h.slice(at + 1);

  it('detects a tampered leaf', async () => {
    expect((await verifyTampered((b) => { b.leaf = flipHex(b.leaf, 20); })).leaf).toBe('failed');
  });

  it('detects a wrong inclusion path', async () => {
    expect((await verifyTampered((b) => { b.inclusion[0] = flipHex(b.inclusion[0]); })).inclusion).toBe('failed');
  });

  it('detects a checkpoint signed by another key', async () => {
    const steps = await verifyTampered((b) => {
      const text = parseNote(b.checkpoint).text;
      const rogue = ed25519NoteSigner(b.log.origin, generateEd25519KeyPair());
      b.checkpoint = signNote(text, [rogue]);
    });
    expect(steps['checkpoint-signature']).toBe('failed');
  });

  it('detects a checkpoint inconsistent with the anchored one', async () => {
    expect((await verifyTampered((b) => { b.anchor.consistency = b.anchor.consistency.length ? b.anchor.consistency.map((h: string) => flipHex(h)) : ['00'.repeat(32)]; }))['anchor-consistency']).toBe('failed');
  });

  it('detects an anchor extrinsic from the wrong signer', async () => {
    const other = Buffer.from(generateEd25519KeyPair().publicKey).toString('hex');
    const steps = await verifyTampered((b) => { b.anchor.signerPublicKey = other; });
    expect(steps['anchor-signer']).toBe('failed');
  });

  it('detects an extrinsic that is not the anchor remark', async () => {
    const steps = await verifyTampered((b) => { b.anchor.extrinsicIndex = 0; });
    expect(Object.entries(steps).some(([k, v]) => k.startsWith('anchor-') && v === 'failed')).toBe(true);
  });

  it('detects a block that is not on the chain', async () => {
    const steps = await verifyTampered((b) => { b.anchor.blockHash = `0x${'ab'.repeat(32)}`; });
    expect(steps['anchor-block']).toBe('failed');
  });

  it('fails, never passes, when the chain endpoint is down', async () => {
    const steps = await verifyTampered(() => {}, ['--substrate', 'ws://127.0.0.1:9']);
    expect(steps['anchor-connect']).toBe('failed');
  });

  it('detects a message that is not the one proved', async () => {
    const signed = readFileSync(signedFile);
    signed[signed.length - 70] ^= 1;
    const altered = join(dir.path, 'altered.signed');
    writeFileSync(altered, signed);
    const bundle = readFileSync(bundleFile, 'utf8');
    const v = await runCli(['verify', bundleFile, '--signed', altered, '--profile', bob, '--json']);
    expect(v.code).toBe(1);
    const steps = Object.fromEntries(JSON.parse(v.stdout).steps.map((s: any) => [s.name, s.status]));
    expect(steps['message-hash']).toBe('failed');
    expect(bundle).toBeTruthy();
  });

  it('says unanchored plainly without a chain, and --require-anchor makes that a failure', async () => {
    const v = await runCli(['verify', bundleFile, '--signed', signedFile, '--profile', bob, '--json', '--substrate', '']);
    const report = JSON.parse(v.stdout);
    expect(v.code).toBe(0);
    expect(report.result).toBe('valid-unanchored');
    const strict = await runCli(['verify', bundleFile, '--signed', signedFile, '--profile', bob, '--json', '--substrate', '', '--require-anchor']);
    expect(strict.code).toBe(1);
    expect(JSON.parse(strict.stdout).steps.at(-1).name).toBe('require-anchor');
  });
});
