// DMARC aggregate reports, in the format of DMARCbis aggregate reporting (RFC 9990,
// draft-ietf-dmarc-aggregate-reporting; XML namespace urn:ietf:params:xml:ns:dmarc-2.0), read back in both
// that format and RFC 7489 Appendix C's (no namespace), which most reporters still send.
//
// Sending: the MX records one observation per message (aggregateDmarc groups them per policy domain into
// rows with counts), buildDmarcReport writes the XML, dmarcReportMail the mail (RFC 7489 §7.2.1.1 and its
// successor's: gzip attachment, fixed file name and Subject). The destinations come from the policy's rua=
// (parseDmarcRua), each outside the policy domain checked for consent in DNS (checkExternalDestination).
// Receiving: extractDmarcReportFromMail and parseDmarcReport read what any sender mailed, so size is bounded
// before anything is inflated and the XML reader takes no DTD.
import { isIP } from 'node:net';
import { gunzipSync, gzipSync } from 'node:zlib';
import { splitMessage } from '../auth/canon.ts';
import type { BridgeResolver } from '../auth/dns.ts';
import { HOST_NAME } from '../auth/errors.ts';
import type { DkimResult, DmarcResult, SpfResult } from '../auth/verify.ts';
import { rfc5322Date } from '../inbound/message.ts';
import { boundaryFor, contentType, decodeBody, HEADER_CONTROL, mailboxProblem, multipartParts, toCrlf } from '../outbound/mime.ts';
import { escapeXml, parseXml, XmlSyntaxError, type XmlElement } from './xml.ts';

export type DmarcReportErrorCode =
  /** A caller's value for a header field holds a line break or a control character. */
  | 'HEADER_INJECTION'
  /** Another argument is not usable (a domain, an address, a count, a date range, an enumerated value). */
  | 'BAD_ARGUMENT'
  /** A received report (compressed, inflated, or the mail carrying it) is over the bound. */
  | 'TOO_LARGE'
  /** Said to be gzip (by its type or name) but not a gzip stream, or a damaged one. */
  | 'NOT_GZIP'
  /** A report in a container the bridge does not read (zip). */
  | 'UNSUPPORTED_FORMAT'
  /** Not well-formed XML, or XML with a DTD, an undefined entity, or over the depth and element bounds. */
  | 'BAD_XML'
  /** Well-formed XML that is not an aggregate report (a missing or malformed element). */
  | 'INVALID_REPORT'
  /** A mail without a report attachment. */
  | 'NO_REPORT';

export class DmarcReportError extends Error {
  readonly code: DmarcReportErrorCode;
  constructor(code: DmarcReportErrorCode, message: string) {
    super(message);
    this.name = 'DmarcReportError';
    this.code = code;
  }
}

export const DMARC_XML_NAMESPACE = 'urn:ietf:params:xml:ns:dmarc-2.0';

/** What the receiver did with the messages: DMARCbis adds "pass" (passed DMARC under an enforcing policy). */
export type DmarcDisposition = 'none' | 'pass' | 'quarantine' | 'reject';
export type DmarcPolicyAction = 'none' | 'quarantine' | 'reject';
export type DmarcAlignmentMode = 'r' | 's';
/** DMARCbis's reasons, plus RFC 7489's forwarded and sampled_out (read from older reports). */
export type DmarcOverrideReason = 'local_policy' | 'mailing_list' | 'other' | 'policy_test_mode' | 'trusted_forwarder' | 'forwarded' | 'sampled_out';
export type DmarcDkimAuthResult = DkimResult | 'none';

export interface DmarcPolicyPublished {
  /** The domain whose DMARC record applied. */
  domain: string;
  p: DmarcPolicyAction;
  sp?: DmarcPolicyAction;
  /** DMARCbis: the policy for non-existent subdomains. */
  np?: DmarcPolicyAction;
  adkim?: DmarcAlignmentMode;
  aspf?: DmarcAlignmentMode;
  /** DMARCbis: how the record was found. */
  discoveryMethod?: 'psl' | 'treewalk';
  fo?: string;
  /** DMARCbis t=: y when the policy is in test mode. */
  testing?: 'n' | 'y';
  /** RFC 7489 pct= (gone in DMARCbis): read from older reports, never written. */
  pct?: number;
}

