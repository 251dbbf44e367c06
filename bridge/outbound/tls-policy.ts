// How one MX host must be reached, and whether the TLS it gave is good enough: DANE when the host has secure
// TLSA records (it wins over MTA-STS), else the domain's MTA-STS policy, else opportunistic STARTTLS; a static
// route says its own mode. The certificate is judged after the handshake, on a connection made with
// `rejectUnauthorized: false`: DANE ignores PKIX entirely, and Node would never call checkServerIdentity for a
// chain that failed, so the PKIX verdict is read from `authorized` and the name checked here.
import { checkServerIdentity, rootCertificates, type TLSSocket } from 'node:tls';
import type { BridgeSecureResolver, BridgeTlsaRecord } from '../auth/dns.ts';
import { daneTlsaPolicy, peerChain, verifyDane } from './dane.ts';
import { mxMatches, type StsPolicy, type StsResolution } from './mta-sts.ts';
import type { SmtpTlsMode, TlsFailureType, TlsOutcome } from './types.ts';

/** What TLS-RPT says about the policy a negotiation was held to. */
export type PolicyReport = Pick<TlsOutcome, 'policyDomain' | 'policyType' | 'policyStrings'>;

export type HostPolicy =
  /** Secure TLSA records: STARTTLS required; the chain must satisfy a record unless only unusable ones exist. */
  | { kind: 'dane'; records: BridgeTlsaRecord[]; unusableOnly: boolean; nameCandidates: string[]; report: PolicyReport }
  /** An MTA-STS policy: `enforce` requires STARTTLS and a PKIX-valid certificate for the host; `testing` reports only. */
  | { kind: 'sts'; mode: 'enforce' | 'testing'; policy: StsPolicy; report: PolicyReport }
  /** A static route's `verify`: STARTTLS with a PKIX-valid certificate for the host name. */
  | { kind: 'verify'; report: PolicyReport }
  /** STARTTLS when offered, any certificate; in clear when the server offers none or the handshake fails. */
  | { kind: 'may'; report: PolicyReport }
  /** A static route's `none`: plaintext. */
  | { kind: 'none'; report: PolicyReport }
  /** This host must not be used now: a failed TLSA lookup, or an MX the enforced STS policy does not list. */
  | { kind: 'skip'; reason: string; outcome?: { report: PolicyReport; result: TlsFailureType } };

export type PeerVerdict =
  | { ok: true; authenticated: 'dane' | 'sts' | 'pkix' | 'none' }
  | { ok: false; result: TlsFailureType; detail: string };

const noPolicy = (domain: string): PolicyReport => ({ policyDomain: domain, policyType: 'no-policy-found', policyStrings: [] });

export function tlsaStrings(records: BridgeTlsaRecord[]): string[] {
  return records.map((r) => `${r.usage} ${r.selector} ${r.matchingType} ${Buffer.from(r.data).toString('hex').toUpperCase()}`);
}

export function stsStrings(policy: StsPolicy): string[] {
  return [`version: ${policy.version}`, `mode: ${policy.mode}`, ...policy.mx.map((mx) => `mx: ${mx}`), `max_age: ${policy.maxAgeSeconds}`];
}

export interface HostPolicyInput {
  resolver: BridgeSecureResolver;
  /** The recipient domain (the next-hop domain). */
  domain: string;
  host: string;
  /** The port TLSA records are looked up for: 25 for MX hosts whatever port a test maps them to. */
  tlsaPort: number;
  /** The MX answer was DNSSEC-secure: the next-hop domain is then also a name a DANE-TA certificate may carry. */
  mxSecure: boolean;
  /** The domain's MTA-STS state, resolved once per delivery; undefined for static routes. */
  sts?: StsResolution;
  /** A static route's mode, instead of the MX rules. */
  mode?: SmtpTlsMode;
}

