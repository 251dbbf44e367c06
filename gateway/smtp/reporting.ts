// The node's daily reports about others' mail (bridge.smtp.reports): TLS-RPT to the domains it sent to,
// DMARC aggregate reports to the domains it received from. Both run as scheduler jobs, look for finished
// UTC days not yet reported, and send through the queue as the node's postmaster.
import type { Logger } from 'pino';
import type { DkimSigner } from '../../bridge/index.ts';
import type { Scheduler } from '../core/index.ts';
import type { DnsPacketResolver } from '../dns/index.ts';
import { DmarcReporter } from './dmarc-reporter.ts';
import type { SendAsIsDeps } from './send-as-is.ts';
import { TlsReporter } from './tls-reporter.ts';

export interface ReportingDeps extends SendAsIsDeps {
  dns: DnsPacketResolver;
  /** The node's signing DKIM keys (those of its first domain sign the reports). */
  dkim: DkimSigner[];
  /** Trust anchors for report POSTs, when other than the system's. */
  ca?: string[];
  log: Logger;
}

export function scheduleReports(deps: ReportingDeps, scheduler: Scheduler): void {
  const reports = deps.config.bridge.smtp.reports;
  const submitter = deps.config.node.domains[0]!.toLowerCase();
  const dkim = deps.dkim.filter((k) => k.domain === submitter);
  const every = { intervalMs: reports.intervalMs, firstRunAfterMs: Math.min(reports.intervalMs, 300_000) };
  if (reports.tlsRpt) {
    const reporter = new TlsReporter({
      ...deps, dkim, postOptions: { timeoutMs: reports.postTimeoutMs, hostMap: reports.postHostMap, ...(deps.ca ? { ca: deps.ca } : {}) },
      log: deps.log.child({ component: 'tlsrpt' }),
    });
    scheduler.every('tls-reports', every, () => reporter.run(scheduler.clock.now()));
  }
  if (reports.dmarc) {
    const reporter = new DmarcReporter({ ...deps, dkim, log: deps.log.child({ component: 'dmarc-reports' }) });
    scheduler.every('dmarc-reports', every, () => reporter.run(scheduler.clock.now()));
  }
}
