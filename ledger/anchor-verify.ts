/**
 * Independent verification of an anchor against a Substrate endpoint: every step is reported as
 * ok / failed / skipped with the reason, and `ok` is true only when no step failed and every
 * required step passed. A chain that is down or answers garbage yields failed steps, never ok.
 */
import { verify as cryptoVerify, createPublicKey } from 'node:crypto';
import type { ApiPromise } from '@polkadot/api';
import type { Registry } from '@polkadot/types/types';
import type { Extrinsic } from '@polkadot/types/interfaces';
import { anchorOriginHash, anchorPayload, parseAnchorPayload, substrateAddress } from './anchor-payload.ts';
import { AnchorError, connectChain, deadlineSignal, errorMessage, fromHex, raceSignal, toHex0x } from './anchor-chain.ts';
import type { AnchorRecord, ChainConnection } from './anchor-chain.ts';

export type AnchorStepName =
  | 'connect'
  | 'genesis'
  | 'block'
  | 'extrinsic'
  | 'call'
  | 'payload'
  | 'signer'
  | 'signature'
  | 'dispatch'
  | 'remarked'
  | 'canonical'
  | 'finalized';

/** In the order they are reported. */
export const ANCHOR_STEPS: readonly AnchorStepName[] = [
  'connect', 'genesis', 'block', 'extrinsic', 'call', 'payload', 'signer', 'signature', 'dispatch', 'remarked', 'canonical', 'finalized',
];

export interface AnchorStep {
  name: AnchorStepName;
  status: 'ok' | 'failed' | 'skipped';
  detail: string;
}

export interface AnchorVerification {
  ok: boolean;
  steps: AnchorStep[];
}

export interface AnchorExpectation {
  origin: string;
  size: number | bigint;
  /** 32-byte root, as bytes or hex (with or without 0x). */
  root: Uint8Array | string;
  /** The anchoring account's 32-byte Ed25519 public key, as bytes or hex. */
  signerPublicKey: Uint8Array | string;
  /** 0x-prefixed genesis hash the anchor must be on. Defaults to the record's genesisHash if it has one. */
  genesisHash?: string;
}

export interface VerifyAnchorOptions {
  endpoint: string;
  record: Pick<AnchorRecord, 'blockHash' | 'extrinsicIndex'> & Partial<Pick<AnchorRecord, 'blockNumber' | 'genesisHash'>>;
  expected: AnchorExpectation;
  signal?: AbortSignal;
  /** Bound on the whole verification (default 30 s). */
  timeoutMs?: number;
  /** WebSocket handshake bound (default min(10 s, timeoutMs)). */
  connectTimeoutMs?: number;
}

/** Steps that must be 'ok' for the anchor to be valid ('genesis' may be skipped when nothing is expected, 'remarked' for a plain remark). */
const REQUIRED: ReadonlySet<AnchorStepName> = new Set<AnchorStepName>([
  'connect', 'block', 'extrinsic', 'call', 'payload', 'signer', 'signature', 'dispatch', 'canonical', 'finalized',
]);

function bytesArg(v: Uint8Array | string, what: string, len: number): Uint8Array {
  const b = typeof v === 'string' ? fromHex(v) : v;
  if (!(b instanceof Uint8Array) || b.length !== len) throw new AnchorError('BAD_ARGUMENT', `expected ${what} must be ${len} bytes (bytes or hex)`);
  return b;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
}

