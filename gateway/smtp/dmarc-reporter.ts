// DMARC aggregate reports out (RFC 9990): once a UTC day is over, what the MX saw of each domain that
// publishes DMARC becomes one report, mailed (gzipped XML, DKIM-signed by the node's domain, through the
// queue) to the `rua` mailboxes of the domain's DMARC record that accept it: a mailbox in another domain
// only when that domain says so (`<policy-domain>._report._dmarc.<rua-domain>`, RFC 7489 §7.1). Each
// (day, domain) is reported once; a lookup that fails is tried again at the next run while the day is at
// most a week old.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import {
  aggregateDmarc, authorisedDestinations, dmarcDayRange, dmarcReportMail, parseDmarcRua, type BridgeResolver, type DkimSigner, type DmarcObservation,
} from '../../bridge/index.ts';
import { smtpHostname } from '../core/index.ts';
import { utcDay } from '../store/index.ts';
import { queueReportMail, type SendAsIsDeps } from './send-as-is.ts';

export interface DmarcReporterDeps extends SendAsIsDeps {
  dns: BridgeResolver;
  dkim: DkimSigner[];
  log: Logger;
}

const REPORT_DAYS = 7;

export class DmarcReporter {
  private readonly deps: DmarcReporterDeps;

  constructor(deps: DmarcReporterDeps) {
    this.deps = deps;
  }

  async run(nowMs: number): Promise<void> {
    const observations = this.deps.storage.dmarcObservations;
    for (const day of observations.days(utcDay(nowMs - REPORT_DAYS * 86_400_000), utcDay(nowMs))) {
      const counts = observations.ofDay(day);
      const range = dmarcDayRange(new Date(`${day}T00:00:00Z`));
      const seen: DmarcObservation[] = counts.map((c) => ({ ...c.seen, count: c.count }) as DmarcObservation);
      for (const aggregate of aggregateDmarc(seen, range)) {
        if (observations.reportSent(day, aggregate.policyDomain)) continue;
        await this.report(day, range, aggregate).catch((err: Error) => this.deps.log.warn({ day, policyDomain: aggregate.policyDomain, err: err.message }, 'DMARC report not sent'));
      }
    }
  }

  private async report(day: string, range: { begin: number; end: number }, aggregate: ReturnType<typeof aggregateDmarc>[number]): Promise<void> {
    const { config, dns, storage, log } = this.deps;
    const policyDomain = aggregate.policyDomain;
    const record = (await dns.txt(`_dmarc.${policyDomain}`)).records.find((r) => /^v=DMARC1\b/i.test(r.trim()));
    const destinations = record ? await authorisedDestinations(policyDomain, parseDmarcRua(record), dns) : [];
    if (destinations.length) {
      const submitter = config.node.domains[0]!.toLowerCase();
      const mail = dmarcReportMail({
        orgName: submitter, email: `postmaster@${submitter}`, reportId: `${day}_${policyDomain}@${submitter}`, dateRange: range,
        policyPublished: aggregate.policyPublished, records: aggregate.records,
      }, {
        submitter, from: `postmaster@${submitter}`, to: destinations.map((d) => d.address),
        messageId: `${randomBytes(12).toString('hex')}@${smtpHostname(config)}`, date: new Date(),
      });
      // A destination that limits the report's size (`!10m`) and would get more is left out (RFC 7489 §7.1).
      const fits = destinations.filter((d) => d.maxBytes === undefined || mail.length <= d.maxBytes).map((d) => d.address);
      if (fits.length) await queueReportMail(this.deps, mail, fits);
      log.info({ day, policyDomain, destinations: fits.length }, 'DMARC report sent');
    }
    await storage.dmarcObservations.markReportSent(day, policyDomain);
  }
}
