// The `_smtp._tls.<domain>` TXT record (RFC 8460 §3): where a domain wants its TLS reports, bounded to a few
// destinations, since a record anyone publishes decides where the node's mail and requests go.
import { hasEightBit, mailboxProblem } from '../outbound/mime.ts';

/** Where a report goes: a mailbox (from a mailto: URI) or an HTTPS endpoint. */
export type TlsRptDestination = { kind: 'mailto'; address: string } | { kind: 'https'; url: string };

export type TlsRptRecord =
  /** `ignored` lists the rua URIs that are not used, each with why (another scheme, a bad URI, too many). */
  | { kind: 'record'; rua: TlsRptDestination[]; ignored: string[] }
  /** No record starts with `v=TLSRPTv1`: the domain takes no reports. */
  | { kind: 'none' }
  /** Several TLSRPT records, or one that cannot be read: RFC 8460 §3 says to send no report. */
  | { kind: 'invalid'; reason: string };

/**
 * A record may name any number of URIs; the node sends to at most this many, so a record cannot turn one
 * day's report into mail or requests to a crowd of places.
 */
export const MAX_TLSRPT_DESTINATIONS = 5;
/** RFC 8460 §3 tlsrpt-ext-name and tlsrpt-ext-value. */
const EXT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
const EXT_VALUE = /^[\x21-\x3a\x3c\x3e-\x7e]+$/;

function destinationOf(uri: string): TlsRptDestination | string {
  // RFC 8460 §3: "," "!" and ";" in a URI must be percent-encoded. A "!" here is most likely DMARC's size
  // suffix (`mailto:a@b!10m`), which TLSRPT does not have: the URI is not a tlsrpt-uri and is not used.
  if (uri.includes('!')) return `${uri}: "!" must be percent-encoded (TLSRPT has no size suffix)`;
  if (/^mailto:/i.test(uri)) {
    let address: string;
    try {
      address = decodeURIComponent(uri.slice('mailto:'.length).split('?')[0]!);
    } catch {
      return `${uri}: bad percent-encoding`;
    }
    if (mailboxProblem(address) !== null) return `${uri}: not a mailbox`;
    // The report mail is 7-bit; an internationalized address would need SMTPUTF8 end to end.
    return hasEightBit(address) ? `${uri}: not an ASCII mailbox` : { kind: 'mailto', address };
  }
  if (/^https:/i.test(uri)) {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      return `${uri}: not a URL`;
    }
    if (url.username || url.password || url.hostname === '') return `${uri}: not a usable https URL`;
    return { kind: 'https', url: url.href };
  }
  return `${uri}: only mailto: and https: are used`;
}

/** The `_smtp._tls.<domain>` TLSRPT record among the TXT records there (each whole, its strings joined). */
export function parseTlsRptRecord(txt: string[]): TlsRptRecord {
  // RFC 8460 §3: field-delim = *WSP ";" *WSP; records that do not begin with the version are not TLSRPT.
  const records = txt.filter((record) => /^v=TLSRPTv1[ \t]*(;|$)/.test(record));
  if (records.length === 0) return { kind: 'none' };
  if (records.length > 1) return { kind: 'invalid', reason: `${records.length} TLSRPT records` };
  let uris: string[] | undefined;
  for (const field of records[0]!.split(';').slice(1).map((f) => f.replace(/^[ \t]+|[ \t]+$/g, ''))) {
    if (field === '') continue;
    const eq = field.indexOf('=');
    const name = field.slice(0, Math.max(eq, 0));
    const value = field.slice(eq + 1);
    if (eq <= 0 || !EXT_NAME.test(name)) return { kind: 'invalid', reason: `malformed field "${field}"` };
    if (name === 'rua') {
      if (uris) return { kind: 'invalid', reason: 'two rua fields' };
      uris = value.split(/[ \t]*,[ \t]*/);
      if (uris.some((u) => u === '' || /[\s\x00-\x1f\x7f]/.test(u))) return { kind: 'invalid', reason: `malformed rua "${value}"` };
    } else if (!EXT_VALUE.test(value)) {
      // Unknown fields are ignored (RFC 8460 §3), but only when they are well-formed.
      return { kind: 'invalid', reason: `malformed field "${field}"` };
    }
  }
  if (!uris) return { kind: 'invalid', reason: 'no rua field' };
  const rua: TlsRptDestination[] = [];
  const ignored: string[] = [];
  for (const uri of uris) {
    const destination = destinationOf(uri);
    if (typeof destination === 'string') ignored.push(destination);
    else if (rua.length >= MAX_TLSRPT_DESTINATIONS) ignored.push(`${uri}: more than ${MAX_TLSRPT_DESTINATIONS} destinations`);
    else rua.push(destination);
  }
  if (rua.length === 0) return { kind: 'invalid', reason: `no usable rua URI (${ignored.join('; ')})` };
  return { kind: 'record', rua, ignored };
}
