// Anchoring the node's checkpoints on a Substrate chain (optional; off unless an endpoint is set).
// The anchoring account is the node's Ed25519 signing key, which its DID document lists, so a
// verifier can tie the extrinsic's signer to the node DID.
import type { Clock } from '../core/index.ts';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { SubstrateAnchor, verifyAnchor, type AnchorRecord } from '../../ledger/index.ts';
import type { NodeLedger, AnchorState } from './ledger.ts';
import type { AnchorChecker } from './proof.ts';

export interface NodeAnchoringOptions {
  endpoint: string;
  intervalMs: number;
  finality: 'finalized' | 'inBlock';
  seed: Uint8Array;
  ledger: NodeLedger;
  stateFile: string;
  log: Logger;
  /** The node scheduler's clock: the anchoring loop's timers are the scheduler's. */
  clock: Clock;
}

export class NodeAnchoring {
  readonly endpoint: string;
  private readonly anchor: SubstrateAnchor;
  private readonly ledger: NodeLedger;

  constructor(opts: NodeAnchoringOptions) {
    this.endpoint = opts.endpoint;
    this.ledger = opts.ledger;
    this.anchor = new SubstrateAnchor({
      endpoint: opts.endpoint,
      seed: opts.seed,
      origin: opts.ledger.origin,
      intervalMs: opts.intervalMs,
      finality: opts.finality,
      clock: opts.clock,
      source: () => {
        const cp = opts.ledger.latestCheckpoint();
        return cp ? { size: cp.size, root: cp.root, timestampMs: cp.signedAt } : null;
      },
      store: {
        load: () => (existsSync(opts.stateFile) ? (JSON.parse(readFileSync(opts.stateFile, 'utf8')) as AnchorRecord) : undefined),
        save: (record) => {
          // Atomic replace: a crash leaves the previous record or the new one, never half of one.
          writeFileSync(`${opts.stateFile}.tmp`, JSON.stringify(record), { mode: 0o644 });
          renameSync(`${opts.stateFile}.tmp`, opts.stateFile);
        },
      },
      logger: opts.log.child({ component: 'anchor' }),
    });
  }

  get publicKeyHex(): string {
    return this.anchor.publicKeyHex;
  }

  start(): void {
    this.anchor.start();
  }

  stop(): Promise<void> {
    return this.anchor.stop();
  }

  anchorNow(signal?: AbortSignal): Promise<AnchorRecord> {
    return this.anchor.anchorNow(signal);
  }

  /** The latest anchor in the shape proof bundles need, with the anchored checkpoint's note. */
  state(): AnchorState | undefined {
    const last = this.anchor.status().lastAnchor;
    if (!last) return undefined;
    const note = this.ledger.log.checkpoints().find((cp) => cp.size === last.size && Buffer.from(cp.root).toString('hex') === last.root)?.note;
    if (!note) return undefined;
    return {
      size: last.size,
      checkpointNote: note,
      genesisHash: last.genesisHash,
      blockHash: last.blockHash,
      blockNumber: last.blockNumber,
      extrinsicIndex: last.extrinsicIndex,
      signerPublicKey: last.signer.publicKey,
      endpoint: this.endpoint,
    };
  }

  status(): { state?: AnchorState; endpoint: string; lagEntries: number; lagMs: number; lastError?: string } {
    const s = this.anchor.status();
    return { state: this.state(), endpoint: this.endpoint, lagEntries: s.lag.entries, lagMs: s.lag.ms, ...(s.lastError ? { lastError: s.lastError.message } : {}) };
  }
}

/** The chain part of `aftersmtp verify`. */
export const checkAnchorOnChain: AnchorChecker = (args) =>
  verifyAnchor({
    endpoint: args.endpoint,
    record: { blockHash: args.blockHash, extrinsicIndex: args.extrinsicIndex },
    expected: args.expected,
    signal: args.signal,
  });
