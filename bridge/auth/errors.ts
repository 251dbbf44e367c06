// Typed errors of the bridge's authentication code: refusals of the caller's input or of a chain that
// must not be sealed. Verdicts about a message (fail, temperror, ...) are results, never errors.

export type AuthErrorCode =
  /** The authserv-id is not a token (RFC 8601 §2.5); the node's own name is expected. */
  | 'BAD_AUTHSERV_ID'
  /** The private key cannot be read, or is neither RSA nor Ed25519. */
  | 'BAD_KEY'
  /** A seal argument is not usable (domain, selector, header list, time, chain validation). */
  | 'BAD_ARGUMENT'
  /** The chain already has RFC 8617's 50 sets: a 51st would invalidate it for every validator. */
  | 'CHAIN_FULL';

export class AuthError extends Error {
  readonly code: AuthErrorCode;
  constructor(code: AuthErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AuthError';
    this.code = code;
  }
}

/** A host name (LDH labels): signing domains, selectors, and the authserv-id the node uses. */
export const HOST_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** RFC 5322 §3.6.8 field-name: printable ASCII except the colon. */
export const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

/** RFC 8601 §2.5 authserv-id: a value, here restricted to a host name, which is what the node uses. */
const AUTHSERV_ID = HOST_NAME;

export function checkAuthservId(authservId: string): void {
  if (!AUTHSERV_ID.test(authservId) || authservId.length > 253) {
    throw new AuthError('BAD_AUTHSERV_ID', `"${authservId}" is not a host name usable as authserv-id`);
  }
}
