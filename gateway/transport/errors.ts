/**
 * Typed errors of the node-to-node transports (docs/TRANSPORT.md §6).
 *
 * Every error a transport surfaces is a TransportError with a stable `code`. Errors that describe
 * what the *remote* side did carry `remote: true` and, when the peer named one, `remoteCode`.
 */

export type TransportErrorCode =
  /** The authenticated key of the peer is not the one the dialer expected. */
  | 'PEER_KEY_MISMATCH'
  /** Peer authentication failed (bad signature, unsupported key type, malformed handshake). */
  | 'AUTH_FAILED'
  /** The TLS/QUIC handshake or the peer-auth exchange did not finish in time. */
  | 'HANDSHAKE_TIMEOUT'
  /** The dial failed (connection refused, unreachable, TLS failure, ...). */
  | 'DIAL_FAILED'
  /** The dial did not complete within `timeoutMs`. */
  | 'DIAL_TIMEOUT'
  /** The caller's AbortSignal fired. */
  | 'ABORTED'
  /** A message exceeds `maxMessageBytes` (locally, or the peer's limit when `remote`). */
  | 'MESSAGE_TOO_LARGE'
  /** The peer reset the stream (its code, if any, is in `remoteCode`). */
  | 'STREAM_RESET'
  /** The peer refused the stream (too many concurrent streams, or it is shutting down). */
  | 'STREAM_REFUSED'
  /** The stream was already ended (send after end) or finished. */
  | 'STREAM_CLOSED'
  /** The connection closed (locally, by the peer, or because the peer went silent). */
  | 'CONNECTION_CLOSED'
  /** The peer violated the wire protocol (bad frame, flow-control violation, ...). */
  | 'PROTOCOL_ERROR'
  /** The transport was closed. */
  | 'TRANSPORT_CLOSED'
  /** listen() failed (address in use, bad address, ...). */
  | 'LISTEN_FAILED'
  /** The operation is not possible on this transport (e.g. server-initiated HTTP/2 streams). */
  | 'UNSUPPORTED'
  /** A caller-supplied argument is invalid. */
  | 'INVALID_ARGUMENT';

export class TransportError extends Error {
  readonly code: TransportErrorCode;
  /** True when the error reports what the peer did (reset, refusal, limit on its side). */
  readonly remote: boolean;
  /** The code the peer sent with its reset, when it sent one. */
  readonly remoteCode: string | undefined;

  constructor(
    code: TransportErrorCode,
    message: string,
    options?: { cause?: unknown; remote?: boolean; remoteCode?: string },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TransportError';
    this.code = code;
    this.remote = options?.remote ?? false;
    this.remoteCode = options?.remoteCode;
  }
}

export function isTransportError(err: unknown, code?: TransportErrorCode): err is TransportError {
  return err instanceof TransportError && (code === undefined || err.code === code);
}

/** Codes a peer may send that keep their meaning on this side; anything else becomes STREAM_RESET. */
const PASS_THROUGH_REMOTE_CODES: ReadonlySet<string> = new Set(['MESSAGE_TOO_LARGE', 'STREAM_REFUSED', 'PROTOCOL_ERROR']);

/** The local error for a reset the peer sent with `code` (wire code, may be any [A-Z0-9_] string). */
export function remoteResetError(code: string | undefined, message: string | undefined): TransportError {
  const local: TransportErrorCode = code !== undefined && PASS_THROUGH_REMOTE_CODES.has(code) ? (code as TransportErrorCode) : 'STREAM_RESET';
  const text = `peer reset the stream${code ? ` (${code})` : ''}${message ? `: ${message}` : ''}`;
  return new TransportError(local, text, { remote: true, ...(code === undefined ? {} : { remoteCode: code }) });
}

const WIRE_CODE = /^[A-Z][A-Z0-9_]{0,63}$/;

/** The code to put on the wire when a stream is aborted locally with `err`. */
export function wireCodeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && WIRE_CODE.test(code) ? code : 'CANCELLED';
}

/** Abort reason of a signal as a TransportError (ABORTED unless the reason already is one). */
export function abortError(signal: AbortSignal | undefined, what: string): TransportError {
  const reason: unknown = signal?.reason;
  if (reason instanceof TransportError) return reason;
  return new TransportError('ABORTED', `${what} aborted`, reason === undefined ? undefined : { cause: reason });
}
