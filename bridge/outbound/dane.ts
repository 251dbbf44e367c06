// DANE for SMTP (RFC 7672, with RFC 6698 and RFC 7671): which TLSA records bind an MX host, and whether the
// chain an MX presented satisfies them.
//
// The check runs after the handshake on the chain as presented (peerChain), with the TLS client set to
// `rejectUnauthorized: false`: Node calls `checkServerIdentity` only when the chain already validated against
// the CA store, so a DANE check placed there would never run for a self-signed or privately anchored MX and
// would fail open. DANE decides here, PKIX not at all.
import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { BridgeSecureResolver, BridgeTlsaRecord } from '../auth/dns.ts';
import { pathLengthConstraint } from './path-length.ts';

/** DANE-TA(2) and DANE-EE(3): the only usages an SMTP client may act on (RFC 7672 §3.1.3). */
const USABLE_USAGES = new Set([2, 3]);
const USABLE_SELECTORS = new Set([0, 1]);
const USABLE_MATCHING = new Set([0, 1, 2]);
const DIGEST_LENGTH: Record<number, number> = { 1: 32, 2: 64 };

export type DanePolicy =
  /**
   * Secure TLSA records exist: STARTTLS is required. `records` holds the usable ones; when every record is
   * unusable (`unusableOnly`) the connection is still encrypted but not authenticated (RFC 7672 §2.2.1).
   * `baseDomain`: the name the records are at (the MX host, or the name its CNAME chain ends at); a DANE-TA
   * certificate naming it names the host.
   */
  | { kind: 'dane'; records: BridgeTlsaRecord[]; unusableOnly: boolean; baseDomain: string }
  /** No DANE for this host (insecure answer, or a secure denial): MTA-STS or opportunistic TLS decide. */
  | { kind: 'none'; reason: string }
  /** The lookup failed (bogus, SERVFAIL, timeout): the host must not be used now, not even without TLS. */
  | { kind: 'defer'; reason: string };

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Whether a record can authenticate anything: a usage, selector and matching type an SMTP client may act on, and
 * data that can be what its matching type says. A digest of the wrong length is as unusable as an unknown usage
 * (as Postfix and OpenSSL treat it): with no other record, TLS is required but not authenticated (RFC 7672 §2.2.1).
 */
export function isUsableTlsa(record: BridgeTlsaRecord): boolean {
  return USABLE_USAGES.has(record.usage) && USABLE_SELECTORS.has(record.selector) && USABLE_MATCHING.has(record.matchingType)
    && wellFormed(record);
}

/**
 * The DANE policy of one MX host. TLSA records count only when the host's own address records are secure too
 * (RFC 7672 §2.2.2): an attacker who can forge the address can otherwise send the client to a host the
 * signed TLSA records never described. When the host name is an alias, its address came through a secure
 * CNAME chain, and the records are looked up first at the name the chain ends at, then at the alias
 * (RFC 7672 §2.2.2); `baseDomain` says which one they came from.
 */
export async function daneTlsaPolicy(resolver: BridgeSecureResolver, mxHost: string, port = 25): Promise<DanePolicy> {
  const host = mxHost.replace(/\.$/, '').toLowerCase();
  let addresses;
  try {
    addresses = await Promise.all([resolver.a(host), resolver.aaaa(host)]);
  } catch (err) {
    return { kind: 'defer', reason: `address lookup for ${host} failed: ${message(err)}` };
  }
  const withRecords = addresses.filter((answer) => answer.records.length > 0);
  if (withRecords.length === 0) return { kind: 'none', reason: `${host} has no address` };
  if (!withRecords.every((answer) => answer.secure)) return { kind: 'none', reason: `the address of ${host} is not DNSSEC-secure` };

  const expanded = new Set(withRecords.map((answer) => answer.canonicalName?.replace(/\.$/, '').toLowerCase() ?? host));
  const [target] = expanded;
  const bases = expanded.size === 1 && target !== host ? [target!, host] : [host];
  let denial = '';
  for (const base of bases) {
    const name = `_${port}._tcp.${base}`;
    let tlsa;
    try {
      tlsa = await resolver.tlsa(name);
    } catch (err) {
      return { kind: 'defer', reason: `TLSA lookup for ${name} failed: ${message(err)}` };
    }
    if (!tlsa.secure) return { kind: 'none', reason: `the TLSA answer for ${name} is not DNSSEC-secure` };
    if (tlsa.status === 'NXDOMAIN' || tlsa.records.length === 0) {
      denial = denial ? `${denial} nor at ${name}` : `no TLSA records at ${name}`;
      continue;
    }
    const records = tlsa.records.filter(isUsableTlsa);
    return { kind: 'dane', records, unusableOnly: records.length === 0, baseDomain: base };
  }
  return { kind: 'none', reason: denial };
}

