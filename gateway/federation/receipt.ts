// Signed relay receipts (PROTOCOL.md §4.1 "Receipts"): the receiving node signs what it promises —
// this message hash is leaf N of its log `origin` — so the sending node can hold it to that promise
// (and check it against the receiver's checkpoints later). A receipt that does not verify is not an
// acknowledgement: the message stays queued.
//
// Batched receipts: a busy receiver acknowledges envelopes in groups (one commit makes many durable
// at once). It then signs the Merkle root of the group's receipts once, and each receipt carries its
// inclusion path in that small tree; the sender verifies one signature per group. Two Ed25519
// operations per relayed message (the receiver's sign, ~40 us, the sender's verify, ~105 us) were
// about a tenth of the ~1.6 ms of CPU a 2 KB hop takes on these machines (DECISIONS 18); batching
// makes them a per-commit cost.
import { bytesEqual, sign, verifySignature, type DidResolver, type SignatureCheck } from '../../identity/index.ts';
import { MemoryTree, inclusionProof, leafHash, rootFromInclusionProof } from '../../ledger/index.ts';
import { GatewayError } from '../core/index.ts';

const DOMAIN_SEPARATOR = 'aftersmtp-receipt-v1\n';
const BATCH_DOMAIN_SEPARATOR = 'aftersmtp-receipt-batch-v1\n';
/** Most receipts one signature covers (an inclusion path is then at most 10 hashes). */
export const MAX_RECEIPT_BATCH = 1024;

export interface ReceiptFields {
  logOrigin: string;
  leafIndex: number | string;
  checkpointSize: number | string;
  messageHash: Uint8Array;
}

/** A receipt as it travels and is kept: single (batchSize 0) or one of a signed batch. */
export interface SignedReceipt extends ReceiptFields {
  signature: Uint8Array;
  batchSize?: number;
  batchIndex?: number;
  batchPath?: Uint8Array[];
}

function originBytes(logOrigin: string): Buffer {
  const origin = Buffer.from(logOrigin, 'utf8');
  if (origin.length > 0xffff) throw new GatewayError('INVALID_ARGUMENT', 'log origin too long');
  return origin;
}

function checkHash(messageHash: Uint8Array): void {
  if (messageHash.length !== 32) throw new GatewayError('INVALID_ARGUMENT', 'message hash must be 32 bytes');
}

/** The exact bytes signed: separator, origin (u16 length + UTF-8), leaf index u64, checkpoint size u64, hash. */
export function receiptSigningInput(r: ReceiptFields): Uint8Array {
  const origin = originBytes(r.logOrigin);
  checkHash(r.messageHash);
  const out = Buffer.alloc(DOMAIN_SEPARATOR.length + 2 + origin.length + 16 + 32);
  let off = out.write(DOMAIN_SEPARATOR, 0, 'ascii');
  off = out.writeUInt16BE(origin.length, off);
  off += origin.copy(out, off);
  off = out.writeBigUInt64BE(BigInt(r.leafIndex), off);
  off = out.writeBigUInt64BE(BigInt(r.checkpointSize), off);
  out.set(r.messageHash, off);
  return out;
}

/** A receipt's leaf in its batch tree: leaf index u64, checkpoint size u64, message hash (48 bytes). */
function receiptBatchLeaf(r: ReceiptFields): Uint8Array {
  checkHash(r.messageHash);
  const out = Buffer.alloc(48);
  out.writeBigUInt64BE(BigInt(r.leafIndex), 0);
  out.writeBigUInt64BE(BigInt(r.checkpointSize), 8);
  out.set(r.messageHash, 16);
  return out;
}

/** The exact bytes a batch signature covers: separator, origin (u16 length + UTF-8), batch size u32, root. */
export function receiptBatchSigningInput(logOrigin: string, batchSize: number, root: Uint8Array): Uint8Array {
  const origin = originBytes(logOrigin);
  const out = Buffer.alloc(BATCH_DOMAIN_SEPARATOR.length + 2 + origin.length + 4 + 32);
  let off = out.write(BATCH_DOMAIN_SEPARATOR, 0, 'ascii');
  off = out.writeUInt16BE(origin.length, off);
  off += origin.copy(out, off);
  off = out.writeUInt32BE(batchSize, off);
  out.set(root, off);
  return out;
}

function signReceipt<T extends ReceiptFields>(receipt: T, signingPrivateKey: Uint8Array): T & { signature: Uint8Array } {
  return { ...receipt, signature: sign(signingPrivateKey, receiptSigningInput(receipt)) };
}