/** The policy one host is held to, DANE first (RFC 8461 §2: a sender that validates DANE uses it over STS). */
export async function hostPolicy(input: HostPolicyInput): Promise<HostPolicy> {
  const { domain, host } = input;
  if (input.mode === 'none') return { kind: 'none', report: noPolicy(domain) };
  if (input.mode === 'may') return { kind: 'may', report: noPolicy(domain) };
  if (input.mode === 'verify') return { kind: 'verify', report: noPolicy(domain) };

  const dane = await daneTlsaPolicy(input.resolver, host, input.tlsaPort);
  const tlsaReport = (records: BridgeTlsaRecord[]): PolicyReport => ({ policyDomain: host, policyType: 'tlsa', policyStrings: tlsaStrings(records) });
  if (dane.kind === 'defer') {
    const tlsaFailed = dane.reason.startsWith('TLSA lookup');
    return { kind: 'skip', reason: dane.reason, ...(tlsaFailed ? { outcome: { report: tlsaReport([]), result: 'dnssec-invalid' as const } } : {}) };
  }
  if (dane.kind === 'dane') {
    // RFC 7672 §3.2.3: a DANE-TA leaf may name the next-hop domain (when the MX records were secure) or the
    // name the MX host's CNAME chain ends at (where the TLSA records were found).
    const nameCandidates = [...new Set([
      ...(input.mxSecure && host !== domain ? [domain] : []),
      ...(dane.baseDomain !== host ? [dane.baseDomain] : []),
    ])];
    return { kind: 'dane', records: dane.records, unusableOnly: dane.unusableOnly, nameCandidates, report: tlsaReport(dane.records) };
  }
  if (input.mode === 'dane' || input.sts?.kind !== 'policy') return { kind: 'may', report: noPolicy(domain) };

  const { policy } = input.sts;
  const report: PolicyReport = { policyDomain: domain, policyType: 'sts', policyStrings: stsStrings(policy) };
  const mode = policy.mode === 'enforce' ? 'enforce' : 'testing';
  if (!mxMatches(policy, host) && mode === 'enforce') {
    return { kind: 'skip', reason: `${host} is not an MX the MTA-STS policy of ${domain} names`, outcome: { report, result: 'validation-failure' } };
  }
  return { kind: 'sts', mode, policy, report };
}

/** STARTTLS must succeed and the peer be verified: a failure there makes the host unusable. */
export function tlsRequired(policy: HostPolicy): boolean {
  return policy.kind === 'dane' || policy.kind === 'verify' || (policy.kind === 'sts' && policy.mode === 'enforce');
}

/** Whether a successful negotiation under this policy authenticates the server, as REQUIRETLS demands (RFC 8689 §4.2). */
export function authenticates(policy: HostPolicy): boolean {
  return (policy.kind === 'dane' && !policy.unusableOnly) || policy.kind === 'verify' || (policy.kind === 'sts' && policy.mode === 'enforce');
}

/** Connections are reused only under the policy they were verified under. */
export function policyKey(policy: HostPolicy): string {
  switch (policy.kind) {
    case 'dane': return `dane:${policy.unusableOnly ? 'encrypt' : tlsaStrings(policy.records).sort().join(',')}:${policy.nameCandidates.join(',')}`;
    case 'sts': return `sts:${policy.mode}:${stsStrings(policy.policy).join(',')}`;
    default: return policy.kind;
  }
}

/** Trust anchors for PKIX checks: the system's plus the configured ones (giving `ca` alone would replace the system's). */
export function trustAnchors(ca: string | string[] | undefined): string[] | undefined {
  if (ca === undefined) return undefined;
  return [...rootCertificates, ...(Array.isArray(ca) ? ca : [ca])];
}

function pkix(socket: TLSSocket, host: string): PeerVerdict {
  if (!socket.authorized) {
    const reason = String(socket.authorizationError ?? 'unknown');
    // Node runs its own name check after a chain that verified, and reports a mismatch here too.
    if (reason === 'ERR_TLS_CERT_ALTNAME_INVALID') return { ok: false, result: 'certificate-host-mismatch', detail: `${host}: the certificate does not name it` };
    const expired = reason === 'CERT_HAS_EXPIRED' || reason === 'CERT_NOT_YET_VALID';
    return { ok: false, result: expired ? 'certificate-expired' : 'certificate-not-trusted', detail: `${host}: ${reason}` };
  }
  const mismatch = checkServerIdentity(host, socket.getPeerCertificate());
  if (mismatch) return { ok: false, result: 'certificate-host-mismatch', detail: mismatch.message };
  return { ok: true, authenticated: 'pkix' };
}

/** Judges the peer of a finished handshake by the host's policy. */
export function checkPeer(policy: HostPolicy, socket: TLSSocket, host: string, nowMs = Date.now()): PeerVerdict {
  switch (policy.kind) {
    case 'dane': {
      if (policy.unusableOnly) return { ok: true, authenticated: 'none' };
      const verdict = verifyDane(policy.records, peerChain(socket), host, policy.nameCandidates, nowMs);
      return verdict.ok ? { ok: true, authenticated: 'dane' } : verdict;
    }
    case 'sts': {
      const verdict = pkix(socket, host);
      if (!verdict.ok) return verdict;
      return mxMatches(policy.policy, host)
        ? { ok: true, authenticated: 'sts' }
        : { ok: false, result: 'validation-failure', detail: `${host} is not an MX the MTA-STS policy names` };
    }
    case 'verify': return pkix(socket, host);
    default: return { ok: true, authenticated: 'none' };
  }
}
