// Authentication of an inbound message: SPF (RFC 7208), DKIM (RFC 6376, RSA and Ed25519 per RFC 8463),
// DMARC (RFC 7489 / its successor) by mailauth, ARC (RFC 8617) by mailauth plus the bridge's own checks
// (arc-verify.ts), all over the node's injected DNS. The result is typed verdicts and the
// Authentication-Results header value (RFC 8601) the node adds under its authserv-id.
import { authenticate, type AuthenticateResult, type DKIMResult } from 'mailauth';
import { arcVerdict, type ArcVerdict } from './arc-verify.ts';
import { mailauthLookup, type BridgeResolver } from './dns.ts';
import { checkAuthservId } from './errors.ts';

export type SpfResult = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror';
export type DkimResult = 'pass' | 'fail' | 'neutral' | 'policy' | 'temperror' | 'permerror';
export type DmarcResult = 'pass' | 'fail' | 'none' | 'temperror' | 'permerror';

export interface SpfVerdict {
  result: SpfResult;
  /** The domain checked: of MAIL FROM, or of HELO for the null sender. */
  domain: string;
  reason?: string;
}

export interface DkimVerdict {
  result: DkimResult;
  domain: string;
  selector: string;
  algo: string;
  /** The signing domain aligns with the author domain under the DMARC record's mode. */
  aligned: boolean;
  reason?: string;
}

export interface DmarcVerdict {
  result: DmarcResult;
  /** The policy to apply to this message (`none` when there is no record or the record says so). */
  policy: 'none' | 'quarantine' | 'reject';
  /** The author (From) domain. */
  domain: string;
  /** Where the record was found (the author domain or its organizational domain). */
  policyDomain?: string;
  alignment: { spf: boolean; dkim: boolean };
  /** t=y (or pct below 100): the policy is advisory. */
  testMode: boolean;
  /** The DMARC record that applied, as published (its tags go into aggregate reports, its rua= says where). */
  record?: string;
  reason?: string;
}

export interface AuthVerdicts {
  spf: SpfVerdict;
  dkim: DkimVerdict[];
  dmarc: DmarcVerdict;
  arc: ArcVerdict;
  /** The value (after "Authentication-Results:") of the header field the node adds. */
  authenticationResults: string;
  /** The same results without the authserv-id: what an ARC seal's AAR records (ArcSealOptions.authResults). */
  results: string;
}

export interface VerifyOptions {
  /** The message as received: RFC 5322, CRLF line ends. */
  message: Buffer;
  /** The SMTP client's address. */
  ip: string;
  /** Its EHLO/HELO name. */
  helo: string;
  /** The MAIL FROM address, '' for the null sender. */
  mailFrom: string;
  resolver: BridgeResolver;
  /** The node's authserv-id (its host name), the first token of the Authentication-Results value. */
  authservId: string;
  /** Domains whose ARC seals the node believes (ArcVerdict.trustedSealer). */
  trustedArcSealers?: readonly string[];
}

const SPF_RESULTS = new Set<string>(['pass', 'fail', 'softfail', 'neutral', 'none', 'temperror', 'permerror']);
const DKIM_RESULTS = new Set<string>(['pass', 'fail', 'neutral', 'policy', 'temperror', 'permerror']);
const DMARC_RESULTS = new Set<string>(['pass', 'fail', 'none', 'temperror', 'permerror']);

/** mailauth writes "temperr" in a few places for RFC 8601's temperror. */
function normalise(result: string | undefined, allowed: Set<string>, otherwise: string): string {
  const r = result === 'temperr' ? 'temperror' : (result ?? otherwise);
  return allowed.has(r) ? r : otherwise;
}

/** A comment of an Authentication-Results value: no parentheses or backslashes inside. */
function comment(text: string): string {
  return `(${text.replace(/[()\\]/g, ' ').replace(/\s+/g, ' ').trim()})`;
}

function spfVerdict(result: AuthenticateResult, opts: VerifyOptions): SpfVerdict {
  const spf = result.spf;
  if (!spf) return { result: 'none', domain: '', reason: 'not checked' };
  return {
    result: normalise(spf.status.result, SPF_RESULTS, 'permerror') as SpfResult,
    domain: spf.domain ?? (opts.mailFrom.split('@').pop() || opts.helo),
    ...(spf.status.comment ? { reason: spf.status.comment } : {}),
  };
}

/**
 * A body that no longer matches bh= is RFC 6376 §6.1.3's PERMFAIL, which RFC 8601 §2.7.1 reports as
 * "fail" (the signature was checked and did not verify); mailauth's lenient mode says "neutral".
 */
function dkimResult(row: DKIMResult): DkimResult {
  if (row.status.result === 'neutral' && row.status.comment === 'body hash did not verify') return 'fail';
  return normalise(row.status.result, DKIM_RESULTS, 'permerror') as DkimResult;
}