export interface DmarcReportRecord {
  sourceIp: string;
  count: number;
  policyEvaluated: {
    disposition: DmarcDisposition;
    /** Whether an aligned DKIM signature passed, and an aligned SPF check. */
    dkim: 'pass' | 'fail';
    spf: 'pass' | 'fail';
    reasons: { type: DmarcOverrideReason; comment?: string }[];
  };
  identifiers: { headerFrom: string; envelopeFrom?: string; envelopeTo?: string };
  authResults: {
    dkim: { domain: string; selector?: string; result: DmarcDkimAuthResult; humanResult?: string }[];
    spf?: { domain: string; scope?: 'mfrom' | 'helo'; result: SpfResult; humanResult?: string };
  };
}

export interface DmarcAggregateReport {
  orgName: string;
  /** The reporting mailbox. */
  email: string;
  extraContactInfo?: string;
  reportId: string;
  /** Unix seconds, both ends inclusive. */
  dateRange: { begin: number; end: number };
  errors?: string[];
  generator?: string;
  policyPublished: DmarcPolicyPublished;
  records: DmarcReportRecord[];
}

// ---- Aggregation ----------------------------------------------------------------------------------------

/**
 * What the MX keeps of one received message (or `count` alike ones): the connection, the identifiers and the
 * bridge's verdicts (AuthVerdicts fits `verdicts`), with the policy record that applied.
 */
export interface DmarcObservation {
  /** When it was received, Unix seconds. */
  at: number;
  sourceIp: string;
  /** The RFC 5322 From domain. */
  headerFrom: string;
  /** The RFC 5321 MAIL FROM domain ('' for the null sender). */
  envelopeFrom: string;
  /** The recipient domain. */
  envelopeTo?: string;
  verdicts: {
    dmarc: {
      result: DmarcResult;
      policy: DmarcPolicyAction;
      domain: string;
      policyDomain?: string;
      alignment: { spf: boolean; dkim: boolean };
      testMode?: boolean;
      /** The DMARC record that applied, as published (DmarcVerdict.record): the report's policy_published. */
      record?: string;
    };
    spf: { result: SpfResult; domain: string };
    dkim: readonly { result: DkimResult; domain: string; selector: string }[];
  };
  /** What the receiver did when it differs from the policy (a local override), with the reasons. */
  disposition?: DmarcDisposition;
  reasons?: { type: DmarcOverrideReason; comment?: string }[];
  count?: number;
}

export interface DmarcDomainAggregate {
  policyDomain: string;
  policyPublished: DmarcPolicyPublished;
  records: DmarcReportRecord[];
}

/** The report period of one UTC day: midnight to the last second before the next (inclusive ends). */
export function dmarcDayRange(day: Date): { begin: number; end: number } {
  const begin = Math.floor(Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate()) / 1000);
  return { begin, end: begin + 86_399 };
}

function evaluatedDisposition(o: DmarcObservation): { disposition: DmarcDisposition; reasons: { type: DmarcOverrideReason; comment?: string }[] } {
  if (o.disposition) return { disposition: o.disposition, reasons: o.reasons ?? [] };
  const { dmarc } = o.verdicts;
  const published = dmarc.record !== undefined ? dmarcPolicyPublished(dmarc.policyDomain ?? dmarc.domain, dmarc.record) : undefined;
  const enforcing = published !== undefined && published.p !== 'none';
  // A failing message the policy would have acted on, let through because the record says t=y.
  if (dmarc.result === 'fail' && dmarc.testMode && dmarc.policy === 'none' && enforcing) {
    return { disposition: 'none', reasons: [{ type: 'policy_test_mode' }, ...(o.reasons ?? [])] };
  }
  if (dmarc.result === 'fail') return { disposition: dmarc.policy, reasons: o.reasons ?? [] };
  return { disposition: dmarc.result === 'pass' && enforcing ? 'pass' : 'none', reasons: o.reasons ?? [] };
}

/** Code-unit order: the same in every locale. */
function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function recordOf(o: DmarcObservation): Omit<DmarcReportRecord, 'count'> {
  const { dmarc, spf, dkim } = o.verdicts;
  const dkimRows = dkim
    .map((d) => ({ domain: d.domain.toLowerCase(), selector: d.selector, result: d.result as DmarcDkimAuthResult }))
    .sort((a, b) => byText(`${a.domain}\0${a.selector}\0${a.result}`, `${b.domain}\0${b.selector}\0${b.result}`));
  return {
    // A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d; reports name them as IPv4.
    sourceIp: o.sourceIp.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, ''),
    policyEvaluated: { ...evaluatedDisposition(o), dkim: dmarc.alignment.dkim ? 'pass' : 'fail', spf: dmarc.alignment.spf ? 'pass' : 'fail' },
    identifiers: {
      headerFrom: o.headerFrom.toLowerCase(),
      ...(o.envelopeFrom ? { envelopeFrom: o.envelopeFrom.toLowerCase() } : {}),
      ...(o.envelopeTo ? { envelopeTo: o.envelopeTo.toLowerCase() } : {}),
    },
    authResults: {
      dkim: dkimRows,
      spf: { domain: spf.domain.toLowerCase(), scope: o.envelopeFrom ? 'mfrom' : 'helo', result: spf.result },
    },
  };
}

