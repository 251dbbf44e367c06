// TLS-RPT out (RFC 8460): once a UTC day is over, the TLS outcomes the outbound bridge counted that day
// become one report per policy domain, sent to every destination the domain's `_smtp._tls` record names:
// HTTPS POST (application/tlsrpt+gzip) or mail (multipart/report, DKIM-signed by the node's domain, sent as
// it is through the queue). Each (day, policy domain, destination) is sent once; a POST that fails is tried
// again at the next run (hourly) while the day is at most a week old. A report's own delivery is never
// reported on (the queue's smtp agent records no outcome for it).
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import {
  aggregateTlsOutcomes, buildTlsReport, gzipTlsReport, parseTlsRptRecord, postTlsReport, TLSRPT_DKIM_SIGNED_HEADERS, tlsReportId,
  tlsReportMail, utcDayRange, type DkimSigner,
} from '../../bridge/index.ts';
import { smtpHostname } from '../core/index.ts';
import type { DnsResolver } from '../dns/index.ts';
import { utcDay } from '../store/index.ts';
import { queueReportMail, type SendAsIsDeps } from './send-as-is.ts';

export interface TlsReporterDeps extends SendAsIsDeps {
  dns: Pick<DnsResolver, 'txt'>;
  /** The keys that sign the report mail: the node's first domain's. */
  dkim: DkimSigner[];
  postOptions: { timeoutMs: number; ca?: string[]; hostMap?: Record<string, string> };
  log: Logger;
}

/** Days a report is still worth sending (and a failed POST worth retrying). */
const REPORT_DAYS = 7;

export class TlsReporter {
  private readonly deps: TlsReporterDeps;

  constructor(deps: TlsReporterDeps) {
    this.deps = deps;
  }

  /** Sends what is due: every finished day of the last week not yet reported everywhere. */
  async run(nowMs: number): Promise<void> {
    const today = utcDay(nowMs);
    const counts = this.deps.storage.tlsOutcomes.since(utcDay(nowMs - REPORT_DAYS * 86_400_000)).filter((c) => c.day < today);
    for (const day of [...new Set(counts.map((c) => c.day))].sort()) {
      for (const domain of aggregateTlsOutcomes(counts, day)) {
        await this.report(day, domain).catch((err: Error) => this.deps.log.warn({ day, policyDomain: domain.policyDomain, err: err.message }, 'TLS report not sent'));
      }
    }
  }

  private async report(day: string, domain: ReturnType<typeof aggregateTlsOutcomes>[number]): Promise<void> {
    const { storage, config, log } = this.deps;
    const outcomes = storage.tlsOutcomes;
    const policyDomain = domain.policyDomain;
    if (outcomes.reportSent(day, policyDomain, '')) return;
    const record = parseTlsRptRecord((await this.deps.dns.txt(`_smtp._tls.${policyDomain}`)).records);
    if (record.kind !== 'record' || record.rua.length === 0) {
      await outcomes.markReportSent(day, policyDomain, ''); // the domain asks for no reports
      return;
    }
    const submitter = config.node.domains[0]!.toLowerCase();
    const postmaster = `postmaster@${submitter}`;
    const report = buildTlsReport({
      organizationName: submitter, contactInfo: postmaster, reportId: tlsReportId(day, policyDomain, submitter), dateRange: utcDayRange(day), policies: domain.policies,
    });
    const gzipped = gzipTlsReport(report);
    for (const destination of record.rua) {
      const uri = destination.kind === 'https' ? destination.url : `mailto:${destination.address}`;
      if (outcomes.reportSent(day, policyDomain, uri)) continue;
      if (destination.kind === 'https') {
        await postTlsReport(destination.url, gzipped, this.deps.postOptions);
      } else {
        const mail = tlsReportMail({
          report, from: postmaster, to: destination.address, submitter, policyDomain,
          messageId: `${randomBytes(12).toString('hex')}@${smtpHostname(config)}`, date: new Date(),
        });
        await queueReportMail(this.deps, mail, [destination.address], TLSRPT_DKIM_SIGNED_HEADERS);
      }
      await outcomes.markReportSent(day, policyDomain, uri);
      log.info({ day, policyDomain, destination: uri }, 'TLS report sent');
    }
    await outcomes.markReportSent(day, policyDomain, '');
  }
}
