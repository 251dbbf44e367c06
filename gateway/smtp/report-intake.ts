// Reports others send about the node's domains, taken in: TLS-RPT by mail (to the rua mailbox the node's
// DNS records name, postmaster@<domain>) or HTTPS POST (/.well-known/tlsrpt), DMARC aggregate reports by
// mail. Each is parsed within the bridge's bounds (size before inflating, schema, counts), summarised per
// policy domain and kept once. Anyone can send one, so what a sender can make the node keep is bounded:
// MAX_REPORTS_PER_DAY in all, and only reports about the node's own domains.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import {
  DmarcReportError, MAX_TLS_REPORT_BYTES, extractDmarcReportFromMail, extractTlsReportFromMail, parseTlsReport, TlsRptError, type AuthVerdicts,
  type DmarcAggregateReport, type TlsReport,
} from '../../bridge/index.ts';
import type { ReportSummary, Store } from '../store/index.ts';

/** Reports kept per day, every sender together; beyond it new ones are refused until the day is over. */
export const MAX_REPORTS_PER_DAY = 10_000;

export type IntakeResult =
  | { kind: 'tlsrpt' | 'dmarc'; stored: boolean }
  /** Not a report: an ordinary message. */
  | { kind: 'none' }
  /** A report that cannot be taken, with why (malformed, too large, about other domains, too many today). */
  | { kind: 'refused'; reason: string };

/** Signing domains kept with a report: enough to judge it by, bounded whatever the mail carries. */
const MAX_SIGNERS = 3;

/**
 * The domains whose DKIM signature on a message passed, as a report keeps them (sorted, space-separated,
 * '' for none): mail through submission, or with no signature that verified, is signed by nobody.
 */
export function dkimSigners(verdicts: AuthVerdicts | undefined): string {
  const domains = new Set((verdicts?.dkim ?? []).filter((d) => d.result === 'pass').map((d) => d.domain.toLowerCase()));
  return [...domains].sort().slice(0, MAX_SIGNERS).join(' ');
}

export class ReportIntake {
  private readonly storage: Store;
  private readonly domains: Set<string>;

  constructor(storage: Store, domains: string[]) {
    this.storage = storage;
    this.domains = new Set(domains.map((d) => d.toLowerCase()));
  }

  /**
   * A message to the report mailbox: a TLS report, a DMARC report, or neither. `signedBy`: the domains
   * whose DKIM signature on it passed (space-separated, '' for none), kept with the report.
   */
  async fromMail(message: Buffer, signedBy: string): Promise<IntakeResult> {
    let tls;
    try {
      tls = extractTlsReportFromMail(message);
    } catch (err) {
      if (!(err instanceof TlsRptError) || err.code !== 'NOT_REPORT') return refused(err);
    }
    if (tls) return this.keepTls(() => parseTlsReport(tls.body, tls.contentType), 'mail', signedBy);
    let dmarc: DmarcAggregateReport;
    try {
      dmarc = extractDmarcReportFromMail(message);
    } catch (err) {
      if (err instanceof DmarcReportError && err.code === 'NO_REPORT') return { kind: 'none' };
      return refused(err);
    }
    const domain = dmarc.policyPublished.domain.toLowerCase();
    if (!this.domains.has(domain)) return { kind: 'refused', reason: `the report is about ${domain}, not a domain of this node` };
    if (this.full()) return { kind: 'refused', reason: 'too many reports today' };
    const summary: ReportSummary = { [domain]: { successes: 0, failures: {} } };
    for (const record of dmarc.records) {
      const row = summary[domain]!;
      const pass = record.policyEvaluated.dkim === 'pass' || record.policyEvaluated.spf === 'pass';
      if (pass) row.successes += record.count;
      else row.failures[`dmarc-fail:${record.policyEvaluated.disposition}`] = (row.failures[`dmarc-fail:${record.policyEvaluated.disposition}`] ?? 0) + record.count;
    }
    const stored = await this.storage.receivedReports.add({
      kind: 'dmarc', organization: dmarc.orgName, reportId: dmarc.reportId, beginMs: dmarc.dateRange.begin * 1000, endMs: dmarc.dateRange.end * 1000, summary, via: 'mail', signedBy,
    });
    return { kind: 'dmarc', stored };
  }