/**
 * The observations received in [begin, end] grouped per policy domain, and within it into rows of alike
 * messages (source IP, disposition and reasons, aligned results, identifiers, authentication results) with
 * their counts. Messages without a DMARC record (result none, or no author domain) have nobody to report to
 * and are left out. Output order is fixed (domains, then rows, sorted), so a report built twice is the same.
 * A domain's published policy is the latest record observed; without any, p=none is reported.
 */
export function aggregateDmarc(observations: readonly DmarcObservation[], range: { begin: number; end: number }): DmarcDomainAggregate[] {
  const domains = new Map<string, { policy?: { at: number; record: string; published: DmarcPolicyPublished }; rows: Map<string, DmarcReportRecord> }>();
  for (const o of observations) {
    const { dmarc } = o.verdicts;
    if (o.at < range.begin || o.at > range.end || dmarc.result === 'none' || !dmarc.domain) continue;
    const count = o.count ?? 1;
    if (!Number.isSafeInteger(count) || count < 1) continue;
    const policyDomain = (dmarc.policyDomain ?? dmarc.domain).toLowerCase();
    let entry = domains.get(policyDomain);
    if (!entry) domains.set(policyDomain, entry = { rows: new Map() });
    const published = dmarc.record !== undefined ? dmarcPolicyPublished(policyDomain, dmarc.record) : undefined;
    // The latest record wins; between records seen the same second, the greater text (the order of the
    // observations must not change the report).
    const later = entry.policy && (o.at > entry.policy.at || (o.at === entry.policy.at && dmarc.record! > entry.policy.record));
    if (published && (!entry.policy || later)) entry.policy = { at: o.at, record: dmarc.record!, published };
    const record = recordOf(o);
    const key = JSON.stringify(record);
    const row = entry.rows.get(key);
    if (row) row.count += count;
    else entry.rows.set(key, { ...record, count });
  }
  return [...domains.entries()]
    .sort(([a], [b]) => byText(a, b))
    .map(([policyDomain, entry]) => ({
      policyDomain,
      policyPublished: entry.policy?.published ?? { domain: policyDomain, p: 'none' },
      records: [...entry.rows.entries()].sort(([a], [b]) => byText(a, b)).map(([, r]) => r),
    }));
}

// ---- Writing --------------------------------------------------------------------------------------------

const POLICY_ACTIONS: readonly string[] = ['none', 'quarantine', 'reject'];
const DISPOSITIONS: readonly string[] = ['none', 'pass', 'quarantine', 'reject'];
const REASONS: readonly string[] = ['local_policy', 'mailing_list', 'other', 'policy_test_mode', 'trusted_forwarder', 'forwarded', 'sampled_out'];
const DKIM_RESULTS: readonly string[] = ['none', 'pass', 'fail', 'policy', 'neutral', 'temperror', 'permerror'];
const SPF_RESULTS: readonly string[] = ['none', 'neutral', 'pass', 'fail', 'softfail', 'temperror', 'permerror'];
/** A report id goes into the Subject as an RFC 5322 msg-id: dot-atom text and "@" only. */
const REPORT_ID = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]{1,200}$/;
const MSG_ID = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9!#$%&'*+/=?^_`{|}~.[\]-]+$/;

function refuse(what: string, value: string): never {
  if (HEADER_CONTROL.test(value)) throw new DmarcReportError('HEADER_INJECTION', `${what} holds a line break or a control character`);
  throw new DmarcReportError('BAD_ARGUMENT', `${what} "${value}" is not usable`);
}

function checkEnum(what: string, value: string | undefined, allowed: readonly string[]): void {
  if (value !== undefined && !allowed.includes(value)) throw new DmarcReportError('BAD_ARGUMENT', `${what} "${String(value)}" is not one of ${allowed.join(', ')}`);
}

function checkDomain(what: string, domain: string): void {
  if (!HOST_NAME.test(domain) || domain.length > 253) refuse(what, domain);
}

