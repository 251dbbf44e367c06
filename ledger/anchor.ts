/**
 * Substrate anchoring of the ledger's signed checkpoints (docs/ANCHORING.md).
 *
 * Every interval (never per message) the service reads the latest signed checkpoint and, if the
 * tree grew since the last anchor, submits ONE `system.remarkWithEvent` carrying
 * anchorPayload(origin, size, root), signed by the node's Ed25519 anchoring key used directly as a
 * Substrate account. Chain load is therefore at most one extrinsic per interval whatever the mail
 * volume. Failures are retried with capped exponential backoff and never thrown into the caller;
 * while the chain is unreachable the log keeps growing, and the next success covers everything in
 * one extrinsic.
 *
 * This module and its anchor-*.ts siblings know nothing of SMTP or gRPC.
 */
import type { HexString } from '@polkadot/util/types';
import { anchorPayload, ed25519PublicKeyFromSeed, substrateAddress } from './anchor-payload.ts';
import { AnchorError, connectChain, errorMessage, submitRemark } from './anchor-chain.ts';
import type { AnchorRecord, ChainConnection } from './anchor-chain.ts';

export {
  ANCHOR_MAGIC, ANCHOR_PAYLOAD_SIZE, ANCHOR_VERSION, SS58_GENERIC,
  anchorOriginHash, anchorPayload, decodeSubstrateAddress, ed25519PublicKeyFromSeed, parseAnchorPayload, substrateAddress,
} from './anchor-payload.ts';
export type { ParsedAnchorPayload } from './anchor-payload.ts';
export { AnchorError, connectChain } from './anchor-chain.ts';
export type { AnchorErrorCode, AnchorRecord, ChainConnection, ChainConnectOptions } from './anchor-chain.ts';
export { ANCHOR_STEPS, verifyAnchor } from './anchor-verify.ts';
export type { AnchorExpectation, AnchorStep, AnchorStepName, AnchorVerification, VerifyAnchorOptions } from './anchor-verify.ts';
export { RpcProtocolError, RpcResponseError, SafeWsProvider } from './anchor-provider.ts';
export type { SafeWsProviderOptions } from './anchor-provider.ts';

/** A signed checkpoint as the anchor needs it. */
export interface AnchorCheckpoint {
  size: number | bigint;
  /** 32-byte root hash. */
  root: Uint8Array;
  /** When the checkpoint was signed (ms since epoch), if known; used for the lag. */
  timestampMs?: number;
}

/** Persists the last anchor so that a restart neither re-anchors the same checkpoint nor loses the lag. */
export interface AnchorStore {
  load(): AnchorRecord | undefined;
  save(record: AnchorRecord): void;
}

/** pino-compatible subset. */
export interface AnchorLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface SubstrateAnchorOptions {
  /** ws:// or wss:// JSON-RPC endpoint of the chain. */
  endpoint: string;
  /** The anchoring key: 32-byte Ed25519 seed (or 64 bytes seed || public key). */
  seed: Uint8Array;
  /** Log origin of the checkpoints (C2SP origin line). */
  origin: string;
  /** Anchor at most once per interval. */
  intervalMs: number;
  /** Latest signed checkpoint, or null before the first one. Must be cheap and must not throw. */
  source: () => AnchorCheckpoint | null;
  onAnchored?: (record: AnchorRecord) => void;
  store?: AnchorStore;
  logger?: AnchorLogger;
  /** Wait for finality (default) or only for inclusion in a block. */
  finality?: 'finalized' | 'inBlock';
  /** WebSocket handshake bound (default 10 s). */
  connectTimeoutMs?: number;
  /** Per-RPC bound, also API initialisation (default 30 s). */
  requestTimeoutMs?: number;
  /** Bound on submission + inclusion + finality of one anchor (default 120 s). */
  submitTimeoutMs?: number;
  /** Retry delays after a failure: initialMs * 2^(n-1), capped at maxMs. Defaults: min(1 s, interval) and min(5 min, max(interval, initial)). */
  backoff?: { initialMs?: number; maxMs?: number };
  /**
   * The clock that paces the loop (default: the system's). A test drives the interval with its own
   * clock, so that what it asserts (one anchor per interval) does not depend on how fast the machine is.
   */
  clock?: AnchorClock;
}

