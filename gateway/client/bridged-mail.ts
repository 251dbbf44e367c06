// What a recipient's app reads from a bridged message: the node's own trace fields. The bridge prepends a
// Received (and, for mail from other MTAs, an Authentication-Results) to the RFC 5322 message, and the node
// signs the whole as the bridge, so those topmost fields are the node's word; anything below them came with
// the message from the sender and proves nothing.

export interface BridgedTrace {
  /** `smtp`: received from another MTA (port 25); `submission`: a local mailbox's mail client with AUTH. */
  via: 'smtp' | 'submission';
  /** The bridge's host name (Received `by`): the authserv-id its Authentication-Results must carry. */
  authservId: string;
  /** The SMTP envelope sender (MAIL FROM); '' for the null sender or when the node did not record it. */
  mailFrom: string;
  clientIp: string;
  helo: string;
  /** What the node's Authentication-Results says (MX only). */
  auth?: {
    spf: string;
    /** `pass` when one signature passed, else the first signature's result, `none` without any. */
    dkim: string;
    dmarc: string;
    /** The From domain DMARC was evaluated for. */
    dmarcDomain: string;
    arc: string;
  };
}

interface Field { name: string; value: string }

/** Fields the bridge may write above its Received (the quarantine mark of a DMARC p=quarantine failure). */
const BRIDGE_ABOVE_RECEIVED = new Set(['authentication-results', 'x-aftersmtp-quarantine']);

/** The header fields of RFC 5322 bytes, in order, unfolded. */
export function headerFields(message: Uint8Array): Field[] {
  const text = Buffer.from(message).toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  const head = end < 0 ? text : text.slice(0, end);
  const fields: Field[] = [];
  for (const line of head.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && fields.length) fields.at(-1)!.value += ` ${line.trim()}`;
    else {
      const colon = line.indexOf(':');
      if (colon > 0) fields.push({ name: line.slice(0, colon).trim().toLowerCase(), value: line.slice(colon + 1).trim() });
    }
  }
  return fields;
}

/** The address of a From field's value ("Name <a@b>" or "a@b"), lower-cased; '' when there is none. */
export function fromAddress(value: string): string {
  const angle = /<([^<>]*)>/.exec(value);
  const address = (angle ? angle[1]! : value.replace(/\([^()]*\)/g, '')).trim().toLowerCase();
  return /^[^\s@]+@[^\s@]+$/.test(address) ? address : '';
}

/** RFC 5322 comments (nested parentheses, backslash escapes) removed, so ';' inside them splits nothing. */
function withoutComments(value: string): string {
  let out = '';
  let depth = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '\\' && depth > 0) { i++; continue; }
    if (c === '(') { depth++; continue; }
    if (c === ')' && depth > 0) { depth--; out += ' '; continue; }
    if (depth === 0) out += c;
  }
  return out;
}

interface ResultRow { method: string; result: string; props: Map<string, string> }

/** An Authentication-Results value (RFC 8601): its authserv-id and one row per method. */
export function parseAuthenticationResults(value: string): { authservId: string; rows: ResultRow[] } {
  const [id = '', ...rest] = withoutComments(value).split(';');
  const rows: ResultRow[] = [];
  for (const part of rest) {
    const m = /^\s*([a-z0-9_-]+)\s*=\s*([a-z0-9_-]+)/i.exec(part);
    if (!m) continue;
    const props = new Map<string, string>();
    for (const p of part.slice(m[0].length).matchAll(/([a-z0-9_-]+\.[a-z0-9_.-]+)\s*=\s*("[^"]*"|\S+)/gi)) props.set(p[1]!.toLowerCase(), p[2]!.replace(/^"|"$/g, ''));
    rows.push({ method: m[1]!.toLowerCase(), result: m[2]!.toLowerCase(), props });
  }
  return { authservId: id.trim().split(/\s+/)[0]!.toLowerCase(), rows };
}

/**
 * The node's trace of a message it bridged, or undefined when the message does not start with the
 * bridge's Received (a message the node wrote itself, such as a delivery failure notice).
 */
export function bridgedTrace(message: Uint8Array): BridgedTrace | undefined {
  const fields = headerFields(message);
  // The bridge's fields are on top: its Received is the first Received, and only its own
  // Authentication-Results and quarantine mark come before it.
  const top = fields.findIndex((f) => !BRIDGE_ABOVE_RECEIVED.has(f.name));
  const received = fields[top];
  if (!received || received.name !== 'received') return undefined;
  const trace = withoutComments(received.value);
  const by = /\bby\s+([^\s;]+)/i.exec(trace)?.[1]?.toLowerCase();
  if (!by) return undefined;
  const protocol = /\bwith\s+([a-z0-9]+)/i.exec(trace)?.[1] ?? '';
  // RFC 3848: ESMTPA / ESMTPSA is a session that authenticated (submission).
  const via = /^(E?SMTP|UTF8SMTP)S?A$/i.test(protocol) ? 'submission' : 'smtp';
  const helo = /^\s*from\s+([^\s;]+)/i.exec(trace)?.[1] ?? '';
  const ip = /\[(?:ipv6:)?([0-9a-f:.]+)\]/i.exec(received.value)?.[1] ?? '';
  const envelopeFrom = /envelope-from\s*<([^<>]*)>/i.exec(received.value)?.[1] ?? '';
  const base: BridgedTrace = { via, authservId: by, mailFrom: envelopeFrom.toLowerCase(), clientIp: ip, helo };
  if (via === 'submission') return base;
  // Only the topmost Authentication-Results, and only under the node's authserv-id, is the node's.
  // The bridge writes it either above its Received or right below it.
  const below = fields[top + 1];
  const ar = fields.slice(0, top).find((f) => f.name === 'authentication-results') ?? (below?.name === 'authentication-results' ? below : undefined);
  if (!ar) return base;
  const parsed = parseAuthenticationResults(ar.value);
  if (parsed.authservId !== by) return base;
  const row = (method: string) => parsed.rows.find((r) => r.method === method);
  const dkimRows = parsed.rows.filter((r) => r.method === 'dkim');
  const spf = row('spf');
  const dmarc = row('dmarc');
  const arc = row('arc');
  return {
    ...base,
    mailFrom: spf?.props.get('smtp.mailfrom')?.toLowerCase() ?? base.mailFrom,
    clientIp: arc?.props.get('smtp.remote-ip') ?? base.clientIp,
    helo: spf?.props.get('smtp.helo') ?? base.helo,
    auth: {
      spf: spf?.result ?? 'none',
      dkim: dkimRows.some((r) => r.result === 'pass') ? 'pass' : dkimRows[0]?.result ?? 'none',
      dmarc: dmarc?.result ?? 'none',
      dmarcDomain: dmarc?.props.get('header.from')?.toLowerCase() ?? '',
      arc: arc?.result ?? 'none',
    },
  };
}