function checkReport(report: DmarcAggregateReport): void {
  checkDomain('the policy domain', report.policyPublished.domain);
  if (mailboxProblem(report.email) !== null) refuse('the report email', report.email);
  if (!REPORT_ID.test(report.reportId)) refuse('the report id', report.reportId);
  const { begin, end } = report.dateRange;
  if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || begin < 0 || end < begin) {
    throw new DmarcReportError('BAD_ARGUMENT', `the date range ${begin}..${end} is not a range of Unix seconds`);
  }
  const pp = report.policyPublished;
  checkEnum('p', pp.p, POLICY_ACTIONS);
  checkEnum('sp', pp.sp, POLICY_ACTIONS);
  checkEnum('np', pp.np, POLICY_ACTIONS);
  checkEnum('adkim', pp.adkim, ['r', 's']);
  checkEnum('aspf', pp.aspf, ['r', 's']);
  checkEnum('discovery_method', pp.discoveryMethod, ['psl', 'treewalk']);
  checkEnum('testing', pp.testing, ['n', 'y']);
  for (const r of report.records) {
    if (isIP(r.sourceIp) === 0) refuse('a source IP', r.sourceIp);
    if (!Number.isSafeInteger(r.count) || r.count < 1) throw new DmarcReportError('BAD_ARGUMENT', `a row count of ${r.count} is not a positive integer`);
    checkEnum('a disposition', r.policyEvaluated.disposition, DISPOSITIONS);
    checkEnum('a DKIM evaluation', r.policyEvaluated.dkim, ['pass', 'fail']);
    checkEnum('an SPF evaluation', r.policyEvaluated.spf, ['pass', 'fail']);
    for (const reason of r.policyEvaluated.reasons) checkEnum('a reason', reason.type, REASONS);
    for (const d of r.authResults.dkim) checkEnum('a DKIM result', d.result, DKIM_RESULTS);
    if (r.authResults.spf) {
      checkEnum('an SPF result', r.authResults.spf.result, SPF_RESULTS);
      checkEnum('an SPF scope', r.authResults.spf.scope, ['mfrom', 'helo']);
    }
  }
}

/** `<name>text</name>` with the text escaped; nothing for an absent value. */
function element(indent: string, name: string, value: string | number | undefined): string {
  return value === undefined ? '' : `${indent}<${name}>${escapeXml(String(value))}</${name}>\n`;
}

function block(indent: string, name: string, inner: string): string {
  return `${indent}<${name}>\n${inner}${indent}</${name}>\n`;
}

function recordXml(r: DmarcReportRecord): string {
  const pe = r.policyEvaluated;
  const row = block('    ', 'row', [
    element('      ', 'source_ip', r.sourceIp),
    element('      ', 'count', r.count),
    block('      ', 'policy_evaluated', [
      element('        ', 'disposition', pe.disposition),
      element('        ', 'dkim', pe.dkim),
      element('        ', 'spf', pe.spf),
      ...pe.reasons.map((reason) => block('        ', 'reason', element('          ', 'type', reason.type) + element('          ', 'comment', reason.comment))),
    ].join('')),
  ].join(''));
  const identifiers = block('    ', 'identifiers', [
    element('      ', 'envelope_to', r.identifiers.envelopeTo),
    element('      ', 'envelope_from', r.identifiers.envelopeFrom),
    element('      ', 'header_from', r.identifiers.headerFrom),
  ].join(''));
  const spf = r.authResults.spf;
  const auth = block('    ', 'auth_results', [
    ...r.authResults.dkim.map((d) => block('      ', 'dkim', [
      element('        ', 'domain', d.domain),
      element('        ', 'selector', d.selector),
      element('        ', 'result', d.result),
      element('        ', 'human_result', d.humanResult),
    ].join(''))),
    spf ? block('      ', 'spf', [
      element('        ', 'domain', spf.domain),
      element('        ', 'scope', spf.scope),
      element('        ', 'result', spf.result),
      element('        ', 'human_result', spf.humanResult),
    ].join('')) : '',
  ].join(''));
  return block('  ', 'record', row + identifiers + auth);
}

