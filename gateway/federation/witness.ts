// Witnessing (docs/LEDGER.md "Witnessing"): federated peers cosign each other's checkpoints, so a
// node cannot show one history to some and another to others (a split view) without being caught.
//
// The exchange is C2SP tlog-witness "add-checkpoint", carried as the RPC Provenance.Cosign over the
// authenticated peer transport: the log presents its newest signed checkpoint, the size the witness
// saw last, and a consistency proof from there. The witness checks the log's signature with a key of
// the log's DID, checks consistency with what it saw before, remembers the new checkpoint durably,
// and only then returns its cosignature (C2SP tlog-cosignature, named by the witness's DID). A
// checkpoint inconsistent with one seen before is recorded as a split view and never cosigned.
import type { Logger } from 'pino';
import {
  bytesEqual,
  cosignCheckpoint,
  cosignatureKeyId,
  ed25519NoteVerifier,
  openCheckpoint,
  parseNote,
  verifyConsistency,
  verifyCosignature,
  addSignatures,
} from '../../ledger/index.ts';
import { loadProto } from '../../proto/index.ts';
import type { DidResolver } from '../../identity/index.ts';
import type { MessageStream, PeerConnection } from '../transport/index.ts';
import type { Storage } from '../storage.ts';
import type { NodeLedger } from '../ledger.ts';
import { GatewayError, peerErrorCode } from '../errors.ts';

export const COSIGN_METHOD = '/aftersmtp.v1.Provenance/Cosign';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS witnessed_logs (
  log_did TEXT NOT NULL, origin TEXT NOT NULL, size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL,
  updated_ms INTEGER NOT NULL, PRIMARY KEY (log_did, origin));
