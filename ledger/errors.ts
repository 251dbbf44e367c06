/**
 * Typed errors of the ledger module. Every failure a caller may want to tell apart carries a
 * stable `code`; the message says why in words.
 */

export type LedgerErrorCode =
  /** A checkpoint is not consistent with one signed before (or the tree no longer matches it). */
  | 'INCONSISTENT_CHECKPOINT'
  /** An inclusion or consistency proof does not verify. */
  | 'BAD_PROOF'
  /** A note or cosignature signature is missing, unknown or does not verify. */
  | 'BAD_SIGNATURE'
  /** The requested leaf, tile, bundle, checkpoint or tree size does not exist (yet). */
  | 'NOT_FOUND'
  /** A caller passed an argument outside its domain (negative index, size beyond the tree, ...). */
  | 'BAD_ARGUMENT'
  /** A signed note is malformed (framing, base64, control characters, ...). */
  | 'BAD_NOTE'
  /** A checkpoint body is malformed (origin, size, root hash or extension lines). */
  | 'BAD_CHECKPOINT'
  /** A key is malformed: wrong length, private/public mismatch, unparsable vkey. */
  | 'BAD_KEY'
  /** Leaf data does not follow the ledger leaf format. */
  | 'BAD_LEAF'
  /** The stored log does not match itself (tiles vs size vs entries) or was changed by another writer. */
  | 'CORRUPT'
  /** The log was opened with a configuration that contradicts the stored one (e.g. another origin). */
  | 'CONFIG_MISMATCH';

export class LedgerError extends Error {
  readonly code: LedgerErrorCode;

  constructor(code: LedgerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LedgerError';
    this.code = code;
  }
}

export function isLedgerError(err: unknown, code?: LedgerErrorCode): err is LedgerError {
  return err instanceof LedgerError && (code === undefined || err.code === code);
}
