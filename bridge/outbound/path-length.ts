// The path length constraint of a CA certificate (RFC 5280 §4.2.1.9), which node:crypto's X509Certificate
// does not expose (it gives `ca` only). Read by walking the DER down to the basicConstraints extension:
// Certificate -> tbsCertificate -> [3] extensions -> Extension { extnID, critical?, extnValue }.
import type { X509Certificate } from 'node:crypto';

const BASIC_CONSTRAINTS_OID = Buffer.from([0x55, 0x1d, 0x13]); // 2.5.29.19
const SEQUENCE = 0x30;
const EXTENSIONS = 0xa3;
const OID = 0x06;
const BOOLEAN = 0x01;
const INTEGER = 0x02;
const OCTET_STRING = 0x04;

interface Tlv { tag: number; start: number; end: number }

function tlv(der: Buffer, at: number, limit: number): Tlv {
  if (at + 2 > limit) throw new RangeError('truncated DER');
  const tag = der[at]!;
  let length = der[at + 1]!;
  let start = at + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 4 || start + octets > limit) throw new RangeError('bad DER length');
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + der[start + i]!;
    start += octets;
  }
  if (start + length > limit) throw new RangeError('DER runs past its container');
  return { tag, start, end: start + length };
}

function children(der: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end;) {
    const child = tlv(der, at, parent.end);
    out.push(child);
    at = child.end;
  }
  return out;
}

/**
 * How many intermediate CA certificates may follow `cert` on a path: a number when its basicConstraints
 * carry a pathLenConstraint, `undefined` when there is none (no limit), `'malformed'` when the DER cannot be
 * read that far (the caller refuses the path).
 */
export function pathLengthConstraint(cert: X509Certificate): number | undefined | 'malformed' {
  const der = cert.raw;
  try {
    const certificate = tlv(der, 0, der.length);
    const [tbs] = children(der, certificate);
    if (!tbs || tbs.tag !== SEQUENCE) return 'malformed';
    const extensions = children(der, tbs).find((field) => field.tag === EXTENSIONS);
    if (!extensions) return undefined;
    const [list] = children(der, extensions);
    if (!list || list.tag !== SEQUENCE) return 'malformed';
    for (const extension of children(der, list)) {
      const [id, ...rest] = children(der, extension);
      if (!id || id.tag !== OID || !der.subarray(id.start, id.end).equals(BASIC_CONSTRAINTS_OID)) continue;
      const value = rest.find((field) => field.tag === OCTET_STRING);
      if (!value) return 'malformed';
      const constraints = tlv(der, value.start, value.end);
      if (constraints.tag !== SEQUENCE) return 'malformed';
      const fields = children(der, constraints).filter((field) => field.tag !== BOOLEAN);
      const pathLen = fields.find((field) => field.tag === INTEGER);
      if (!pathLen) return undefined;
      const octets = der.subarray(pathLen.start, pathLen.end);
      if (octets.length === 0 || octets.length > 4 || (octets[0]! & 0x80)) return 'malformed';
      return octets.reduce((n, octet) => n * 256 + octet, 0);
    }
    return undefined;
  } catch {
    return 'malformed';
  }
}