  /** A TLS report POSTed to /.well-known/tlsrpt (application/tlsrpt+gzip or +json). */
  fromPost(body: Buffer, contentType: string | undefined): Promise<IntakeResult> {
    return this.keepTls(() => parseTlsReport(body, contentType), 'https', '');
  }

  private async keepTls(parse: () => TlsReport, via: 'mail' | 'https', signedBy: string): Promise<IntakeResult> {
    let report: TlsReport;
    try {
      report = parse();
    } catch (err) {
      return refused(err);
    }
    const summary: ReportSummary = {};
    for (const policy of report.policies) {
      const domain = policy.policy['policy-domain'].toLowerCase();
      // A TLSA policy names an MX host: ours when it is in one of our domains.
      if (![...this.domains].some((d) => domain === d || domain.endsWith(`.${d}`))) continue;
      const row = (summary[domain] ??= { successes: 0, failures: {} });
      row.successes += policy.summary['total-successful-session-count'];
      for (const f of policy['failure-details'] ?? []) row.failures[f['result-type']] = (row.failures[f['result-type']] ?? 0) + f['failed-session-count'];
    }
    if (Object.keys(summary).length === 0) return { kind: 'refused', reason: 'the report is about no domain of this node' };
    if (this.full()) return { kind: 'refused', reason: 'too many reports today' };
    const stored = await this.storage.receivedReports.add({
      kind: 'tlsrpt', organization: report['organization-name'], reportId: report['report-id'],
      beginMs: Date.parse(report['date-range']['start-datetime']), endMs: Date.parse(report['date-range']['end-datetime']), summary, via, signedBy,
    });
    return { kind: 'tlsrpt', stored };
  }

  private full(): boolean {
    return this.storage.receivedReports.receivedSince(Date.now() - 86_400_000) >= MAX_REPORTS_PER_DAY;
  }
}

function refused(err: unknown): IntakeResult {
  const code = (err as { code?: string }).code;
  return { kind: 'refused', reason: `${code ? `${code}: ` : ''}${(err as Error).message ?? String(err)}`.slice(0, 300) };
}

/** Where other MTAs post TLS reports about the node's domains (RFC 8460 §3). */
export const TLSRPT_POST_PATH = '/.well-known/tlsrpt';

/**
 * A POST to the node's HTTPS listener: a TLS report at TLSRPT_POST_PATH, nothing else. Anyone may post: the
 * body is bounded before it is read whole (413), parsed within the bridge's bounds, and refused with the
 * reason (400) when it is no report about the node's domains.
 */
export function takeReportPost(intake: Pick<ReportIntake, 'fromPost'>, req: IncomingMessage, res: ServerResponse, log: Logger): void {
  const plain = (code: number, text: string) => { if (!res.headersSent) res.writeHead(code, { 'content-type': 'text/plain' }).end(`${text}\n`); };
  if ((req.url ?? '/').split('?')[0] !== TLSRPT_POST_PATH) return plain(405, `only TLS reports are posted here (${TLSRPT_POST_PATH})`);
  const tooLarge = () => {
    plain(413, `a report is at most ${MAX_TLS_REPORT_BYTES} bytes`);
    req.destroy();
  };
  if (Number(req.headers['content-length'] ?? 0) > MAX_TLS_REPORT_BYTES) return tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_TLS_REPORT_BYTES) return tooLarge();
    chunks.push(chunk);
  });
  req.on('error', () => undefined);
  req.on('end', () => {
    if (size > MAX_TLS_REPORT_BYTES) return;
    intake.fromPost(Buffer.concat(chunks), req.headers['content-type']).then((result) => {
      if (result.kind === 'refused') return plain(400, `report refused: ${result.reason}`);
      const stored = result.kind === 'tlsrpt' && result.stored;
      plain(stored ? 201 : 200, stored ? 'report taken' : 'report already taken');
    }, (err: Error) => {
      log.warn({ err: err.message }, 'TLS report not stored');
      plain(503, 'the report could not be stored now, try again later');
    });
  });
}
