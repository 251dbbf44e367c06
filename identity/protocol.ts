/** Protocol v1 constants, limits (PROTOCOL §7) and the time window (PROTOCOL §5). */
import { IdentityError } from './errors.ts';
import { utf8 } from './encoding.ts';

export const PROTOCOL_VERSION = 1;

/** Domain separation prefixes (ASCII, no terminator; they differ at byte 13). */
export const MESSAGE_SIGNING_PREFIX = utf8('AfterSMTP-v1 message');
export const ENVELOPE_AAD_PREFIX = utf8('AfterSMTP-v1 envelope');
export const CONTENT_KEY_INFO = utf8('AfterSMTP-v1 content-key');

export const MESSAGE_ID_BYTES = 16;
export const DIGEST_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const NONCE_BYTES = 12;
export const CONTENT_KEY_BYTES = 32;
export const ENC_BYTES = 32;
export const WRAPPED_KEY_BYTES = CONTENT_KEY_BYTES + 16;

/** Hard protocol ceiling for an envelope; nodes configure a lower limit (default 25 MiB). */
export const MAX_ENVELOPE_BYTES_HARD = 32 * 1024 * 1024;
export const DEFAULT_MAX_ENVELOPE_BYTES = 25 * 1024 * 1024;
export const DEFAULT_MAX_RECIPIENTS = 1000;
export const DEFAULT_MAX_FIELD_BYTES = 2048;
export const DEFAULT_MAX_LIFETIME_MS = 7 * 24 * 60 * 60 * 1000;
export const DEFAULT_SKEW_MS = 5 * 60 * 1000;

export interface Limits {
  /** Whole envelope (and the signed message inside it), bytes. */
  maxEnvelopeBytes: number;
  /** Entries of any recipient list (header `to`, recipient_addresses, wrapped keys). */
  maxRecipients: number;
  /** A DID, address, key id or content type, bytes of UTF-8. */
  maxFieldBytes: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxEnvelopeBytes: DEFAULT_MAX_ENVELOPE_BYTES,
  maxRecipients: DEFAULT_MAX_RECIPIENTS,
  maxFieldBytes: DEFAULT_MAX_FIELD_BYTES,
});

export function resolveLimits(limits?: Partial<Limits>): Limits {
  const l = { ...DEFAULT_LIMITS, ...limits };
  if (l.maxEnvelopeBytes > MAX_ENVELOPE_BYTES_HARD) l.maxEnvelopeBytes = MAX_ENVELOPE_BYTES_HARD;
  return l;
}

export interface TimeWindowOptions {
  now: number;
  skewMs: number;
  /** Omit for the inner message (PROTOCOL §2.2 bounds only created and expires against now). */
  maxLifetimeMs?: number;
}

/** created <= now + skew, now <= expires, and (envelopes) expires - created <= max lifetime. */
export function checkTimeWindow(createdMs: number, expiresMs: number, opts: TimeWindowOptions): void {
  if (expiresMs <= createdMs) throw new IdentityError('TIME_WINDOW', 'expires is not after created');
  if (createdMs > opts.now + opts.skewMs) {
    throw new IdentityError('TIME_WINDOW', `created ${createdMs - opts.now} ms in the future (allowed skew ${opts.skewMs} ms)`);
  }
  if (opts.now > expiresMs) throw new IdentityError('TIME_WINDOW', `expired ${opts.now - expiresMs} ms ago`);
  if (opts.maxLifetimeMs !== undefined && expiresMs - createdMs > opts.maxLifetimeMs) {
    throw new IdentityError('TIME_WINDOW', `lifetime ${expiresMs - createdMs} ms exceeds the maximum of ${opts.maxLifetimeMs} ms`);
  }
}
