// Building a TLS report (RFC 8460 §4): the day's counted outcomes grouped per policy domain, the report object,
// its id and date range. Every value is checked here, since the same values go into the report mail's headers.
import { isIP } from 'node:net';
import { HOST_NAME } from '../auth/errors.ts';
import { HEADER_CONTROL, mailboxProblem } from '../outbound/mime.ts';
import type { TlsOutcome } from '../outbound/types.ts';
import { TlsRptError } from './errors.ts';
import { TLS_POLICY_TYPES, TLS_RESULT_TYPES, validateTlsReport, type TlsFailureDetail, type TlsPolicyType, type TlsReport, type TlsResultType } from './tlsrpt-schema.ts';

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
export const REPORT_ID = /^[\x21-\x3b\x3d\x3f-\x7e]{1,255}$/;
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const MX_PATTERN = new RegExp(`^(?:\\*\\.)?(?:${LABEL}\\.)*${LABEL}$`, 'i');

export function refuse(what: string, value: string): never {
  if (HEADER_CONTROL.test(value)) throw new TlsRptError('HEADER_INJECTION', `${what} holds a line break or a control character`);
  throw new TlsRptError('BAD_ARGUMENT', `${what} "${value}" is not usable`);
}

export function checkDomain(what: string, domain: string): void {
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