function eq(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

const HASH_RE = /^0x[0-9a-fA-F]{64}$/;
const HEXNUM_RE = /^0x[0-9a-fA-F]{1,16}$/;

interface RawHeader { parentHash: string; number: string; stateRoot: string; extrinsicsRoot: string; digest: { logs: string[] } }

function isRawHeader(v: unknown): v is RawHeader {
  if (typeof v !== 'object' || v === null) return false;
  const h = v as Record<string, unknown>;
  const digest = h['digest'] as Record<string, unknown> | undefined;
  return typeof h['parentHash'] === 'string' && HASH_RE.test(h['parentHash'])
    && typeof h['number'] === 'string' && HEXNUM_RE.test(h['number'])
    && typeof h['stateRoot'] === 'string' && typeof h['extrinsicsRoot'] === 'string'
    && typeof digest === 'object' && digest !== null && Array.isArray(digest['logs']) && digest['logs'].every((l) => typeof l === 'string');
}

/** Account bytes of an extrinsic signer (MultiAddress::Id or a plain AccountId), or null. */
function signerAccount(ext: Extrinsic): Uint8Array | null {
  const s = ext.signer as unknown as { type?: unknown; value?: { toU8a(): Uint8Array }; toU8a(): Uint8Array; toRawType(): string };
  if (s.toRawType() !== 'AccountId' && typeof s.type === 'string' && s.value) {
    // MultiAddress: only the Id variant names an account directly.
    if (s.type !== 'Id') return null;
    const id = s.value.toU8a();
    return id.length === 32 ? id : null;
  }
  const raw = s.toU8a();
  return raw.length === 32 ? raw : null;
}

/**
 * Verifies that block `record.blockHash` holds, at `record.extrinsicIndex`, a successful
 * `system.remarkWithEvent` (or `system.remark`) carrying exactly anchorPayload(expected.origin,
 * expected.size, expected.root), signed (Ed25519) by expected.signerPublicKey, in a block that is
 * canonical and finalized on the chain with the expected genesis hash.
 */
export async function verifyAnchor(options: VerifyAnchorOptions): Promise<AnchorVerification> {
  const results = new Map<AnchorStepName, AnchorStep>();
  const set = (name: AnchorStepName, status: AnchorStep['status'], detail: string): void => {
    results.set(name, { name, status, detail });
  };
  const finish = (): AnchorVerification => {
    const steps = ANCHOR_STEPS.map((name) => results.get(name) ?? { name, status: 'skipped' as const, detail: 'not checked' });
    const ok = steps.every((s) => s.status !== 'failed' && (s.status === 'ok' || !REQUIRED.has(s.name)));
    return { ok, steps };
  };
  const skipRest = (names: AnchorStepName[], why: string): void => {
    for (const n of names) if (!results.has(n)) set(n, 'skipped', `not checked: ${why}`);
  };

  // Inputs. A malformed expectation is the caller's bug: say so in the first step, never "ok".
  let expectedPayload: Uint8Array;
  let expectedSigner: Uint8Array;
  const { record, expected } = options;
  try {
    expectedPayload = anchorPayload(expected.origin, expected.size, bytesArg(expected.root, 'root', 32));
    expectedSigner = bytesArg(expected.signerPublicKey, 'signer public key', 32);
    if (typeof record?.blockHash !== 'string' || !HASH_RE.test(record.blockHash)) throw new AnchorError('BAD_ARGUMENT', 'record.blockHash must be a 0x-prefixed 32-byte hex hash');
    if (!Number.isSafeInteger(record.extrinsicIndex) || record.extrinsicIndex < 0) throw new AnchorError('BAD_ARGUMENT', 'record.extrinsicIndex must be a non-negative integer');
  } catch (err) {
    set('connect', 'failed', `bad verification input: ${errorMessage(err)}`);
    skipRest([...ANCHOR_STEPS], 'bad input');
    return finish();
  }
  const blockHash = record.blockHash.toLowerCase();
  const timeoutMs = options.timeoutMs ?? 30_000;
  const signal = deadlineSignal(timeoutMs, options.signal);

  let conn: ChainConnection;
  try {
    conn = await connectChain(options.endpoint, {
      connectTimeoutMs: options.connectTimeoutMs ?? Math.min(10_000, timeoutMs),
      requestTimeoutMs: timeoutMs,
      signal,
    });
  } catch (err) {
    set('connect', 'failed', errorMessage(err));
    skipRest([...ANCHOR_STEPS], 'no usable connection to the chain');
    return finish();
  }
  const { api, provider } = conn;
  try {
    set('connect', 'ok', `${options.endpoint}: ${api.runtimeVersion.specName.toString()} v${api.runtimeVersion.specVersion.toString()}`);
    /** A raw JSON-RPC call, bounded by the deadline; the reason names the endpoint's failure if any. */
    const rpc = async (method: string, params: unknown[]): Promise<unknown> => {
      try {
        return await raceSignal(provider.send(method, params), signal, method);
      } catch (err) {
        throw new Error(provider.failure && !(err instanceof AnchorError) ? provider.failure.message : errorMessage(err));
      }
    };

    // genesis
    const chainGenesis = api.genesisHash.toHex();
    const wantGenesis = expected.genesisHash ?? record.genesisHash;
    if (wantGenesis === undefined) set('genesis', 'skipped', `no genesis hash expected; the endpoint's chain is ${chainGenesis}`);
    else if (wantGenesis.toLowerCase() === chainGenesis.toLowerCase()) set('genesis', 'ok', chainGenesis);
    else set('genesis', 'failed', `the endpoint serves chain ${chainGenesis}, the anchor is on ${wantGenesis}`);

    // block
    let header: RawHeader | null = null;
    let extrinsics: string[] = [];
    let blockNumber = -1;
    try {
      const raw = await rpc('chain_getBlock', [blockHash]) as { block?: { header?: unknown; extrinsics?: unknown } } | null;
      if (raw === null) {
        set('block', 'failed', `block ${blockHash} not found`);
      } else if (typeof raw !== 'object' || !raw.block || !isRawHeader(raw.block.header) || !Array.isArray(raw.block.extrinsics) || !raw.block.extrinsics.every((x) => typeof x === 'string')) {
        set('block', 'failed', `the endpoint answered chain_getBlock with something that is not a block`);
      } else {
        const h = api.registry.createType('Header', raw.block.header);
        const computed = h.hash.toHex();
        if (computed !== blockHash) {
          set('block', 'failed', `the endpoint returned a block whose header hashes to ${computed}, not ${blockHash}`);
        } else {
          header = raw.block.header;
          extrinsics = raw.block.extrinsics as string[];
          blockNumber = Number.parseInt(header.number, 16);
          if (record.blockNumber !== undefined && record.blockNumber !== blockNumber) {
            set('block', 'failed', `block ${blockHash} is #${blockNumber}, the record says #${record.blockNumber}`);
          } else {
            set('block', 'ok', `#${blockNumber} ${blockHash} (${extrinsics.length} extrinsics)`);
          }
        }
      }
    } catch (err) {
      // Substrate answers an error (chopsticks) or null (polkadot-sdk) for an unknown block.
      const msg = errorMessage(err);
      set('block', 'failed', /not found/i.test(msg) ? `block ${blockHash} not found (${msg})` : `cannot read block ${blockHash}: ${msg}`);
    }
    if (header === null) {
      skipRest([...ANCHOR_STEPS], 'the block could not be read');
      return finish();
    }

    // extrinsic, decoded with the registry (metadata) of that block
    let ext: Extrinsic | null = null;
    let registry: Registry = api.registry;
    const index = record.extrinsicIndex;
    if (index >= extrinsics.length) {
      set('extrinsic', 'failed', `block #${blockNumber} has ${extrinsics.length} extrinsics; there is no index ${index}`);
    } else {
      try {
        registry = (await raceSignal(api.getBlockRegistry(fromHex(blockHash)!), signal, 'loading the block runtime')).registry;
        ext = registry.createType('Extrinsic', extrinsics[index]);
        set('extrinsic', 'ok', `#${blockNumber}-${index} ${ext.hash.toHex()}`);
      } catch (err) {
        set('extrinsic', 'failed', `cannot decode extrinsic ${index} of block #${blockNumber}: ${errorMessage(err)}`);
      }
    }

    let chainPayload: Uint8Array | null = null;
    let signer: Uint8Array | null = null;
    let isRemarkWithEvent = false;
    if (ext !== null) {
      // call
      const { section, method } = ext.method;
      const callName = `${section}.${method}`;
      if (section === 'system' && (method === 'remarkWithEvent' || method === 'remark')) {
        isRemarkWithEvent = method === 'remarkWithEvent';
        set('call', 'ok', callName);
        chainPayload = (ext.method.args[0] as unknown as { toU8a(bare: boolean): Uint8Array }).toU8a(true);
      } else {
        set('call', 'failed', `extrinsic ${index} is ${callName}, not system.remarkWithEvent or system.remark`);
      }

      // payload
      if (chainPayload === null) {
        set('payload', 'skipped', 'not checked: the extrinsic is not a remark');
      } else if (eq(chainPayload, expectedPayload)) {
        set('payload', 'ok', `ASMTP v1 origin=${expected.origin} size=${expected.size.toString()} root=${hex(expectedPayload.subarray(46))}`);
      } else {
        let why: string;
        try {
          const got = parseAnchorPayload(chainPayload);
          const diffs: string[] = [];
          if (!eq(got.originHash, anchorOriginHash(expected.origin))) diffs.push(`origin hash ${hex(got.originHash)} is not SHA-256(${JSON.stringify(expected.origin)})`);
          if (got.size !== BigInt(expected.size)) diffs.push(`size ${got.size} != expected ${expected.size.toString()}`);
          if (!eq(got.root, expectedPayload.subarray(46))) diffs.push(`root ${hex(got.root)} != expected ${hex(expectedPayload.subarray(46))}`);
          why = diffs.join('; ');
        } catch (err) {
          why = `the remark is not an ASMTP v1 anchor payload (${errorMessage(err)})`;
        }
        set('payload', 'failed', why);
      }

      // signer
      if (!ext.isSigned) {
        set('signer', 'failed', `extrinsic ${index} is not signed (an inherent or unsigned transaction)`);
        set('signature', 'skipped', 'not checked: unsigned extrinsic');
      } else {
        signer = signerAccount(ext);
        const scheme = (ext.inner.signature as unknown as { multiSignature?: { type?: string } }).multiSignature?.type ?? 'unknown';
        if (signer === null) {
          set('signer', 'failed', `the signer is not a 32-byte account id (${ext.signer.toString()})`);
        } else if (!eq(signer, expectedSigner)) {
          set('signer', 'failed', `signed by ${substrateAddress(signer, registry.chainSS58 ?? 42)} (0x${hex(signer)}), expected ${substrateAddress(expectedSigner, registry.chainSS58 ?? 42)} (0x${hex(expectedSigner)})`);
        } else {
          set('signer', 'ok', `${substrateAddress(signer, registry.chainSS58 ?? 42)} (0x${hex(signer)}, ${scheme})`);
        }

        // signature: rebuild the signing payload and check the Ed25519 signature ourselves
        if (signer === null) {
          set('signature', 'skipped', 'not checked: unknown signer account');
        } else if (scheme !== 'Ed25519') {
          set('signature', 'failed', `signature scheme is ${scheme}; an anchoring key is Ed25519`);
        } else {
          try {
            const msg = await signingMessage(api, registry, ext, header, blockNumber, rpc);
            const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(signer).toString('base64url') }, format: 'jwk' });
            if (cryptoVerify(null, msg, key, ext.signature.toU8a())) set('signature', 'ok', 'Ed25519 signature verifies over the reconstructed signing payload');
            else set('signature', 'failed', 'the Ed25519 signature does not verify over the reconstructed signing payload');
          } catch (err) {
            set('signature', 'failed', `cannot check the signature: ${errorMessage(err)}`);
          }
        }
      }

      // dispatch + remarked: the events of that block for this extrinsic
      try {
        const apiAt = await raceSignal(api.at(blockHash), signal, 'loading the block state');
        const all = await raceSignal(apiAt.query['system']!['events']!(), signal, 'reading System.Events') as unknown as Array<{
          phase: { isApplyExtrinsic: boolean; asApplyExtrinsic: { toNumber(): number } };
          event: { section: string; method: string; data: Array<{ toU8a(): Uint8Array; toString(): string }> & { toString(): string } };
        }>;
        const mine = all.filter((e) => e.phase.isApplyExtrinsic && e.phase.asApplyExtrinsic.toNumber() === index).map((e) => e.event);
        const success = mine.find((e) => e.section === 'system' && e.method === 'ExtrinsicSuccess');
        const failed = mine.find((e) => e.section === 'system' && e.method === 'ExtrinsicFailed');
        if (failed) {
          let why = failed.data[0]?.toString() ?? '';
          const de = failed.data[0] as unknown as { isModule?: boolean; asModule?: unknown } | undefined;
          if (de?.isModule) {
            try {
              const m = registry.findMetaError(de.asModule as Parameters<Registry['findMetaError']>[0]);
              why = `${m.section}.${m.name}`;
            } catch { /* keep raw */ }
          }
          set('dispatch', 'failed', `system.ExtrinsicFailed: ${why}`);
        } else if (success) {
          set('dispatch', 'ok', 'system.ExtrinsicSuccess');
        } else {
          set('dispatch', 'failed', `no ExtrinsicSuccess event for extrinsic ${index}`);
        }
        if (!isRemarkWithEvent) {
          set('remarked', 'skipped', chainPayload === null ? 'not checked: the extrinsic is not a remark' : 'system.remark emits no event');
        } else {
          const remarked = mine.find((e) => e.section === 'system' && e.method === 'Remarked');
          const wantHash = registry.hash(chainPayload!).toU8a();
          if (!remarked) {
            set('remarked', 'failed', `no system.Remarked event for extrinsic ${index}`);
          } else if (signer === null || !eq(remarked.data[0]!.toU8a(), signer)) {
            set('remarked', 'failed', `system.Remarked names sender ${remarked.data[0]?.toString()}, not the extrinsic's signer`);
          } else if (!eq(remarked.data[1]!.toU8a(), wantHash)) {
            set('remarked', 'failed', `system.Remarked hash ${remarked.data[1]?.toString()} is not the hash of the remark`);
          } else {
            set('remarked', 'ok', `system.Remarked(${remarked.data[0]!.toString()}, ${toHex0x(wantHash)})`);
          }
        }
      } catch (err) {
        set('dispatch', 'failed', `cannot read the events of block #${blockNumber}: ${errorMessage(err)}`);
        if (!isRemarkWithEvent) set('remarked', 'skipped', 'not checked: no remarkWithEvent');
        else set('remarked', 'failed', `cannot read the events of block #${blockNumber}: ${errorMessage(err)}`);
      }
    } else {
      skipRest(['call', 'payload', 'signer', 'signature', 'dispatch', 'remarked'], 'no extrinsic at that index');
    }

    // canonical + finalized
    let canonical = false;
    try {
      const atHeight = await rpc('chain_getBlockHash', [blockNumber]);
      if (typeof atHeight === 'string' && atHeight.toLowerCase() === blockHash) {
        canonical = true;
        set('canonical', 'ok', `chain_getBlockHash(${blockNumber}) = ${blockHash}`);
      } else if (atHeight === null || typeof atHeight === 'string') {
        set('canonical', 'failed', `block ${blockHash} is not canonical: the chain has ${atHeight ?? 'no block'} at #${blockNumber}`);
      } else {
        set('canonical', 'failed', 'the endpoint answered chain_getBlockHash with something that is not a hash');
      }
    } catch (err) {
      set('canonical', 'failed', `cannot read the canonical hash at #${blockNumber}: ${errorMessage(err)}`);
    }
    try {
      const fin = await rpc('chain_getFinalizedHead', []);
      if (typeof fin !== 'string' || !HASH_RE.test(fin)) throw new Error('chain_getFinalizedHead did not answer a hash');
      const finHeader = await rpc('chain_getHeader', [fin]);
      if (!isRawHeader(finHeader)) throw new Error('chain_getHeader did not answer a header');
      const finNumber = Number.parseInt(finHeader.number, 16);
      if (blockNumber > finNumber) set('finalized', 'failed', `block #${blockNumber} is above the finalized head #${finNumber}`);
      else if (!canonical) set('finalized', 'failed', `block #${blockNumber} is at or below the finalized head #${finNumber} but not canonical, so it is not finalized`);
      else set('finalized', 'ok', `#${blockNumber} <= finalized head #${finNumber} (${fin})`);
    } catch (err) {
      set('finalized', 'failed', `cannot read the finalized head: ${errorMessage(err)}`);
    }
    return finish();
  } finally {
    await conn.close();
  }
}