/** The report as XML (UTF-8 text). Every value is escaped; the same report gives the same bytes. */
export function buildDmarcReport(report: DmarcAggregateReport): string {
  checkReport(report);
  const pp = report.policyPublished;
  const metadata = block('  ', 'report_metadata', [
    element('    ', 'org_name', report.orgName),
    element('    ', 'email', report.email),
    element('    ', 'extra_contact_info', report.extraContactInfo),
    element('    ', 'report_id', report.reportId),
    block('    ', 'date_range', element('      ', 'begin', report.dateRange.begin) + element('      ', 'end', report.dateRange.end)),
    ...(report.errors ?? []).map((e) => element('    ', 'error', e)),
    element('    ', 'generator', report.generator),
  ].join(''));
  const policy = block('  ', 'policy_published', [
    element('    ', 'domain', pp.domain),
    element('    ', 'p', pp.p),
    element('    ', 'sp', pp.sp),
    element('    ', 'np', pp.np),
    element('    ', 'adkim', pp.adkim),
    element('    ', 'aspf', pp.aspf),
    element('    ', 'discovery_method', pp.discoveryMethod),
    element('    ', 'fo', pp.fo),
    element('    ', 'testing', pp.testing),
  ].join(''));
  return [
    '<?xml version="1.0" encoding="UTF-8"?>\n',
    `<feedback xmlns="${DMARC_XML_NAMESPACE}">\n`,
    element('  ', 'version', '1.0'),
    metadata,
    policy,
    ...report.records.map(recordXml),
    '</feedback>\n',
  ].join('');
}

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

/** Base64 in lines of 76 characters (RFC 2045 §6.8). */
function base64Lines(data: Buffer): string {
  return (data.toString('base64').match(/.{1,76}/g) ?? []).join('\r\n');
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
  const chunks: Buffer[] = [Buffer.from(head, 'utf8')];
  for (const p of parts) chunks.push(Buffer.from(`--${boundary}\r\n`, 'latin1'), p, Buffer.from('\r\n'));
  chunks.push(Buffer.from(`--${boundary}--\r\n`, 'latin1'));
  return Buffer.concat(chunks);
}

// ---- The DMARC record -----------------------------------------------------------------------------------

/** A DMARC record's tags (names lower-cased, values trimmed), or undefined when it does not start with v=DMARC1. */
function dmarcTags(record: string): Map<string, string> | undefined {
  const specs = record.split(';').map((t) => t.trim()).filter((t) => t !== '');
  if (specs[0]?.replace(/\s+/g, '') !== 'v=DMARC1') return undefined;
  const tags = new Map<string, string>();
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const name = eq < 0 ? '' : spec.slice(0, eq).trim().toLowerCase();
    // The first occurrence counts; a repeated tag does not override it.
    if (name && !tags.has(name)) tags.set(name, spec.slice(eq + 1).trim());
  }
  return tags;
}

function tagOf<T extends string>(tags: Map<string, string>, name: string, allowed: readonly T[]): T | undefined {
  const value = tags.get(name)?.toLowerCase();
  return allowed.includes(value as T) ? value as T : undefined;
}

/**
 * The policy_published of a report from the DMARC record that applied (RFC 9990 §2.1: p, sp, np, adkim,
 * aspf, fo, testing; discovery by tree walk, as the bridge's DMARC check does it). Undefined for a record that
 * is not DMARC's. A missing or unknown p= is reported as none (RFC 9989: such a record with a rua= still asks
 * for reports).
 */
export function dmarcPolicyPublished(policyDomain: string, record: string): DmarcPolicyPublished | undefined {
  const tags = dmarcTags(record);
  if (!tags) return undefined;
  const actions = ['none', 'quarantine', 'reject'] as const;
  const sp = tagOf(tags, 'sp', actions);
  const np = tagOf(tags, 'np', actions);
  const adkim = tagOf(tags, 'adkim', ['r', 's'] as const);
  const aspf = tagOf(tags, 'aspf', ['r', 's'] as const);
  const fo = tags.get('fo');
  const testing = tagOf(tags, 't', ['n', 'y'] as const);
  return {
    domain: policyDomain.toLowerCase(),
    p: tagOf(tags, 'p', actions) ?? 'none',
    ...(sp ? { sp } : {}),
    ...(np ? { np } : {}),
    ...(adkim ? { adkim } : {}),
    ...(aspf ? { aspf } : {}),
    discoveryMethod: 'treewalk',
    ...(fo && /^[01ds](?::[01ds])*$/.test(fo) ? { fo } : {}),
    ...(testing ? { testing } : {}),
  };
}

// ---- Destinations ---------------------------------------------------------------------------------------

export interface DmarcRuaUri {
  /** The mailbox (percent-decoded). */
  address: string;
  /** The largest report, in bytes, the destination takes (the `!10m` suffix), when it says. */
  maxBytes?: number;
}

/** Receivers may cap the number of destinations (RFC 7489 §6.2: at least two must be supported). */
export const MAX_RUA_URIS = 5;
const SIZE_UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/**
 * The rua= destinations of a DMARC record (the `_dmarc.<domain>` TXT), in order: mailto: URIs only (other
 * schemes are skipped), each with its size limit; at most MAX_RUA_URIS. A record that does not start with
 * v=DMARC1, or has no usable rua, gives none.
 */
