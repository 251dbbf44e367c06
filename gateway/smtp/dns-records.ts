// The DNS records a node's domains need, derived from its data directory (config, keys, certificate), and
// a check of what DNS actually answers for each. One list serves `aftersmtp dns records` (what to publish)
// and `aftersmtp dns check` (whether it is published right), so they cannot disagree.
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { BridgeSecureResolver } from '../../bridge/index.ts';
import { dataPath, smtpHostname, type NodeConfig } from '../core/index.ts';
import { DKIM_SERVICES, nodeDkimRecord, publishedDkimKeys } from './bridge-outbound.ts';
import { hostedStsPolicy } from './mta-sts-host.ts';

export type RecordKind = 'mx' | 'spf' | 'dkim' | 'dmarc' | 'mta-sts' | 'tls-rpt' | 'tlsa' | 'aftersmtp' | 'did-web';

export interface ExpectedRecord {
  domain: string;
  kind: RecordKind;
  /** The owner name (no trailing dot); for did-web, the URL the document must be served at. */
  name: string;
  type: 'MX' | 'TXT' | 'TLSA' | 'HTTPS';
  value: string;
  /** Why, or what to adapt. */
  note: string;
}

export type CheckStatus = 'ok' | 'missing' | 'wrong';
export interface RecordCheck extends ExpectedRecord { status: CheckStatus; found: string[]; problem?: string }

/** Where reports about a domain's mail are sent (the node receives them at its own postmaster). */
function reportAddress(domain: string): string {
  return `postmaster@${domain}`;
}

/** TLSA 3 1 1 of a PEM certificate chain's leaf: SHA-256 of its SubjectPublicKeyInfo. */
function tlsa311(chainPem: string): string {
  const leaf = new X509Certificate(chainPem);
  return `3 1 1 ${createHash('sha256').update(leaf.publicKey.export({ type: 'spki', format: 'der' })).digest('hex')}`;
}

export function expectedDnsRecords(config: NodeConfig, dataDir: string, did: string): ExpectedRecord[] {
  const mxHost = smtpHostname(config);
  const cert = readFileSync(dataPath(dataDir, config.bridge.smtp.tls.certFile ?? config.tls.certFile), 'utf8');
  const sts = hostedStsPolicy(config);
  const keys = publishedDkimKeys(config, dataDir);
  const records: ExpectedRecord[] = [];
  for (const domain of config.node.domains.map((d) => d.toLowerCase())) {
    records.push(
      { domain, kind: 'mx', name: domain, type: 'MX', value: `10 ${mxHost}`, note: 'mail for the domain comes to the node' },
      { domain, kind: 'spf', name: domain, type: 'TXT', value: 'v=spf1 mx -all', note: 'the node sends from the address of its MX host; add the addresses it sends from if they differ' },
      ...keys.filter((k) => k.domain === domain).map((k): ExpectedRecord => {
        const r = nodeDkimRecord(k);
        const note = k.retiredAt ? `${k.algorithm} key ${k.selector}, retired ${k.retiredAt.slice(0, 10)}: keep it published until the grace period ends` : `${k.algorithm} key ${k.selector}`;
        return { domain, kind: 'dkim', name: r.name, type: 'TXT', value: r.value, note };
      }),
      { domain, kind: 'dmarc', name: `_dmarc.${domain}`, type: 'TXT', value: `v=DMARC1; p=quarantine; rua=mailto:${reportAddress(domain)}`, note: 'p=reject once reports show all mail passes' },
      { domain, kind: 'mta-sts', name: `_mta-sts.${domain}`, type: 'TXT', value: `v=STSv1; id=${sts.id}`, note: `the node serves the policy at https://mta-sts.${domain}/.well-known/mta-sts.txt (its HTTPS port must be reachable as 443 there)` },
      { domain, kind: 'tls-rpt', name: `_smtp._tls.${domain}`, type: 'TXT', value: `v=TLSRPTv1; rua=mailto:${reportAddress(domain)}`, note: 'where others report the TLS of mail sent to the domain' },
      { domain, kind: 'aftersmtp', name: `_aftersmtp.${domain}`, type: 'TXT', value: `v=aftersmtp1; did=${did}`, note: 'other AfterSMTP nodes find this node by it' },
    );
  }
  records.push({ domain: config.node.domains[0]!.toLowerCase(), kind: 'tlsa', name: `_25._tcp.${mxHost}`, type: 'TLSA', value: tlsa311(cert), note: 'DANE for the MX host (DNSSEC-signed zone); publish the next key\'s record before changing the certificate\'s key' });
  if (did.startsWith('did:web:')) {
    const host = decodeURIComponent(did.slice('did:web:'.length).split(':')[0]!);
    records.push({ domain: config.node.domains[0]!.toLowerCase(), kind: 'did-web', name: `https://${host}/.well-known/did.json`, type: 'HTTPS', value: did, note: 'the node serves its DID document there (http.port behind 443)' });
  }
  return records;
}

