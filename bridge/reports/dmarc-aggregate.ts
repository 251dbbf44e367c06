// From what the MX observed of each message to the rows of the day's DMARC aggregate reports, one set per policy
// domain, in a fixed order so that a report built twice is the same.
import type { DkimResult, DmarcResult, SpfResult } from '../auth/verify.ts';
import { dmarcPolicyPublished } from './dmarc-record.ts';
import type { DmarcDisposition, DmarcDkimAuthResult, DmarcOverrideReason, DmarcPolicyAction, DmarcPolicyPublished, DmarcReportRecord } from './dmarc-types.ts';

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
