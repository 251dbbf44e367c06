// Typed errors of the node, and the one place where an error code becomes a gRPC status.
import * as grpc from '@grpc/grpc-js';
import type { ErrorCode as IdentityErrorCode } from '../../identity/index.ts';

export type GatewayErrorCode =
  /** config.yaml (or a flag standing for it) does not make a valid configuration. */
  | 'CONFIG_INVALID'
  /** `init` into a data directory that already holds a node. */
  | 'NODE_EXISTS'
  /** The data directory holds no node (or not its keys): run `init` first. */
  | 'NODE_MISSING'
  /** No bearer token, or one the node does not know. */
  | 'UNAUTHENTICATED'
  /** A valid token used for what it may not do (an envelope of another sender); a rule refusing a message (5xx). */
  | 'PERMISSION_DENIED'
  /** A rule of the node refuses the message for now (a reject rule with a 4xx code): send it again later. */
  | 'DEFERRED'
  /** A request, flag or field the node cannot use as given. */
  | 'INVALID_ARGUMENT'
  /** A message over the node's size limit. */
  | 'TOO_LARGE'
  /** A bound of the node's own is reached (the logs a witness follows); also identity/'s size limits. */
  | 'LIMIT'
  /** No such mailbox, queued recipient or log leaf. */
  | 'NOT_FOUND'
  /** A recipient address this node has no mailbox for. */
  | 'UNKNOWN_RECIPIENT'
  /** A message id already accepted (PROTOCOL §5); also identity/'s replay check. */
  | 'REPLAY'
  /** `mailbox add` of an address that already has a mailbox. */
  | 'MAILBOX_EXISTS'
  /** A read or write of the node's databases failed. */
  | 'STORAGE'
  /** The store's disk, or its storage.maxBytes, is full: nothing was stored, send again later. */
  | 'STORAGE_FULL'
  /** A listener (gRPC, HTTPS, QUIC, relay) could not bind its address. */
  | 'LISTEN_FAILED'
  /** The node (or the part asked) is draining: nothing was taken, send again. */
  | 'SHUTTING_DOWN'
  /** A domain's node could not be found: its DNS record, DID document or endpoints. */
  | 'DISCOVERY'
  /** A peer did not answer, or its stream failed, before it acknowledged. */
  | 'PEER_UNAVAILABLE'
  /** A peer refused with a code this node does not know (a newer peer's, or not a code at all): not permanent, so retried. */
  | 'PEER_ERROR'
  /** A peer is not who it claims (its key is not in its DID document) or sends for a domain not its own. */
  | 'PEER_REJECTED'
  /** A peer's delivery receipt does not verify against the envelope it acknowledges. */
  | 'BAD_RECEIPT'
  /** A witness saw another size of the log than the one a request proves from; or a mailbox still holds unacknowledged mail. */
  | 'CONFLICT'
  /** A witness saw two different roots for one size of a log (LEDGER.md "Witnessing"). */
  | 'SPLIT_VIEW'
  /** A checkpoint or cosignature that does not verify with a key of its DID. */
  | 'BAD_SIGNATURE'
  /** Anything unforeseen; a caller is told only "internal error". */
  | 'INTERNAL'
  /** identity/'s envelope and DID checks (IdentityError), as a peer reports them back. */
  | IdentityErrorCode;

export class GatewayError extends Error {
  readonly code: GatewayErrorCode;
  constructor(code: GatewayErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GatewayError';
    this.code = code;
  }
}

/** The gRPC status of every code: a code added above without one here does not type-check. */
const STATUS_BY_CODE: Record<GatewayErrorCode, grpc.status> = {
  UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  PERMISSION_DENIED: grpc.status.PERMISSION_DENIED,
  DEFERRED: grpc.status.UNAVAILABLE,
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
  PEER_ERROR: grpc.status.UNAVAILABLE,
  PEER_REJECTED: grpc.status.PERMISSION_DENIED,
  // Envelope checks from identity/ (PROTOCOL.md §2.3): all mean "this envelope is not acceptable".
  ENCODING: grpc.status.INVALID_ARGUMENT,
  BODY_DIGEST: grpc.status.INVALID_ARGUMENT,
  KEY_ID_MISMATCH: grpc.status.INVALID_ARGUMENT,
  KEY_NOT_IN_DID: grpc.status.INVALID_ARGUMENT,
  SIGNATURE: grpc.status.INVALID_ARGUMENT,
  HASH_MISMATCH: grpc.status.INVALID_ARGUMENT,
  MESSAGE_ID_MISMATCH: grpc.status.INVALID_ARGUMENT,
  RECIPIENTS_DIGEST: grpc.status.INVALID_ARGUMENT,
  NOT_A_RECIPIENT: grpc.status.INVALID_ARGUMENT,
  TIME_WINDOW: grpc.status.INVALID_ARGUMENT,
  DECRYPT: grpc.status.INVALID_ARGUMENT,
  // Witnessing (LEDGER.md "Witnessing").
  CONFLICT: grpc.status.FAILED_PRECONDITION,
  SPLIT_VIEW: grpc.status.FAILED_PRECONDITION,
  BAD_SIGNATURE: grpc.status.INVALID_ARGUMENT,
  // Failures of the node's own start, files or outbound side: no RPC answers with them.
  CONFIG_INVALID: grpc.status.INTERNAL,
  NODE_EXISTS: grpc.status.INTERNAL,
  NODE_MISSING: grpc.status.INTERNAL,
  LISTEN_FAILED: grpc.status.INTERNAL,
  BAD_RECEIPT: grpc.status.INTERNAL,
  INTERNAL: grpc.status.INTERNAL,
};

function isGatewayErrorCode(code: string): code is GatewayErrorCode {
  return Object.hasOwn(STATUS_BY_CODE, code);
}

/**
 * A code a peer reported (a relay ack, a cosign reply) as one of ours. A code outside the list (a
 * newer peer's, or text that is no code) is PEER_ERROR: nothing can be concluded from it but that the
 * peer refused, so it is not permanent.
 */
export function peerErrorCode(code: string): GatewayErrorCode {
  return isGatewayErrorCode(code) ? code : 'PEER_ERROR';
}

export interface StatusError {
  code: grpc.status;
  details: string;
  metadata: grpc.Metadata;
}

/** Maps any thrown value to a gRPC status; unknown errors become INTERNAL without leaking internals. */
export function toGrpcError(err: unknown): StatusError {
  const thrown = (err as { code?: unknown })?.code;
  const code = typeof thrown === 'string' ? thrown : 'INTERNAL';
  const status = isGatewayErrorCode(code) ? STATUS_BY_CODE[code] : grpc.status.INTERNAL;
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
