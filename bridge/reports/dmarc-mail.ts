// The DMARC report as mail (RFC 7489 §7.2.1.1 and its successor's): the gzipped XML attachment with its fixed
// file name and Subject, and finding the report in a mail that any sender may have sent.
import { gzipSync } from 'node:zlib';
import { splitMessage } from '../auth/canon.ts';
import { rfc5322Date } from '../inbound/message.ts';
import { base64Lines, boundaryFor, contentType, decodeBody, mailboxProblem, multipartMessage, multipartParts, toCrlf } from '../outbound/mime.ts';
import { DEFAULT_LIMITS, isGzip, parseDmarcReport, type DmarcParseLimits } from './dmarc-parse.ts';
import { DmarcReportError, type DmarcAggregateReport } from './dmarc-types.ts';
import { buildDmarcReport, checkDomain, refuse } from './dmarc-xml.ts';

const MSG_ID = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9!#$%&'*+/=?^_`{|}~.[\]-]+$/;

export interface DmarcReportMailOptions {
  /** The reporting organisation's domain (Submitter, and the receiver part of the file name). */
  submitter: string;
  /** The From mailbox; its domain should be one the node DKIM-signs for. */
  from: string;
  /** The rua mailboxes (after checkExternalDestination). */
  to: readonly string[];
  /** The Message-ID value without angle brackets. */
  messageId: string;
  date: Date;
}

/** `<receiver>!<policy-domain>!<begin>!<end>.xml.gz` (RFC 7489 §7.2.1.1; the same in DMARCbis). */
export function dmarcReportFilename(submitter: string, report: DmarcAggregateReport): string {
  return `${submitter}!${report.policyPublished.domain}!${report.dateRange.begin}!${report.dateRange.end}.xml.gz`;
}

/**
 * The report mail (RFC 5322 bytes, CRLF): a short text part and the XML gzipped as an attachment
 * (application/gzip, base64) with the standard file name, Subject "Report Domain: … Submitter: … Report-ID:
 * <…>". Throws DmarcReportError for a value that would not be safe in a header field.
 */
export function dmarcReportMail(report: DmarcAggregateReport, options: DmarcReportMailOptions): Buffer {
  const xml = buildDmarcReport(report);
  checkDomain('the submitter', options.submitter);
  if (mailboxProblem(options.from) !== null) refuse('the From address', options.from);
  if (options.to.length === 0) throw new DmarcReportError('BAD_ARGUMENT', 'a report goes to at least one address');
  for (const to of options.to) if (mailboxProblem(to) !== null) refuse('a To address', to);
  if (!MSG_ID.test(options.messageId)) refuse('the Message-ID', options.messageId);
  if (!Number.isFinite(options.date.getTime())) throw new DmarcReportError('BAD_ARGUMENT', 'the date is not a time');
  const domain = report.policyPublished.domain;
  const filename = dmarcReportFilename(options.submitter, report);
  const text = Buffer.from(
    `This is an aggregate DMARC report for ${domain} from ${options.submitter},\r\n` +
    `covering ${new Date(report.dateRange.begin * 1000).toISOString()} to ${new Date(report.dateRange.end * 1000).toISOString()}.\r\n`,
    'latin1',
  );
  const attachment = Buffer.from(base64Lines(gzipSync(Buffer.from(xml, 'utf8'))) + '\r\n', 'latin1');
  const parts = [
    Buffer.concat([Buffer.from('Content-Type: text/plain; charset=us-ascii\r\n\r\n', 'latin1'), text]),
    Buffer.concat([Buffer.from([
      `Content-Type: application/gzip; name="${filename}"`,
      'Content-Transfer-Encoding: base64',
      `Content-Disposition: attachment;\r\n filename="${filename}"`,
      '',
      '',
    ].join('\r\n'), 'latin1'), attachment]),
  ];
  const boundary = boundaryFor(parts);
  const head = [
    `From: <${options.from}>`,
    `To: ${options.to.map((t) => `<${t}>`).join(',\r\n ')}`,
    `Subject: Report Domain: ${domain} Submitter: ${options.submitter}\r\n Report-ID: <${report.reportId}>`,
    `Date: ${rfc5322Date(options.date)}`,
    `Message-ID: <${options.messageId}>`,
    'Auto-Submitted: auto-generated',
    'MIME-Version: 1.0',
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    '',
    'This is a MIME-formatted DMARC aggregate report.',
    '',
  ].join('\r\n');
  return multipartMessage(head, boundary, parts);
}

/** A mail that carries a report (the attachment base64 inside MIME) is at most this much bigger than it. */
const MAIL_OVERHEAD = 64 * 1024;
const REPORT_TYPES = new Set(['application/gzip', 'application/x-gzip', 'application/zip', 'application/x-zip-compressed', 'text/xml', 'application/xml']);
const MAX_MIME_DEPTH = 4;

function filenameOf(headers: ReturnType<typeof splitMessage>['headers']): string {
  const disposition = headers.find((h) => h.name === 'content-disposition');
  // filename*= (RFC 2231) keeps its charset'' prefix here; only the extension is looked at.
  const fromDisposition = disposition ? /filename\*?\s*=\s*"?([^";\r\n]*)/i.exec(disposition.raw)?.[1] : undefined;
  return (fromDisposition ?? contentType(headers).params.get('name') ?? '').toLowerCase();
}

interface ReportPart {
  body: Buffer;
  /** Its type or file name says gzip: then anything else in it is a damaged or disguised report. */
  saysGzip: boolean;
}

function findReportPart(message: Buffer, depth: number): ReportPart | undefined {
  const { headers, body } = splitMessage(message);
  const type = contentType(headers);
  const boundary = type.params.get('boundary');
  if (type.type.startsWith('multipart/') && boundary && boundary.length <= 200 && depth < MAX_MIME_DEPTH) {
    for (const part of multipartParts(body, boundary)) {
      const found = findReportPart(part, depth + 1);
      if (found) return found;
    }
    return undefined;
  }
  const name = filenameOf(headers);
  const byType = REPORT_TYPES.has(type.type);
  const byName = /\.(?:xml|gz|zip)$/.test(name) && (type.type === 'application/octet-stream' || type.type === 'text/plain');
  if (!byType && !byName) return undefined;
  return { body: decodeBody(headers, body), saysGzip: type.type.endsWith('gzip') || name.endsWith('.gz') };
}

/**
 * The report a DMARC report mail carries (its first gzip, zip or XML part, at any MIME depth up to four), read
 * by parseDmarcReport. Throws DmarcReportError NO_REPORT for a mail without one, TOO_LARGE for a mail bigger
 * than the report could be, and parseDmarcReport's errors.
 */
export function extractDmarcReportFromMail(message: Buffer, limits: DmarcParseLimits = {}): DmarcAggregateReport {
  const maxCompressed = limits.maxCompressedBytes ?? DEFAULT_LIMITS.maxCompressedBytes;
  // base64 makes the attachment 4/3 its size, plus line ends.
  if (message.length > Math.ceil(maxCompressed * 1.4) + MAIL_OVERHEAD) throw new DmarcReportError('TOO_LARGE', `a report mail of ${message.length} bytes is over the bound`);
  const part = findReportPart(toCrlf(message), 0);
  if (!part) throw new DmarcReportError('NO_REPORT', 'the mail carries no gzip, zip or XML attachment');
  if (part.saysGzip && !isGzip(part.body)) throw new DmarcReportError('NOT_GZIP', 'the attachment is said to be gzip but is not');
  return parseDmarcReport(part.body, limits);
}