export function parseDmarcRua(record: string): DmarcRuaUri[] {
  const rua = dmarcTags(record)?.get('rua');
  if (!rua) return [];
  const uris: DmarcRuaUri[] = [];
  for (const raw of rua.split(',')) {
    const m = /^\s*mailto:([^!\s]+)(?:!([0-9]{1,15})([kmgt]?))?\s*$/i.exec(raw);
    if (!m) continue;
    let address: string;
    try {
      address = decodeURIComponent(m[1]!);
    } catch {
      continue;
    }
    if (mailboxProblem(address) !== null) continue;
    const maxBytes = m[2] !== undefined ? Number(m[2]) * SIZE_UNITS[(m[3] ?? '').toLowerCase()]! : undefined;
    uris.push({ address, ...(maxBytes !== undefined && Number.isSafeInteger(maxBytes) ? { maxBytes } : {}) });
    if (uris.length === MAX_RUA_URIS) break;
  }
  return uris;
}

/**
 * RFC 7489 §7.1 (DMARCbis the same): a destination outside the policy domain gets reports only when
 * `<policy-domain>._report._dmarc.<destination-domain>` has a TXT record starting with v=DMARC1. The domains
 * are compared exactly (no public-suffix list in the bridge): a destination in a sibling subdomain of the
 * same organisation is checked in DNS too. A lookup that fails counts as no consent (the report waits for the
 * next period rather than going where it may not be wanted).
 */
export async function checkExternalDestination(policyDomain: string, ruaAddress: string, resolver: BridgeResolver): Promise<boolean> {
  const destination = ruaAddress.slice(ruaAddress.lastIndexOf('@') + 1).toLowerCase().replace(/\.$/, '');
  const policy = policyDomain.toLowerCase().replace(/\.$/, '');
  if (!HOST_NAME.test(destination) || !HOST_NAME.test(policy)) return false;
  if (destination === policy) return true;
  const name = `${policy}._report._dmarc.${destination}`;
  if (name.length > 253) return false;
  try {
    const answer = await resolver.txt(name);
    return answer.status === 'NOERROR' && answer.records.some((r) => /^v\s*=\s*DMARC1\s*(?:;|$)/.test(r));
  } catch {
    return false;
  }
}

/** The destinations of `uris` that may receive the policy domain's reports, in order. */
export async function authorisedDestinations(policyDomain: string, uris: readonly DmarcRuaUri[], resolver: BridgeResolver): Promise<DmarcRuaUri[]> {
  const allowed = await Promise.all(uris.map((u) => checkExternalDestination(policyDomain, u.address, resolver)));
  return uris.filter((_, i) => allowed[i]);
}

// ---- Reading --------------------------------------------------------------------------------------------

export interface DmarcParseLimits {
  /** The compressed (or plain) report as received. Default 10 MiB. */
  maxCompressedBytes?: number;
  /** The XML once inflated. Default 32 MiB. */
  maxXmlBytes?: number;
  /** Records in one report. Default 30,000 (it also bounds the elements the XML reader builds). */
  maxRecords?: number;
}

const DEFAULT_LIMITS: Required<DmarcParseLimits> = { maxCompressedBytes: 10 * 2 ** 20, maxXmlBytes: 32 * 2 ** 20, maxRecords: 30_000 };
/** The schema nests six deep (feedback/record/auth_results/dkim/domain); a little room for extensions. */
const MAX_XML_DEPTH = 12;
/**
 * A record is about 20 elements, 4 more per DKIM result. The element bound keeps 32 MiB of tiny empty elements
 * from becoming millions of objects.
 */
const ELEMENTS_PER_RECORD = 32;
/** A mail that carries a report (the attachment base64 inside MIME) is at most this much bigger than it. */
const MAIL_OVERHEAD = 64 * 1024;

function isGzip(body: Buffer): boolean {
  return body.length >= 2 && body[0] === 0x1f && body[1] === 0x8b;
}

function isZip(body: Buffer): boolean {
  return body.length >= 4 && body.readUInt32LE(0) === 0x04034b50;
}

function inflate(body: Buffer, maxXmlBytes: number): Buffer {
  try {
    // maxOutputLength makes zlib stop once the output passes the bound: a bomb costs that much, not its size.
    return gunzipSync(body, { maxOutputLength: maxXmlBytes });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new DmarcReportError('TOO_LARGE', `the report inflates past ${maxXmlBytes} bytes`);
    }
    throw new DmarcReportError('NOT_GZIP', `the gzip stream is damaged: ${(err as Error).message}`);
  }
}

