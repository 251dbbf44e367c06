// The node's transparency log: every accepted message hash becomes a leaf (hashes only, never
// addresses or content). Appends requested in the same turn of the event loop share one durable
// transaction; checkpoints are signed every few seconds or every N entries, whichever comes first.
import { GatewayError, openingFile, storageFailure, createPrivateFile, type Scheduler } from '../core/index.ts';
import type { Logger } from 'pino';
import { TransparencyLog, type LeafType, decodeLeaf, encodeLeaf, formatVerifierKey, parseTilePath, SIG_TYPE_ED25519, TILE_WIDTH, type StoredCheckpoint } from '../../ledger/index.ts';
import type { Receipt } from '../../proto/index.ts';
import { WalSyncer } from '../store/index.ts';
import type { ProofBundle, AnchorReference } from './proof.ts';

/** The latest anchor of this log on a chain, as the anchoring service records it. */
export type AnchorState = Omit<AnchorReference, 'checkpoint' | 'consistency'> & { size: number; checkpointNote: string };

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
  private pending: { hash: Uint8Array; type: LeafType; resolve: (r: { index: number; durable: Promise<void> }) => void; reject: (err: unknown) => void }[] = [];
  private flushScheduled = false;
  private sinceCheckpoint = 0;
  private readonly walSyncer: WalSyncer;
  /** The newest checkpoint that is durable, and so may be shown to anyone. */
  private published?: StoredCheckpoint;
  private signing?: Promise<StoredCheckpoint | undefined>;
  /** Checkpoints signed since start (each a signature and an fsync). */
  checkpointsSigned = 0;

  constructor(opts: NodeLedgerOptions) {
    this.opts = opts;
    // Commits write the WAL; the fsync runs off the event loop (see store/wal-sync.ts).
    this.log = openingFile('the transparency log', opts.file, () => {
      createPrivateFile(opts.file); // as the store (store/engine.ts): 0600, and so its -wal/-shm
      return TransparencyLog.open(opts.file, { origin: opts.origin, signingKey: opts.signingKey, durability: 'deferred' });
    });
    this.walSyncer = new WalSyncer(opts.file);
    this.published = this.log.latestCheckpoint();
  }

  /** The message hash in leaf `index`, if the log has that leaf. */
  messageHashAt(index: number): Uint8Array | undefined {
    return index < this.log.size ? decodeLeaf(this.log.leaf(index)).messageHash : undefined;
  }

  /** The newest durable checkpoint. */
  latestCheckpoint(): StoredCheckpoint | undefined {
    return this.published;
  }

  get origin(): string {
    return this.opts.origin;
  }

  /** The note verifier key ("name+keyid+base64") of this log, for verifiers and witnesses. */
  get verifierKey(): string {
    return formatVerifierKey(this.opts.origin, SIG_TYPE_ED25519, this.opts.signingKey.publicKey);
  }

  /** Checkpoints are signed as a job of the node's scheduler, every checkpointIntervalMs if the log grew. */
  start(scheduler: Scheduler): void {
    scheduler.every('checkpoint', this.opts.checkpointIntervalMs, () => this.checkpointIfGrown());
  }

  /**
   * Appends one message leaf. Resolves with its index once committed (not yet synced); `durable`
   * resolves once it is on stable storage. Callers answer nobody before `durable`.
   */
  appendMessage(messageHash: Uint8Array): Promise<{ index: number; durable: Promise<void> }> {
    return this.append(messageHash, 'message');
  }

  /**
   * Appends one audit leaf (what a compliance rule did to a message; its hash from gateway/rules
   * auditHash), committed and synced as message leaves are.
   */
  appendAudit(auditHash: Uint8Array): Promise<{ index: number; durable: Promise<void> }> {
    return this.append(auditHash, 'audit');
  }

  private append(hash: Uint8Array, type: LeafType): Promise<{ index: number; durable: Promise<void> }> {
    return new Promise((resolve, reject) => {
      this.pending.push({ hash, type, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Appends leaves for message hashes at once (startup repair); resolves once durable. */
  async appendNow(messageHashes: Uint8Array[]): Promise<number> {
    const first = this.log.append(messageHashes.map((messageHash) => encodeLeaf({ version: 1, type: 'message', messageHash })));
    await this.walSyncer.sync();
    return first;
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    let first: number;
    try {
      first = this.log.append(batch.map((p) => encodeLeaf({ version: 1, type: p.type, messageHash: p.hash })));
    } catch (err) {
      const failure = storageFailure('transparency log append', err);
      for (const p of batch) p.reject(failure);
      return;
    }
    const durable = this.walSyncer.sync().then(
      () => {
        this.sinceCheckpoint += batch.length;
        if (this.sinceCheckpoint >= this.opts.checkpointEvery) void this.checkpointIfGrown();
      },
      (err: Error) => { throw new GatewayError('STORAGE', `transparency log sync failed: ${err.message}`, { cause: err }); },
    );
    durable.catch(() => { /* reported to each caller through its own await */ });
    batch.forEach((p, i) => p.resolve({ index: first + i, durable }));
  }

  /**
   * Signs a checkpoint of the tree if it grew since the last one. Only durable leaves are signed over,
   * and the checkpoint is published only once it is durable itself: a crash can never lose a
   * checkpoint someone has seen, nor the leaves under it (which would allow a split view).
   */
  checkpointIfGrown(): Promise<StoredCheckpoint | undefined> {
    this.signing ??= this.signDurably().finally(() => { this.signing = undefined; });
    return this.signing;
  }

  private async signDurably(): Promise<StoredCheckpoint | undefined> {
    await this.walSyncer.sync();
    const size = this.log.size; // every leaf appended before the sync above is durable
    const latest = this.log.latestCheckpoint();
    if (latest && latest.size >= size) return this.published;
    let cp: StoredCheckpoint;
    try {
      cp = this.log.signCheckpoint({ size });
    } catch (err) {
      // Refusing to sign an inconsistent checkpoint is the ledger protecting itself: loud, never silent.
      this.opts.log.error({ err: (err as Error).message }, 'checkpoint not signed');
      return this.published;
    }
    this.sinceCheckpoint = 0;
    this.checkpointsSigned++;
    await this.walSyncer.sync();
    this.published = cp;
    return cp;
  }

  receipt(leafIndex: number, messageHash: Uint8Array): Receipt {
    const latest = this.published;
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
  async proofBundle(args: {
    messageHash: Uint8Array; messageId?: Uint8Array; nodeDid: string; keyId: string; anchor?: AnchorState;
    /** The newest witness-cosigned checkpoint of at least minSize (note with cosignature lines), if any. */
    cosigned?: (minSize: number) => { size: number; note: string } | undefined;
  }): Promise<ProofBundle> {
    const index = this.log.leafIndexOf(args.messageHash);
    if (index === undefined) throw new GatewayError('NOT_FOUND', 'no leaf for this message in the transparency log');
    // Prefer a checkpoint peers have cosigned: the proof then shows witnesses saw the same history.
    let cp: { size: number; note: string } | undefined = args.cosigned?.(index + 1) ?? this.published;
    if (!cp || cp.size <= index) cp = await this.checkpointIfGrown();
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

  /**
   * A tlog-tiles resource ("checkpoint", "tile/L/N[.p/W]", "tile/entries/N[.p/W]"), served read-only.
   * Only what the published (durable) checkpoint covers is served, so nobody sees a leaf that a crash
   * could still take back. Returns undefined for anything else.
   */
  resource(path: string): { body: Uint8Array; contentType: string; immutable: boolean } | undefined {
    const published = this.published;
    if (path === 'checkpoint') {
      return published ? { body: new TextEncoder().encode(published.note), contentType: 'text/plain; charset=utf-8', immutable: false } : undefined;
    }
    const parsed = parseTilePath(path);
    if (!parsed || !published) return undefined;
    const level = parsed.kind === 'tile' ? parsed.level : 0;
    const width = parsed.width ?? TILE_WIDTH;
    const leavesCovered = (parsed.index * TILE_WIDTH + width) * TILE_WIDTH ** level;
    if (leavesCovered > published.size) return undefined;
    try {
      return { body: this.log.resource(path), contentType: 'application/octet-stream', immutable: parsed.width === undefined };
    } catch {
      return undefined;
    }
  }

  async stop(): Promise<void> {
    this.flush();
    await this.checkpointIfGrown().catch(() => undefined);
    await this.walSyncer.close();
    this.log.close();
  }
}
