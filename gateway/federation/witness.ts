// Witnessing (docs/LEDGER.md "Witnessing"): federated peers cosign each other's checkpoints, so a
// node cannot show one history to some and another to others (a split view) without being caught.
//
// The exchange is C2SP tlog-witness "add-checkpoint", carried as the RPC Provenance.Cosign over the
// authenticated peer transport: the log presents its newest signed checkpoint, the size the witness
// saw last, and a consistency proof from there. The witness checks the log's signature with a key of
// the log's DID, checks consistency with what it saw before, remembers the new checkpoint durably,
// and only then returns its cosignature (C2SP tlog-cosignature, named by the witness's DID). A
// checkpoint inconsistent with one seen before is recorded as a split view and never cosigned.
import { GatewayError, peerErrorCode, type Scheduler } from '../core/index.ts';
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
  noteKeyId,
  SIG_TYPE_ED25519,
  type Checkpoint,
} from '../../ledger/index.ts';
import { loadProto } from '../../proto/index.ts';
import { parseDidWeb, type DidResolver } from '../../identity/index.ts';
import type { MessageStream, PeerConnection } from '../transport/index.ts';
import type { WitnessRepository, WitnessedLog } from '../store/index.ts';
import type { NodeLedger } from '../provenance/index.ts';

export const COSIGN_METHOD = '/aftersmtp.v1.Provenance/Cosign';

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

/** Who speaks for a domain: the DID its route names. */
export interface DomainRoute {
  did: string;
  /** Set by the operator (config or `aftersmtp route add`), not found through DNS. */
  configured: boolean;
}

export interface WitnessOptions {
  store: WitnessRepository;
  resolver: DidResolver;
  /** This node's DID: the cosigner name in every cosignature line. */
  nodeDid: string;
  signingKey: { privateKey: Uint8Array; publicKey: Uint8Array };
  /** Logs followed at most, configured peers' logs apart (those are always followed). */
  maxLogs: number;
  /** This node's own log origin and mail domains: never cosigned for anyone else. */
  ownOrigin: string;
  localDomains: string[];
  /**
   * The route for a domain. With `discover` false only configured routes count (no DNS query, no DID
   * lookup); with true, DNS discovery as well. Undefined when there is none.
   */
  routeOf: (domain: string, opts: { discover: boolean }) => Promise<DomainRoute | undefined>;
  log: Logger;
}

/** A DID may present a few logs (origins), not endless ones. */
const MAX_ORIGINS_PER_LOG_DID = 4;

/** The domain an origin belongs to: the origin up to its first "/" ("b.test/aftersmtp" -> "b.test"). */
function domainOfOrigin(origin: string): string {
  return origin.split('/', 1)[0]!;
}

/** The host a did:web without a path names (did:web:b.test -> b.test); undefined for any other DID. */
function didWebHost(did: string): string | undefined {
  if (!did.startsWith('did:web:')) return undefined;
  try {
    const parts = parseDidWeb(did);
    return parts.path.length === 0 ? parts.host.toLowerCase() : undefined;
  } catch {
    return undefined;
  }
}

/** The checkpoint in `note` when `key` signed it under `origin`, else undefined. */
function signedBy(note: string, origin: string, key: Uint8Array): Checkpoint | undefined {
  try {
    return openCheckpoint(note, { log: ed25519NoteVerifier(origin, key), origin }).checkpoint;
  } catch {
    return undefined;
  }
}

/** Checks and cosigns other nodes' checkpoints. */
export class Witness {
  readonly refused: Record<string, number> = {};
  readonly #opts: WitnessOptions;
  /** One request at a time per origin: the check-then-save of its state must not interleave. */
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(opts: WitnessOptions) {
    this.#opts = opts;
  }

  get splitViewCount(): number {
    return this.#opts.store.splitViews().length;
  }

  get witnessedLogCount(): number {
    return this.#opts.store.countWitnessedLogs();
  }