CREATE TABLE IF NOT EXISTS split_views (
  id INTEGER PRIMARY KEY AUTOINCREMENT, log_did TEXT NOT NULL, origin TEXT NOT NULL,
  seen_note TEXT NOT NULL, presented_note TEXT NOT NULL, detail TEXT NOT NULL, detected_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoint_cosignatures (
  size INTEGER NOT NULL, witness_did TEXT NOT NULL, line TEXT NOT NULL, note TEXT NOT NULL, received_ms INTEGER NOT NULL,
  PRIMARY KEY (size, witness_did));
CREATE TABLE IF NOT EXISTS witness_progress (
  witness_did TEXT PRIMARY KEY, known_size INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
`;

export interface WitnessedLog { logDid: string; origin: string; size: number; root: Uint8Array; note: string }
export interface SplitView { logDid: string; origin: string; seenNote: string; presentedNote: string; detail: string; detectedMs: number }

/** Both sides' witnessing state, in the node's database (durable writes through the group commit). */
export class WitnessStore {
  readonly #storage: Storage;

  constructor(storage: Storage) {
    this.#storage = storage;
    storage.db.exec(SCHEMA);
  }

  // --- as a witness of other logs ---

  witnessedLog(logDid: string, origin: string): WitnessedLog | undefined {
    const row = this.#storage.db.prepare('SELECT * FROM witnessed_logs WHERE log_did = ? AND origin = ?').get(logDid, origin) as
      { log_did: string; origin: string; size: number; root: Uint8Array; note: string } | undefined;
    return row && { logDid: row.log_did, origin: row.origin, size: Number(row.size), root: new Uint8Array(row.root), note: row.note };
  }

  countWitnessedLogs(): number {
    return Number((this.#storage.db.prepare('SELECT count(*) AS n FROM witnessed_logs').get() as { n: number }).n);
  }

  saveWitnessedLog(w: WitnessedLog): Promise<void> {
    return this.#storage.write(() => {
      this.#storage.db.prepare(`INSERT INTO witnessed_logs VALUES (?,?,?,?,?,?)
        ON CONFLICT(log_did, origin) DO UPDATE SET size = excluded.size, root = excluded.root, note = excluded.note, updated_ms = excluded.updated_ms`)
        .run(w.logDid, w.origin, w.size, w.root, w.note, Date.now());
    });
  }

  recordSplitView(s: SplitView): Promise<void> {
    return this.#storage.write(() => {
      this.#storage.db.prepare('INSERT INTO split_views (log_did, origin, seen_note, presented_note, detail, detected_ms) VALUES (?,?,?,?,?,?)')
        .run(s.logDid, s.origin, s.seenNote, s.presentedNote, s.detail, s.detectedMs);
    });
  }

  splitViews(): SplitView[] {
    const rows = this.#storage.db.prepare('SELECT * FROM split_views ORDER BY id').all() as
      { log_did: string; origin: string; seen_note: string; presented_note: string; detail: string; detected_ms: number }[];
    return rows.map((r) => ({ logDid: r.log_did, origin: r.origin, seenNote: r.seen_note, presentedNote: r.presented_note, detail: r.detail, detectedMs: Number(r.detected_ms) }));
  }

  // --- as a log whose checkpoints others cosign ---

  addCosignature(args: { size: number; witnessDid: string; line: string; note: string; knownSize: number }): Promise<void> {
    return this.#storage.write(() => {
      this.#storage.db.prepare('INSERT OR REPLACE INTO checkpoint_cosignatures VALUES (?,?,?,?,?)')
        .run(args.size, args.witnessDid, args.line, args.note, Date.now());
      this.#setKnownSize(args.witnessDid, args.knownSize);
    });
  }

  setKnownSize(witnessDid: string, size: number): Promise<void> {
    return this.#storage.write(() => this.#setKnownSize(witnessDid, size));
  }

  #setKnownSize(witnessDid: string, size: number): void {
    this.#storage.db.prepare(`INSERT INTO witness_progress VALUES (?,?,?)
      ON CONFLICT(witness_did) DO UPDATE SET known_size = excluded.known_size, updated_ms = excluded.updated_ms`).run(witnessDid, size, Date.now());
  }

  /** The size the witness last saw of our log (what it expects as old_size), 0 if it saw none. */
  knownSize(witnessDid: string): number {
    const row = this.#storage.db.prepare('SELECT known_size FROM witness_progress WHERE witness_did = ?').get(witnessDid) as { known_size: number } | undefined;
    return row ? Number(row.known_size) : 0;
  }

  /** The largest of our checkpoints this witness has cosigned (0 = none). */
  cosignedSize(witnessDid: string): number {
    const row = this.#storage.db.prepare('SELECT max(size) AS s FROM checkpoint_cosignatures WHERE witness_did = ?').get(witnessDid) as { s: number | null };
    return Number(row.s ?? 0);
  }

  countCosignedCheckpoints(): number {
    return Number((this.#storage.db.prepare('SELECT count(DISTINCT size) AS n FROM checkpoint_cosignatures').get() as { n: number }).n);
  }

  /**
   * The newest of our checkpoints of size >= minSize that carries cosignatures, as a signed note with
   * every cosignature line appended; undefined when none does.
   */
  cosignedCheckpoint(minSize: number): { size: number; note: string; witnesses: number } | undefined {
    const top = this.#storage.db.prepare('SELECT max(size) AS s FROM checkpoint_cosignatures WHERE size >= ?').get(minSize) as { s: number | null };
    if (top.s === null) return undefined;
    const rows = this.#storage.db.prepare('SELECT line, note FROM checkpoint_cosignatures WHERE size = ? ORDER BY witness_did').all(top.s) as { line: string; note: string }[];
    return { size: Number(top.s), note: addSignatures(rows[0]!.note, rows.map((r) => r.line)), witnesses: rows.length };
  }
}

// --- the wire (one request, one reply, on its own stream) ------------------------------------------

export interface CosignRequestIn { note: string; oldSize: number; consistency: Uint8Array[]; logDid: string }
export interface CosignReplyIn { cosignatureLine: string; errorCode: string; errorMessage: string; knownSize: number }

function cosignCodec() {
  return (loadProto().packageDefinition['aftersmtp.v1.Provenance'] as unknown as Record<string, {
    requestSerialize(v: unknown): Buffer; requestDeserialize(b: Buffer): unknown; responseSerialize(v: unknown): Buffer; responseDeserialize(b: Buffer): unknown;
  }>).Cosign!;
}

function toRequest(raw: unknown): CosignRequestIn {
  const r = raw as { note?: string; oldSize?: string | number; consistency?: Uint8Array[]; logDid?: string };
  return { note: r.note ?? '', oldSize: Number(r.oldSize ?? 0), consistency: (r.consistency ?? []).map((b) => new Uint8Array(b)), logDid: r.logDid ?? '' };
}

/** Asks the witness at the other end of `conn` to cosign. Resolves with its reply (errors included). */
export async function requestCosign(conn: PeerConnection, request: CosignRequestIn, signal?: AbortSignal): Promise<CosignReplyIn> {
  const codec = cosignCodec();
  const stream = await conn.openStream(COSIGN_METHOD, { signal });
  await stream.send(codec.requestSerialize({ ...request, consistency: request.consistency.map((b) => Buffer.from(b)) }), { signal });
  await stream.end();
  for await (const message of stream) {
    const r = codec.responseDeserialize(Buffer.from(message)) as { cosignatureLine?: string; errorCode?: string; errorMessage?: string; knownSize?: string | number };
    return { cosignatureLine: r.cosignatureLine ?? '', errorCode: r.errorCode ?? '', errorMessage: r.errorMessage ?? '', knownSize: Number(r.knownSize ?? 0) };
  }
  throw new GatewayError('PEER_UNAVAILABLE', 'the witness closed the stream without a reply');
}

/** Serves one cosign request from an authenticated peer. Never throws. */
export async function serveCosign(stream: MessageStream, conn: PeerConnection, witness: Witness): Promise<void> {
  const codec = cosignCodec();
  try {
    for await (const message of stream) {
      let reply: Partial<CosignReplyIn>;
      try {
        const request = toRequest(codec.requestDeserialize(Buffer.from(message)));
        reply = { cosignatureLine: await witness.cosign(request, { authenticatedKey: conn.remotePublicKey }) };
      } catch (err) {
        const e = err as GatewayError & { knownSize?: number };
        const code = typeof e.code === 'string' ? e.code : 'INTERNAL';
        reply = { errorCode: code, errorMessage: code === 'INTERNAL' ? 'internal error' : e.message, knownSize: e.knownSize ?? 0 };
      }
      await stream.send(codec.responseSerialize(reply));
      break;
    }
    await stream.end();
  } catch (err) {
    stream.abort(err as Error);
  }
}

// --- the witness role ------------------------------------------------------------------------------

export class ConflictError extends GatewayError {
  readonly knownSize: number;
  constructor(message: string, knownSize: number) {
    super('CONFLICT', message);
    this.knownSize = knownSize;
  }
}

export interface WitnessOptions {
  store: WitnessStore;
  resolver: DidResolver;
  /** This node's DID: the cosigner name in every cosignature line. */
  nodeDid: string;
  signingKey: { privateKey: Uint8Array; publicKey: Uint8Array };
  maxLogs: number;
  log: Logger;
}

/** Checks and cosigns other nodes' checkpoints. */
export class Witness {
  readonly refused: Record<string, number> = {};
  readonly #opts: WitnessOptions;
  /** One request at a time per log: the check-then-save of its state must not interleave. */
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(opts: WitnessOptions) {
    this.#opts = opts;
  }

  get splitViewCount(): number {
    return this.#opts.store.splitViews().length;
  }

  /**
   * Verifies a log's checkpoint against what this witness saw before and returns the cosignature line.
   * `authenticatedKey` (the transport-authenticated key of the caller) must be a key of `logDid`.
   */
  async cosign(req: CosignRequestIn, ctx: { authenticatedKey?: Uint8Array } = {}): Promise<string> {
    try {
      return await this.#cosign(req, ctx);
    } catch (err) {
      const code = (err as GatewayError).code ?? 'INTERNAL';
      this.refused[code] = (this.refused[code] ?? 0) + 1;
      const level = code === 'SPLIT_VIEW' ? 'warn' : 'info';
      this.#opts.log[level]({ logDid: req.logDid, code, err: (err as Error).message }, 'cosign request refused');
      throw err;
    }
  }

  async #cosign(req: CosignRequestIn, ctx: { authenticatedKey?: Uint8Array }): Promise<string> {
    const { store, resolver } = this.#opts;
    if (!/^did:[a-z0-9]+:/.test(req.logDid)) throw new GatewayError('INVALID_ARGUMENT', 'log_did must name the log\'s DID');
    if (!req.note || req.note.length > 16_384) throw new GatewayError('INVALID_ARGUMENT', 'note must be a signed checkpoint of at most 16 KiB');
    let origin: string;
    try {
      origin = parseNote(req.note).text.split('\n', 1)[0]!;
    } catch (err) {
      throw new GatewayError('INVALID_ARGUMENT', `not a signed note: ${(err as Error).message}`);
    }
    const keys = await resolver.resolveKeys(req.logDid).catch((err: Error) => {
      throw new GatewayError('PEER_REJECTED', `cannot resolve the log's DID ${req.logDid}: ${err.message}`);
    });
    if (ctx.authenticatedKey && ![...keys.authentication.values()].some((k) => bytesEqual(k, ctx.authenticatedKey!))) {
      throw new GatewayError('PEER_REJECTED', `the connection's key is not in ${req.logDid}'s DID document`);
    }
    // The checkpoint must be signed, under its origin name, by a key of the log's DID.
    const candidates = [...new Map([...keys.assertionMethod, ...keys.authentication].map(([, k]) => [Buffer.from(k).toString('hex'), k])).values()];
    let opened;
    try {
      opened = openCheckpoint(req.note, { log: candidates.map((k) => ed25519NoteVerifier(origin, k)), origin });
    } catch (err) {
      throw new GatewayError('BAD_SIGNATURE', `the checkpoint is not signed by a key of ${req.logDid}: ${(err as Error).message}`);
    }
    const cp = opened.checkpoint;
    const lockKey = `${req.logDid} ${origin}`;
    const previous = this.#locks.get(lockKey) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(async () => {
      const seen = store.witnessedLog(req.logDid, origin);
      if (!seen) {
        if (req.oldSize !== 0) throw new ConflictError(`this witness has seen no checkpoint of ${origin}; old_size must be 0`, 0);
        if (store.countWitnessedLogs() >= this.#opts.maxLogs) throw new GatewayError('LIMIT', `this witness already follows ${this.#opts.maxLogs} logs`);
      } else {
        const splitView = (detail: string) => this.#splitView(seen, req.note, detail);
        if (cp.size === seen.size && !bytesEqual(cp.root, seen.root)) {
          await splitView(`two checkpoints of size ${cp.size} with different roots`);
        }
        if (cp.size < seen.size) throw new ConflictError(`this witness has seen size ${seen.size} of ${origin}, newer than ${cp.size}`, seen.size);
        if (req.oldSize !== seen.size) throw new ConflictError(`old_size ${req.oldSize} is not the size this witness has seen (${seen.size})`, seen.size);
        if (cp.size > seen.size && !verifyConsistency(seen.size, cp.size, req.consistency, seen.root, cp.root)) {
          await splitView(`checkpoint ${cp.size} is not consistent with the checkpoint ${seen.size} seen before`);
        }
      }
      // Remember before answering: a witness that cosigned must never forget what it vouched for.
      if (!seen || cp.size > seen.size) {
        await store.saveWitnessedLog({ logDid: req.logDid, origin, size: cp.size, root: cp.root, note: req.note });
      }
      return cosignCheckpoint({ privateKey: this.#opts.signingKey.privateKey, publicKey: this.#opts.signingKey.publicKey }, this.#opts.nodeDid, opened.text);
    });
    this.#locks.set(lockKey, run);
    try {
      return await run;
    } finally {
      if (this.#locks.get(lockKey) === run) this.#locks.delete(lockKey);
    }
  }

  async #splitView(seen: WitnessedLog, presented: string, detail: string): Promise<never> {
    await this.#opts.store.recordSplitView({ logDid: seen.logDid, origin: seen.origin, seenNote: seen.note, presentedNote: presented, detail, detectedMs: Date.now() });
    this.#opts.log.error({ logDid: seen.logDid, origin: seen.origin, detail }, 'SPLIT VIEW: a peer log presented a checkpoint inconsistent with one it showed before');
    throw new GatewayError('SPLIT_VIEW', `split view of ${seen.origin}: ${detail}; recorded, not cosigned`);
  }
}

