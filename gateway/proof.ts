// Proof bundles: everything needed to check, offline from the node that produced it, that a message
// existed unaltered in the node's transparency log (and, when anchored, on a Substrate chain).
// Format and steps: docs/LEDGER.md "Proof bundles".
import {
  decodeLeaf,
  leafHash,
  verifyInclusion,
  verifyConsistency,
  openCheckpoint,
  parseVerifierKey,
  parseCheckpoint,
  parseNote,
  bytesEqual,
  cosignatureKeyId,
  verifyCosignature,
} from '../ledger/index.ts';
import { verifySignedMessage, sha256, type DidResolver } from '../identity/index.ts';

export interface AnchorReference {
  /** The anchored checkpoint (signed note); the bundle's checkpoint is consistent with it. */
  checkpoint: string;
  /** Consistency proof from the bundle checkpoint's size to the anchored size (hex hashes). */
  consistency: string[];
  genesisHash: string;
  blockHash: string;
  blockNumber: number;
  extrinsicIndex: number;
  /** Hex Ed25519 public key of the anchoring account (listed in the node's DID document). */
  signerPublicKey: string;
  endpoint?: string;
}

export interface ProofBundle {
  version: 1;
  type: 'aftersmtp-proof';
  messageHash: string;
  messageId?: string;
  log: { origin: string; verifierKey: string; nodeDid: string; keyId: string };
  leafIndex: number;
  leaf: string;
  checkpoint: string;
  inclusion: string[];
  anchor: AnchorReference | null;
}

export type StepStatus = 'ok' | 'failed' | 'skipped';
export interface VerifyStepResult { name: string; status: StepStatus; detail: string }
export interface VerifyReport {
  ok: boolean;
  anchored: boolean;
  result: 'valid' | 'valid-unanchored' | 'invalid';
  steps: VerifyStepResult[];
  /** DIDs of the witnesses whose cosignature of the checkpoint verified. */
  cosigners: string[];
}

export interface AnchorChecker {
  (args: { endpoint: string; blockHash: string; extrinsicIndex: number; expected: { origin: string; size: number; root: Uint8Array; signerPublicKey: Uint8Array; genesisHash?: string }; signal?: AbortSignal }):
    Promise<{ ok: boolean; steps: { name: string; status: StepStatus; detail: string }[] }>;
}

