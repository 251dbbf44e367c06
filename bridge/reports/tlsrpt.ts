// SMTP TLS reporting (RFC 8460): the node tells a domain, once a day, how its TLS negotiations with that
// domain's MX hosts went, so the domain sees a downgrade attack or a broken certificate that its own logs
// cannot show. This module reads a domain's `_smtp._tls` record, turns the day's counted outcomes into the
// RFC's JSON report, and carries it either as a `multipart/report` mail or as an HTTPS POST; it also reads
// the reports other senders send to the node's own domains. The node wires it: it asks DNS, signs the mail
// with DKIM and decides when to send. What comes from outside (a report, a record, a server's answer) is
// bounded before it is decoded.
import { request } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { lookup as dnsLookup } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { gzipSync, gunzipSync } from 'node:zlib';
import { splitMessage, type HeaderField } from '../auth/canon.ts';
import { DEFAULT_DKIM_SIGNED_HEADERS } from '../auth/dkim-sign.ts';
import { HOST_NAME } from '../auth/errors.ts';
import { rfc5322Date } from '../inbound/message.ts';
import { contentType, decodeBody, headerParams, multipartParts, unfolded } from '../outbound/mime.ts';
import { boundaryFor, foldList, HEADER_CONTROL, hasEightBit, mailboxProblem, toCrlf } from '../outbound/mime.ts';
import type { TlsOutcome } from '../outbound/types.ts';
import { TlsRptError } from './errors.ts';
import { TLS_POLICY_TYPES, TLS_RESULT_TYPES, validateTlsReport, type TlsFailureDetail, type TlsPolicyType, type TlsReport, type TlsResultType } from './tlsrpt-schema.ts';

// ---------------------------------------------------------------------------------------------------------
// The `_smtp._tls.<domain>` TXT record (RFC 8460 §3)

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

// ---------------------------------------------------------------------------------------------------------
// Building a report (RFC 8460 §4)

export interface TlsFailureInput {
  resultType: TlsResultType;
  sendingMtaIp?: string;
  /** Absent when no MX was involved (an MTA-STS policy fetch failure). */
  receivingMxHostname?: string;
  /** Absent when no connection was made. */
  receivingIp?: string;
  failedSessionCount: number;
  additionalInformation?: string;
  /** Free text: what went wrong, one line. */
  failureReasonCode?: string;
}

export interface TlsPolicyInput {
  policyType: TlsPolicyType;
  /** The TLSA records in presentation form, or the MTA-STS policy's lines; none for no-policy-found. */
  policyStrings: string[];
  policyDomain: string;
  /** The MTA-STS policy's mx patterns. */
  mxHosts?: string[];
  successes: number;
  failures: TlsFailureInput[];
}

export interface TlsReportInput {
  organizationName: string;
  /** The mailbox a domain can write to about the report. */
  contactInfo: string;
  reportId: string;
  dateRange: { start: Date; end: Date };
  policies: TlsPolicyInput[];
}

const MAX_REASON = 255;
/** A report id goes into the Subject between angle brackets: printable ASCII without spaces or brackets. */
const REPORT_ID = /^[\x21-\x3b\x3d\x3f-\x7e]{1,255}$/;
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const MX_PATTERN = new RegExp(`^(?:\\*\\.)?(?:${LABEL}\\.)*${LABEL}$`, 'i');

function refuse(what: string, value: string): never {
  if (HEADER_CONTROL.test(value)) throw new TlsRptError('HEADER_INJECTION', `${what} holds a line break or a control character`);
  throw new TlsRptError('BAD_ARGUMENT', `${what} "${value}" is not usable`);
}

function checkDomain(what: string, domain: string): void {
  if (!HOST_NAME.test(domain) || domain.length > 253) refuse(what, domain);
}

function checkText(what: string, value: string, max: number): void {
  if (HEADER_CONTROL.test(value) || value.trim() === '' || value.length > max) refuse(what, value);
}

