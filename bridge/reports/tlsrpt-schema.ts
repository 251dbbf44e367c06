// The RFC 8460 §4 report as JSON: its field names, types and result types, checked by one schema. The node's
// own reports must pass it exactly (no field it does not know); a report from elsewhere may carry fields
// the RFC does not name, which are dropped, but every field the RFC names must have its type.
import { z } from 'zod';

/** RFC 8460 §4.3 (IANA "TLS-RPT Failure Types"): every result type a failure detail may have. */
export const TLS_RESULT_TYPES = [
  'starttls-not-supported', 'certificate-host-mismatch', 'certificate-expired', 'certificate-not-trusted', 'validation-failure',
  'tlsa-invalid', 'dnssec-invalid', 'dane-required',
  'sts-policy-fetch-error', 'sts-policy-invalid', 'sts-webpki-invalid',
] as const;

export const TLS_POLICY_TYPES = ['tlsa', 'sts', 'no-policy-found'] as const;

/** Bounds on a report read from outside: far above what a day of one sender's traffic gives. */
const MAX_POLICIES = 10_000;
const MAX_FAILURE_DETAILS = 10_000;
const MAX_POLICY_STRINGS = 1_000;
const MAX_TEXT = 1_024;
const MAX_POLICY_STRING = 8_192;

const count = z.int().nonnegative();
const text = (max = MAX_TEXT) => z.string().min(1).max(max);
/** RFC 3339 date-time with a zone (Z or an offset). */
const dateTime = z.iso.datetime({ offset: true });
const ip = z.union([z.ipv4(), z.ipv6()]);
/** RFC 5322 addr-spec, loosely: contact-info is read by people, not mailed to. */
const mailbox = z.string().max(254).regex(/^[^\s@]+@[^\s@]+$/, 'not an email address');

function reportSchema(exact: boolean) {
  const object = exact ? z.strictObject : z.object;
  const failureDetail = object({
    'result-type': z.enum(TLS_RESULT_TYPES),
    'sending-mta-ip': ip.optional(),
    'receiving-mx-hostname': text(253).optional(),
    'receiving-mx-helo': text(253).optional(),
    'receiving-ip': ip.optional(),
    'failed-session-count': count,
    'additional-information': text(2_048).optional(),
    'failure-reason-code': text().optional(),
  });
  const policy = object({
    policy: object({
      'policy-type': z.enum(TLS_POLICY_TYPES),
      'policy-string': z.array(text(MAX_POLICY_STRING)).max(MAX_POLICY_STRINGS).optional(),
      'policy-domain': text(253),
      'mx-host': z.array(text(253)).max(MAX_POLICY_STRINGS).optional(),
    }),
    summary: object({
      'total-successful-session-count': count,
      'total-failure-session-count': count,
    }),
    'failure-details': z.array(failureDetail).max(MAX_FAILURE_DETAILS).optional(),
  });
  return object({
    'organization-name': text(),
    'date-range': object({ 'start-datetime': dateTime, 'end-datetime': dateTime })
      .refine((r) => Date.parse(r['start-datetime']) <= Date.parse(r['end-datetime']), 'start-datetime is after end-datetime'),
    'contact-info': mailbox,
    'report-id': text(),
    policies: z.array(policy).min(1).max(MAX_POLICIES),
  });
}

const EXACT = reportSchema(true);
const TOLERANT = reportSchema(false);

/** An RFC 8460 report, with the RFC's field names. */
export type TlsReport = z.infer<typeof EXACT>;
export type TlsReportPolicy = TlsReport['policies'][number];
export type TlsFailureDetail = NonNullable<TlsReportPolicy['failure-details']>[number];
export type TlsResultType = (typeof TLS_RESULT_TYPES)[number];
export type TlsPolicyType = (typeof TLS_POLICY_TYPES)[number];

export type TlsReportValidation = { ok: true; report: TlsReport } | { ok: false; reason: string };

/**
 * Checks a parsed JSON value against RFC 8460 §4: required fields, their types, the policy and result types,
 * RFC 3339 times in order, non-negative integer counts, IP addresses. `exact` (the default) refuses any field
 * the RFC does not name, which is what the node's own reports must pass; with `exact: false` such fields are
 * dropped from the report returned (reports from other senders). `reason` names the first problems and where.
 */
export function validateTlsReport(json: unknown, opts: { exact?: boolean } = {}): TlsReportValidation {
  const result = (opts.exact === false ? TOLERANT : EXACT).safeParse(json);
  if (result.success) return { ok: true, report: result.data };
  const reason = result.error.issues.slice(0, 5)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(report)'}: ${issue.message}`)
    .join('; ');
  return { ok: false, reason };
}
