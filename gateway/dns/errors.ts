// Typed errors of the node's DNS client. NXDOMAIN and "no data" are answers, not errors: SPF, MX and
// discovery each give them a meaning of their own. These codes are the lookups that produced no answer.

export type DnsErrorCode =
  /** No server answered within the timeout, on any try. */
  | 'TIMEOUT'
  /** The resolver failed on the name; from a validating resolver this includes DNSSEC-bogus answers. */
  | 'SERVFAIL'
  /** The resolver refused to answer (not allowed to ask it). */
  | 'REFUSED'
  /** An answer that cannot be read or does not match the question. */
  | 'BAD_RESPONSE'
  /** The query could not be sent or the connection failed. */
  | 'NETWORK'
  /** The name is not a domain name. */
  | 'BAD_NAME'
  /** A configured server is not an IP address and port. */
  | 'BAD_CONFIG'
  /** The caller's AbortSignal fired. */
  | 'ABORTED';

export class DnsError extends Error {
  readonly code: DnsErrorCode;
  constructor(code: DnsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DnsError';
    this.code = code;
  }
}
