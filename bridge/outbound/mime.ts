// The MIME and RFC 5322 pieces the outbound messages (composed mail, delivery status notifications, DMARC
// reports) are built from: line ends, transfer encodings, folding, RFC 2047 encoded words, boundaries; and the
// few that take a received report apart. Message bytes are handled as latin1 strings where bytes must survive
// unchanged.
import { randomBytes } from 'node:crypto';
import type { HeaderField } from '../auth/canon.ts';

/** RFC 5322 §2.1.1: a line is at most 998 octets before its CRLF. */
export const MAX_LINE_OCTETS = 998;
/** RFC 5322 §2.1.1: lines SHOULD stay within 78 characters; folding aims for it. */
export const FOLD_AT = 78;

/** Every line end (bare LF, bare CR, CRLF) as CRLF: SMTP carries CRLF only, and a bare one is refused (smuggling). */
export function toCrlf(data: Buffer): Buffer {
  const text = data.toString('latin1');
  if (!/\r(?!\n)|(?<!\r)\n/.test(text)) return data;
  return Buffer.from(text.replace(/\r\n|\r|\n/g, '\r\n'), 'latin1');
}

/** CRLF line ends, and a CRLF at the end of non-empty data (the DATA terminator and a closing boundary need one). */
export function crlfLines(data: Buffer): Buffer {
  const crlf = toCrlf(data);
  return crlf.length === 0 || (crlf[crlf.length - 2] === 13 && crlf[crlf.length - 1] === 10) ? crlf : Buffer.concat([crlf, Buffer.from('\r\n')]);
}

export function hasEightBit(data: Buffer | string): boolean {
  if (typeof data === 'string') return /[^\x00-\x7f]/.test(data);
  for (const byte of data) if (byte > 0x7f) return true;
  return false;
}

/** The length in octets of the longest line of CRLF-ended data. */
export function longestLine(data: Buffer): number {
  let longest = 0;
  let start = 0;
  for (;;) {
    const end = data.indexOf('\r\n', start);
    const stop = end < 0 ? data.length : end;
    longest = Math.max(longest, stop - start);
    if (end < 0) return longest;
    start = end + 2;
  }
}

/** A C0 control (other than HTAB) or DEL: what must never reach a header field from a caller's value. */
export const HEADER_CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

/** An RFC 5321 mailbox without quoting: atext and dots (non-ASCII allowed, RFC 6531). */
const MAILBOX = /^[^\s@<>()[\]\\,;:"]+@[^\s@<>()[\]\\,;:"]+$/u;

/**
 * What keeps an address out of a header field or an envelope: 'control' (a line break or another control
 * character: an injection attempt), 'syntax' (not a mailbox, or over RFC 5321's 64-octet local part or
 * 254-octet path), or null when it is usable.
 */
export function mailboxProblem(address: string): 'control' | 'syntax' | null {
  if (HEADER_CONTROL.test(address)) return 'control';
  const at = address.lastIndexOf('@');
  if (!MAILBOX.test(address) || Buffer.byteLength(address.slice(0, at), 'utf8') > 64 || Buffer.byteLength(address, 'utf8') > 254) return 'syntax';
  return null;
}

/**
 * The transfer encoding a leaf body goes out with (RFC 2045): 7bit or 8bit when its lines are within 998
 * octets and it has no NUL, else quoted-printable (the body returned encoded).
 */
export function transferEncoding(body: Buffer): { body: Buffer; encoding: '7bit' | '8bit' | 'quoted-printable' } {
  if (longestLine(body) > MAX_LINE_OCTETS || body.includes(0)) return { body: quotedPrintable(body), encoding: 'quoted-printable' };
  return { body, encoding: hasEightBit(body) ? '8bit' : '7bit' };
}

/** RFC 2045 §6.7 quoted-printable of CRLF-ended data, lines of at most 76 characters. */
export function quotedPrintable(data: Buffer): Buffer {
  const out: string[] = [];
  const lines = data.toString('latin1').split('\r\n');
  for (const line of lines) {
    let current = '';
    for (let i = 0; i < line.length; i++) {
      const code = line.charCodeAt(i);
      const last = i === line.length - 1;
      // Whitespace at the end of a line is removed by transports, so it is encoded there.
      const literal = (code >= 33 && code <= 126 && code !== 61) || ((code === 32 || code === 9) && !last);
      const token = literal ? line[i]! : `=${code.toString(16).toUpperCase().padStart(2, '0')}`;
      if (current.length + token.length > 75) {
        out.push(`${current}=`);
        current = '';
      }
      current += token;
    }
    out.push(current);
  }
  return Buffer.from(out.join('\r\n'), 'latin1');
}

/**
 * RFC 2047 encoded words (UTF-8, base64) for unstructured text, folded between words. Chunks split only
 * between code points, and each word stays within RFC 2047 §2's 75 characters.
 */
export function encodeWords(text: string): string {
  const words: string[] = [];
  let chunk = '';
  for (const ch of text) {
    if (Buffer.byteLength(chunk + ch, 'utf8') > 39) {
      words.push(chunk);
      chunk = '';
    }
    chunk += ch;
  }
  if (chunk) words.push(chunk);
  return words.map((w) => `=?UTF-8?B?${Buffer.from(w, 'utf8').toString('base64')}?=`).join('\r\n ');
}