function checkCount(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new TlsRptError('BAD_ARGUMENT', `${what} ${n} is not a count`);
}

function checkIp(what: string, ip: string): void {
  if (isIP(ip) === 0) refuse(what, ip);
}

/** RFC 3339 in UTC, whole seconds (as the RFC's examples write it). */
function dateTime(date: Date, what: string): string {
  if (!Number.isFinite(date.getTime())) throw new TlsRptError('BAD_ARGUMENT', `${what} is not a time`);
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Text from elsewhere (a certificate error, a server's words) as one line of at most `max` characters. */
function oneLine(text: string, max: number): string {
  return text.replace(/[\x00-\x1f\x7f]+/g, ' ').replace(/ {2,}/g, ' ').trim().slice(0, max);
}

function failureDetail(f: TlsFailureInput): TlsFailureDetail {
  if (!(TLS_RESULT_TYPES as readonly string[]).includes(f.resultType)) throw new TlsRptError('BAD_ARGUMENT', `"${f.resultType}" is not an RFC 8460 result type`);
  if (f.sendingMtaIp !== undefined) checkIp('the sending MTA address', f.sendingMtaIp);
  if (f.receivingIp !== undefined) checkIp('the receiving address', f.receivingIp);
  if (f.receivingMxHostname !== undefined) checkDomain('the receiving MX host', f.receivingMxHostname);
  checkCount('the failed session count', f.failedSessionCount);
  if (f.additionalInformation !== undefined) checkText('the additional information URI', f.additionalInformation, 2_048);
  const reason = f.failureReasonCode === undefined ? '' : oneLine(f.failureReasonCode, MAX_REASON);
  return {
    'result-type': f.resultType,
    ...(f.sendingMtaIp !== undefined ? { 'sending-mta-ip': f.sendingMtaIp } : {}),
    ...(f.receivingMxHostname !== undefined ? { 'receiving-mx-hostname': f.receivingMxHostname.toLowerCase() } : {}),
    ...(f.receivingIp !== undefined ? { 'receiving-ip': f.receivingIp } : {}),
    'failed-session-count': f.failedSessionCount,
    ...(f.additionalInformation !== undefined ? { 'additional-information': f.additionalInformation } : {}),
    ...(reason !== '' ? { 'failure-reason-code': reason } : {}),
  };
}

/**
 * The RFC 8460 §4 report object, with the RFC's field names; the failure total is the sum of the failure
 * details. Throws a TlsRptError for an argument it will not write (a control character anywhere is
 * HEADER_INJECTION: the organization name and domains also go into the mail's text and headers).
 */
export function buildTlsReport(input: TlsReportInput): TlsReport {
  checkText('the organization name', input.organizationName, 255);
  if (mailboxProblem(input.contactInfo) !== null) refuse('the contact address', input.contactInfo);
  if (!REPORT_ID.test(input.reportId)) refuse('the report id', input.reportId);
  const start = dateTime(input.dateRange.start, 'the start of the date range');
  const end = dateTime(input.dateRange.end, 'the end of the date range');
  if (input.dateRange.start.getTime() > input.dateRange.end.getTime()) throw new TlsRptError('BAD_ARGUMENT', 'the date range ends before it starts');
  if (input.policies.length === 0) throw new TlsRptError('BAD_ARGUMENT', 'a report covers at least one policy');
  const policies = input.policies.map((p): TlsReport['policies'][number] => {
    if (!(TLS_POLICY_TYPES as readonly string[]).includes(p.policyType)) throw new TlsRptError('BAD_ARGUMENT', `"${p.policyType}" is not a policy type`);
    checkDomain('the policy domain', p.policyDomain);
    for (const line of p.policyStrings) if (HEADER_CONTROL.test(line) || line.length > 8_192) refuse('a policy string', line);
    for (const mx of p.mxHosts ?? []) if (!MX_PATTERN.test(mx) || mx.length > 253) refuse('an mx host pattern', mx);
    checkCount('the successful session count', p.successes);
    const details = p.failures.map(failureDetail);
    const failed = details.reduce((sum, d) => sum + d['failed-session-count'], 0);
    checkCount('the failure session count', failed);
    return {
      policy: {
        'policy-type': p.policyType,
        ...(p.policyStrings.length > 0 ? { 'policy-string': [...p.policyStrings] } : {}),
        'policy-domain': p.policyDomain.toLowerCase(),
        ...(p.mxHosts && p.mxHosts.length > 0 ? { 'mx-host': p.mxHosts.map((m) => m.toLowerCase()) } : {}),
      },
      summary: { 'total-successful-session-count': p.successes, 'total-failure-session-count': failed },
      ...(details.length > 0 ? { 'failure-details': details } : {}),
    };
  });
  const report: TlsReport = {
    'organization-name': input.organizationName,
    'date-range': { 'start-datetime': start, 'end-datetime': end },
    'contact-info': input.contactInfo,
    'report-id': input.reportId,
    policies,
  };
  // The node's reports must pass what it asks of everyone else's.
  const check = validateTlsReport(report);
  if (!check.ok) throw new TlsRptError('BAD_ARGUMENT', `the report would not follow RFC 8460: ${check.reason}`);
  return report;
}

// ---------------------------------------------------------------------------------------------------------
// From the day's counted outcomes to the reports of that day

/** One row of the node's TLS outcome counts (the store's TlsOutcomeCount has this shape). */
export interface TlsOutcomeDayCount {
  /** YYYY-MM-DD, UTC. */
  day: string;
  policyDomain: string;
  policyType: TlsOutcome['policyType'];
  policyStrings: string[];
  mxHost: string;
  receivingIp: string;
  result: TlsOutcome['result'];
  detail: string;
  count: number;
}

/** What one report (one policy domain, one day) is built from: `policies` is TlsReportInput's. */
export interface TlsReportDomain {
  policyDomain: string;
  policies: TlsPolicyInput[];
}

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/** The date range of a UTC day as RFC 8460's example gives it: 00:00:00Z to 23:59:59Z. */
export function utcDayRange(day: string): { start: Date; end: Date } {
  const start = new Date(`${day}T00:00:00Z`);
  if (!DAY.test(day) || !Number.isFinite(start.getTime()) || start.toISOString().slice(0, 10) !== day) {
    throw new TlsRptError('BAD_ARGUMENT', `"${day}" is not a day (YYYY-MM-DD)`);
  }
  return { start, end: new Date(start.getTime() + 86_400_000 - 1000) };
}

/**
 * The report id of the report for one policy domain and one UTC day from one submitter:
 * `<day>_<policy-domain>@<submitter>`. Unique per (day, policy domain, submitter) as RFC 8460 §4.4 asks, and
 * stable: a report sent again (a retry, a second rua destination) carries the same id, so a receiver can
 * tell it has it already. It is shaped like a Message-ID, which is what the Subject shows it as.
 */
export function tlsReportId(day: string, policyDomain: string, submitter: string): string {
  utcDayRange(day);
  checkDomain('the policy domain', policyDomain);
  checkDomain('the submitter', submitter);
  return `${day}_${policyDomain.toLowerCase()}@${submitter.toLowerCase()}`;
}

/** The mx patterns of an MTA-STS policy given as its lines (`mx: host`). */
function stsMxPatterns(policyStrings: string[]): string[] {
  return policyStrings.flatMap((line) => {
    const m = /^mx[ \t]*:[ \t]*(\S+)[ \t]*$/.exec(line);
    return m ? [m[1]!.toLowerCase()] : [];
  });
}

/**
 * The counts of one UTC day grouped into one report input per policy domain (sorted by domain): within a
 * domain, one policy per (policy type, policy strings), its successes summed and one failure detail per
 * (result, MX host, address). The policy domain is the count's own: the recipient domain for `sts` and
 * `no-policy-found`, the MX host for `tlsa` (its `_smtp._tls` record is the MX host's).
 */
export function aggregateTlsOutcomes(counts: readonly TlsOutcomeDayCount[], day: string): TlsReportDomain[] {
  utcDayRange(day);
  const domains = new Map<string, Map<string, TlsPolicyInput>>();
  for (const c of counts) {
    if (c.day !== day || c.count <= 0) continue;
    const domain = c.policyDomain.toLowerCase();
    const policies = domains.get(domain) ?? new Map<string, TlsPolicyInput>();
    domains.set(domain, policies);
    const key = JSON.stringify([c.policyType, c.policyStrings]);
    let policy = policies.get(key);
    if (!policy) {
      const mxHosts = c.policyType === 'sts' ? stsMxPatterns(c.policyStrings) : [];
      policy = { policyType: c.policyType, policyStrings: [...c.policyStrings], policyDomain: domain, ...(mxHosts.length > 0 ? { mxHosts } : {}), successes: 0, failures: [] };
      policies.set(key, policy);
    }
    if (c.result === 'success') {
      policy.successes += c.count;
      continue;
    }
    const mx = c.mxHost.toLowerCase();
    const same = policy.failures.find((f) => f.resultType === c.result && (f.receivingMxHostname ?? '') === mx && (f.receivingIp ?? '') === c.receivingIp);
    if (same) {
      same.failedSessionCount += c.count;
      continue;
    }
    policy.failures.push({
      resultType: c.result,
      ...(mx !== '' ? { receivingMxHostname: mx } : {}),
      ...(c.receivingIp !== '' ? { receivingIp: c.receivingIp } : {}),
      failedSessionCount: c.count,
      ...(c.detail.trim() !== '' ? { failureReasonCode: oneLine(c.detail, MAX_REASON) } : {}),
    });
  }
  return [...domains].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([policyDomain, policies]) => ({ policyDomain, policies: [...policies.values()] }));
}

// ---------------------------------------------------------------------------------------------------------
// The report as mail (RFC 8460 §5.3)

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

function base64Lines(data: Buffer): string {
  return (data.toString('base64').match(/.{1,76}/g) ?? []).join('\r\n');
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
  const chunks: Buffer[] = [Buffer.from(head, 'utf8')];
  for (const p of parts) chunks.push(Buffer.from(`--${boundary}\r\n`, 'latin1'), p, Buffer.from('\r\n'));
  chunks.push(Buffer.from(`--${boundary}--\r\n`, 'latin1'));
  return Buffer.concat(chunks);
}

// ---------------------------------------------------------------------------------------------------------
// The report by HTTPS POST (RFC 8460 §5.2)

export interface TlsReportPostOptions {
  /** One deadline for connecting, sending and the answer. */
  timeoutMs: number;
  /** Trust anchors instead of the system's (tests pass their own CA). */
  ca?: string | string[];
  /**
   * Test-only: URL host -> `host:port` to connect to; the name checked and sent stays the URL's. A mapped
   * host skips the public-address check (the test servers are on loopback).
   */
  hostMap?: Record<string, string>;
}

/** Addresses a report is never posted to: a record names the URL, and it must not reach inside the network. */
const NOT_PUBLIC = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.0.0.0', 24],
  ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) NOT_PUBLIC.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) NOT_PUBLIC.addSubnet(net, prefix, 'ipv6');