/** RFC 8460 result types a DANE failure is reported under. */
export type DaneFailure = 'tlsa-invalid' | 'validation-failure' | 'certificate-host-mismatch' | 'certificate-expired';

export type DaneVerdict =
  /** `depth`: where the matching certificate sits in the chain (0 the leaf; for a trust anchor from DNS that was not presented, one above the last presented certificate it signs). */
  | { ok: true; usage: 2 | 3; depth: number }
  | { ok: false; result: DaneFailure; detail: string };

function selected(cert: X509Certificate, selector: number): Buffer {
  return selector === 0 ? cert.raw : cert.publicKey.export({ type: 'spki', format: 'der' });
}

function matches(record: BridgeTlsaRecord, cert: X509Certificate): boolean {
  const content = selected(cert, record.selector);
  const data = Buffer.from(record.data);
  if (record.matchingType === 0) return content.equals(data);
  return createHash(record.matchingType === 1 ? 'sha256' : 'sha512').update(content).digest().equals(data);
}

/** A record whose data cannot be what its matching type says (a digest of the wrong length, an empty blob). */
function wellFormed(record: BridgeTlsaRecord): boolean {
  const expected = DIGEST_LENGTH[record.matchingType];
  return expected === undefined ? record.data.length > 0 : record.data.length === expected;
}

/** The trust anchor a DANE-TA record carries in full (2 0 0: the certificate, 2 1 0: the public key). */
function anchorKeyFromRecord(record: BridgeTlsaRecord): { key: KeyObject; cert?: X509Certificate } | undefined {
  if (record.usage !== 2 || record.matchingType !== 0) return undefined;
  try {
    if (record.selector === 0) {
      const cert = new X509Certificate(Buffer.from(record.data));
      return { key: cert.publicKey, cert };
    }
    return { key: createPublicKey({ key: Buffer.from(record.data), format: 'der', type: 'spki' }) };
  } catch {
    return undefined;
  }
}

function validAt(cert: X509Certificate, nowMs: number): boolean {
  return Date.parse(cert.validFrom) <= nowMs && nowMs <= Date.parse(cert.validTo);
}

type Failure = Extract<DaneVerdict, { ok: false }>;

/**
 * Whether each CA certificate of a path (leaf first) allows as many intermediate CAs below it as the path has
 * (RFC 5280 §4.2.1.9: self-issued ones do not count).
 */
function pathLengthFailure(path: X509Certificate[]): Failure | undefined {
  let below = 0;
  for (let depth = 1; depth < path.length; depth++) {
    const cert = path[depth]!;
    const limit = pathLengthConstraint(cert);
    if (limit === 'malformed') return { ok: false, result: 'validation-failure', detail: `the basic constraints of the certificate at depth ${depth} cannot be read` };
    if (limit !== undefined && below > limit) {
      return { ok: false, result: 'validation-failure', detail: `the CA certificate at depth ${depth} allows ${limit} intermediate CAs below it, the path has ${below}` };
    }
    if (cert.subject !== cert.issuer) below++;
  }
  return undefined;
}

/**
 * Whether `chain[0..top]` links up by issuer and signature, each certificate valid now, each issuer a CA whose
 * path length constraint holds; `anchor` is the trust anchor above `chain[top]` when it came from a TLSA record.
 */
function checkPath(chain: X509Certificate[], top: number, nowMs: number, anchor?: X509Certificate): Failure | undefined {
  for (let i = 0; i < top; i++) {
    const cert = chain[i]!;
    const issuer = chain[i + 1]!;
    if (!issuer.ca || !cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) {
      return { ok: false, result: 'validation-failure', detail: `certificate at depth ${i} is not signed by the one above it` };
    }
  }
  const constrained = pathLengthFailure([...chain.slice(0, top + 1), ...(anchor ? [anchor] : [])]);
  if (constrained) return constrained;
  for (let i = 0; i <= top && i < chain.length; i++) {
    if (!validAt(chain[i]!, nowMs)) return { ok: false, result: 'certificate-expired', detail: `certificate at depth ${i} is outside its validity period` };
  }
  return undefined;
}

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';

/**
 * Under DANE-TA the leaf is a certificate issued for a purpose: one whose extended key usage leaves out TLS
 * server authentication is not a server's (OpenSSL, and so Postfix, refuse it). No extension means any use.
 */
function purposeFailure(leaf: X509Certificate): Failure | undefined {
  const usages = leaf.keyUsage;
  if (!usages || usages.includes(SERVER_AUTH) || usages.includes(ANY_EXTENDED_KEY_USAGE)) return undefined;
  return { ok: false, result: 'validation-failure', detail: 'the certificate is not for TLS server authentication (extended key usage)' };
}

