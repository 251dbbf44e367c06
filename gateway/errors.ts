// Typed errors of the node, and the one place where an error code becomes a gRPC status.
import * as grpc from '@grpc/grpc-js';

export type GatewayErrorCode =
  | 'CONFIG_INVALID'
  | 'NODE_EXISTS'
  | 'NODE_MISSING'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'INVALID_ARGUMENT'
  | 'TOO_LARGE'
  | 'UNKNOWN_RECIPIENT'
  | 'REPLAY'
  | 'MAILBOX_EXISTS'
  | 'STORAGE'
  | 'STORAGE_FULL'
  | 'LISTEN_FAILED'
  | 'SHUTTING_DOWN'
  | 'CONFLICT'
  | 'SPLIT_VIEW'
  | 'BAD_SIGNATURE'
  | 'INTERNAL';

export class GatewayError extends Error {
  readonly code: string;
  constructor(code: GatewayErrorCode | string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GatewayError';
    this.code = code;
  }
}

const STATUS_BY_CODE: Record<string, grpc.status> = {
  UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  PERMISSION_DENIED: grpc.status.PERMISSION_DENIED,
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  TOO_LARGE: grpc.status.RESOURCE_EXHAUSTED,
  LIMIT: grpc.status.RESOURCE_EXHAUSTED,
  UNKNOWN_RECIPIENT: grpc.status.NOT_FOUND,
  NOT_FOUND: grpc.status.NOT_FOUND,
  REPLAY: grpc.status.ALREADY_EXISTS,
  MAILBOX_EXISTS: grpc.status.ALREADY_EXISTS,
  STORAGE: grpc.status.UNAVAILABLE,
  // Transient, as SMTP's 452 4.3.1: the sender keeps the message and tries again later.
  STORAGE_FULL: grpc.status.UNAVAILABLE,
  SHUTTING_DOWN: grpc.status.UNAVAILABLE,
  DID_RESOLUTION: grpc.status.UNAVAILABLE,
  DISCOVERY: grpc.status.UNAVAILABLE,
  PEER_UNAVAILABLE: grpc.status.UNAVAILABLE,
  PEER_REJECTED: grpc.status.PERMISSION_DENIED,
  // Envelope checks from identity/ (PROTOCOL.md §2.3): all mean "this envelope is not acceptable".
  ENCODING: grpc.status.INVALID_ARGUMENT,
  BODY_DIGEST: grpc.status.INVALID_ARGUMENT,
  KEY_NOT_IN_DID: grpc.status.INVALID_ARGUMENT,
  SIGNATURE: grpc.status.INVALID_ARGUMENT,
  HASH_MISMATCH: grpc.status.INVALID_ARGUMENT,
  TIME_WINDOW: grpc.status.INVALID_ARGUMENT,
  DECRYPT: grpc.status.INVALID_ARGUMENT,
  // Witnessing (LEDGER.md "Witnessing").
  CONFLICT: grpc.status.FAILED_PRECONDITION,
  SPLIT_VIEW: grpc.status.FAILED_PRECONDITION,
  BAD_SIGNATURE: grpc.status.INVALID_ARGUMENT,
};

export interface StatusError {
  code: grpc.status;
  details: string;
  metadata: grpc.Metadata;
}

/** Maps any thrown value to a gRPC status; unknown errors become INTERNAL without leaking internals. */
export function toGrpcError(err: unknown): StatusError {
  const code = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : 'INTERNAL';
  const status = STATUS_BY_CODE[code] ?? grpc.status.INTERNAL;
  const metadata = new grpc.Metadata();
  metadata.set('aftersmtp-error', code);
  const details = status === grpc.status.INTERNAL ? 'internal error' : (err as Error).message;
  return { code: status, details, metadata };
}

/** SQLite's primary result code for "database or disk is full" (storage.maxBytes is the node's own check). */
const SQLITE_FULL = 13;

export function isStorageFull(err: unknown): boolean {
  const errcode = (err as { errcode?: unknown })?.errcode;
  return typeof errcode === 'number' && (errcode & 0xff) === SQLITE_FULL;
}

/**
 * A failed write as the caller sees it: a full disk becomes STORAGE_FULL (transient: nothing was
 * stored, send again later); anything else STORAGE, with `what` failed.
 */
export function storageFailure(what: string, err: unknown): GatewayError {
  if (err instanceof GatewayError && (err.code === 'STORAGE' || err.code === 'STORAGE_FULL')) return err;
  if (isStorageFull(err)) {
    return new GatewayError('STORAGE_FULL', `${what} failed: the disk holding the node's storage is full; nothing was stored, send again later`, { cause: err });
  }
  return new GatewayError('STORAGE', `${what} failed: ${(err as Error).message}`, { cause: err });
}

/**
 * Runs `open` (opening a database file at start) and names the file in any error: SQLite's own
 * message ("file is not a database") says what is wrong but not where.
 */
export function openingFile<T>(what: string, file: string, open: () => T): T {
  try {
    return open();
  } catch (err) {
    throw new GatewayError('STORAGE', `cannot open ${what} ${file}: ${(err as Error).message} (restore it from a backup, or move it aside to start with an empty one)`, { cause: err });
  }
}

/**
 * Text as one line: control and format characters (CR, LF, bidi overrides) become spaces and runs of
 * space one. Such a line cannot start a header or a MIME boundary of a message it is written into, nor
 * a line of its own in an operator's listing.
 */
export function oneLine(text: string): string {
  return text.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\s]+/gu, ' ').trim();
}
