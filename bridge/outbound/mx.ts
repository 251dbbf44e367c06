// Which hosts receive mail for a domain (RFC 5321 §5.1, RFC 7505): MX records by preference, equal
// preferences in random order so the load spreads as the domain intended; a domain without MX records but
// with an address is its own MX; a single MX "." says the domain takes no mail at all.
import type { BridgeSecureResolver } from '../auth/dns.ts';

export interface MxHost {
  /** Lower case, without the trailing dot. */
  host: string;
  preference: number;
  /** No MX records: the domain itself, by its address records (RFC 5321 §5.1). */
  implicit: boolean;
}

export type MxResolution =
  /** `secure`: the MX answer was DNSSEC-validated, so the next-hop domain may stand as a DANE name candidate. */
  | { kind: 'hosts'; hosts: MxHost[]; secure: boolean }
  /** RFC 7505: the domain publishes that it accepts no mail. */
  | { kind: 'null-mx' }
  /** The domain does not exist, or has neither MX nor address records: no host will ever take the mail. */
  | { kind: 'no-domain'; reason: string }
  /** DNS did not answer (timeout, SERVFAIL, a bogus signature): try again later. */
  | { kind: 'lookup-failed'; reason: string };

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
const bare = (name: string) => name.toLowerCase().replace(/\.$/, '');

export async function resolveMx(resolver: BridgeSecureResolver, domain: string, random: () => number = Math.random): Promise<MxResolution> {
  const name = bare(domain);
  let answer;
  try {
    answer = await resolver.mx(name);
  } catch (err) {
    return { kind: 'lookup-failed', reason: `MX lookup for ${name} failed: ${message(err)}` };
  }
  if (answer.status === 'NXDOMAIN') return { kind: 'no-domain', reason: `${name} does not exist (NXDOMAIN)` };
  if (answer.records.length > 0) {
    // A null MX among other MX records is a misconfiguration; the null one is skipped, the others used.
    const records = answer.records.filter((r) => bare(r.exchange) !== '');
    if (records.length === 0) return { kind: 'null-mx' };
    const shuffled = records.map((r) => ({ r, key: random() })).sort((a, b) => a.r.priority - b.r.priority || a.key - b.key);
    return { kind: 'hosts', hosts: shuffled.map(({ r }) => ({ host: bare(r.exchange), preference: r.priority, implicit: false })), secure: answer.secure };
  }
  // No MX records: the domain receives at its own address, if it has one.
  try {
    const [a, aaaa] = await Promise.all([resolver.a(name), resolver.aaaa(name)]);
    if (a.records.length === 0 && aaaa.records.length === 0) return { kind: 'no-domain', reason: `${name} has no MX and no address records` };
  } catch (err) {
    return { kind: 'lookup-failed', reason: `address lookup for ${name} failed: ${message(err)}` };
  }
  return { kind: 'hosts', hosts: [{ host: name, preference: 0, implicit: true }], secure: answer.secure };
}

/** The addresses of one host to connect to, IPv4 first (loopback tests and most MX hosts are reached over it). */
export async function hostAddresses(resolver: BridgeSecureResolver, host: string): Promise<string[]> {
  const [a, aaaa] = await Promise.allSettled([resolver.a(host), resolver.aaaa(host)]);
  const addresses = [
    ...(a.status === 'fulfilled' ? a.value.records : []),
    ...(aaaa.status === 'fulfilled' ? aaaa.value.records : []),
  ];
  if (addresses.length === 0 && a.status === 'rejected') throw a.reason;
  return addresses;
}