function nameFailure(leaf: X509Certificate, names: string[]): Failure | undefined {
  const matched = names.some((name) => leaf.checkHost(name, { wildcards: true, partialWildcards: false, singleLabelSubdomains: false }) !== undefined);
  return matched ? undefined : { ok: false, result: 'certificate-host-mismatch', detail: `the certificate names none of ${names.join(', ')}` };
}

/** The order failures are reported in when no record is satisfied: the one closest to success wins. */
const FAILURE_RANK: Record<DaneFailure, number> = { 'tlsa-invalid': 0, 'validation-failure': 1, 'certificate-expired': 2, 'certificate-host-mismatch': 3 };

/**
 * Checks a presented chain (leaf first) against the usable TLSA records of `mxHost`. DANE-EE(3) binds the
 * leaf alone: names and dates are ignored (RFC 7672 §3.1.1). DANE-TA(2) makes a certificate of the chain above
 * the leaf, or a CA certificate the record carries in full, the trust anchor: the path from the leaf up to it
 * must verify (signatures, CA flags, path lengths), the certificates on it must be in date, and the leaf must be
 * for TLS servers and name the MX host or one of `nameCandidates` (RFC 7672 §3.2.3: e.g. the next-hop domain).
 * One satisfied record is enough (key rollover publishes two).
 */
export function verifyDane(
  records: BridgeTlsaRecord[], chain: X509Certificate[], mxHost: string, nameCandidates: string[] = [], nowMs = Date.now(),
): DaneVerdict {
  const usable = records.filter(isUsableTlsa);
  if (usable.length === 0) return { ok: false, result: 'tlsa-invalid', detail: 'no usable, well-formed TLSA record' };
  const leaf = chain[0];
  if (!leaf) return { ok: false, result: 'validation-failure', detail: 'the server presented no certificate' };
  const names = [mxHost, ...nameCandidates].map((name) => name.replace(/\.$/, '').toLowerCase());

  let best: Failure = { ok: false, result: 'validation-failure', detail: 'no TLSA record matches the presented chain' };
  const consider = (failure: Failure) => { if (FAILURE_RANK[failure.result] > FAILURE_RANK[best.result]) best = failure; };

  for (const record of usable) {
    if (record.usage === 3) {
      if (matches(record, leaf)) return { ok: true, usage: 3, depth: 0 };
      continue;
    }
    // A trust anchor is an issuer: a DANE-TA record matching the leaf itself authenticates nothing (OpenSSL, and so
    // Postfix, match DANE-TA only above the leaf).
    for (let depth = 1; depth < chain.length; depth++) {
      if (!matches(record, chain[depth]!)) continue;
      const failure = checkPath(chain, depth, nowMs) ?? purposeFailure(leaf) ?? nameFailure(leaf, names);
      if (!failure) return { ok: true, usage: 2, depth };
      consider(failure);
    }
    // A trust anchor published in full need not be presented: it must then have signed a presented certificate.
    const anchor = anchorKeyFromRecord(record);
    if (!anchor) continue;
    // A certificate published in full is held to what a presented issuer is: a CA, and in date (as OpenSSL, and so
    // Postfix, hold it). A bare key (2 1 0) carries neither.
    if (anchor.cert && !anchor.cert.ca) {
      consider({ ok: false, result: 'validation-failure', detail: 'the trust anchor certificate in the TLSA record is not a CA' });
      continue;
    }
    if (anchor.cert && !validAt(anchor.cert, nowMs)) {
      consider({ ok: false, result: 'certificate-expired', detail: 'the trust anchor certificate in the TLSA record is outside its validity period' });
      continue;
    }
    for (let top = 0; top < chain.length; top++) {
      const cert = chain[top]!;
      if (anchor.cert && !cert.checkIssued(anchor.cert)) continue;
      if (!cert.verify(anchor.key)) continue;
      const failure = checkPath(chain, top, nowMs, anchor.cert) ?? purposeFailure(leaf) ?? nameFailure(leaf, names);
      if (!failure) return { ok: true, usage: 2, depth: top + 1 };
      consider(failure);
    }
  }
  return best;
}

/**
 * The chain the peer presented, leaf first, as Node linked it by issuer. Stops at a self-issued certificate
 * or a loop. Read after the handshake of a connection made with `rejectUnauthorized: false`. Node may append
 * the issuer of the last presented certificate from the client's CA store; that changes nothing for DANE:
 * a certificate counts only when a TLSA record matches it and the presented certificates below it chain to it.
 */
export function peerChain(socket: TLSSocket): X509Certificate[] {
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  let detail = socket.getPeerCertificate(true);
  while (detail && detail.raw && !seen.has(detail.fingerprint256)) {
    seen.add(detail.fingerprint256);
    chain.push(new X509Certificate(detail.raw));
    const issuer = detail.issuerCertificate;
    if (!issuer || issuer === detail) break;
    detail = issuer;
  }
  return chain;
}