function dkimVerdict(row: DKIMResult): DkimVerdict {
  return {
    result: dkimResult(row),
    domain: row.signingDomain ?? '',
    selector: row.selector ?? '',
    algo: row.algo ?? '',
    aligned: Boolean(row.status.aligned),
    ...(row.status.comment ? { reason: row.status.comment } : {}),
  };
}

function dmarcVerdict(result: AuthenticateResult): DmarcVerdict {
  const dmarc = result.dmarc;
  if (!dmarc) {
    return {
      result: 'none', policy: 'none', domain: '', alignment: { spf: false, dkim: false }, testMode: false,
      reason: result.dmarcSkipReason ?? 'no author domain',
    };
  }
  const verdict = normalise(dmarc.status.result, DMARC_RESULTS, 'permerror') as DmarcResult;
  const policy = verdict === 'fail' && (dmarc.policy === 'quarantine' || dmarc.policy === 'reject') ? dmarc.policy : 'none';
  return {
    result: verdict,
    policy,
    domain: dmarc.domain,
    ...(dmarc.policyDomain ? { policyDomain: dmarc.policyDomain } : {}),
    alignment: { spf: Boolean(dmarc.alignment?.spf?.result), dkim: Boolean(dmarc.alignment?.dkim?.result) },
    testMode: Boolean(dmarc.testMode),
    ...(dmarc.rr ? { record: dmarc.rr } : {}),
    ...(dmarc.status.comment ? { reason: dmarc.status.comment } : {}),
  };
}

/** RFC 8601 §2.7.1 / RFC 6008: the signature's d=, i=, s=, a= and the first bytes of b=. */
function dkimRow(row: DKIMResult): string {
  if (!row.signingDomain) return row.info;
  const header = (row.status.header ?? {}) as Record<string, unknown>;
  const props = [
    `header.d=${row.signingDomain}`,
    typeof header.i === 'string' ? `header.i=${header.i}` : '',
    row.selector ? `header.s=${row.selector}` : '',
    row.algo ? `header.a=${row.algo}` : '',
    typeof header.b === 'string' ? `header.b=${header.b}` : '',
  ];
  return [`dkim=${dkimResult(row)}`, row.status.comment ? comment(row.status.comment) : '', ...props].filter(Boolean).join(' ');
}

function arcRow(arc: ArcVerdict, ip: string): string {
  const why = arc.result === 'fail' ? comment(`i=${arc.instance} ${arc.reason ?? ''}`) : arc.result === 'pass' ? comment(`i=${arc.instance}`) : '';
  return [`arc=${arc.result}`, why, `smtp.remote-ip=${ip}`].filter(Boolean).join(' ');
}

function dmarcRow(dmarc: DmarcVerdict, result: AuthenticateResult, arc: ArcVerdict): string {
  if (!result.dmarc) return `dmarc=none ${comment(dmarc.reason ?? 'not evaluated')}`;
  const { p, sp } = result.dmarc as { p?: string; sp?: string };
  const tags = [p ? `p=${p.toUpperCase()}` : '', sp ? `sp=${sp.toUpperCase()}` : '', `arc=${arc.result}`];
  return `dmarc=${dmarc.result} ${comment(tags.filter(Boolean).join(' '))} header.from=${dmarc.domain}`;
}

export async function verifyMessage(opts: VerifyOptions): Promise<AuthVerdicts> {
  checkAuthservId(opts.authservId);
  const lookup = mailauthLookup(opts.resolver);
  const result = await authenticate(opts.message, {
    ip: opts.ip,
    helo: opts.helo,
    sender: opts.mailFrom,
    mta: opts.authservId,
    resolver: lookup as never,
    disableBimi: true,
  });
  const arc = await arcVerdict(opts.message, result.arc, opts.resolver, opts.trustedArcSealers ?? []);
  const spf = spfVerdict(result, opts);
  const dkimRows = result.dkim.results ?? [];
  const dmarc = dmarcVerdict(result);
  // mailauth's own row for SPF; DKIM, ARC and DMARC rows from the bridge's verdicts.
  const rows = [
    ...dkimRows.map(dkimRow),
    ...(result.spf ? [result.spf.info] : []),
    arcRow(arc, opts.ip),
    dmarcRow(dmarc, result, arc),
  ].map((row) => row.replace(/\s*\r\n\s*/g, ' ').trim());
  const results = rows.join(';\r\n ');
  return {
    spf,
    // mailauth reports "no signature" as one row without a signing domain: that is no verdict.
    dkim: dkimRows.filter((row) => row.signingDomain).map(dkimVerdict),
    dmarc,
    arc,
    authenticationResults: `${opts.authservId};\r\n ${results}`,
    results,
  };
}
