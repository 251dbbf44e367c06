// What the bridge needs of DNS, and the adapter that gives mailauth the node:dns-style lookup function it
// takes. The bridge does not import the node's DNS client: the node injects it, and gateway/dns's
// DnsResolver fits this interface as it is (structural typing), as does any resolver a test serves.
//
// The mapping decides SPF's temperror/permerror and whether a DMARC or DKIM record "does not exist",
// so it follows exactly what mailauth reads from node:dns errors:
// - NXDOMAIN -> ENOTFOUND and NOERROR without records -> ENODATA: "no record" (SPF void lookup,
//   DMARC no policy, DKIM no key), never a temporary failure;
// - a timeout -> ETIMEOUT, a refusal -> EREFUSED, a SERVFAIL (with DNSSEC, also a bogus answer) or any
//   other failure -> ESERVFAIL: mailauth reports these as temperror (SPF), temperror (DMARC, DKIM key);
// - a name the resolver refuses as not a domain name -> EBADNAME: SPF permerror, DMARC no record.

export type BridgeDnsStatus = 'NOERROR' | 'NXDOMAIN';

export interface BridgeDnsAnswer<T> {
  status: BridgeDnsStatus;
  records: T[];
}

export interface BridgeMxRecord { exchange: string; priority: number }

/** TXT records come whole (the character-strings of one record joined), as gateway/dns gives them. */
export interface BridgeResolver {
  txt(name: string): Promise<BridgeDnsAnswer<string>>;
  a(name: string): Promise<BridgeDnsAnswer<string>>;
  aaaa(name: string): Promise<BridgeDnsAnswer<string>>;
  mx(name: string): Promise<BridgeDnsAnswer<BridgeMxRecord>>;
  ptr(name: string): Promise<BridgeDnsAnswer<string>>;
}

export interface BridgeTlsaRecord { usage: number; selector: number; matchingType: number; data: Uint8Array }

/** An answer that says whether a validating resolver on loopback vouched for it (the AD bit), and for how long it holds. */
export interface BridgeSecureDnsAnswer<T> extends BridgeDnsAnswer<T> {
  secure: boolean;
  ttl: number;
  /** The owner of the records after the CNAME chain the answer carried (DANE looks up TLSA records there first). */
  canonicalName?: string;
}

/**
 * What outbound delivery needs of DNS: DANE and MTA-STS decide on whether an answer is secure, so every
 * lookup carries it. gateway/dns's DnsResolver fits this as it is, like BridgeResolver.
 */
export interface BridgeSecureResolver {
  txt(name: string): Promise<BridgeSecureDnsAnswer<string>>;
  a(name: string): Promise<BridgeSecureDnsAnswer<string>>;
  aaaa(name: string): Promise<BridgeSecureDnsAnswer<string>>;
  mx(name: string): Promise<BridgeSecureDnsAnswer<BridgeMxRecord>>;
  tlsa(name: string): Promise<BridgeSecureDnsAnswer<BridgeTlsaRecord>>;
}

/** node:dns resolve(name, rrtype) semantics, the form mailauth's `resolver` option takes. */
export type MailauthLookup = (name: string, rrtype: string) => Promise<any[]>;

/** Error codes of the node's resolver failures (gateway/dns DnsErrorCode), as node:dns codes. */
const FAILURE_CODES: Record<string, string> = {
  TIMEOUT: 'ETIMEOUT',
  SERVFAIL: 'ESERVFAIL',
  REFUSED: 'EREFUSED',
  BAD_NAME: 'EBADNAME',
};

class LookupError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LookupError';
    this.code = code;
  }
}

function failureCode(err: unknown): string {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
  return FAILURE_CODES[code] ?? 'ESERVFAIL';
}

export function mailauthLookup(resolver: BridgeResolver): MailauthLookup {
  const ask = async <T>(name: string, rrtype: string, lookup: () => Promise<BridgeDnsAnswer<T>>): Promise<T[]> => {
    let answer: BridgeDnsAnswer<T>;
    try {
      answer = await lookup();
    } catch (err) {
      throw new LookupError(failureCode(err), `${rrtype} ${name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    if (answer.status === 'NXDOMAIN') throw new LookupError('ENOTFOUND', `${rrtype} ${name}: NXDOMAIN`);
    if (answer.records.length === 0) throw new LookupError('ENODATA', `${rrtype} ${name}: no data`);
    return answer.records;
  };
  return async (name, rrtype) => {
    switch (rrtype.toUpperCase()) {
      // node:dns gives a TXT record as its character-strings; the record whole is one chunk of it.
      case 'TXT': return (await ask(name, 'TXT', () => resolver.txt(name))).map((record) => [record]);
      case 'A': return ask(name, 'A', () => resolver.a(name));
      case 'AAAA': return ask(name, 'AAAA', () => resolver.aaaa(name));
      case 'MX': return (await ask(name, 'MX', () => resolver.mx(name))).map(({ exchange, priority }) => ({ exchange, priority }));
      case 'PTR': return ask(name, 'PTR', () => resolver.ptr(name));
      // DMARC asks for a CNAME only to tell a dangling alias from a missing name after an NXDOMAIN for A
      // (RFC 9989 A.4). The resolver follows CNAMEs and has no CNAME lookup: answering "no CNAME" makes the
      // name not exist, which is what the NXDOMAIN already said.
      case 'CNAME': throw new LookupError('ENODATA', `CNAME ${name}: not looked up`);
      default: throw new LookupError('ENOTIMP', `${rrtype} ${name}: record type not supported by the bridge`);
    }
  };
}