// --- the log role: collecting cosignatures from peers -------------------------------------------------

export interface WitnessStatus { cosignedSize: number; lastError: string; lastAttemptMs: number }

export interface CosignCollectorOptions {
  store: WitnessStore;
  ledger: NodeLedger;
  resolver: DidResolver;
  nodeDid: string;
  intervalMs: number;
  /** The domains whose nodes are asked to cosign (evaluated at each round). */
  witnesses: () => string[];
  /** An authenticated connection to a domain's node, and that node's DID. */
  connect: (domain: string, signal?: AbortSignal) => Promise<{ conn: PeerConnection; peerDid: string }>;
  log: Logger;
}

/** Presents our newest checkpoint to each witness peer and keeps the cosignatures that verify. */
export class CosignCollector {
  readonly #opts: CosignCollectorOptions;
  readonly #status = new Map<string, WitnessStatus & { did: string }>();
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  readonly #stopping = new AbortController();

  constructor(opts: CosignCollectorOptions) {
    this.#opts = opts;
  }

  start(): void {
    this.#timer = setInterval(() => void this.collect().catch(() => {}), this.#opts.intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#stopping.abort();
    // A round blocked on dialing an unreachable witness is abandoned (its writes are each durable).
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#round?.catch(() => {}), new Promise((r) => { timer = setTimeout(r, 500); })]);
    clearTimeout(timer);
  }