export function isPublicAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return isPublicAddress(mapped[1]!);
  const family = isIP(address);
  return family !== 0 && !NOT_PUBLIC.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** The system resolver, refusing a name with any address that is not public (DNS rebinding included: it is what is connected to). */
const publicLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, options, (err, address, family) => {
    if (err) return callback(err, address, family);
    const addresses = Array.isArray(address) ? address.map((a) => a.address) : [address];
    const bad = addresses.find((a) => !isPublicAddress(a));
    if (bad !== undefined) {
      return callback(new TlsRptError('FORBIDDEN_ADDRESS', `${hostname} resolves to ${bad}, which is not a public address`), address, family);
    }
    callback(null, address, family);
  });
};

/** The largest report posted, and the most of an answer read (its status is what counts). */
export const MAX_TLS_REPORT_BYTES = 5 * 1024 * 1024;
const MAX_ANSWER_BYTES = 64 * 1024;

function postFailure(err: unknown): TlsRptError {
  if (err instanceof TlsRptError) return err;
  const text = err instanceof Error ? err.message : String(err);
  return new TlsRptError('UNREACHABLE', `report POST: ${text}`, { cause: err });
}

/**
 * POSTs a gzipped report to an https: URL from a TLSRPT record, as `application/tlsrpt+gzip`. Resolves with
 * the status on 2xx; a redirect is not followed (RFC 8460 §5.2 gives none) and fails like any other status
 * (HTTP_STATUS). Throws TlsRptError: FORBIDDEN_ADDRESS for a host that is or resolves to a non-public
 * address, UNREACHABLE (connection or certificate), TIMEOUT, BAD_ARGUMENT (not an https URL, too large).
 */
