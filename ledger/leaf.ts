/**
 * Ledger leaf format (leaf data of the transparency log). Hashes only: a leaf never carries an
 * address, a subject or any content, only which kind of object it commits to and that object's hash.
 *
 *   leaf = u8 version (1) || u8 type || 32-byte hash          (34 bytes)
 */
import { LedgerError } from './errors.ts';

export const LEAF_VERSION = 1;
export const LEAF_SIZE = 34;

/** Entry types. The numeric codes are part of the format: never renumber, only add. */
export const LEAF_TYPES = {
  /** An accepted message; the hash is the message hash defined by the protocol. */
  message: 0x01,
  /**
   * An action a compliance rule of the node took on a message; the hash is SHA-256("aftersmtp-audit-v1\n" ||
   * rule || action || message hash), each string with a u16 length (gateway/rules auditHash).
   */
  audit: 0x02,
} as const;

export type LeafType = keyof typeof LEAF_TYPES;

export interface LeafRecord {
  version: typeof LEAF_VERSION;
  type: LeafType;
  messageHash: Uint8Array;
}

const TYPE_BY_CODE = new Map<number, LeafType>(
  (Object.keys(LEAF_TYPES) as LeafType[]).map((k) => [LEAF_TYPES[k], k]),
);

export function encodeLeaf(leaf: LeafRecord): Uint8Array {
  if (leaf.version !== LEAF_VERSION) throw new LedgerError('BAD_LEAF', `unsupported leaf version ${String(leaf.version)}`);
  const code = LEAF_TYPES[leaf.type];
  if (code === undefined) throw new LedgerError('BAD_LEAF', `unknown leaf type ${String(leaf.type)}`);
  if (!(leaf.messageHash instanceof Uint8Array) || leaf.messageHash.length !== 32) {
    throw new LedgerError('BAD_LEAF', 'messageHash must be 32 bytes');
  }
  const out = new Uint8Array(LEAF_SIZE);
  out[0] = LEAF_VERSION;
  out[1] = code;
  out.set(leaf.messageHash, 2);
  return out;
}

export function decodeLeaf(data: Uint8Array): LeafRecord {
  if (data.length !== LEAF_SIZE) throw new LedgerError('BAD_LEAF', `leaf must be ${LEAF_SIZE} bytes, got ${data.length}`);
  if (data[0] !== LEAF_VERSION) throw new LedgerError('BAD_LEAF', `unsupported leaf version ${data[0]}`);
  const type = TYPE_BY_CODE.get(data[1]!);
  if (type === undefined) throw new LedgerError('BAD_LEAF', `unknown leaf type 0x${data[1]!.toString(16)}`);
  return { version: LEAF_VERSION, type, messageHash: data.slice(2) };
}

/**
 * The default lookup key of a leaf for `leafIndexOf`: the hash a ledger leaf carries; undefined for
 * data that is not a ledger leaf (not indexed).
 */
export function leafLookupKey(data: Uint8Array): Uint8Array | undefined {
  if (data.length !== LEAF_SIZE || data[0] !== LEAF_VERSION || !TYPE_BY_CODE.has(data[1]!)) return undefined;
  return data.subarray(2);
}