/** Tag-value pairs of a record like `v=DKIM1; k=rsa; p=...` (names lower-cased, spaces trimmed). */
function tags(text: string): Map<string, string> {
  return new Map(text.split(';').map((p) => p.trim()).filter(Boolean).map((p) => {
    const i = p.indexOf('=');
    return [p.slice(0, i).trim().toLowerCase(), p.slice(i + 1).replace(/\s+/g, '')] as [string, string];
  }));
}

/** What DNS answers for each expected record, compared: ok, missing, or wrong with the reason. */
export async function checkDnsRecords(expected: ExpectedRecord[], resolver: Pick<BridgeSecureResolver, 'txt' | 'mx' | 'tlsa'>): Promise<RecordCheck[]> {
  return Promise.all(expected.map(async (r): Promise<RecordCheck> => {
    try {
      return await checkOne(r, resolver);
    } catch (err) {
      return { ...r, status: 'missing', found: [], problem: `lookup failed: ${(err as Error).message}` };
    }
  }));
}

async function checkOne(r: ExpectedRecord, resolver: Pick<BridgeSecureResolver, 'txt' | 'mx' | 'tlsa'>): Promise<RecordCheck> {
  const result = (status: CheckStatus, found: string[], problem?: string): RecordCheck => ({ ...r, status, found, ...(problem ? { problem } : {}) });
  if (r.kind === 'did-web') return result('ok', [], 'not a DNS record: served by the node over HTTPS');
  if (r.type === 'MX') {
    const found = (await resolver.mx(r.name)).records.map((m) => `${m.priority} ${m.exchange.replace(/\.$/, '').toLowerCase()}`);
    const host = r.value.split(' ')[1]!;
    if (found.length === 0) return result('missing', found);
    return found.some((f) => f.split(' ')[1] === host) ? result('ok', found) : result('wrong', found, `no MX names ${host}`);
  }
  if (r.type === 'TLSA') {
    const found = (await resolver.tlsa(r.name)).records.map((t) => `${t.usage} ${t.selector} ${t.matchingType} ${Buffer.from(t.data).toString('hex')}`);
    if (found.length === 0) return result('missing', found);
    return found.includes(r.value) ? result('ok', found) : result('wrong', found, 'no record matches the certificate the node presents');
  }
  const all = (await resolver.txt(r.name)).records;
  const version = r.value.slice(0, r.value.indexOf(';') < 0 ? undefined : r.value.indexOf(';')).trim().toLowerCase();
  const found = all.filter((t) => t.trim().toLowerCase().startsWith(version.split(' ')[0]!));
  if (found.length === 0) return result('missing', all);
  // RFC 7208 §3.2, RFC 8461 §3.1, RFC 8460 §3, RFC 7489 §6.6.3: more than one record of the kind is as bad as none.
  if (found.length > 1) return result('wrong', found, `${found.length} records; exactly one is allowed`);
  const want = tags(r.value);
  const have = tags(found[0]!);
  switch (r.kind) {
    case 'spf':
      return /(^|\s)[+]?mx(\s|$)/i.test(found[0]!) || found[0] === r.value ? result('ok', found) : result('wrong', found, 'it does not allow the MX host (no "mx" mechanism)');
    case 'dkim':
      if (have.get('p') !== want.get('p')) return result('wrong', found, have.get('p') ? 'it publishes another key' : 'it has no key (p=)');
      // Without tlsrpt among its services, receivers ignore the TLS reports this key signs (RFC 8460 §3).
      if (!(have.get('s') ?? '').split(':').map((t) => t.trim()).includes('tlsrpt')) return result('wrong', found, `its services (s=) leave out tlsrpt: publish s=${DKIM_SERVICES.join(':')}`);
      return result('ok', found);
    case 'dmarc':
      if (!have.get('p')) return result('wrong', found, 'no policy (p=)');
      return have.get('rua') ? result('ok', found) : result('wrong', found, 'no rua: nobody receives aggregate reports');
    case 'mta-sts':
      return have.get('id') === want.get('id') ? result('ok', found) : result('wrong', found, `id ${have.get('id') ?? '(none)'}; the policy served now has id ${want.get('id')}`);
    case 'tls-rpt':
      return have.get('rua') ? result('ok', found) : result('wrong', found, 'no rua');
    case 'aftersmtp':
      return have.get('did') === want.get('did') ? result('ok', found) : result('wrong', found, `it names ${have.get('did') ?? 'no DID'}`);
    default:
      return result('ok', found);
  }
}