export async function postTlsReport(url: string, gzipped: Buffer, opts: TlsReportPostOptions): Promise<{ status: number }> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw new TlsRptError('BAD_ARGUMENT', `"${url.slice(0, 200)}" is not a URL`);
  }
  if (target.protocol !== 'https:' || target.username || target.password) throw new TlsRptError('BAD_ARGUMENT', `"${url.slice(0, 200)}" is not an https URL a report can go to`);
  if (gzipped.length > MAX_TLS_REPORT_BYTES) throw new TlsRptError('BAD_ARGUMENT', `a report of ${gzipped.length} bytes is over ${MAX_TLS_REPORT_BYTES}`);
  const name = target.hostname.replace(/^\[|\]$/g, '');
  const mapped = opts.hostMap?.[name];
  let host = name;
  let port = Number(target.port || 443);
  if (mapped) {
    const colon = mapped.lastIndexOf(':');
    host = mapped.slice(0, colon);
    port = Number(mapped.slice(colon + 1));
  } else if (isIP(name) !== 0 && !isPublicAddress(name)) {
    throw new TlsRptError('FORBIDDEN_ADDRESS', `${name} is not a public address`);
  }

  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new TlsRptError('TIMEOUT', `report POST: no complete answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
  try {
    return await new Promise<{ status: number }>((resolve, reject) => {
      const fail = (err: unknown) => reject(postFailure(controller.signal.aborted ? controller.signal.reason : err));
      const req = request({
        host, port, ...(isIP(name) === 0 ? { servername: name } : {}), path: `${target.pathname}${target.search}`, method: 'POST',
        headers: { host: target.host, 'content-type': TLSRPT_GZIP_TYPE, 'content-length': gzipped.length },
        ca: opts.ca, rejectUnauthorized: true, agent: false, signal: controller.signal, ...(mapped ? {} : { lookup: publicLookup }),
      }, (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 299) {
          const where = res.headers.location ? ` (redirect to ${JSON.stringify(res.headers.location.slice(0, 200))} not followed)` : '';
          reject(new TlsRptError('HTTP_STATUS', `report POST: HTTP ${status}${where}`, { status }));
          res.destroy();
          return;
        }
        // The answer's body says nothing that matters: read a bounded amount so the connection ends cleanly.
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER_BYTES) { resolve({ status }); res.destroy(); }
        });
        res.on('end', () => resolve({ status }));
        res.on('error', () => resolve({ status }));
        res.on('aborted', () => resolve({ status }));
      });
      req.on('error', fail);
      req.end(gzipped);
    });
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Reading reports sent to the node's domains

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
