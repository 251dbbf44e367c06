// Reading the TLS reports other senders send to the node's domains, by mail or as a POST body. What comes
// from outside is bounded before it is inflated or decoded.
import { gunzipSync } from 'node:zlib';
import { splitMessage, type HeaderField } from '../auth/canon.ts';
import { HOST_NAME } from '../auth/errors.ts';
import { contentType, decodeBody, headerParams, multipartParts, toCrlf, unfolded } from '../outbound/mime.ts';
import { TlsRptError } from './errors.ts';
import { TLSRPT_GZIP_TYPE, TLSRPT_JSON_TYPE } from './tlsrpt-mail.ts';
import { validateTlsReport, type TlsReport } from './tlsrpt-schema.ts';

/** The most of a report read, inflated or not: a gzip bomb stops here without being inflated further. */
export const MAX_TLS_REPORT_INFLATED = 5 * 1024 * 1024;
/** A report mail over this is not read (a base64 attachment of the largest report is about 6.7 MiB). */
export const MAX_TLS_REPORT_MAIL = 10 * 1024 * 1024;

function isGzip(body: Buffer): boolean {
  return body.length >= 3 && body[0] === 0x1f && body[1] === 0x8b && body[2] === 0x08;
}

/**
 * An incoming report (a mail attachment or a POST body): gzip inflated to at most MAX_TLS_REPORT_INFLATED
 * bytes, UTF-8 JSON, checked against RFC 8460 §4 (fields it does not name are dropped). `contentType`, when
 * given, must be application/tlsrpt+gzip or +json; without it a gzip stream is recognised by its magic.
 * Throws TlsRptError: TOO_LARGE, NOT_GZIP, BAD_JSON, INVALID_REPORT, NOT_REPORT (another content type).
 */
export function parseTlsReport(body: Buffer, type?: string): TlsReport {
  const declared = type === undefined ? undefined : (type.split(';')[0] ?? '').trim().toLowerCase();
  if (declared !== undefined && declared !== TLSRPT_GZIP_TYPE && declared !== TLSRPT_JSON_TYPE) {
    throw new TlsRptError('NOT_REPORT', `a body of type ${JSON.stringify(type!.slice(0, 100))} is not a TLS report`);
  }
  if (body.length > MAX_TLS_REPORT_INFLATED) throw new TlsRptError('TOO_LARGE', `a report of ${body.length} bytes is over ${MAX_TLS_REPORT_INFLATED}`);
  const gzipped = declared === TLSRPT_GZIP_TYPE || (declared === undefined && isGzip(body));
  let json = body;
  if (gzipped) {
    if (!isGzip(body)) throw new TlsRptError('NOT_GZIP', 'the report is not gzip-compressed');
    try {
      json = gunzipSync(body, { maxOutputLength: MAX_TLS_REPORT_INFLATED });
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new TlsRptError('TOO_LARGE', `the report inflates to more than ${MAX_TLS_REPORT_INFLATED} bytes`, { cause: err });
      }
      throw new TlsRptError('NOT_GZIP', `the report is not a readable gzip stream: ${(err as Error).message}`, { cause: err });
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(json));
  } catch (err) {
    throw new TlsRptError('BAD_JSON', `the report is not UTF-8 JSON: ${(err as Error).message.slice(0, 200)}`, { cause: err });
  }
  const check = validateTlsReport(value, { exact: false });
  if (!check.ok) throw new TlsRptError('INVALID_REPORT', `the report does not follow RFC 8460: ${check.reason}`);
  return check.report;
}

export interface ExtractedTlsReport {
  contentType: typeof TLSRPT_GZIP_TYPE | typeof TLSRPT_JSON_TYPE;
  /** The part's body, transfer encoding removed: what parseTlsReport reads. */
  body: Buffer;
  filename?: string;
  /** The mail's TLS-Report-Domain and TLS-Report-Submitter fields, when they are host names. */
  reportDomain?: string;
  submitter?: string;
}

const MAX_MIME_DEPTH = 3;

function reportPart(headers: HeaderField[], body: Buffer, depth: number): { headers: HeaderField[]; body: Buffer } | undefined {
  const type = contentType(headers);
  if (type.type === TLSRPT_GZIP_TYPE || type.type === TLSRPT_JSON_TYPE) return { headers, body };
  const boundary = type.params.get('boundary');
  if (!type.type.startsWith('multipart/') || !boundary || boundary.length > 200 || depth >= MAX_MIME_DEPTH) return undefined;
  for (const part of multipartParts(body, boundary)) {
    const split = splitMessage(part);
    const found = reportPart(split.headers, split.body, depth + 1);
    if (found) return found;
  }
  return undefined;
}

function hostField(headers: HeaderField[], name: string): string | undefined {
  const field = headers.find((h) => h.name === name);
  const value = field ? unfolded(field).toLowerCase() : '';
  return HOST_NAME.test(value) && value.length <= 253 ? value : undefined;
}

/**
 * The TLS report a mail carries (RFC 8460 §5.3): its application/tlsrpt+gzip (or +json) part, found in a
 * multipart/report (or another multipart, a few levels deep), or the mail's own body when that is the
 * report. Throws TlsRptError: TOO_LARGE (over MAX_TLS_REPORT_MAIL), NOT_REPORT.
 */
export function extractTlsReportFromMail(message: Buffer): ExtractedTlsReport {
  if (message.length > MAX_TLS_REPORT_MAIL) throw new TlsRptError('TOO_LARGE', `a report mail over ${MAX_TLS_REPORT_MAIL} bytes is not read`);
  const { headers, body } = splitMessage(toCrlf(message));
  const found = reportPart(headers, body, 0);
  if (!found) throw new TlsRptError('NOT_REPORT', 'the mail has no application/tlsrpt+gzip or application/tlsrpt+json part');
  const partType = contentType(found.headers).type as ExtractedTlsReport['contentType'];
  const disposition = found.headers.find((h) => h.name === 'content-disposition');
  const filename = (disposition ? headerParams(unfolded(disposition)).params.get('filename') : undefined) ?? contentType(found.headers).params.get('name');
  const reportDomain = hostField(headers, 'tls-report-domain');
  const submitter = hostField(headers, 'tls-report-submitter');
  return {
    contentType: partType,
    body: decodeBody(found.headers, found.body),
    ...(filename !== undefined ? { filename } : {}),
    ...(reportDomain !== undefined ? { reportDomain } : {}),
    ...(submitter !== undefined ? { submitter } : {}),
  };
}