/**
 * Signs receipts of one log together: a single one in the v1 form, several with one signature over
 * the Merkle root of their batch leaves (RFC 9162 tree hashing), each with its inclusion path.
 */
export function signReceiptBatch<T extends ReceiptFields>(receipts: readonly T[], signingPrivateKey: Uint8Array): (T & SignedReceipt)[] {
  if (receipts.length === 0) return [];
  if (receipts.length === 1) return [signReceipt(receipts[0]!, signingPrivateKey)];
  if (receipts.length > MAX_RECEIPT_BATCH) throw new GatewayError('INVALID_ARGUMENT', `at most ${MAX_RECEIPT_BATCH} receipts per batch`);
  const origin = receipts[0]!.logOrigin;
  if (receipts.some((r) => r.logOrigin !== origin)) throw new GatewayError('INVALID_ARGUMENT', 'a receipt batch covers one log');
  const tree = new MemoryTree();
  for (const r of receipts) tree.appendLeafHash(leafHash(receiptBatchLeaf(r)));
  const size = receipts.length;
  const signature = sign(signingPrivateKey, receiptBatchSigningInput(origin, size, tree.root()));
  return receipts.map((r, i) => ({ ...r, signature, batchSize: size, batchIndex: i, batchPath: inclusionProof(tree, i, size) }));
}

/**
 * Signs the receipts requested in one turn of the event loop as one batch: the acknowledgements of
 * one commit share a signature. `sign()` resolves on the next turn.
 */
export class ReceiptBatcher {
  readonly #signingPrivateKey: Uint8Array;
  /** Receipts signed and signatures made since start (their ratio is the average batch size). */
  readonly stats = { receipts: 0, signatures: 0 };
  #queued: { receipt: ReceiptFields; resolve: (r: SignedReceipt) => void; reject: (e: Error) => void }[] = [];

  constructor(signingPrivateKey: Uint8Array) {
    this.#signingPrivateKey = signingPrivateKey;
  }

