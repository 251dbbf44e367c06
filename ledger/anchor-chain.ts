/**
 * Talking to a Substrate chain for anchoring: connection with bounded timeouts over SafeWsProvider,
 * and submission of one `system.remarkWithEvent` signed by an Ed25519 key.
 *
 * @polkadot/api costs ~2 s to import on these machines, so it is loaded lazily (dynamic import) the
 * first time a chain is actually contacted; importing the ledger never pays for it.
 */
import type { ApiPromise } from '@polkadot/api';
import type { HexString } from '@polkadot/util/types';
import { SafeWsProvider } from './anchor-provider.ts';

export type AnchorErrorCode =
  /** The source has no signed checkpoint yet. */
  | 'NO_CHECKPOINT'
  /** The endpoint is down, timed out, or does not speak Substrate JSON-RPC. */
  | 'CHAIN_UNAVAILABLE'
  /** The chain refused the transaction (e.g. the account cannot pay fees: 1010 Invalid Transaction). */
  | 'REJECTED'
  /** The extrinsic was included but dispatch failed (system.ExtrinsicFailed). */
  | 'EXTRINSIC_FAILED'
  /** Included, but finality (or inclusion) was not reached in time, or it was dropped/usurped. */
  | 'NOT_FINALIZED'
  /** Cancelled by an AbortSignal or by stop(). */
  | 'ABORTED'
  /** Bad options (key, origin, endpoint, ...). */
  | 'BAD_ARGUMENT';

export class AnchorError extends Error {
  readonly code: AnchorErrorCode;
  constructor(code: AnchorErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AnchorError';
    this.code = code;
  }
}

/** What an anchor is: where it is on chain and what it commits to. JSON-serialisable. */
export interface AnchorRecord {
  /** 0x-prefixed genesis hash of the chain. */
  genesisHash: string;
  /** 0x-prefixed hash of the block that includes the extrinsic. */
  blockHash: string;
  blockNumber: number;
  /** Index of the extrinsic in that block. */
  extrinsicIndex: number;
  /** Tree size of the anchored checkpoint. */
  size: number;
  /** Root hash of the anchored checkpoint, lowercase hex without 0x (the ledger's convention). */
  root: string;
  /** Log origin (the payload carries its SHA-256). */
  origin: string;
  /** The anchoring account: SS58 address (in the chain's format) and 0x-less hex public key. */
  signer: { address: string; publicKey: string };
  /** Wall-clock time the anchor was confirmed (ms since epoch). */
  anchoredAtMs: number;
}

type PolkadotApi = typeof import('@polkadot/api');
let polkadot: Promise<PolkadotApi> | null = null;

/** Lazily loads @polkadot/api (once per process). */
export function loadPolkadot(): Promise<PolkadotApi> {
  polkadot ??= import('@polkadot/api');
  return polkadot;
}

export function toHex0x(b: Uint8Array): HexString {
  return `0x${Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex')}`;
}

/** Parses hex with or without 0x; returns null when it is not even-length hex. */
export function fromHex(text: string): Uint8Array | null {
  const h = text.startsWith('0x') || text.startsWith('0X') ? text.slice(2) : text;
  if (h.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(h)) return null;
  return Uint8Array.from(Buffer.from(h, 'hex'));
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** A signal that aborts when any of `signals` aborts or after `ms`. */
export function deadlineSignal(ms: number, ...signals: (AbortSignal | undefined)[]): AbortSignal {
  const list = signals.filter((s): s is AbortSignal => s !== undefined);
  list.push(AbortSignal.timeout(ms));
  return AbortSignal.any(list);
}

/** Races `p` against `signal`; the rejection says `what` timed out or was aborted. */
export function raceSignal<T>(p: Promise<T>, signal: AbortSignal, what: string): Promise<T> {
  if (signal.aborted) return Promise.reject(abortError(signal, what));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortError(signal, what));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e: unknown) => { signal.removeEventListener('abort', onAbort); reject(e); },
    );
  });
}

function abortError(signal: AbortSignal, what: string): Error {
  const r: unknown = signal.reason;
  if (r instanceof DOMException && r.name === 'TimeoutError') return new AnchorError('CHAIN_UNAVAILABLE', `${what}: timed out`);
  if (r instanceof AnchorError) return r;
  return new AnchorError('ABORTED', `${what}: aborted${r instanceof Error && r.message ? ` (${r.message})` : ''}`);
}

