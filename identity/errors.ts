/**
 * Every failure in identity/ is an IdentityError with a machine-readable code.
 * Codes are stable strings; callers map them to transport errors (docs/PROTOCOL.md §6).
 */
export const ErrorCodes = {
  /** Malformed bytes: wrong length, truncated, trailing bytes, bad UTF-8, unsupported version. */
  ENCODING: 'ENCODING',
  /** A field or a whole structure is over the limits of PROTOCOL §7. */
  LIMIT: 'LIMIT',
  /** SHA-256(body) differs from the header's body_digest. */
  BODY_DIGEST: 'BODY_DIGEST',
  /** The key id's DID is not the DID it must belong to (from_did / sender_did). */
  KEY_ID_MISMATCH: 'KEY_ID_MISMATCH',
  /** The key id is not listed in the required relationship of the resolved DID document. */
  KEY_NOT_IN_DID: 'KEY_NOT_IN_DID',
  /** An Ed25519 signature does not verify. */
  SIGNATURE: 'SIGNATURE',
  /** A wrapped key or the ciphertext does not open (wrong key, tampering). */
  DECRYPT: 'DECRYPT',
  /** SHA-256(signed_message) differs from the stated message_hash. */
  HASH_MISMATCH: 'HASH_MISMATCH',
  /** The inner message_id differs from the envelope's. */
  MESSAGE_ID_MISMATCH: 'MESSAGE_ID_MISMATCH',
  /** recipients_digest does not match the recipient key ids, or they are unsorted/duplicated. */
  RECIPIENTS_DIGEST: 'RECIPIENTS_DIGEST',
  /** The envelope has no wrapped key for the given key id. */
  NOT_A_RECIPIENT: 'NOT_A_RECIPIENT',
  /** created/expires outside the accepted window (PROTOCOL §5). */
  TIME_WINDOW: 'TIME_WINDOW',
  /** The DID could not be resolved or its document is unacceptable. */
  DID_RESOLUTION: 'DID_RESOLUTION',
  /** A caller passed an unusable argument (wrong key length, unknown suite...). */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class IdentityError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IdentityError';
    this.code = code;
  }
}

export function isIdentityError(e: unknown, code?: ErrorCode): e is IdentityError {
  return e instanceof IdentityError && (code === undefined || e.code === code);
}
