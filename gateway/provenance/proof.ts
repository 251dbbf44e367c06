// Proof bundles: everything needed to check, offline from the node that produced it, that a message
// existed unaltered in the node's transparency log (and, when anchored, on a Substrate chain).
// Format, steps and where the verifier's trust comes from: docs/LEDGER.md "Proof bundles and verification".
import {
  decodeLeaf,
  leafHash,
  verifyInclusion,
  verifyConsistency,
  openCheckpoint,
  parseVerifierKey,
  parseNote,
  bytesEqual,
  SIG_TYPE_ED25519,
  type NoteVerifier,
  cosignatureKeyId,
  verifyCosignature,
} from '../../ledger/index.ts';
import { verifySignedMessage, sha256, type DidResolver } from '../../identity/index.ts';

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
  /**
   * valid: every step ran and passed, the anchor included; valid-unanchored: the log part passed, the
   * anchor is absent or was not checked (see `missing`); unverified: no trusted log key, so nothing was
   * established; invalid: a step failed.
   */
  result: 'valid' | 'valid-unanchored' | 'unverified' | 'invalid';
  steps: VerifyStepResult[];
  /** DIDs of the trusted witnesses whose cosignature of the checkpoint verified. */
  cosigners: string[];
  /** The trust inputs the verifier lacked; the steps that needed them were skipped, not passed. */
  missing: string[];
}

export interface AnchorChecker {
  (args: { endpoint: string; blockHash: string; extrinsicIndex: number; expected: { origin: string; size: number; root: Uint8Array; signerPublicKey: Uint8Array; genesisHash?: string }; signal?: AbortSignal }):
    Promise<{ ok: boolean; steps: { name: string; status: StepStatus; detail: string }[] }>;
}

/**
 * What the verifier trusts comes from its own inputs (profile, flags, its node's configuration), never
 * from the bundle: a bundle is made by whoever hands it over and can name any log, witness or chain.
 */
export interface VerifyOptions {
  resolver: DidResolver;
  /** The signed inner message (PROTOCOL.md §2.2) the bundle is about, if the verifier holds it. */
  signedMessage?: Uint8Array;
  /** Alternatively, just the claimed message hash (e.g. from an envelope's outer header). */
  statedMessageHash?: Uint8Array;
  /** The DID of the log the verifier trusts; its checkpoint key is looked up in this DID's document. */
  logDid?: string;
  /** DIDs of the witnesses whose cosignatures count; undefined = none configured (lines are ignored). */
  witnesses?: string[];
  /** The chain to check an anchor on, and its pinned genesis hash: both or the chain step is skipped. */
  substrateEndpoint?: string;
  genesisHash?: string;
  requireAnchor?: boolean;
  /** Fail unless at least this many distinct trusted witnesses cosigned the checkpoint. */
  minCosignatures?: number;
  checkAnchor?: AnchorChecker;
  signal?: AbortSignal;
}

/** How each missing trust input is named in reports (the CLI flags that supply it). */
export const MISSING = {
  logKey: 'log key: no trusted log DID (--profile or --node-did)',
  witnesses: 'witnesses: none configured (--witness DID, or --profile for the node\'s own)',
  chain: 'chain: no pinned chain (--substrate ws://... with --genesis 0x...)',
} as const;

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => {
  if (!/^([0-9a-f]{2})*$/i.test(s)) throw new Error(`not hex: ${s.slice(0, 16)}`);
  return new Uint8Array(Buffer.from(s, 'hex'));
};

