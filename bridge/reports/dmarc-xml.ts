// Writing a DMARC aggregate report as XML: every field checked against its closed list or its syntax, every
// value escaped, the same report giving the same bytes.
import { isIP } from 'node:net';
import { HOST_NAME } from '../auth/errors.ts';
import { HEADER_CONTROL, mailboxProblem } from '../outbound/mime.ts';
import { DISPOSITIONS, DKIM_RESULTS, DMARC_XML_NAMESPACE, DmarcReportError, POLICY_ACTIONS, REASONS, SPF_RESULTS, type DmarcAggregateReport, type DmarcReportRecord } from './dmarc-types.ts';
import { escapeXml } from './xml.ts';

/** A report id goes into the Subject as an RFC 5322 msg-id: dot-atom text and "@" only. */
const REPORT_ID = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]{1,200}$/;

export function refuse(what: string, value: string): never {
  if (HEADER_CONTROL.test(value)) throw new DmarcReportError('HEADER_INJECTION', `${what} holds a line break or a control character`);
  throw new DmarcReportError('BAD_ARGUMENT', `${what} "${value}" is not usable`);
}

function checkEnum(what: string, value: string | undefined, allowed: readonly string[]): void {
  if (value !== undefined && !allowed.includes(value)) throw new DmarcReportError('BAD_ARGUMENT', `${what} "${String(value)}" is not one of ${allowed.join(', ')}`);
}

export function checkDomain(what: string, domain: string): void {
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