function decodeText(xml: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(xml);
  } catch {
    // Some reporters declare windows-1252 or ISO-8859-1: Latin-1 reads their bytes close enough for the
    // report's ASCII values.
    return xml.toString('latin1');
  }
}

function child(parent: XmlElement, name: string): XmlElement | undefined {
  return parent.children.find((c) => c.name === name);
}

function childrenNamed(parent: XmlElement, name: string): XmlElement[] {
  return parent.children.filter((c) => c.name === name);
}

function invalid(message: string): never {
  throw new DmarcReportError('INVALID_REPORT', message);
}

function required(parent: XmlElement, name: string, where: string): XmlElement {
  return child(parent, name) ?? invalid(`${where} has no <${name}>`);
}

function text(parent: XmlElement, name: string, where: string): string {
  return required(parent, name, where).text.trim();
}

function optionalText(parent: XmlElement, name: string): string | undefined {
  const c = child(parent, name);
  const value = c?.text.trim();
  return value === undefined || value === '' ? undefined : value;
}

function oneOf<T extends string>(value: string | undefined, allowed: readonly string[], what: string): T | undefined {
  if (value === undefined) return undefined;
  const lower = value.toLowerCase();
  if (!allowed.includes(lower)) invalid(`${what} "${value.slice(0, 40)}" is not one of ${allowed.join(', ')}`);
  return lower as T;
}

function integer(value: string, what: string): number {
  if (!/^[0-9]{1,15}$/.test(value)) invalid(`${what} "${value.slice(0, 40)}" is not a non-negative integer`);
  return Number(value);
}

function readRecord(record: XmlElement, index: number): DmarcReportRecord {
  const where = `record ${index + 1}`;
  const row = required(record, 'row', where);
  const sourceIp = text(row, 'source_ip', where);
  if (isIP(sourceIp) === 0) invalid(`${where}: source_ip "${sourceIp.slice(0, 60)}" is not an IP address`);
  const pe = required(row, 'policy_evaluated', where);
  const identifiers = required(record, 'identifiers', where);
  const auth = required(record, 'auth_results', where);
  const spf = child(auth, 'spf');
  const envelopeFrom = optionalText(identifiers, 'envelope_from');
  const envelopeTo = optionalText(identifiers, 'envelope_to');
  return {
    sourceIp,
    count: integer(text(row, 'count', where), `${where}: count`),
    policyEvaluated: {
      disposition: oneOf<DmarcDisposition>(text(pe, 'disposition', where), DISPOSITIONS, 'disposition')!,
      dkim: oneOf<'pass' | 'fail'>(text(pe, 'dkim', where), ['pass', 'fail'], 'policy_evaluated dkim')!,
      spf: oneOf<'pass' | 'fail'>(text(pe, 'spf', where), ['pass', 'fail'], 'policy_evaluated spf')!,
      reasons: childrenNamed(pe, 'reason').map((r) => {
        const comment = optionalText(r, 'comment');
        return { type: oneOf<DmarcOverrideReason>(text(r, 'type', where), REASONS, 'reason')!, ...(comment !== undefined ? { comment } : {}) };
      }),
    },
    identifiers: {
      headerFrom: text(identifiers, 'header_from', where),
      ...(envelopeFrom !== undefined ? { envelopeFrom } : {}),
      ...(envelopeTo !== undefined ? { envelopeTo } : {}),
    },
    authResults: {
      dkim: childrenNamed(auth, 'dkim').map((d) => {
        const selector = optionalText(d, 'selector');
        const humanResult = optionalText(d, 'human_result');
        return {
          domain: text(d, 'domain', where),
          ...(selector !== undefined ? { selector } : {}),
          result: oneOf<DmarcDkimAuthResult>(text(d, 'result', where), DKIM_RESULTS, 'DKIM result')!,
          ...(humanResult !== undefined ? { humanResult } : {}),
        };
      }),
      ...(spf ? {
        spf: (() => {
          const scope = oneOf<'mfrom' | 'helo'>(optionalText(spf, 'scope'), ['mfrom', 'helo'], 'SPF scope');
          const humanResult = optionalText(spf, 'human_result');
          return {
            domain: text(spf, 'domain', where),
            ...(scope !== undefined ? { scope } : {}),
            result: oneOf<SpfResult>(text(spf, 'result', where), SPF_RESULTS, 'SPF result')!,
            ...(humanResult !== undefined ? { humanResult } : {}),
          };
        })(),
      } : {}),
    },
  };
}

