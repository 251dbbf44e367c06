// Sender Rewriting Scheme: a message the node forwards to another domain goes out with a reverse-path in the
// node's own domain, so the next hop's SPF check sees the node's domain and a bounce comes back to the node,
// which turns the address back into the original sender's. The format is the common one (the SRS paper,
// libsrs2, postsrsd), so addresses stay readable by other forwarders:
//
//   SRS0=HHHH=TT=orig-domain=orig-local@forwarder      the first forwarder
//   SRS1=HHHH=first-forwarder==HHHH=TT=...@forwarder   a forwarder of an SRS0 address (the "=" after the
//                                                      first forwarder's domain, then its SRS0 part minus "SRS0")
//
// HHHH is the first 4 characters of the base64 HMAC-SHA1 of the fields after it (lower-cased), TT the day
// number modulo 1024 in two base32 characters. Receivers and MTAs on the way may change the case of a local
// part, so the hash is computed over lower-cased data and compared without regard to case, and TT is read
// either way; what case folding destroys (the original local part's case) cannot be restored.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { HOST_NAME } from '../auth/errors.ts';

export type SrsErrorCode =
  /** The address is not an SRS address (no SRS0 or SRS1 prefix). */
  | 'NOT_SRS'
  /** The hash does not match under any configured secret: forged, or made with a retired secret. */
  | 'BAD_HASH'
  /** The timestamp is older than maxAgeDays: a bounce for a message forwarded long ago, or a replay. */
  | 'EXPIRED'
  /** The address, or an SRS address's fields, cannot be read. */
  | 'MALFORMED'
  /** The Srs options are not usable (no secret, an empty one, a domain that is not a host name, a bad age). */
  | 'BAD_CONFIG';

export class SrsError extends Error {
  readonly code: SrsErrorCode;
  constructor(code: SrsErrorCode, message: string) {
    super(message);
    this.name = 'SrsError';
    this.code = code;
  }
}

export interface SrsOptions {
  /** HMAC keys: the first signs new addresses, every one verifies (rotation: put the new one first). */
  secret: Buffer | Buffer[];
  /** The forwarder's domain: the domain of every rewritten address (bounces must reach the node there). */
  domain: string;
  /** A bounce to an address older than this is refused; at most 1023 (the timestamp counts days mod 1024). */
  maxAgeDays?: number;
  /** The clock, milliseconds since the epoch. */
  now?: () => number;
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const HASH_LENGTH = 4;
const DAY_MS = 86_400_000;
const TIME_SLOTS = 1024;
const SRS0 = /^SRS0[=+-]/i;
const SRS1 = /^SRS1[=+-]/i;

/** ASCII only: a Unicode lower-casing can change the octet count and would not be what other forwarders hash. */
function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

function splitAddress(address: string): { local: string; domain: string } {
  const at = address.lastIndexOf('@');
  // Whitespace, controls and angle brackets are never part of a path's mailbox: refuse them before they end
  // up inside another address.
  if (at <= 0 || at === address.length - 1 || /[\x00-\x20\x7f<>]/.test(address)) {
    throw new SrsError('MALFORMED', `"${address.replace(/[\x00-\x1f\x7f]/g, '?')}" is not a mailbox address`);
  }
  const domain = address.slice(at + 1);
  if (/[=@]/.test(domain)) throw new SrsError('MALFORMED', `"${domain}" is not a domain`);
  return { local: address.slice(0, at), domain };
}

export class Srs {
  readonly domain: string;
  readonly maxAgeDays: number;
  private readonly secrets: Buffer[];
  private readonly now: () => number;

  constructor(opts: SrsOptions) {
    this.secrets = Array.isArray(opts.secret) ? [...opts.secret] : [opts.secret];
    if (this.secrets.length === 0 || this.secrets.some((s) => !Buffer.isBuffer(s) || s.length === 0)) {
      throw new SrsError('BAD_CONFIG', 'SRS needs at least one secret, none of them empty');
    }
    if (!HOST_NAME.test(opts.domain) || opts.domain.length > 253) throw new SrsError('BAD_CONFIG', `"${opts.domain}" is not a host name`);
    this.domain = opts.domain;
    this.maxAgeDays = opts.maxAgeDays ?? 21;
    if (!Number.isInteger(this.maxAgeDays) || this.maxAgeDays < 1 || this.maxAgeDays >= TIME_SLOTS) {
      throw new SrsError('BAD_CONFIG', `maxAgeDays must be a whole number of days from 1 to ${TIME_SLOTS - 1}`);
    }
    this.now = opts.now ?? Date.now;
  }