  /** Signs this receipt alone (v1 form), for a peer that did not announce batched receipts. */
  signAlone<T extends ReceiptFields>(receipt: T): T & SignedReceipt {
    const signed = signReceipt(receipt, this.#signingPrivateKey);
    this.stats.receipts++;
    this.stats.signatures++;
    return signed;
  }

  sign<T extends ReceiptFields>(receipt: T): Promise<T & SignedReceipt> {
    return new Promise((resolve, reject) => {
      if (this.#queued.length === 0) setImmediate(() => this.#flush());
      this.#queued.push({ receipt, resolve: resolve as (r: SignedReceipt) => void, reject });
    });
  }

  #flush(): void {
    const queued = this.#queued;
    this.#queued = [];
    for (let start = 0; start < queued.length; start += MAX_RECEIPT_BATCH) {
      const part = queued.slice(start, start + MAX_RECEIPT_BATCH);
      try {
        const signed = signReceiptBatch(part.map((q) => q.receipt), this.#signingPrivateKey);
        this.stats.receipts += part.length;
        this.stats.signatures++;
        part.forEach((q, i) => q.resolve(signed[i]!));
      } catch (err) {
        for (const q of part) q.reject(err as Error);
      }
    }
  }
}

/** The signed bytes a receipt's signature must cover, or a BAD_RECEIPT reason. */
function signedInputOf(receipt: ReceiptFields & Partial<SignedReceipt>, peerDid: string): Uint8Array {
  const batchSize = Number(receipt.batchSize ?? 0);
  if (batchSize === 0) return receiptSigningInput(receipt);
  const batchIndex = Number(receipt.batchIndex ?? 0);
  if (!Number.isSafeInteger(batchSize) || batchSize > MAX_RECEIPT_BATCH || !Number.isSafeInteger(batchIndex) || batchIndex < 0 || batchIndex >= batchSize) {
    throw new GatewayError('BAD_RECEIPT', `${peerDid} sent a receipt with an invalid batch position ${batchIndex} of ${batchSize}`);
  }
  const path = (receipt.batchPath ?? []).map((h) => new Uint8Array(h));
  if (path.some((h) => h.length !== 32)) throw new GatewayError('BAD_RECEIPT', `${peerDid} sent a receipt batch path with a hash that is not 32 bytes`);
  const root = rootFromInclusionProof(leafHash(receiptBatchLeaf(receipt)), batchIndex, batchSize, path);
  if (root === null) throw new GatewayError('BAD_RECEIPT', `${peerDid} sent a receipt batch path of the wrong length`);
  return receiptBatchSigningInput(receipt.logOrigin, batchSize, root);
}

/** Remembers recent batch signature checks, so a batch of receipts costs one Ed25519 verification. */
export class ReceiptCheckCache {
  readonly #results = new Map<string, Promise<boolean>>();
  readonly #capacity: number;

  constructor(capacity = 256) {
    this.#capacity = capacity;
  }

  check(input: Uint8Array, signature: Uint8Array, run: () => Promise<boolean>): Promise<boolean> {
    const key = `${Buffer.from(signature).toString('latin1')}${Buffer.from(input).toString('latin1')}`;
    let result = this.#results.get(key);
    if (result === undefined) {
      if (this.#results.size >= this.#capacity) this.#results.delete(this.#results.keys().next().value!);
      result = run();
      this.#results.set(key, result);
      // A failed lookup (DID not resolvable just now) is not an answer to remember.
      result.catch(() => this.#results.delete(key));
    }
    return result;
  }
}

/**
 * Checks a peer's receipt for the envelope it acknowledges: same message hash, and a signature by a
 * key of the peer's DID (over the receipt, or over its batch's root). Throws BAD_RECEIPT with the reason.
 */
export async function verifyReceipt(
  receipt: ReceiptFields & Partial<SignedReceipt>, expectedHash: Uint8Array, peerDid: string, resolver: DidResolver,
  verify: SignatureCheck = verifySignature, cache?: ReceiptCheckCache,
): Promise<void> {
  if (!bytesEqual(new Uint8Array(receipt.messageHash ?? []), expectedHash)) {
    throw new GatewayError('BAD_RECEIPT', `${peerDid} acknowledged another message hash`);
  }
  if (!receipt.logOrigin) throw new GatewayError('BAD_RECEIPT', `${peerDid} sent a receipt without a log origin`);
  const signature = receipt.signature ? new Uint8Array(receipt.signature) : new Uint8Array(0);
  if (signature.length !== 64) throw new GatewayError('BAD_RECEIPT', `${peerDid} sent an unsigned receipt`);
  const input = signedInputOf({ ...receipt, messageHash: new Uint8Array(receipt.messageHash) }, peerDid);
  const run = async () => {
    const keys = await resolver.resolveKeys(peerDid);
    for (const key of [...keys.assertionMethod.values(), ...keys.authentication.values()]) {
      if (await verify(key, input, signature)) return true;
    }
    return false;
  };
  const ok = cache && Number(receipt.batchSize ?? 0) > 0 ? await cache.check(input, signature, run) : await run();
  if (!ok) throw new GatewayError('BAD_RECEIPT', `the receipt from ${peerDid} is not signed by a key of its DID document`);
}

/** A receipt as the sending node keeps it with the delivered recipient: byte fields in hex. */
export interface StoredReceipt {
  logOrigin: string;
  leafIndex: number;
  checkpointSize: number;
  messageHash: string;
  signature: string;
  batchSize?: number;
  batchIndex?: number;
  batchPath?: string[];
}

const hex = (b: Uint8Array | undefined): string => Buffer.from(b ?? new Uint8Array(0)).toString('hex');

export function storedReceipt(r: ReceiptFields & Partial<SignedReceipt>): StoredReceipt {
  const out: StoredReceipt = {
    logOrigin: r.logOrigin, leafIndex: Number(r.leafIndex), checkpointSize: Number(r.checkpointSize),
    messageHash: hex(r.messageHash), signature: hex(r.signature),
  };
  if (r.batchSize) Object.assign(out, { batchSize: r.batchSize, batchIndex: r.batchIndex ?? 0, batchPath: (r.batchPath ?? []).map(hex) });
  return out;
}

/** The kept receipt back in the form verifyReceipt() checks. */
export function receiptFromStored(s: StoredReceipt): ReceiptFields & Partial<SignedReceipt> {
  const bytes = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));
  return {
    logOrigin: s.logOrigin, leafIndex: s.leafIndex, checkpointSize: s.checkpointSize, messageHash: bytes(s.messageHash), signature: bytes(s.signature),
    ...(s.batchSize ? { batchSize: s.batchSize, batchIndex: s.batchIndex ?? 0, batchPath: (s.batchPath ?? []).map(bytes) } : {}),
  };
}
