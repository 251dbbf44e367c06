// What DMARC aggregate reports are made of (DMARCbis, RFC 9990, and RFC 7489 Appendix C read back): the report's
// types, its closed value lists and its typed error, shared by the files that aggregate, write, mail and read it.
import type { DkimResult, SpfResult } from '../auth/verify.ts';

export type DmarcReportErrorCode =
  /** A caller's value for a header field holds a line break or a control character. */
  | 'HEADER_INJECTION'
  /** Another argument is not usable (a domain, an address, a count, a date range, an enumerated value). */
  | 'BAD_ARGUMENT'
  /** A received report (compressed, inflated, or the mail carrying it) is over the bound. */
  | 'TOO_LARGE'
  /** Said to be gzip (by its type or name) but not a gzip stream, or a damaged gzip stream or zip archive. */
  | 'NOT_GZIP'
  /** A zip archive using what reports never use (encryption, zip64, a method other than stored or deflate). */
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

/** The closed value lists of the report's enumerated fields, as written and as read. */
export const POLICY_ACTIONS: readonly string[] = ['none', 'quarantine', 'reject'];
export const DISPOSITIONS: readonly string[] = ['none', 'pass', 'quarantine', 'reject'];
export const REASONS: readonly string[] = ['local_policy', 'mailing_list', 'other', 'policy_test_mode', 'trusted_forwarder', 'forwarded', 'sampled_out'];
export const DKIM_RESULTS: readonly string[] = ['none', 'pass', 'fail', 'policy', 'neutral', 'temperror', 'permerror'];
export const SPF_RESULTS: readonly string[] = ['none', 'neutral', 'pass', 'fail', 'softfail', 'temperror', 'permerror'];