  /** Per witness domain: its DID once reached, what it cosigned last and the last error. */
  status(domain: string): (WitnessStatus & { did: string }) | undefined {
    return this.#status.get(domain);
  }

  /** One round over every witness (rounds never overlap). */
  collect(): Promise<void> {
    this.#round ??= this.#collect().finally(() => { this.#round = undefined; });
    return this.#round;
  }

  async #collect(): Promise<void> {
    const cp = this.#opts.ledger.latestCheckpoint();
    if (!cp) return;
    for (const domain of this.#opts.witnesses()) {
      if (this.#stopping.signal.aborted) return;
      const previous = this.#status.get(domain);
      if (previous && previous.cosignedSize >= cp.size && !previous.lastError) continue;
      const entry = { did: previous?.did ?? '', cosignedSize: previous?.cosignedSize ?? 0, lastError: '', lastAttemptMs: Date.now() };
      try {
        const { did, size } = await this.#cosignAt(domain, cp);
        entry.did = did;
        entry.cosignedSize = size;
      } catch (err) {
        entry.lastError = `${(err as GatewayError).code ?? 'ERROR'}: ${(err as Error).message}`;
        this.#opts.log.info({ witness: domain, err: entry.lastError }, 'cosignature not obtained');
      }
      this.#status.set(domain, entry);
    }
  }

