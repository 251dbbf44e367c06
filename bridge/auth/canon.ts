// The parts of a message that ARC sealing and the bridge's own ARC checks sign and hash: header fields as
// written (folding kept), and the RFC 6376 §3.4 canonicalizations. Headers are read as latin1 so every
// byte survives unchanged into what is hashed.
import { createHash } from 'node:crypto';

export interface HeaderField {
  /** Lower case, for matching (header field names are case-insensitive). */
  name: string;
  /** The whole field as written, folding included, without its final CRLF. */
  raw: string;
}

export interface SplitMessage {
  headers: HeaderField[];
  body: Buffer;
}

export function splitMessage(message: Buffer): SplitMessage {
  const text = message.toString('latin1');
  let headerText: string;
  let bodyStart: number;
  if (text.startsWith('\r\n')) {
    headerText = '';
    bodyStart = 2;
  } else {
    const end = text.indexOf('\r\n\r\n');
    headerText = end < 0 ? text : text.slice(0, end + 2);
    bodyStart = end < 0 ? text.length : end + 4;
  }
  const headers: HeaderField[] = [];
  for (const line of headerText.split('\r\n')) {
    if (line === '') continue;
    const last = headers[headers.length - 1];
    if ((line.startsWith(' ') || line.startsWith('\t')) && last) {
      last.raw += `\r\n${line}`;
      continue;
    }
    const colon = line.indexOf(':');
    headers.push({ name: (colon < 0 ? line : line.slice(0, colon)).trim().toLowerCase(), raw: line });
  }
  return { headers, body: message.subarray(Buffer.byteLength(text.slice(0, bodyStart), 'latin1')) };
}

/** The value of a field as written (after the first colon). */
export function fieldValue(field: HeaderField): string {
  return field.raw.slice(field.raw.indexOf(':') + 1);
}

/** RFC 6376 §3.4.2 relaxed header canonicalization, without the trailing CRLF. */
export function relaxedHeader(field: HeaderField): string {
  const value = fieldValue(field).replace(/\r\n/g, '').replace(/[ \t]+/g, ' ').trim();
  return `${field.name}:${value}`;
}

/** RFC 6376 §3.4.1 simple header canonicalization: the field as written. */
export function simpleHeader(field: HeaderField): string {
  return field.raw;
}

/** RFC 6376 §3.4.4 relaxed body: WSP runs to one SP, no WSP at line ends, no empty lines at the end. */
export function relaxedBody(body: Buffer): Buffer {
  const lines = body.toString('latin1').split('\r\n').map((line) => line.replace(/[ \t]+/g, ' ').replace(/ $/, ''));
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return Buffer.from(lines.length === 0 ? '' : `${lines.join('\r\n')}\r\n`, 'latin1');
}

/** RFC 6376 §3.4.3 simple body: no empty lines at the end; an empty body is one CRLF. */
export function simpleBody(body: Buffer): Buffer {
  const lines = body.toString('latin1').split('\r\n');
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return Buffer.from(`${lines.join('\r\n')}\r\n`, 'latin1');
}

export function bodyHash(body: Buffer, canon: 'relaxed' | 'simple', length?: number): string {
  let canonical = canon === 'relaxed' ? relaxedBody(body) : simpleBody(body);
  if (length !== undefined) canonical = canonical.subarray(0, length);
  return createHash('sha256').update(canonical).digest('base64');
}

/**
 * The fields a signature's h= list selects (RFC 6376 §5.4.2): each name takes the lowest instance not
 * yet taken by an earlier mention of the same name; a name with no instance left selects nothing.
 */
export function selectSigned(headers: HeaderField[], names: string[]): HeaderField[] {
  const used = new Set<HeaderField>();
  const selected: HeaderField[] = [];
  for (const name of names) {
    const lower = name.toLowerCase();
    for (let i = headers.length - 1; i >= 0; i--) {
      const field = headers[i]!;
      if (field.name === lower && !used.has(field)) {
        used.add(field);
        selected.push(field);
        break;
      }
    }
  }
  return selected;
}

/** The field with the value of its b= tag removed (RFC 6376 §3.5 b=, §3.7), as signers and verifiers hash it. */
export function withoutSignature(field: HeaderField): HeaderField {
  const colon = field.raw.indexOf(':');
  const value = field.raw.slice(colon + 1).replace(/(^|;)((?:[ \t]|\r\n[ \t])*b(?:[ \t]|\r\n[ \t])*=)[^;]*/, '$1$2');
  return { name: field.name, raw: field.raw.slice(0, colon + 1) + value };
}

/**
 * What a DKIM-style signature signs (RFC 6376 §3.7): the selected fields, each followed by CRLF, then the
 * signature field itself with its b= value empty and without a final CRLF.
 */
export function signingInput(selected: HeaderField[], signatureField: HeaderField, canon: 'relaxed' | 'simple'): Buffer {
  const form = canon === 'relaxed' ? relaxedHeader : simpleHeader;
  const lines = selected.map((field) => `${form(field)}\r\n`).join('');
  return Buffer.from(lines + form(withoutSignature(signatureField)), 'latin1');
}