/** The bytes an extrinsic's signer signed (SCALE signing payload, blake2-256 hashed when > 256 bytes). */
async function signingMessage(
  api: ApiPromise,
  registry: Registry,
  ext: Extrinsic,
  header: RawHeader,
  blockNumber: number,
  rpc: (method: string, params: unknown[]) => Promise<unknown>,
): Promise<Uint8Array> {
  const version = await rpc('state_getRuntimeVersion', [header.parentHash]) as { specVersion?: unknown; transactionVersion?: unknown } | null;
  if (!version || typeof version.specVersion !== 'number' || typeof version.transactionVersion !== 'number') {
    throw new Error('state_getRuntimeVersion did not answer a runtime version');
  }
  const genesisHash = api.genesisHash.toHex();
  let eraHash: string = genesisHash;
  if (ext.era.isMortalEra) {
    const birth = ext.era.asMortalEra.birth(blockNumber);
    const h = await rpc('chain_getBlockHash', [birth]);
    if (typeof h !== 'string' || !HASH_RE.test(h)) throw new Error(`no block hash for the era birth #${birth}`);
    eraHash = h;
  }
  const sig = ext.inner.signature as unknown as {
    entries(): [string, unknown][];
    createPayload(method: unknown, options: Record<string, unknown>): { toU8a(opts: { method: boolean }): Uint8Array };
  };
  const opts: Record<string, unknown> = {};
  for (const [k, v] of sig.entries()) if (k !== 'signer' && k !== 'signature') opts[k] = v;
  Object.assign(opts, {
    blockHash: eraHash,
    genesisHash,
    runtimeVersion: { specVersion: version.specVersion, transactionVersion: version.transactionVersion },
  });
  const payload = sig.createPayload(ext.method, opts).toU8a({ method: true });
  return payload.length > 256 ? registry.hash(payload).toU8a() : payload;
}