  /**
   * Verifies a log's checkpoint against what this witness saw before and returns the cosignature line.
   * `authenticatedKey` (the transport-authenticated key of the caller) must be a key of `logDid`; a
   * request without one is anonymous (the public gRPC port) and is taken only for configured peers.
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
    if (!/^did:[a-z0-9]+:/.test(req.logDid)) throw new GatewayError('INVALID_ARGUMENT', 'log_did must name the log\'s DID');
    if (!req.note || req.note.length > 16_384) throw new GatewayError('INVALID_ARGUMENT', 'note must be a signed checkpoint of at most 16 KiB');
    let origin: string;
    try {
      origin = parseNote(req.note).text.split('\n', 1)[0]!;
    } catch (err) {
      throw new GatewayError('INVALID_ARGUMENT', `not a signed note: ${(err as Error).message}`);
    }
    const domain = domainOfOrigin(origin);
    // A cosignature of "our" log signed by someone else would vouch for a history we never wrote.
    if (origin === this.#opts.ownOrigin || this.#opts.localDomains.some((d) => d.toLowerCase() === domain.toLowerCase())) {
      throw new GatewayError('PEER_REJECTED', `${origin} is this node's own log or domain: this witness cosigns it for nobody else`);
    }
    const previous = this.#locks.get(origin) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.#cosignOrigin(req, origin, domain, ctx));
    this.#locks.set(origin, run);
    try {
      return await run;
    } finally {
      if (this.#locks.get(origin) === run) this.#locks.delete(origin);
    }
  }

  async #cosignOrigin(req: CosignRequestIn, origin: string, domain: string, ctx: { authenticatedKey?: Uint8Array }): Promise<string> {
    const { store, resolver } = this.#opts;
    const seen = store.witnessedLog(origin);
    // Two trees of one size signed by the log's key are a split view whoever presents the second, and
    // checking it needs nothing but the key this witness already holds.
    const bySeenKey = seen?.logKey && signedBy(req.note, origin, seen.logKey);
    if (bySeenKey) await this.#refuseSameSizeFork(seen!, bySeenKey, req);
    const { configured } = await this.#speaksFor(req.logDid, domain, !ctx.authenticatedKey);
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
    const signedKeyIds = new Set(opened.logSignatures.map((s) => s.keyId));
    const signers = candidates.filter((k) => signedKeyIds.has(noteKeyId(origin, SIG_TYPE_ED25519, k)));
    const cp = opened.checkpoint;
    let logKey: Uint8Array;
    if (!seen) {
      if (req.oldSize !== 0) throw new ConflictError(`this witness has seen no checkpoint of ${origin}; old_size must be 0`, 0);
      if (!configured && store.countWitnessedLogs() >= this.#opts.maxLogs) throw new GatewayError('LIMIT', `this witness already follows ${this.#opts.maxLogs} logs`);
      if (store.countOriginsOf(req.logDid) >= MAX_ORIGINS_PER_LOG_DID) throw new GatewayError('LIMIT', `this witness already follows ${MAX_ORIGINS_PER_LOG_DID} logs of ${req.logDid}`);
      logKey = signers[0]!;
    } else {
      // One key per origin: the key this witness knows, or (state carried over without it) the key
      // that signed the checkpoint it saw.
      const known = seen.logKey ?? signers.find((k) => signedBy(seen.note, origin, k));
      if (!known || !signers.some((k) => bytesEqual(k, known))) {
        await this.#recordSplitView(seen, req.note, `signed by another key than the one this witness knows for ${origin} (presented as ${req.logDid})`);
        throw new GatewayError('PEER_REJECTED', `this witness follows ${origin} under another key; a log with a new key needs a new origin`);
      }
      logKey = known;
      await this.#refuseSameSizeFork(seen, cp, req);
      if (cp.size < seen.size) throw new ConflictError(`this witness has seen size ${seen.size} of ${origin}, newer than ${cp.size}`, seen.size);
      if (req.oldSize !== seen.size) throw new ConflictError(`old_size ${req.oldSize} is not the size this witness has seen (${seen.size})`, seen.size);
      if (cp.size > seen.size && !verifyConsistency(seen.size, cp.size, req.consistency, seen.root, cp.root)) {
        await this.#splitView(seen, req.note, `checkpoint ${cp.size} is not consistent with the checkpoint ${seen.size} seen before`);
      }
    }
    // Remember before answering: a witness that cosigned must never forget what it vouched for.
    if (!seen || cp.size > seen.size || !seen.logKey) {
      await store.saveWitnessedLog({ origin, logDid: req.logDid, logKey, size: cp.size, root: cp.root, note: req.note });
    }
    return cosignCheckpoint({ privateKey: this.#opts.signingKey.privateKey, publicKey: this.#opts.signingKey.publicKey }, this.#opts.nodeDid, opened.text);
  }

  /**
   * Whether `logDid` may sign checkpoints for `domain` (an origin's domain): a configured route for the
   * domain names it; without one, over the authenticated peer transport, the DID is did:web:<domain> or
   * DNS discovery names it. Anonymous callers get configured routes only: the public port makes the
   * node look up nothing a caller chose, and keeps no state for throwaway DIDs.
   */
  async #speaksFor(logDid: string, domain: string, anonymous: boolean): Promise<{ configured: boolean }> {
    if (!domain || domain !== domain.toLowerCase()) {
      throw new GatewayError('PEER_REJECTED', `the origin must start with the log's domain in lower case ("${domain}/...")`);
    }
    const configured = await this.#opts.routeOf(domain, { discover: false });
    if (configured) {
      if (configured.did === logDid) return { configured: true };
      throw new GatewayError('PEER_REJECTED', `the configured route for ${domain} names ${configured.did}, not ${logDid}`);
    }
    if (anonymous) {
      throw new GatewayError('PEER_REJECTED', `no configured route for ${domain}: on the public port only configured peers' logs are witnessed`);
    }
    if (didWebHost(logDid) === domain) return { configured: false };
    // Discovery only ever finds a did:web (its document lists the endpoints): a did:key, which any
    // caller can make by the thousand, costs no DNS query.
    if (logDid.startsWith('did:web:')) {
      const discovered = await this.#opts.routeOf(domain, { discover: true });
      if (discovered?.did === logDid) return { configured: false };
    }
    throw new GatewayError('PEER_REJECTED', `${logDid} does not speak for ${domain} (neither did:web:${domain} nor the DID its route names; a did:key log needs a configured route)`);
  }

  async #refuseSameSizeFork(seen: WitnessedLog, cp: Checkpoint, req: CosignRequestIn): Promise<void> {
    if (cp.size === seen.size && !bytesEqual(cp.root, seen.root)) {
      await this.#splitView(seen, req.note, `two checkpoints of size ${cp.size} with different roots (presented as ${req.logDid})`);
    }
  }

  async #recordSplitView(seen: WitnessedLog, presented: string, detail: string): Promise<void> {
    await this.#opts.store.recordSplitView({ logDid: seen.logDid, origin: seen.origin, seenNote: seen.note, presentedNote: presented, detail, detectedMs: Date.now() });
    this.#opts.log.error({ logDid: seen.logDid, origin: seen.origin, detail }, 'SPLIT VIEW: a peer log presented a checkpoint inconsistent with one it showed before');
  }

  async #splitView(seen: WitnessedLog, presented: string, detail: string): Promise<never> {
    await this.#recordSplitView(seen, presented, detail);
    throw new GatewayError('SPLIT_VIEW', `split view of ${seen.origin}: ${detail}; recorded, not cosigned`);
  }
}

// --- the log role: collecting cosignatures from peers -------------------------------------------------

export interface WitnessStatus { cosignedSize: number; lastError: string; lastAttemptMs: number }

export interface CosignCollectorOptions {
  store: WitnessRepository;
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
  #round: Promise<void> | undefined;
  readonly #stopping = new AbortController();

  constructor(opts: CosignCollectorOptions) {
    this.#opts = opts;
  }

  /** Rounds run as a job of the node's scheduler, every intervalMs. */
  start(scheduler: Scheduler): void {
    scheduler.every('witness', this.#opts.intervalMs, () => this.collect());
  }

  async stop(): Promise<void> {
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