export interface ChainConnectOptions {
  /** WebSocket handshake timeout (default 10 s). */
  connectTimeoutMs?: number;
  /** Per-request timeout; also bounds API initialisation, which fetches the metadata (default 30 s). */
  requestTimeoutMs?: number;
  signal?: AbortSignal;
  /** Metadata cache passed to ApiPromise (`${genesisHash}-${specVersion}` -> hex); filled on success. */
  metadataCache?: Record<string, HexString>;
}

export interface ChainConnection {
  api: ApiPromise;
  provider: SafeWsProvider;
  close(): Promise<void>;
}

/**
 * Connects to `endpoint` and initialises an ApiPromise. Bounded in time; never leaves a socket or a
 * timer behind when it fails. Errors are AnchorError('CHAIN_UNAVAILABLE' | 'ABORTED').
 */
export async function connectChain(endpoint: string, options: ChainConnectOptions = {}): Promise<ChainConnection> {
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  let provider: SafeWsProvider;
  try {
    provider = new SafeWsProvider(endpoint, { connectTimeoutMs, requestTimeoutMs });
  } catch (cause) {
    throw new AnchorError('BAD_ARGUMENT', errorMessage(cause), { cause });
  }
  const signal = deadlineSignal(connectTimeoutMs + requestTimeoutMs, options.signal);
  const { ApiPromise } = await raceSignal(loadPolkadot(), signal, 'loading @polkadot/api');
  try {
    await provider.connect(signal);
  } catch (cause) {
    if (options.signal?.aborted) throw new AnchorError('ABORTED', `connecting to ${endpoint}: aborted`, { cause });
    throw new AnchorError('CHAIN_UNAVAILABLE', errorMessage(cause), { cause });
  }
  let api: ApiPromise | null = null;
  try {
    api = new ApiPromise({ provider, noInitWarn: true, ...(options.metadataCache ? { metadata: options.metadataCache } : {}) });
    const ready = api.isReadyOrError;
    ready.catch(() => { /* observed below */ });
    await raceSignal(ready, signal, `initialising the API on ${endpoint}`);
    if (options.metadataCache) {
      const key = `${api.genesisHash.toHex()}-${api.runtimeVersion.specVersion.toString()}`;
      options.metadataCache[key] ??= api.runtimeMetadata.toHex();
    }
  } catch (cause) {
    const why = provider.failure ? provider.failure.message : errorMessage(cause);
    await api?.disconnect().catch(() => {});
    await provider.disconnect();
    if (options.signal?.aborted) throw new AnchorError('ABORTED', `connecting to ${endpoint}: aborted`, { cause });
    throw new AnchorError('CHAIN_UNAVAILABLE', `${endpoint} is not a usable Substrate node: ${why}`, { cause });
  }
  const conn = api;
  return {
    api: conn,
    provider,
    async close() {
      await conn.disconnect().catch(() => {});
      await provider.disconnect();
    },
  };
}