  /**
   * The reverse-path to use when forwarding mail from `address`. The null path stays null (nothing bounces
   * to it) and an address already in the forwarder's domain stays as it is (its bounces come here anyway).
   */
  forward(address: string): string {
    if (address === '') return '';
    const { local, domain } = splitAddress(address);
    if (asciiLower(domain) === asciiLower(this.domain)) return address;
    if (SRS0.test(local)) {
      // Keep the first forwarder's SRS0 part as it is (only it can check its hash) and vouch for it with ours.
      return this.srs1(domain, local.slice(4));
    }
    if (SRS1.test(local)) {
      const parsed = parseSrs1(local);
      // Another forwarder's SRS1: the first forwarder and its part stay, the hash becomes ours.
      if (parsed) return this.srs1(parsed.firstHost, parsed.srs0Rest);
    }
    const stamp = this.timestamp();
    return `SRS0=${this.hash(this.secrets[0]!, stamp, domain, local)}=${stamp}=${domain}=${local}@${this.domain}`;
  }

  /**
   * The address a bounce to `address` goes back to: the original sender for SRS0, the previous forwarder's
   * SRS0 address for SRS1. Throws an SrsError: NOT_SRS, MALFORMED, BAD_HASH (checked first: a forged
   * address is reported as forged whatever its timestamp) or EXPIRED.
   */
  reverse(address: string): string {
    const { local } = splitAddress(address);
    if (SRS0.test(local)) {
      const fields = /^SRS0[=+-]([^=]*)=([^=]*)=([^=]*)=(.*)$/is.exec(local);
      if (!fields || fields[4] === '' || fields[3] === '') throw new SrsError('MALFORMED', `"${local}" does not have the SRS0 fields HHHH=TT=domain=local`);
      const [, hash, stamp, origDomain, origLocal] = fields as unknown as [string, string, string, string, string];
      this.checkHash(hash, local, stamp, origDomain, origLocal);
      this.checkTimestamp(stamp, local);
      return `${origLocal}@${origDomain}`;
    }
    if (SRS1.test(local)) {
      const parsed = parseSrs1(local);
      if (!parsed) throw new SrsError('MALFORMED', `"${local}" does not have the SRS1 fields HHHH=host=part`);
      this.checkHash(parsed.hash, local, parsed.firstHost, parsed.srs0Rest);
      return `SRS0${parsed.srs0Rest}@${parsed.firstHost}`;
    }
    throw new SrsError('NOT_SRS', `"${local}" is not an SRS address`);
  }

  private srs1(firstHost: string, srs0Rest: string): string {
    return `SRS1=${this.hash(this.secrets[0]!, firstHost, srs0Rest)}=${firstHost}=${srs0Rest}@${this.domain}`;
  }

  private hash(secret: Buffer, ...fields: string[]): string {
    // A NUL between the fields: hashed back to back (as libsrs2 does), "example.co" + "mbob" would hash like
    // "example.com" + "bob", and one genuine address would let a bounce be steered to a neighbouring domain.
    // Only this forwarder checks its hashes, so the difference from libsrs2 costs no interoperability.
    return createHmac('sha1', secret).update(fields.map(asciiLower).join('\0'), 'utf8').digest('base64').slice(0, HASH_LENGTH);
  }

  private checkHash(given: string, local: string, ...fields: string[]): void {
    if (given.length === HASH_LENGTH) {
      const seen = Buffer.from(asciiLower(given), 'utf8');
      for (const secret of this.secrets) {
        const expected = Buffer.from(asciiLower(this.hash(secret, ...fields)), 'utf8');
        if (seen.length === expected.length && timingSafeEqual(seen, expected)) return;
      }
    }
    throw new SrsError('BAD_HASH', `the hash of "${local}" was not made by this forwarder (forged, or made with a retired secret)`);
  }

  private timestamp(): string {
    const day = Math.floor(this.now() / DAY_MS) % TIME_SLOTS;
    return BASE32[day >> 5]! + BASE32[day & 31]!;
  }

  private checkTimestamp(stamp: string, local: string): void {
    const upper = stamp.toUpperCase();
    const hi = BASE32.indexOf(upper[0] ?? '');
    const lo = BASE32.indexOf(upper[1] ?? '');
    if (upper.length !== 2 || hi < 0 || lo < 0) throw new SrsError('MALFORMED', `"${stamp}" in "${local}" is not an SRS timestamp`);
    const then = (hi << 5) | lo;
    const today = Math.floor(this.now() / DAY_MS) % TIME_SLOTS;
    // Days count modulo 1024: a stamp "after" today is from the previous cycle.
    const age = (today - then + TIME_SLOTS) % TIME_SLOTS;
    if (age > this.maxAgeDays) throw new SrsError('EXPIRED', `"${local}" is ${age} days old (at most ${this.maxAgeDays} accepted)`);
  }
}

/** SRS1<sep>HHHH=first-host=<rest>: rest is the first forwarder's SRS0 address minus "SRS0", starting with its separator. */
function parseSrs1(local: string): { hash: string; firstHost: string; srs0Rest: string } | null {
  const m = /^SRS1[=+-]([^=]*)=([^=]+)=([=+-].+)$/is.exec(local);
  return m ? { hash: m[1]!, firstHost: m[2]!, srs0Rest: m[3]! } : null;
}