/**
 * A received aggregate report: gzip or plain XML, DMARCbis or RFC 7489. Throws DmarcReportError: TOO_LARGE
 * (over the bounds, checked before and while inflating), NOT_GZIP, UNSUPPORTED_FORMAT (zip), BAD_XML,
 * INVALID_REPORT.
 */
export function parseDmarcReport(body: Buffer, limits: DmarcParseLimits = {}): DmarcAggregateReport {
  const bounds = { ...DEFAULT_LIMITS, ...limits };
  if (body.length > bounds.maxCompressedBytes) throw new DmarcReportError('TOO_LARGE', `a report of ${body.length} bytes is over ${bounds.maxCompressedBytes}`);
  if (isZip(body)) throw new DmarcReportError('UNSUPPORTED_FORMAT', 'zip reports are not read (gzip and plain XML are)');
  const xml = isGzip(body) ? inflate(body, bounds.maxXmlBytes) : body;
  if (xml.length > bounds.maxXmlBytes) throw new DmarcReportError('TOO_LARGE', `the report's XML is over ${bounds.maxXmlBytes} bytes`);
  let root: XmlElement;
  try {
    root = parseXml(decodeText(xml), { maxDepth: MAX_XML_DEPTH, maxElements: bounds.maxRecords * ELEMENTS_PER_RECORD + 1024 });
  } catch (err) {
    if (err instanceof XmlSyntaxError) throw new DmarcReportError('BAD_XML', err.message);
    throw err;
  }
  if (root.name !== 'feedback') invalid(`the root element is <${root.name.slice(0, 40)}>, not <feedback>`);
  const xmlns = root.attributes.get('xmlns');
  if (xmlns !== undefined && xmlns !== DMARC_XML_NAMESPACE && !xmlns.startsWith('http://dmarc.org/dmarc-xml/')) {
    invalid(`the namespace "${xmlns.slice(0, 80)}" is not DMARC's`);
  }
  const meta = required(root, 'report_metadata', 'the report');
  const range = required(meta, 'date_range', 'report_metadata');
  const pp = required(root, 'policy_published', 'the report');
  const records = childrenNamed(root, 'record');
  if (records.length > bounds.maxRecords) throw new DmarcReportError('TOO_LARGE', `more than ${bounds.maxRecords} records`);
  const extraContactInfo = optionalText(meta, 'extra_contact_info');
  const generator = optionalText(meta, 'generator');
  const errors = childrenNamed(meta, 'error').map((e) => e.text.trim());
  const pct = optionalText(pp, 'pct');
  const fo = optionalText(pp, 'fo');
  const begin = integer(text(range, 'begin', 'date_range'), 'begin');
  const end = integer(text(range, 'end', 'date_range'), 'end');
  if (end < begin) invalid(`the date range ends (${end}) before it begins (${begin})`);
  const policyPublished: DmarcPolicyPublished = {
    domain: text(pp, 'domain', 'policy_published').toLowerCase(),
    p: oneOf<DmarcPolicyAction>(text(pp, 'p', 'policy_published'), POLICY_ACTIONS, 'p')!,
  };
  const optional = {
    sp: oneOf<DmarcPolicyAction>(optionalText(pp, 'sp'), POLICY_ACTIONS, 'sp'),
    np: oneOf<DmarcPolicyAction>(optionalText(pp, 'np'), POLICY_ACTIONS, 'np'),
    adkim: oneOf<DmarcAlignmentMode>(optionalText(pp, 'adkim'), ['r', 's'], 'adkim'),
    aspf: oneOf<DmarcAlignmentMode>(optionalText(pp, 'aspf'), ['r', 's'], 'aspf'),
    discoveryMethod: oneOf<'psl' | 'treewalk'>(optionalText(pp, 'discovery_method'), ['psl', 'treewalk'], 'discovery_method'),
    fo,
    testing: oneOf<'n' | 'y'>(optionalText(pp, 'testing'), ['n', 'y'], 'testing'),
    pct: pct !== undefined ? integer(pct, 'pct') : undefined,
  };
  for (const [key, value] of Object.entries(optional)) if (value !== undefined) Object.assign(policyPublished, { [key]: value });
  return {
    orgName: text(meta, 'org_name', 'report_metadata'),
    email: text(meta, 'email', 'report_metadata'),
    ...(extraContactInfo !== undefined ? { extraContactInfo } : {}),
    reportId: text(meta, 'report_id', 'report_metadata'),
    dateRange: { begin, end },
    ...(errors.length > 0 ? { errors } : {}),
    ...(generator !== undefined ? { generator } : {}),
    policyPublished,
    records: records.map(readRecord),
  };
}

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