  async #cosignAt(domain: string, cp: { size: number; note: string }): Promise<{ did: string; size: number }> {
    const { store, ledger, resolver } = this.#opts;
    const signal = AbortSignal.any([this.#stopping.signal, AbortSignal.timeout(30_000)]);
    const { conn, peerDid } = await this.#opts.connect(domain, signal);
    if (store.cosignedSize(peerDid) >= cp.size) return { did: peerDid, size: store.cosignedSize(peerDid) };
    let oldSize = store.knownSize(peerDid);
    for (let attempt = 0; ; attempt++) {
      if (oldSize > cp.size) throw new GatewayError('CONFLICT', `the witness has seen size ${oldSize}, beyond our checkpoint ${cp.size}`);
      const consistency = oldSize > 0 && oldSize < cp.size ? ledger.log.consistencyProof(oldSize, cp.size) : [];
      const reply = await requestCosign(conn, { note: cp.note, oldSize, consistency, logDid: this.#opts.nodeDid }, signal);
      if (reply.errorCode === 'CONFLICT' && attempt === 0 && reply.knownSize !== oldSize) {
        // The witness saw another size of our log (our record of it was lost or is stale): prove from there.
        oldSize = reply.knownSize;
        continue;
      }
      if (reply.errorCode) throw new GatewayError(peerErrorCode(reply.errorCode), `witness ${peerDid}: ${reply.errorMessage}`);
      // Keep only a cosignature that verifies with a key of the witness's DID.
      const keys = await resolver.resolveKeys(peerDid);
      const line = reply.cosignatureLine.endsWith('\n') ? reply.cosignatureLine : `${reply.cosignatureLine}\n`;
      const keyIdHex = parseNote(`x\n\n${line}`).signatures[0]?.keyId;
      const key = [...keys.assertionMethod.values(), ...keys.authentication.values()].find((k) => cosignatureKeyId(peerDid, k) === keyIdHex);
      if (!key) throw new GatewayError('BAD_SIGNATURE', `witness ${peerDid} cosigned with a key not in its DID document`);
      try {
        verifyCosignature(key, peerDid, parseNote(cp.note).text, line);
      } catch (err) {
        throw new GatewayError('BAD_SIGNATURE', `witness ${peerDid} returned a cosignature that does not verify: ${(err as Error).message}`);
      }
      await store.addCosignature({ size: cp.size, witnessDid: peerDid, line, note: cp.note, knownSize: cp.size });
      return { did: peerDid, size: cp.size };
    }
  }
}

