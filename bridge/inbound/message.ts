// What the listeners check and change in a message: the DATA stream (size, bare CR or LF, line length), the
// header fields they read (From, Message-ID) and the trace fields they prepend (Received, Authentication-Results).
import { createHash } from 'node:crypto';

/** RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets with its CRLF. */
export const MAX_LINE_OCTETS = 998;

export type DataFault = 'bare-newline' | 'line-too-long' | 'oversized';

/**
 * Collects a message from smtp-server's DATA stream (dot-unstuffed, up to and without the final ".")
 * and remembers the first fault. Bare CR or LF anywhere is SMTP smuggling's raw material: `\n.\n`,
 * `\r.\r` and `\n.\r\n` end DATA on some servers and not on others, so a message holding any of them
 * is refused whole (Postfix's smtpd_forbid_bare_newline = reject). Past the size limit nothing more
 * is kept, so an oversized message costs no memory.
 */
export class MessageCollector {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  bytes = 0;
  private bareNewline = false;
  private longLine = false;
  private previous = -1;
  private lineLength = 0;
  private readonly maxBytes: number;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.bytes <= this.maxBytes) {
      this.chunks.push(chunk);
      this.kept += chunk.length;
    }
    if (this.bareNewline) return;
    let previous = this.previous;
    let lineLength = this.lineLength;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      if ((previous === 0x0d && byte !== 0x0a) || (byte === 0x0a && previous !== 0x0d)) {
        this.bareNewline = true;
        return;
      }
      if (byte === 0x0a) lineLength = 0;
      else if (byte !== 0x0d && ++lineLength > MAX_LINE_OCTETS) this.longLine = true;
      previous = byte;
    }
    this.previous = previous;
    this.lineLength = lineLength;
  }

  /** The first fault by weight: smuggling material, then size, then line length. */
  get fault(): DataFault | null {
    if (this.bareNewline || this.previous === 0x0d) return 'bare-newline';
    if (this.bytes > this.maxBytes) return 'oversized';
    return this.longLine ? 'line-too-long' : null;
  }

  message(): Buffer {
    return Buffer.concat(this.chunks, this.kept);
  }
}

export interface HeaderField { name: string; raw: string }

/** The header fields (each with its folded lines, CRLF ends dropped) and the body of a CRLF message. */
export function splitMessage(message: Buffer): { fields: HeaderField[]; body: Buffer } {
  const end = message.indexOf('\r\n\r\n');
  const headerText = (end < 0 ? message : message.subarray(0, end)).toString('latin1');
  const body = end < 0 ? Buffer.alloc(0) : message.subarray(end + 4);
  const fields: HeaderField[] = [];
  for (const raw of headerText.split(/\r\n(?![ \t])/)) {
    if (!raw) continue;
    const colon = raw.indexOf(':');
    fields.push({ name: (colon < 0 ? raw : raw.slice(0, colon)).trim().toLowerCase(), raw });
  }
  return { fields, body };
}

function fieldValue(field: HeaderField): string {
  return field.raw.slice(field.raw.indexOf(':') + 1).replace(/\r\n[ \t]/g, ' ').trim();
}

/** The mailboxes of a From value (RFC 5322 §3.6.2), lower-cased: angle-addr contents, else bare addr-specs. */
function mailboxes(value: string): string[] {
  const withoutComments = value.replace(/\((?:[^()\\]|\\.)*\)/g, ' ');
  const withoutQuoted = withoutComments.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const angled = [...withoutQuoted.matchAll(/<([^<>]*)>/g)].map((m) => m[1]!.trim());
  if (angled.length > 0) return angled.map((a) => a.toLowerCase());
  return withoutQuoted.split(',').map((a) => a.trim().toLowerCase()).filter(Boolean);
}

/** The author address when the message has exactly one From field naming exactly one mailbox, else ''. */
export function headerFrom(fields: HeaderField[]): string {
  const from = fields.filter((f) => f.name === 'from');
  if (from.length !== 1) return '';
  const list = mailboxes(fieldValue(from[0]!));
  return list.length === 1 ? list[0]! : '';
}

/** The author address of a whole message (headerFrom of its header), '' when it names none or several. */
export function authorOf(message: Buffer): string {
  return headerFrom(splitMessage(message).fields);
}

/** What makes two copies of a message the same one for duplicate suppression (null without a Message-ID). */
export function duplicateKey(fields: HeaderField[], body: Buffer): string | null {
  const ids = fields.filter((f) => f.name === 'message-id');
  if (ids.length !== 1) return null;
  const id = fieldValue(ids[0]!);
  if (!id) return null;
  return createHash('sha256').update(id).update('\0').update(body).digest('hex');
}

/** The field the MX adds to a message DMARC says to quarantine (the store files it as spam). */
export const QUARANTINE_FIELD = 'X-AfterSMTP-Quarantine';

/**
 * The message without the fields that only the node may write: Authentication-Results claiming the node's
 * authserv-id (RFC 8601 §5 asks a receiver to remove such fields arriving from outside, so that only the
 * node's own results bear its name) and the quarantine mark.
 */
export function withoutOwnFields(message: Buffer, authservId: string): Buffer {
  const end = message.indexOf('\r\n\r\n');
  const headerEnd = end < 0 ? message.length : end;
  const { fields } = splitMessage(message);
  const own = (f: HeaderField) => f.name === QUARANTINE_FIELD.toLowerCase() || (f.name === 'authentication-results'
    && fieldValue(f).replace(/\((?:[^()\\]|\\.)*\)/g, ' ').trim().split(/[\s;]/)[0]!.toLowerCase() === authservId.toLowerCase());
  if (!fields.some(own)) return message;
  const kept = fields.filter((f) => !own(f)).map((f) => f.raw).join('\r\n');
  return Buffer.concat([Buffer.from(kept, 'latin1'), message.subarray(headerEnd)]);
}

/** RFC 5322 §3.3 date-time, in UTC. */
export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}

export interface ReceivedFields {
  helo: string;
  clientIp: string;
  hostname: string;
  /** RFC 3848: ESMTP, ESMTPS, ESMTPA, ESMTPSA (or SMTP for HELO). */
  protocol: string;
  id: string;
  /** Named only for a single recipient (RFC 5321 §4.4: a list would disclose the other recipients). */
  recipients: string[];
  date: Date;
  tlsCipher?: string;
}

/** RFC 5321 §4.4 Time-stamp-line: Received: from <helo> ([ip]) by <host> with <proto> id <id> for <rcpt>; <date> */
export function receivedField(r: ReceivedFields): string {
  const ip = r.clientIp.includes(':') ? `IPv6:${r.clientIp}` : r.clientIp;
  const lines = [
    `Received: from ${r.helo || 'unknown'} ([${ip}])`,
    `\tby ${r.hostname} with ${r.protocol}${r.tlsCipher ? ` (${r.tlsCipher.replace(/[()\\\r\n]/g, '')})` : ''}`,
    `\tid ${r.id}${r.recipients.length === 1 ? `\r\n\tfor <${r.recipients[0]}>` : ''};`,
    `\t${rfc5322Date(r.date)}`,
  ];
  return `${lines.join('\r\n')}\r\n`;
}
