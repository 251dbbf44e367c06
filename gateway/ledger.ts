// The node's transparency log: every accepted message hash becomes a leaf (hashes only, never
// addresses or content). Appends requested in the same turn of the event loop share one durable
// transaction; checkpoints are signed every few seconds or every N entries, whichever comes first.
import type { Logger } from 'pino';
import { TransparencyLog, encodeLeaf, formatVerifierKey, SIG_TYPE_ED25519, type StoredCheckpoint } from '../ledger/index.ts';
import type { Receipt } from '../proto/index.ts';
import { GatewayError } from './errors.ts';
import type { ProofBundle, AnchorReference } from './proof.ts';

/** The latest anchor of this log on a chain, as the anchoring service records it. */
export interface AnchorState {
  size: number;
  checkpointNote: string;
  genesisHash: string;
  blockHash: string;
  blockNumber: number;
  extrinsicIndex: number;
  signerPublicKey: string;
  endpoint?: string;
}

export interface NodeLedgerOptions {
  file: string;
  origin: string;
  signingKey: { privateKey: Uint8Array; publicKey: Uint8Array };
  checkpointIntervalMs: number;
  checkpointEvery: number;
  log: Logger;
}

export class NodeLedger {
  readonly log: TransparencyLog;
  private readonly opts: NodeLedgerOptions;
  private pending: { hash: Uint8Array; resolve: (index: number) => void; reject: (err: unknown) => void }[] = [];
  private flushScheduled = false;
  private timer?: NodeJS.Timeout;
  private sinceCheckpoint = 0;

  constructor(opts: NodeLedgerOptions) {
    this.opts = opts;
    this.log = TransparencyLog.open(opts.file, { origin: opts.origin, signingKey: opts.signingKey });
  }

  get origin(): string {
    return this.opts.origin;
  }

  /** The note verifier key ("name+keyid+base64") of this log, for verifiers and witnesses. */
  get verifierKey(): string {
    return formatVerifierKey(this.opts.origin, SIG_TYPE_ED25519, this.opts.signingKey.publicKey);
  }

  start(): void {
    this.timer = setInterval(() => this.checkpointIfGrown(), this.opts.checkpointIntervalMs);
    this.timer.unref();
  }

  /** Appends one message leaf; resolves with its index once durable. */
  appendMessage(messageHash: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      this.pending.push({ hash: messageHash, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    let first: number;
    try {
      first = this.log.append(batch.map((p) => encodeLeaf({ version: 1, type: 'message', messageHash: p.hash })));
    } catch (err) {
      const failure = new GatewayError('STORAGE', `transparency log append failed: ${(err as Error).message}`, { cause: err });
      for (const p of batch) p.reject(failure);
      return;
    }
    batch.forEach((p, i) => p.resolve(first + i));
    this.sinceCheckpoint += batch.length;
    if (this.sinceCheckpoint >= this.opts.checkpointEvery) this.checkpointIfGrown();
  }

  /** Signs a checkpoint of the current tree if it grew since the last one. */
  checkpointIfGrown(): StoredCheckpoint | undefined {
    const latest = this.log.latestCheckpoint();
    if (latest && latest.size === this.log.size) return latest;
    if (this.log.size === 0 && latest) return latest;
    try {
      const cp = this.log.signCheckpoint();
      this.sinceCheckpoint = 0;
      return cp;
    } catch (err) {
      // Refusing to sign an inconsistent checkpoint is the ledger protecting itself: loud, never silent.
      this.opts.log.error({ err: (err as Error).message }, 'checkpoint not signed');
      return undefined;
    }
  }

  receipt(leafIndex: number, messageHash: Uint8Array): Receipt {
    const latest = this.log.latestCheckpoint();
    return {
      logOrigin: this.opts.origin,
      leafIndex,
      // 0 = pending: the leaf will be in the next checkpoint (at most checkpointIntervalMs away).
      checkpointSize: latest && latest.size > leafIndex ? latest.size : 0,
      messageHash,
    };
  }

  /**
   * A proof bundle for the leaf holding messageHash: inclusion in the latest checkpoint (one is signed
   * now if none covers the leaf yet) and, when given, the anchor whose checkpoint covers it.
   */
  proofBundle(args: { messageHash: Uint8Array; messageId?: Uint8Array; nodeDid: string; keyId: string; anchor?: AnchorState }): ProofBundle {
    const index = this.log.leafIndexOf(args.messageHash);
    if (index === undefined) throw new GatewayError('NOT_FOUND', 'no leaf for this message in the transparency log');
    let cp = this.log.latestCheckpoint();
    if (!cp || cp.size <= index) cp = this.checkpointIfGrown();
    if (!cp || cp.size <= index) throw new GatewayError('STORAGE', 'no checkpoint covers the leaf yet; retry shortly');
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    let anchor: AnchorReference | null = null;
    if (args.anchor && args.anchor.size >= cp.size) {
      anchor = {
        checkpoint: args.anchor.checkpointNote,
        consistency: this.log.consistencyProof(cp.size, args.anchor.size).map(hex),
        genesisHash: args.anchor.genesisHash,
        blockHash: args.anchor.blockHash,
        blockNumber: args.anchor.blockNumber,
        extrinsicIndex: args.anchor.extrinsicIndex,
        signerPublicKey: args.anchor.signerPublicKey,
        ...(args.anchor.endpoint ? { endpoint: args.anchor.endpoint } : {}),
      };
    }
    return {
      version: 1,
      type: 'aftersmtp-proof',
      messageHash: hex(args.messageHash),
      ...(args.messageId ? { messageId: hex(args.messageId) } : {}),
      log: { origin: this.opts.origin, verifierKey: this.verifierKey, nodeDid: args.nodeDid, keyId: args.keyId },
      leafIndex: index,
      leaf: hex(this.log.leaf(index)),
      checkpoint: cp.note,
      inclusion: this.log.inclusionProof(index, cp.size).map(hex),
      anchor,
    };
  }

  stop(): void {
    clearInterval(this.timer);
    this.flush();
    this.checkpointIfGrown();
    this.log.close();
  }
}