/** Runs every verification step; never throws for bad input (a step fails with the reason). */
export async function verifyProofBundle(bundle: ProofBundle, opts: VerifyOptions): Promise<VerifyReport> {
  const steps: VerifyStepResult[] = [];
  const cosigners: string[] = [];
  const missing: string[] = [];
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
  const finish = (anchored: boolean) => {
    if (!anchored && opts.requireAnchor && !steps.some((s) => s.status === 'failed')) {
      step('require-anchor', 'failed', '--require-anchor: the proof is not anchored on a pinned chain');
    }
    if (opts.minCosignatures && opts.witnesses === undefined && !steps.some((s) => s.name === 'cosignatures' && s.status === 'failed')) {
      step('min-cosignatures', 'failed', `--min-cosignatures ${opts.minCosignatures}: no trusted witnesses configured`);
    }
    const failed = steps.some((s) => s.status === 'failed');
    const result = failed ? 'invalid' : missing.includes(MISSING.logKey) ? 'unverified' : anchored ? 'valid' : 'valid-unanchored';
    return { ok: result === 'valid' || result === 'valid-unanchored', anchored, result, steps, cosigners, missing } satisfies VerifyReport;
  };

  if (bundle?.version !== 1 || bundle.type !== 'aftersmtp-proof') {
    step('bundle', 'failed', 'not an AfterSMTP v1 proof bundle');
    return finish(false);
  }
  let messageHash: Uint8Array;
  try {
    messageHash = unhex(bundle.messageHash);
    if (messageHash.length !== 32) throw new Error('messageHash must be 32 bytes');
  } catch (err) {
    step('bundle', 'failed', (err as Error).message);
    return finish(false);
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

  // 2. The leaf carries this hash.
  const leafOk = await attempt('leaf', () => {
    const leaf = decodeLeaf(unhex(bundle.leaf));
    if (!bytesEqual(leaf.messageHash, messageHash)) throw new Error('the leaf carries another message hash');
    return `leaf ${bundle.leafIndex}: ${leaf.type} v${leaf.version}`;
  });

  // 3. The checkpoint is signed by the trusted log's key: a note key (0x01) named by the origin, found
  // in the assertion keys of the DID the verifier trusts. Without that DID nothing further means anything.
  if (!opts.logDid) {
    missing.push(MISSING.logKey);
    step('checkpoint-signature', 'skipped', `not checked: the bundle's own key (${bundle.log?.nodeDid ?? '?'}) proves nothing; ${MISSING.logKey}`);
    for (const name of ['inclusion', 'cosignatures', 'anchor']) step(name, 'skipped', 'not checked: no trusted log key');
    return finish(false);
  }
  const logDid = opts.logDid;
  let logKey: NoteVerifier | undefined;
  let checkpointSize = 0;
  let checkpointRoot: Uint8Array = new Uint8Array(32);
  const cpOk = await attempt('checkpoint-signature', async () => {
    if (bundle.log.nodeDid !== logDid) throw new Error(`the bundle is about the log of ${bundle.log.nodeDid}, not of the trusted ${logDid}`);
    const verifier = parseVerifierKey(bundle.log.verifierKey);
    if (verifier.type !== SIG_TYPE_ED25519) throw new Error(`the log key must be an Ed25519 note key (type 0x01), not type 0x${verifier.type.toString(16).padStart(2, '0')}`);
    if (verifier.name !== bundle.log.origin) throw new Error(`the log key is named ${verifier.name}, not the log's origin ${bundle.log.origin}`);
    const keys = await opts.resolver.resolveKeys(logDid);
    const keyId = [...keys.assertionMethod].find(([, k]) => bytesEqual(k, verifier.publicKey))?.[0];
    if (!keyId) throw new Error(`the checkpoint key is not an assertion key of ${logDid}`);
    const opened = openCheckpoint(bundle.checkpoint, { log: verifier, origin: bundle.log.origin });
    logKey = verifier;
    checkpointSize = opened.checkpoint.size;
    checkpointRoot = opened.checkpoint.root;
    return `size ${checkpointSize}, signed by ${keyId}`;
  });
  // 3a. The leaf is included in the checkpoint.
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
  // 3b. Witness cosignatures: only the lines of trusted witnesses count, each checked with its DID's keys.
  if (!cpOk) {
    step('cosignatures', 'failed', 'not checked: the checkpoint signature did not verify');
  } else if (opts.witnesses === undefined) {
    missing.push(MISSING.witnesses);
    step('cosignatures', 'skipped', `not checked: ${MISSING.witnesses}`);
  } else {
    const c = await checkCosignatures(bundle.checkpoint, bundle.log.origin, opts.witnesses, opts.resolver);
    cosigners.push(...c.verified);
    const min = opts.minCosignatures ?? 0;
    const ignored = c.ignored.length ? `; ${c.ignored.length} line(s) by witnesses not trusted here ignored (${c.ignored.join(', ')})` : '';
    if (c.failures.length) step('cosignatures', 'failed', c.failures.join('; '));
    else if (cosigners.length < min) step('cosignatures', 'failed', `${cosigners.length} trusted witness cosignature(s), at least ${min} required${ignored}`);
    else if (cosigners.length) step('cosignatures', 'ok', `${cosigners.length} trusted witness cosignature(s) verified: ${cosigners.join(', ')}${ignored}`);
    else step('cosignatures', 'skipped', `no cosignature by a trusted witness (${opts.witnesses.length} trusted)${ignored}`);
  }

  // 4. Anchor: consistency to the anchored checkpoint, then the pinned chain.
  if (!bundle.anchor) {
    step('anchor', 'skipped', 'unanchored: no chain anchor covers this checkpoint yet');
    return finish(false);
  }
  const anchor = bundle.anchor;
  let anchored: { size: number; root: Uint8Array } | undefined;
  const consistent = logKey !== undefined && await attempt('anchor-consistency', () => {
    const opened = openCheckpoint(anchor.checkpoint, { log: logKey!, origin: bundle.log.origin });
    anchored = { size: opened.checkpoint.size, root: opened.checkpoint.root };
    if (anchored.size < checkpointSize) throw new Error(`the anchored checkpoint (size ${anchored.size}) is older than the proof checkpoint (size ${checkpointSize})`);
    if (!verifyConsistency(checkpointSize, anchored.size, anchor.consistency.map(unhex), checkpointRoot, anchored.root)) {
      throw new Error(`checkpoint ${checkpointSize} is not consistent with the anchored checkpoint ${anchored.size}`);
    }
    return `size ${checkpointSize} is a prefix of the anchored size ${anchored.size}`;
  });
  if (!consistent || !anchored) {
    step('anchor-chain', 'failed', 'not checked: the anchored checkpoint does not cover this proof');
    return finish(false);
  }
  // The chain and its genesis are the verifier's: a bundle naming its own chain could name one its
  // log operator runs alone.
  if (!opts.substrateEndpoint || !opts.genesisHash || !opts.checkAnchor) {
    missing.push(MISSING.chain);
    step('anchor-chain', 'skipped', `not checked: ${MISSING.chain}; the bundle names ${anchor.endpoint ?? 'no endpoint'} and genesis ${anchor.genesisHash}, which are not trusted`);
    return finish(false);
  }
  const chain = await opts.checkAnchor({
    endpoint: opts.substrateEndpoint,
    blockHash: anchor.blockHash,
    extrinsicIndex: anchor.extrinsicIndex,
    expected: { origin: bundle.log.origin, size: anchored.size, root: anchored.root, signerPublicKey: unhex(anchor.signerPublicKey), genesisHash: opts.genesisHash },
    signal: opts.signal,
  }).catch((err: Error) => ({ ok: false, steps: [{ name: 'chain', status: 'failed' as const, detail: err.message }] }));
  for (const s of chain.steps) step(`anchor-${s.name}`, s.status, s.detail);
  // The anchoring account must be an assertion key of the trusted log's DID.
  const signerOk = await attempt('anchor-signer-in-did', async () => {
    const keys = await opts.resolver.resolveKeys(logDid);
    const signer = unhex(anchor.signerPublicKey);
    if (![...keys.assertionMethod.values()].some((k) => bytesEqual(k, signer))) throw new Error(`the anchoring key ${anchor.signerPublicKey} is not an assertion key of ${logDid}`);
    return 'the anchoring account is a key of the log DID';
  });
  return finish(chain.ok && signerOk);
}

/** Verifies the checkpoint's cosignature lines by trusted witnesses; other lines are only listed. */
async function checkCosignatures(note: string, origin: string, witnesses: readonly string[], resolver: DidResolver): Promise<{ verified: string[]; failures: string[]; ignored: string[] }> {
  const parsed = parseNote(note);
  const verified = new Set<string>();
  const failures: string[] = [];
  const ignored = new Set<string>();
  for (const sig of parsed.signatures) {
    if (sig.name === origin) continue; // the log's own signature
    // A line by anyone else is not resolved at all: its name is the bundle's word, not the verifier's.
    if (!witnesses.includes(sig.name)) {
      ignored.add(sig.name);
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
  return { verified: [...verified], failures, ignored: [...ignored] };
}
