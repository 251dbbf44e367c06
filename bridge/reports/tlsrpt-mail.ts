// The TLS report as mail (RFC 8460 §5.3): the gzipped JSON, its file name, the multipart/report mail and the
// fields its DKIM signature must cover. Every value that becomes a header field is checked first.
import { gzipSync } from 'node:zlib';
import { DEFAULT_DKIM_SIGNED_HEADERS } from '../auth/dkim-sign.ts';
import { rfc5322Date } from '../inbound/message.ts';
import { base64Lines, boundaryFor, foldList, HEADER_CONTROL, hasEightBit, mailboxProblem, multipartMessage } from '../outbound/mime.ts';
import { TlsRptError } from './errors.ts';
import { checkDomain, refuse, REPORT_ID } from './tlsrpt-build.ts';
import { validateTlsReport, type TlsReport } from './tlsrpt-schema.ts';

export interface TlsReportMailInput {
  report: TlsReport;
  /** The node's report sender address (its envelope sender should be the null path or this). */
  from: string;
  /** The mailto: addresses of the domain's record. */
  to: string | readonly string[];
  /** The reporting domain (TLS-Report-Submitter); the mail must carry its DKIM signature (RFC 8460 §5.3). */
  submitter: string;
  policyDomain: string;
  /** Without angle brackets. */
  messageId: string;
  date: Date;
}

/**
 * The fields to DKIM-sign a report mail with (dkimSign's `headers`): the usual ones and the two that say
 * which domain the report is about and who sends it, so neither can be changed on the way.
 */
export const TLSRPT_DKIM_SIGNED_HEADERS: readonly string[] = [...DEFAULT_DKIM_SIGNED_HEADERS, 'tls-report-domain', 'tls-report-submitter', 'auto-submitted'];

const MSG_ID = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9!#$%&'*+/=?^_`{|}~.[\]-]+$/;
export const TLSRPT_GZIP_TYPE = 'application/tlsrpt+gzip';
export const TLSRPT_JSON_TYPE = 'application/tlsrpt+json';

function unixSeconds(dateTimeText: string): number {
  return Math.floor(Date.parse(dateTimeText) / 1000);
}

/** RFC 8460 §5.3: `<submitter>!<policy-domain>!<begin>!<end>.json.gz`, Unix seconds. */
export function tlsReportFilename(report: TlsReport, submitter: string, policyDomain: string): string {
  const range = report['date-range'];
  return `${submitter.toLowerCase()}!${policyDomain.toLowerCase()}!${unixSeconds(range['start-datetime'])}!${unixSeconds(range['end-datetime'])}.json.gz`;
}

/** The report as it is sent: JSON, gzip-compressed (the attachment, and the body of an HTTPS POST). */
export function gzipTlsReport(report: TlsReport): Buffer {
  return gzipSync(Buffer.from(JSON.stringify(report), 'utf8'));
}

/**
 * The report mail as RFC 5322 bytes (CRLF), not yet DKIM-signed: `multipart/report; report-type=tlsrpt`
 * with a text/plain part and the gzipped JSON as an `application/tlsrpt+gzip` attachment (base64), the
 * TLS-Report-Domain and TLS-Report-Submitter fields and the Subject RFC 8460 §5.3 gives. Every value that
 * becomes a header field is checked; none can add a field or a line.
 */
export function tlsReportMail(input: TlsReportMailInput): Buffer {
  const check = validateTlsReport(input.report);
  if (!check.ok) throw new TlsRptError('INVALID_REPORT', `the report does not follow RFC 8460: ${check.reason}`);
  const report = input.report;
  const to = typeof input.to === 'string' ? [input.to] : [...input.to];
  // The mail is 7-bit throughout: no address needs SMTPUTF8.
  if (mailboxProblem(input.from) !== null || hasEightBit(input.from)) refuse('the From address', input.from);
  if (to.length === 0) throw new TlsRptError('BAD_ARGUMENT', 'a report mail needs a recipient');
  for (const address of to) if (mailboxProblem(address) !== null || hasEightBit(address)) refuse('a To address', address);
  checkDomain('the submitter', input.submitter);
  checkDomain('the policy domain', input.policyDomain);
  // TLS-Report-Domain names the domain the report is about: one report per policy domain.
  const other = report.policies.find((p) => p.policy['policy-domain'].toLowerCase() !== input.policyDomain.toLowerCase());
  if (other) throw new TlsRptError('BAD_ARGUMENT', `the report covers ${other.policy['policy-domain']}, not only ${input.policyDomain}`);
  if (!MSG_ID.test(input.messageId) || input.messageId.length > 900) refuse('the Message-ID', input.messageId);
  if (!Number.isFinite(input.date.getTime())) throw new TlsRptError('BAD_ARGUMENT', 'the date is not a time');
  const reportId = report['report-id'];
  if (!REPORT_ID.test(reportId)) refuse('the report id', reportId);
  const organization = report['organization-name'];
  if (HEADER_CONTROL.test(organization)) refuse('the organization name', organization);

  const domain = input.policyDomain.toLowerCase();
  const submitter = input.submitter.toLowerCase();
  const range = report['date-range'];
  const text = [
    `This is an aggregate TLS report (RFC 8460) from ${organization.replace(/[^\x20-\x7e]/g, '?')} (${submitter})`,
    `for ${domain}, ${range['start-datetime']} to ${range['end-datetime']}.`,
    '',
  ].join('\r\n');
  const attachment = base64Lines(gzipTlsReport(report));
  const parts = [
    Buffer.from(`Content-Type: text/plain; charset=us-ascii\r\n\r\n${text}`, 'latin1'),
    Buffer.from([
      `Content-Type: ${TLSRPT_GZIP_TYPE}`,
      'Content-Transfer-Encoding: base64',
      `Content-Disposition: attachment;\r\n filename="${tlsReportFilename(report, submitter, domain)}"`,
      '',
      attachment,
      '',
    ].join('\r\n'), 'latin1'),
  ];
  const boundary = boundaryFor(parts);
  const head = [
    `From: <${input.from}>`,
    `To: ${foldList('To', to.map((a) => `<${a}>`), ', ')}`,
    `Subject: ${foldList('Subject', ['Report', 'Domain:', domain, 'Submitter:', submitter, 'Report-ID:', `<${reportId}>`], ' ')}`,
    `Date: ${rfc5322Date(input.date)}`,
    `Message-ID: <${input.messageId}>`,
    `TLS-Report-Domain: ${domain}`,
    `TLS-Report-Submitter: ${submitter}`,
    // RFC 3834 §5: nothing should answer a report automatically.
    'Auto-Submitted: auto-generated',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type="tlsrpt";\r\n boundary="${boundary}"`,
    '',
    'This is a MIME-encapsulated TLS report.',
    '',
  ].join('\r\n');
  return multipartMessage(head, boundary, parts);
}
