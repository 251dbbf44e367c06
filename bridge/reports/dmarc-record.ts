// The `_dmarc` record as reports use it: the policy_published a report repeats, the rua= destinations, and the
// consent (RFC 7489 §7.1) a destination outside the policy domain must publish before it gets reports.
import type { BridgeResolver } from '../auth/dns.ts';
import { HOST_NAME } from '../auth/errors.ts';
import { mailboxProblem } from '../outbound/mime.ts';
import type { DmarcPolicyPublished } from './dmarc-types.ts';

/** A DMARC record's tags (names lower-cased, values trimmed), or undefined when it does not start with v=DMARC1. */
function dmarcTags(record: string): Map<string, string> | undefined {
  const specs = record.split(';').map((t) => t.trim()).filter((t) => t !== '');
  if (specs[0]?.replace(/\s+/g, '') !== 'v=DMARC1') return undefined;
  const tags = new Map<string, string>();
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const name = eq < 0 ? '' : spec.slice(0, eq).trim().toLowerCase();
    // The first occurrence counts; a repeated tag does not override it.
    if (name && !tags.has(name)) tags.set(name, spec.slice(eq + 1).trim());
  }
  return tags;
}

function tagOf<T extends string>(tags: Map<string, string>, name: string, allowed: readonly T[]): T | undefined {
  const value = tags.get(name)?.toLowerCase();
  return allowed.includes(value as T) ? value as T : undefined;
}

/**
 * The policy_published of a report from the DMARC record that applied (RFC 9990 §2.1: p, sp, np, adkim,
 * aspf, fo, testing; discovery by tree walk, as the bridge's DMARC check does it). Undefined for a record that
 * is not DMARC's. A missing or unknown p= is reported as none (RFC 9989: such a record with a rua= still asks
 * for reports).
 */
export function dmarcPolicyPublished(policyDomain: string, record: string): DmarcPolicyPublished | undefined {
  const tags = dmarcTags(record);
  if (!tags) return undefined;
  const actions = ['none', 'quarantine', 'reject'] as const;
  const sp = tagOf(tags, 'sp', actions);
  const np = tagOf(tags, 'np', actions);
  const adkim = tagOf(tags, 'adkim', ['r', 's'] as const);
  const aspf = tagOf(tags, 'aspf', ['r', 's'] as const);
  const fo = tags.get('fo');
  const testing = tagOf(tags, 't', ['n', 'y'] as const);
  return {
    domain: policyDomain.toLowerCase(),
    p: tagOf(tags, 'p', actions) ?? 'none',
    ...(sp ? { sp } : {}),
    ...(np ? { np } : {}),
    ...(adkim ? { adkim } : {}),
    ...(aspf ? { aspf } : {}),
    discoveryMethod: 'treewalk',
    ...(fo && /^[01ds](?::[01ds])*$/.test(fo) ? { fo } : {}),
    ...(testing ? { testing } : {}),
  };
}

export interface DmarcRuaUri {
  /** The mailbox (percent-decoded). */
  address: string;
  /** The largest report, in bytes, the destination takes (the `!10m` suffix), when it says. */
  maxBytes?: number;
}

/** Receivers may cap the number of destinations (RFC 7489 §6.2: at least two must be supported). */
export const MAX_RUA_URIS = 5;
const SIZE_UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/**
 * The rua= destinations of a DMARC record (the `_dmarc.<domain>` TXT), in order: mailto: URIs only (other
 * schemes are skipped), each with its size limit; at most MAX_RUA_URIS. A record that does not start with
 * v=DMARC1, or has no usable rua, gives none.
 */
export function parseDmarcRua(record: string): DmarcRuaUri[] {
  const rua = dmarcTags(record)?.get('rua');
  if (!rua) return [];
  const uris: DmarcRuaUri[] = [];
  for (const raw of rua.split(',')) {
    const m = /^\s*mailto:([^!\s]+)(?:!([0-9]{1,15})([kmgt]?))?\s*$/i.exec(raw);
    if (!m) continue;
    let address: string;
    try {
      address = decodeURIComponent(m[1]!);
    } catch {
      continue;
    }
    if (mailboxProblem(address) !== null) continue;
    const maxBytes = m[2] !== undefined ? Number(m[2]) * SIZE_UNITS[(m[3] ?? '').toLowerCase()]! : undefined;
    uris.push({ address, ...(maxBytes !== undefined && Number.isSafeInteger(maxBytes) ? { maxBytes } : {}) });
    if (uris.length === MAX_RUA_URIS) break;
  }
  return uris;
}

/**
 * RFC 7489 §7.1 (DMARCbis the same): a destination outside the policy domain gets reports only when
 * `<policy-domain>._report._dmarc.<destination-domain>` has a TXT record starting with v=DMARC1. The domains
 * are compared exactly (no public-suffix list in the bridge): a destination in a sibling subdomain of the
 * same organisation is checked in DNS too. A lookup that fails counts as no consent (the report waits for the
 * next period rather than going where it may not be wanted).
 */
export async function checkExternalDestination(policyDomain: string, ruaAddress: string, resolver: BridgeResolver): Promise<boolean> {
  const destination = ruaAddress.slice(ruaAddress.lastIndexOf('@') + 1).toLowerCase().replace(/\.$/, '');
  const policy = policyDomain.toLowerCase().replace(/\.$/, '');
  if (!HOST_NAME.test(destination) || !HOST_NAME.test(policy)) return false;
  if (destination === policy) return true;
  const name = `${policy}._report._dmarc.${destination}`;
  if (name.length > 253) return false;
  try {
    const answer = await resolver.txt(name);
    return answer.status === 'NOERROR' && answer.records.some((r) => /^v\s*=\s*DMARC1\s*(?:;|$)/.test(r));
  } catch {
    return false;
  }
}

/** The destinations of `uris` that may receive the policy domain's reports, in order. */
export async function authorisedDestinations(policyDomain: string, uris: readonly DmarcRuaUri[], resolver: BridgeResolver): Promise<DmarcRuaUri[]> {
  const allowed = await Promise.all(uris.map((u) => checkExternalDestination(policyDomain, u.address, resolver)));
  return uris.filter((_, i) => allowed[i]);
}