/**
 * An unstructured field value (RFC 5322 §3.2.5): as it is when it is plain ASCII that folds at spaces,
 * encoded words otherwise (non-ASCII, a word too long to fold, or text that a reader would take for an
 * encoded word).
 */
export function unstructuredValue(name: string, text: string): string {
  const words = text.split(' ');
  if (hasEightBit(text) || text.includes('=?') || words.some((w) => w.length > FOLD_AT - name.length - 3)) return encodeWords(text);
  return foldList(name, words, ' ');
}

/**
 * `items` joined by `separator` (", " or " "), folded before an item that would pass FOLD_AT: the fold's
 * CRLF goes where the separator's space was, so unfolding (removing CRLF) gives back the same text.
 */
export function foldList(name: string, items: readonly string[], separator: ', ' | ' '): string {
  let value = items[0] ?? '';
  let lineLength = name.length + 2 + Buffer.byteLength(value, 'utf8');
  for (const item of items.slice(1)) {
    const length = Buffer.byteLength(item, 'utf8');
    // Never fold before an empty item (a run of spaces): a continuation line of only whitespace is obsolete syntax.
    if (item !== '' && lineLength + separator.length + length > FOLD_AT) {
      value += `${separator.trimEnd()}\r\n ${item}`;
      lineLength = 1 + length;
    } else {
      value += separator + item;
      lineLength += separator.length + length;
    }
  }
  return value;
}

/** A multipart boundary that appears in none of the parts (RFC 2046 §5.1.1). */
export function boundaryFor(parts: readonly Buffer[]): string {
  for (;;) {
    const boundary = `=_${randomBytes(12).toString('base64url')}`;
    if (!parts.some((p) => p.includes(boundary))) return boundary;
  }
}

/**
 * A multipart message: `head` (its header fields and preamble, ending in a line break), then each part between
 * `boundary` delimiters. The CRLF before a delimiter belongs to it (RFC 2046 §5.1.1), so each part ends in one.
 */
export function multipartMessage(head: string, boundary: string, parts: readonly Buffer[]): Buffer {
  const chunks: Buffer[] = [Buffer.from(head, 'utf8')];
  for (const p of parts) chunks.push(Buffer.from(`--${boundary}\r\n`, 'latin1'), p, Buffer.from('\r\n'));
  chunks.push(Buffer.from(`--${boundary}--\r\n`, 'latin1'));
  return Buffer.concat(chunks);
}

/** Base64 in lines of 76 characters (RFC 2045 §6.8). */
export function base64Lines(data: Buffer): string {
  return (data.toString('base64').match(/.{1,76}/g) ?? []).join('\r\n');
}

// Reading MIME (a received report: a DSN, a DMARC aggregate report).

export function headerParams(value: string): { type: string; params: Map<string, string> } {
  const [type = '', ...rest] = value.split(';');
  const params = new Map<string, string>();
  for (const param of rest) {
    const eq = param.indexOf('=');
    if (eq < 0) continue;
    const raw = param.slice(eq + 1).trim();
    params.set(param.slice(0, eq).trim().toLowerCase(), raw.startsWith('"') ? raw.slice(1, raw.lastIndexOf('"') > 0 ? raw.lastIndexOf('"') : undefined).replace(/\\(.)/g, '$1') : raw);
  }
  return { type: type.trim().toLowerCase(), params };
}

export function unfolded(field: HeaderField): string {
  return field.raw.slice(field.raw.indexOf(':') + 1).replace(/\r\n/g, '').trim();
}

export function contentType(headers: HeaderField[]): { type: string; params: Map<string, string> } {
  const field = headers.find((h) => h.name === 'content-type');
  return field ? headerParams(unfolded(field)) : { type: 'text/plain', params: new Map() };
}

export function decodeBody(headers: HeaderField[], body: Buffer): Buffer {
  const field = headers.find((h) => h.name === 'content-transfer-encoding');
  const encoding = field ? unfolded(field).toLowerCase() : '7bit';
  if (encoding === 'base64') return Buffer.from(body.toString('latin1').replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
  if (encoding === 'quoted-printable') {
    return Buffer.from(body.toString('latin1').replace(/=\r\n/g, '').replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
  }
  return body;
}

/** The body parts of a multipart body (RFC 2046 §5.1.1), preamble and epilogue dropped. */
export function multipartParts(body: Buffer, boundary: string): Buffer[] {
  const text = body.toString('latin1');
  const delimiter = new RegExp(`(?:^|\\r\\n)--${boundary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(--)?[ \\t]*(?:\\r\\n|$)`, 'g');
  const parts: Buffer[] = [];
  let start = -1;
  for (const m of text.matchAll(delimiter)) {
    if (start >= 0) parts.push(Buffer.from(text.slice(start, m.index), 'latin1'));
    if (m[1]) return parts;
    start = m.index + m[0].length;
  }
  return parts;
}