/** Time and timers of the anchoring loop. */
export interface AnchorClock {
  now(): number;
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

const systemClock: AnchorClock = {
  now: () => Date.now(),
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface AnchorStatus {
  running: boolean;
  /** An anchor is being submitted right now. */
  anchoring: boolean;
  lastAnchor: AnchorRecord | null;
  /**
   * entries: tree size of the latest checkpoint minus the last anchored size;
   * ms: how long the oldest checkpoint not covered by an anchor has been waiting (0 when none).
   */
  lag: { entries: number; ms: number };
  lastError: { message: string; code: string; atMs: number } | null;
  consecutiveFailures: number;
  /** When the loop will next look at the source (ms since epoch), null when stopped. */
  nextAttemptAtMs: number | null;
}

const noopLogger: AnchorLogger = { debug() {}, info() {}, warn() {}, error() {} };
const MAX_OBSERVATIONS = 1024;

function toBig(size: number | bigint): bigint {
  return typeof size === 'bigint' ? size : BigInt(size);
}

export class SubstrateAnchor {
  readonly endpoint: string;
  readonly origin: string;
  readonly intervalMs: number;
  /** Hex (no 0x) of the anchoring account's public key. */
  readonly publicKeyHex: string;
  readonly #seed: Uint8Array;
  readonly #publicKey: Uint8Array;
  readonly #source: () => AnchorCheckpoint | null;
  readonly #onAnchored: ((r: AnchorRecord) => void) | undefined;
  readonly #store: AnchorStore | undefined;
  readonly #log: AnchorLogger;
  readonly #finality: 'finalized' | 'inBlock';
  readonly #connectTimeoutMs: number;
  readonly #requestTimeoutMs: number;
  readonly #submitTimeoutMs: number;
  readonly #backoffInitialMs: number;
  readonly #backoffMaxMs: number;
  readonly #metadataCache: Record<string, HexString> = {};
  readonly #clock: AnchorClock;

  #running = false;
  #stopController: AbortController | null = null;
  #startSignalCleanup: (() => void) | null = null;
  #timer: unknown = null;
  #nextAttemptAtMs: number | null = null;
  #conn: ChainConnection | null = null;
  #connecting: Promise<ChainConnection> | null = null;
  /** Serialises anchors (one nonce at a time). */
  #queue: Promise<unknown> = Promise.resolve();
  #inflight = 0;
  #loopBusy: Promise<void> | null = null;
  #lastAnchor: AnchorRecord | null = null;
  #lastError: AnchorStatus['lastError'] = null;
  #consecutiveFailures = 0;
  /** Increasing sizes seen from the source with the time first seen, not yet covered by an anchor. */
  #observations: { size: bigint; atMs: number }[] = [];

  constructor(options: SubstrateAnchorOptions) {
    if (typeof options.origin !== 'string' || options.origin.length === 0) throw new AnchorError('BAD_ARGUMENT', 'origin must be a non-empty string');
    if (!Number.isFinite(options.intervalMs) || options.intervalMs <= 0) throw new AnchorError('BAD_ARGUMENT', 'intervalMs must be a positive number');
    if (typeof options.source !== 'function') throw new AnchorError('BAD_ARGUMENT', 'source must be a function');
    if (!/^wss?:\/\//i.test(options.endpoint)) throw new AnchorError('BAD_ARGUMENT', `endpoint must be a ws:// or wss:// URL, got ${JSON.stringify(options.endpoint)}`);
    this.endpoint = options.endpoint;
    this.origin = options.origin;
    this.intervalMs = options.intervalMs;
    try {
      this.#publicKey = ed25519PublicKeyFromSeed(options.seed);
    } catch (cause) {
      throw new AnchorError('BAD_ARGUMENT', errorMessage(cause), { cause });
    }
    this.#seed = Uint8Array.from(options.seed.subarray(0, 32));
    this.publicKeyHex = Buffer.from(this.#publicKey).toString('hex');
    this.#source = options.source;
    this.#onAnchored = options.onAnchored;
    this.#store = options.store;
    this.#log = options.logger ?? noopLogger;
    this.#finality = options.finality ?? 'finalized';
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.#submitTimeoutMs = options.submitTimeoutMs ?? 120_000;
    this.#backoffInitialMs = options.backoff?.initialMs ?? Math.min(1000, options.intervalMs);
    this.#backoffMaxMs = options.backoff?.maxMs ?? Math.min(300_000, Math.max(options.intervalMs, this.#backoffInitialMs));
    this.#clock = options.clock ?? systemClock;
    const stored = this.#store?.load();
    if (stored && stored.origin === this.origin && stored.signer.publicKey === this.publicKeyHex) this.#lastAnchor = stored;
  }

  /** The anchoring account's public key (32 bytes). */
  get publicKey(): Uint8Array {
    return Uint8Array.from(this.#publicKey);
  }

  /** SS58 address of the anchoring account (generic format 42 unless given). */
  address(ss58Format?: number): string {
    return substrateAddress(this.#publicKey, ss58Format);
  }

  /** Starts the interval loop (first look at the source right away). Idempotent. Aborting `signal` stops it. */
  start(signal?: AbortSignal): void {
    if (this.#running) return;
    if (signal?.aborted) return;
    this.#running = true;
    this.#stopController = new AbortController();
    if (signal) {
      const onAbort = (): void => { void this.stop(); };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#startSignalCleanup = () => signal.removeEventListener('abort', onAbort);
    }
    this.#log.info({ endpoint: this.endpoint, account: this.address(), intervalMs: this.intervalMs }, 'substrate anchoring started');
    this.#schedule(0);
  }

  /** Stops the loop, aborts an anchor in flight, and closes the connection. Nothing keeps running afterwards. */
  async stop(): Promise<void> {
    const wasRunning = this.#running;
    this.#running = false;
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#nextAttemptAtMs = null;
    this.#startSignalCleanup?.();
    this.#startSignalCleanup = null;
    this.#stopController?.abort(new AnchorError('ABORTED', 'anchoring stopped'));
    this.#stopController = null;
    await this.#loopBusy?.catch(() => {});
    await this.#queue.catch(() => {});
    await this.#closeConnection();
    if (wasRunning) this.#log.info({}, 'substrate anchoring stopped');
  }

  status(): AnchorStatus {
    let latest: AnchorCheckpoint | null = null;
    try {
      latest = this.#source();
    } catch { /* reported by the loop */ }
    const now = this.#clock.now();
    if (latest) this.#observe(latest, now);
    const anchored = this.#lastAnchor ? BigInt(this.#lastAnchor.size) : 0n;
    const entries = latest && toBig(latest.size) > anchored ? Number(toBig(latest.size) - anchored) : 0;
    const oldest = this.#observations[0];
    return {
      running: this.#running,
      anchoring: this.#inflight > 0,
      lastAnchor: this.#lastAnchor,
      lag: { entries, ms: entries > 0 && oldest ? Math.max(0, now - oldest.atMs) : 0 },
      lastError: this.#lastError,
      consecutiveFailures: this.#consecutiveFailures,
      nextAttemptAtMs: this.#nextAttemptAtMs,
    };
  }

  /**
   * Anchors the source's latest checkpoint now: one `system.remarkWithEvent`, waits for inclusion
   * (and finality), checks ExtrinsicSuccess. Rejects with AnchorError; updates status(), the store
   * and onAnchored on success. Calls are serialised.
   */
  anchorNow(signal?: AbortSignal): Promise<AnchorRecord> {
    const run = this.#queue.then(() => this.#anchorOnce(signal));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #anchorOnce(signal?: AbortSignal): Promise<AnchorRecord> {
    this.#inflight++;
    try {
      signal?.throwIfAborted();
      let cp: AnchorCheckpoint | null;
      try {
        cp = this.#source();
      } catch (cause) {
        throw new AnchorError('NO_CHECKPOINT', `the checkpoint source failed: ${errorMessage(cause)}`, { cause });
      }
      if (!cp) throw new AnchorError('NO_CHECKPOINT', 'no signed checkpoint to anchor yet');
      const size = toBig(cp.size);
      if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new AnchorError('BAD_ARGUMENT', 'tree size beyond 2^53 cannot be recorded');
      const payload = anchorPayload(this.origin, size, cp.root);
      const root = Buffer.from(cp.root).toString('hex');
      const signals = [signal, this.#stopController?.signal].filter((s): s is AbortSignal => s !== undefined);
      const combined = signals.length > 0 ? AbortSignal.any(signals) : undefined;

      const conn = await this.#connection(combined);
      let submitted;
      try {
        submitted = await submitRemark(conn, {
          seed: this.#seed,
          payload,
          finality: this.#finality,
          timeoutMs: this.#submitTimeoutMs,
          ...(combined ? { signal: combined } : {}),
        });
      } catch (err) {
        // Whatever went wrong, start the next attempt from a fresh connection.
        await this.#closeConnection();
        throw err;
      }
      const record: AnchorRecord = {
        genesisHash: submitted.genesisHash,
        blockHash: submitted.blockHash,
        blockNumber: submitted.blockNumber,
        extrinsicIndex: submitted.extrinsicIndex,
        size: Number(size),
        root,
        origin: this.origin,
        signer: { address: submitted.address, publicKey: this.publicKeyHex },
        anchoredAtMs: this.#clock.now(),
      };
      this.#lastAnchor = record;
      this.#observations = this.#observations.filter((o) => o.size > size);
      this.#consecutiveFailures = 0;
      this.#lastError = null;
      this.#log.info({ ...record }, 'checkpoint anchored');
      try {
        this.#store?.save(record);
      } catch (err) {
        this.#log.error({ err: errorMessage(err) }, 'saving the anchor record failed');
      }
      try {
        this.#onAnchored?.(record);
      } catch (err) {
        this.#log.error({ err: errorMessage(err) }, 'onAnchored callback threw');
      }
      return record;
    } catch (err) {
      const code = err instanceof AnchorError ? err.code : 'ERROR';
      this.#lastError = { message: errorMessage(err), code, atMs: this.#clock.now() };
      throw err;
    } finally {
      this.#inflight--;
      // A one-off anchorNow() outside start()/stop() must not leave a connection (and its keepalive timer) open.
      if (!this.#running && this.#inflight === 0) await this.#closeConnection();
    }
  }

  async #connection(signal?: AbortSignal): Promise<ChainConnection> {
    if (this.#conn && this.#conn.provider.isConnected) return this.#conn;
    if (this.#conn) await this.#closeConnection();
    this.#connecting ??= connectChain(this.endpoint, {
      connectTimeoutMs: this.#connectTimeoutMs,
      requestTimeoutMs: this.#requestTimeoutMs,
      metadataCache: this.#metadataCache,
      ...(signal ? { signal } : {}),
    }).finally(() => { this.#connecting = null; });
    const conn = await this.#connecting;
    this.#conn = conn;
    return conn;
  }

  async #closeConnection(): Promise<void> {
    const conn = this.#conn;
    this.#conn = null;
    if (conn) await conn.close();
  }

  #observe(cp: AnchorCheckpoint, now: number): void {
    const size = toBig(cp.size);
    const anchored = this.#lastAnchor ? BigInt(this.#lastAnchor.size) : 0n;
    if (size <= anchored) return;
    const last = this.#observations[this.#observations.length - 1];
    if (last && size <= last.size) return;
    const atMs = cp.timestampMs !== undefined ? Math.min(cp.timestampMs, now) : now;
    this.#observations.push({ size, atMs });
    if (this.#observations.length > MAX_OBSERVATIONS) {
      // Merge the two newest-but-one entries: keeps the older time with the larger size (lag errs high, never low).
      const i = this.#observations.length - 3;
      const a = this.#observations[i]!;
      const b = this.#observations[i + 1]!;
      this.#observations.splice(i, 2, { size: b.size, atMs: a.atMs });
    }
  }

  #schedule(delayMs: number): void {
    if (!this.#running) return;
    const delay = Math.max(0, delayMs);
    this.#nextAttemptAtMs = this.#clock.now() + delay;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = null;
      this.#loopBusy = this.#tick().catch((err: unknown) => {
        // #tick handles everything; this is a last line of defence.
        this.#log.error({ err: errorMessage(err) }, 'anchor loop error');
      });
    }, delay);
  }

  async #tick(): Promise<void> {
    if (!this.#running) return;
    const tickStart = this.#clock.now();
    let cp: AnchorCheckpoint | null = null;
    try {
      cp = this.#source();
    } catch (err) {
      this.#fail(new AnchorError('NO_CHECKPOINT', `the checkpoint source failed: ${errorMessage(err)}`));
      return;
    }
    if (cp) this.#observe(cp, tickStart);
    const last = this.#lastAnchor;
    let grew = false;
    if (cp) {
      const size = toBig(cp.size);
      const anchoredSize = last ? BigInt(last.size) : 0n;
      // An empty log has nothing worth anchoring; after that, only growth is.
      if (size > anchoredSize) grew = true;
      else if (last && size === anchoredSize && Buffer.from(cp.root).toString('hex') !== last.root) {
        this.#log.error({ size: size.toString(), anchoredRoot: last.root }, 'checkpoint has the anchored size but another root: not anchoring it');
      } else if (size < anchoredSize) {
        this.#log.warn({ size: size.toString(), anchored: last!.size }, 'checkpoint is smaller than the last anchor: not anchoring it');
      }
    }
    if (!grew) {
      this.#schedule(tickStart + this.intervalMs - this.#clock.now());
      return;
    }
    try {
      await this.anchorNow();
      // Fixed rate measured from this attempt: successive anchors are at least one interval apart.
      this.#schedule(tickStart + this.intervalMs - this.#clock.now());
    } catch (err) {
      if (!this.#running) return;
      this.#fail(err);
    }
  }

  #fail(err: unknown): void {
    this.#consecutiveFailures++;
    const code = err instanceof AnchorError ? err.code : 'ERROR';
    this.#lastError = { message: errorMessage(err), code, atMs: this.#clock.now() };
    const delay = Math.min(this.#backoffMaxMs, this.#backoffInitialMs * 2 ** Math.min(30, this.#consecutiveFailures - 1));
    this.#log.warn({ err: this.#lastError.message, code, consecutiveFailures: this.#consecutiveFailures, retryInMs: delay }, 'anchoring failed; will retry');
    this.#schedule(delay);
  }
}