export interface VerifyOptions {
  resolver: DidResolver;
  /** The signed inner message (PROTOCOL.md §2.2) the bundle is about, if the verifier holds it. */
  signedMessage?: Uint8Array;
  /** Alternatively, just the claimed message hash (e.g. from an envelope's outer header). */
  statedMessageHash?: Uint8Array;
  substrateEndpoint?: string;
  requireAnchor?: boolean;
  /** Fail unless at least this many distinct witnesses cosigned the checkpoint. */
  minCosignatures?: number;
  checkAnchor?: AnchorChecker;
  signal?: AbortSignal;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => {
  if (!/^([0-9a-f]{2})*$/i.test(s)) throw new Error(`not hex: ${s.slice(0, 16)}`);
  return new Uint8Array(Buffer.from(s, 'hex'));
};

/** Runs every verification step; never throws for bad input (a step fails with the reason). */
export async function verifyProofBundle(bundle: ProofBundle, opts: VerifyOptions): Promise<VerifyReport> {
  const steps: VerifyStepResult[] = [];
  const cosigners: string[] = [];
  const step = (name: string, status: StepStatus, detail: string) => { steps.push({ name, status, detail }); return status; };
  const attempt = async (name: string, fn: () => Promise<string> | string): Promise<boolean> => {
    try {
      step(name, 'ok', await fn());
      return true;
    } catch (err) {
      step(name, 'failed', (err as Error).message);
      return false;
    }
  };

  if (bundle?.version !== 1 || bundle.type !== 'aftersmtp-proof') {
    step('bundle', 'failed', 'not an AfterSMTP v1 proof bundle');
    return finish(steps, cosigners, false);
  }
  let messageHash: Uint8Array;
  try {
    messageHash = unhex(bundle.messageHash);
    if (messageHash.length !== 32) throw new Error('messageHash must be 32 bytes');
  } catch (err) {
    step('bundle', 'failed', (err as Error).message);
    return finish(steps, cosigners, false);
  }

  // 1. The message: its hash, and its signature by a key of the sender's DID.
  if (opts.signedMessage) {
    const actual = sha256(opts.signedMessage);
    if (!bytesEqual(actual, messageHash)) step('message-hash', 'failed', `the message hashes to ${hex(actual)}, the bundle is about ${bundle.messageHash}`);
    else step('message-hash', 'ok', 'SHA-256 of the signed message matches');
    const v = await verifySignedMessage(opts.signedMessage, opts.resolver, { now: Date.now(), skewMs: Number.MAX_SAFE_INTEGER / 4 });
    // Expiry is about delivery, not provenance: an old message still verifies.
    if (v.verified || v.code === 'TIME_WINDOW') step('message-signature', 'ok', `signed by ${v.keyId}, a key in ${v.header?.from.did}'s DID document`);
    else step('message-signature', 'failed', v.reason);
  } else if (opts.statedMessageHash) {
    if (!bytesEqual(opts.statedMessageHash, messageHash)) step('message-hash', 'failed', 'the envelope states another message hash');
    else step('message-hash', 'ok', 'the envelope states this hash (content not checked: no key to open it)');
    step('message-signature', 'skipped', 'no signed message given (use --signed or --envelope with --profile)');
  } else {
    step('message-hash', 'skipped', 'no message given; checking the bundle for its stated hash');
    step('message-signature', 'skipped', 'no message given');
  }

  // 2. The leaf carries this hash and is included in the checkpoint.
  let checkpointSize = 0;
  let checkpointRoot: Uint8Array = new Uint8Array(32);
  const leafOk = await attempt('leaf', () => {
    const leaf = decodeLeaf(unhex(bundle.leaf));
    if (!bytesEqual(leaf.messageHash, messageHash)) throw new Error('the leaf carries another message hash');
    return `leaf ${bundle.leafIndex}: ${leaf.type} v${leaf.version}`;
  });
  // 3. The checkpoint is signed by the log key, and that key is the node DID's key.
  const cpOk = await attempt('checkpoint-signature', async () => {
    const verifier = parseVerifierKey(bundle.log.verifierKey);
    const opened = openCheckpoint(bundle.checkpoint, { log: verifier, origin: bundle.log.origin });
    checkpointSize = opened.checkpoint.size;
    checkpointRoot = opened.checkpoint.root;
    const keys = await opts.resolver.resolveKeys(bundle.log.nodeDid);
    const didKey = keys.assertionMethod.get(bundle.log.keyId) ?? keys.authentication.get(bundle.log.keyId);
    if (!didKey) throw new Error(`${bundle.log.keyId} is not a key of ${bundle.log.nodeDid}`);
    if (!bytesEqual(didKey, verifier.publicKey)) throw new Error(`the checkpoint key is not ${bundle.log.keyId} of ${bundle.log.nodeDid}`);
    return `size ${checkpointSize}, signed by ${bundle.log.keyId}`;
  });
  if (leafOk && cpOk) {
    await attempt('inclusion', () => {
      const proof = bundle.inclusion.map(unhex);
      if (!verifyInclusion(leafHash(unhex(bundle.leaf)), bundle.leafIndex, checkpointSize, proof, checkpointRoot)) {
        throw new Error(`inclusion proof of leaf ${bundle.leafIndex} in size ${checkpointSize} does not lead to the checkpoint root`);
      }
      return `leaf ${bundle.leafIndex} is in the tree of size ${checkpointSize}`;
    });
  } else {
    step('inclusion', 'failed', 'cannot check inclusion without a valid leaf and checkpoint');
  }
  // 3b. Witness cosignatures: each line named by a DID must verify with a key of that DID.
  if (cpOk) {
    const c = await checkCosignatures(bundle.checkpoint, bundle.log.origin, opts.resolver);
    cosigners.push(...c.verified);
    const min = opts.minCosignatures ?? 0;
    const ignored = c.unknown ? `; ${c.unknown} line(s) not named by a DID ignored` : '';
    if (c.failures.length) step('cosignatures', 'failed', c.failures.join('; '));
    else if (cosigners.length < min) step('cosignatures', 'failed', `${cosigners.length} witness cosignature(s), at least ${min} required${ignored}`);
    else if (cosigners.length) step('cosignatures', 'ok', `${cosigners.length} witness cosignature(s) verified: ${cosigners.join(', ')}${ignored}`);
    else step('cosignatures', 'skipped', `no witness cosignatures${ignored}`);
  } else {
    step('cosignatures', 'failed', 'not checked: the checkpoint signature did not verify');
  }

  // 4. Anchor: consistency to the anchored checkpoint, then the chain.
  if (!bundle.anchor) {
    step('anchor', 'skipped', 'unanchored: no chain anchor covers this checkpoint yet');
    return finish(steps, cosigners, false, opts.requireAnchor);
  }
  const anchor = bundle.anchor;
  let anchored: { size: number; root: Uint8Array } | undefined;
  const consistent = cpOk && await attempt('anchor-consistency', () => {
    const verifier = parseVerifierKey(bundle.log.verifierKey);
    const opened = openCheckpoint(anchor.checkpoint, { log: verifier, origin: bundle.log.origin });
    anchored = { size: opened.checkpoint.size, root: opened.checkpoint.root };
    if (anchored.size < checkpointSize) throw new Error(`the anchored checkpoint (size ${anchored.size}) is older than the proof checkpoint (size ${checkpointSize})`);
    if (!verifyConsistency(checkpointSize, anchored.size, anchor.consistency.map(unhex), checkpointRoot, anchored.root)) {
      throw new Error(`checkpoint ${checkpointSize} is not consistent with the anchored checkpoint ${anchored.size}`);
    }
    return `size ${checkpointSize} is a prefix of the anchored size ${anchored.size}`;
  });
  const endpoint = opts.substrateEndpoint ?? anchor.endpoint;
  if (!consistent || !anchored) {
    step('anchor-chain', 'failed', 'not checked: the anchored checkpoint does not cover this proof');
  } else if (!endpoint || !opts.checkAnchor) {
    step('anchor-chain', 'skipped', 'no Substrate endpoint given (--substrate ws://...)');
    return finish(steps, cosigners, false, opts.requireAnchor);
  } else {
    const origin = parseCheckpoint(parseNote(anchor.checkpoint).text).origin;
    const chain = await opts.checkAnchor({
      endpoint,
      blockHash: anchor.blockHash,
      extrinsicIndex: anchor.extrinsicIndex,
      expected: { origin, size: anchored.size, root: anchored.root, signerPublicKey: unhex(anchor.signerPublicKey), genesisHash: anchor.genesisHash },
      signal: opts.signal,
    }).catch((err: Error) => ({ ok: false, steps: [{ name: 'chain', status: 'failed' as const, detail: err.message }] }));
    for (const s of chain.steps) step(`anchor-${s.name}`, s.status, s.detail);
    // The anchoring account must be a key of the node's DID.
    await attempt('anchor-signer-in-did', async () => {
      const keys = await opts.resolver.resolveKeys(bundle.log.nodeDid);
      const signer = unhex(anchor.signerPublicKey);
      const listed = [...keys.assertionMethod.values(), ...keys.authentication.values()].some((k) => bytesEqual(k, signer));
      if (!listed) throw new Error(`the anchoring key ${anchor.signerPublicKey} is not in ${bundle.log.nodeDid}'s DID document`);
      return 'the anchoring account is a key of the node DID';
    });
    return finish(steps, cosigners, chain.ok);
  }
  return finish(steps, cosigners, false, opts.requireAnchor);
}

function finish(steps: VerifyStepResult[], cosigners: string[], anchored: boolean, requireAnchor = false): VerifyReport {
  if (!anchored && requireAnchor && !steps.some((s) => s.status === 'failed')) {
    steps.push({ name: 'require-anchor', status: 'failed', detail: '--require-anchor: the proof is not anchored on a chain' });
  }
  const failed = steps.some((s) => s.status === 'failed');
  return { ok: !failed, anchored, result: failed ? 'invalid' : anchored ? 'valid' : 'valid-unanchored', steps, cosigners };
}

/** Verifies the checkpoint's cosignature lines named by a DID against that DID's keys. */
async function checkCosignatures(note: string, origin: string, resolver: DidResolver): Promise<{ verified: string[]; failures: string[]; unknown: number }> {
  const parsed = parseNote(note);
  const verified = new Set<string>();
  const failures: string[] = [];
  let unknown = 0;
  for (const sig of parsed.signatures) {
    if (sig.name === origin) continue; // the log's own signature
    if (!sig.name.startsWith('did:')) {
      unknown++;
      continue;
    }
    try {
      const keys = await resolver.resolveKeys(sig.name);
      const key = [...keys.assertionMethod.values(), ...keys.authentication.values()].find((k) => cosignatureKeyId(sig.name, k) === sig.keyId);
      if (!key) throw new Error('its key is not in that DID document');
      verifyCosignature(key, sig.name, parsed.text, sig);
      verified.add(sig.name);
    } catch (err) {
      failures.push(`cosignature by ${sig.name} does not verify: ${(err as Error).message}`);
    }
  }
  return { verified: [...verified], failures, unknown };
}