export interface SubmitRemarkOptions {
  /** 32-byte Ed25519 seed. */
  seed: Uint8Array;
  payload: Uint8Array;
  finality: 'finalized' | 'inBlock';
  /** Bound on submission + inclusion (+ finality). */
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface SubmittedRemark {
  genesisHash: string;
  blockHash: string;
  blockNumber: number;
  extrinsicIndex: number;
  /** SS58 address in the chain's format. */
  address: string;
  ss58Format: number;
}

/**
 * Submits one `system.remarkWithEvent(payload)` (or `system.remark` when the runtime has no
 * remarkWithEvent) signed by the Ed25519 key, waits for inclusion (and finality), and checks the
 * dispatch result. Rejects with AnchorError.
 */
export async function submitRemark(conn: ChainConnection, options: SubmitRemarkOptions): Promise<SubmittedRemark> {
  const { api, provider } = conn;
  const { Keyring } = await loadPolkadot();
  const ss58Format = api.registry.chainSS58 ?? 42;
  const pair = new Keyring({ type: 'ed25519', ss58Format }).addFromSeed(options.seed.subarray(0, 32));
  const system = api.tx['system'];
  const make = system?.['remarkWithEvent'] ?? system?.['remark'];
  if (!make) throw new AnchorError('REJECTED', 'the runtime has neither system.remarkWithEvent nor system.remark');
  // A hex string is taken as the raw bytes (a Uint8Array would be read as SCALE, length-prefixed).
  const tx = make(toHex0x(options.payload));
  const txHash = tx.hash.toHex();
  const signal = deadlineSignal(options.timeoutMs, options.signal);

  let unsub: (() => void) | null = null;
  const outcome = new Promise<{ blockHash: string; txIndex: number | undefined }>((resolve, reject) => {
    let inBlock: string | null = null;
    const fail = (err: Error): void => { reject(err); };
    tx.signAndSend(pair, { nonce: -1 }, (result) => {
      try {
        const { status } = result;
        if (status.isInBlock || status.isFinalized) {
          const hash = (status.isInBlock ? status.asInBlock : status.asFinalized).toHex();
          if (result.dispatchError) {
            const de = result.dispatchError;
            let why = de.toString();
            if (de.isModule) {
              try {
                const m = api.registry.findMetaError(de.asModule);
                why = `${m.section}.${m.name}`;
              } catch { /* keep the raw form */ }
            }
            fail(new AnchorError('EXTRINSIC_FAILED', `extrinsic ${txHash} in block ${hash} failed: ${why}`));
            return;
          }
          inBlock = hash;
          if (options.finality === 'inBlock' || status.isFinalized) resolve({ blockHash: hash, txIndex: result.txIndex });
        } else if (status.isInvalid || status.isDropped || status.isUsurped || status.isFinalityTimeout) {
          fail(new AnchorError(inBlock ? 'NOT_FINALIZED' : 'REJECTED', `extrinsic ${txHash}: ${status.type}${inBlock ? ` after inclusion in ${inBlock}` : ''}`));
        }
      } catch (err) {
        fail(err instanceof Error ? err : new Error(String(err)));
      }
    }).then(
      (u) => { unsub = u; },
      (err: unknown) => {
        const msg = errorMessage(err);
        if (/^1010\b|Invalid Transaction|\binvalid\b/i.test(msg)) fail(new AnchorError('REJECTED', `the chain rejected the anchor extrinsic: ${msg}`, { cause: err }));
        else fail(new AnchorError('CHAIN_UNAVAILABLE', `submitting the anchor extrinsic failed: ${provider.failure?.message ?? msg}`, { cause: err }));
      },
    );
  });
  outcome.catch(() => {});
  let blockHash: string;
  let txIndex: number | undefined;
  try {
    ({ blockHash, txIndex } = await raceSignal(outcome, signal, `waiting for ${options.finality === 'inBlock' ? 'inclusion' : 'finality'} of ${txHash}`));
  } catch (err) {
    if (err instanceof AnchorError && err.code === 'CHAIN_UNAVAILABLE' && /timed out/.test(err.message)) {
      throw new AnchorError('NOT_FINALIZED', `${err.message} after ${options.timeoutMs} ms`, { cause: err });
    }
    if (!(err instanceof AnchorError) && provider.failure) throw new AnchorError('CHAIN_UNAVAILABLE', provider.failure.message, { cause: err });
    throw err;
  } finally {
    try { (unsub as (() => void) | null)?.(); } catch { /* connection may be gone */ }
  }

  const rpcSignal = deadlineSignal(30_000, options.signal);
  const block = await raceSignal(api.rpc.chain.getBlock(blockHash), rpcSignal, `reading block ${blockHash}`);
  const blockNumber = block.block.header.number.toNumber();
  if (txIndex === undefined) {
    const i = block.block.extrinsics.findIndex((x) => x.hash.toHex() === txHash);
    if (i < 0) throw new AnchorError('NOT_FINALIZED', `extrinsic ${txHash} not found in block ${blockHash}`);
    txIndex = i;
  }
  return {
    genesisHash: api.genesisHash.toHex(),
    blockHash,
    blockNumber,
    extrinsicIndex: txIndex,
    address: pair.address,
    ss58Format,
  };
}
