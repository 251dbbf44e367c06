// What the MX saw of mail from domains that publish DMARC (table dmarc_observations), counted per UTC day,
// policy domain and identical observation (source IP, From and MAIL FROM domains, verdicts): the rows of
// the DMARC aggregate report the node sends each domain (RFC 9990). Messages alike add to a count, so a
// busy sender adds no rows; dmarc_reports_sent remembers which days were reported.
import type { StoreEngine, Statement } from './engine.ts';
import { utcDay } from './tls-outcomes.ts';

/** One message as a DMARC report counts it; `at` in Unix seconds (bridge/reports' DmarcObservation). */
export interface DmarcSeen {
  at: number;
  sourceIp: string;
  headerFrom: string;
  envelopeFrom: string;
  verdicts: {
    dmarc: { result: string; policy: string; domain: string; policyDomain?: string; alignment: { spf: boolean; dkim: boolean }; testMode?: boolean; record?: string };
    spf: { result: string; domain: string };
    dkim: readonly { result: string; domain: string; selector: string }[];
  };
  /** What the MX did, when it differs from delivering as is, and why it differs from the policy. */
  disposition?: 'none' | 'quarantine' | 'reject';
  reasons?: { type: 'policy_test_mode' | 'trusted_forwarder' }[];
}

export interface DmarcDayCount { policyDomain: string; seen: DmarcSeen; count: number }

export class DmarcObservationRepository {
  private readonly engine: StoreEngine;
  private readonly stmts: {
    add: Statement<[string, string, string]>;
    ofDay: Statement<[string], { policy_domain: string; observation: string; count: number }>;
    days: Statement<[string, string], { day: string }>;
    markSent: Statement<[string, string, number]>;
    sent: Statement<[string, string], { one: number }>;
    prune: Statement<[string]>;
    pruneSent: Statement<[string]>;
  };

  constructor(engine: StoreEngine) {
    this.engine = engine;
    this.stmts = {
      add: engine.prepare(`INSERT INTO dmarc_observations VALUES (?,?,?,1)
        ON CONFLICT(day, policy_domain, observation) DO UPDATE SET count = count + 1`),
      ofDay: engine.prepare('SELECT policy_domain, observation, count FROM dmarc_observations WHERE day = ? ORDER BY policy_domain'),
      days: engine.prepare('SELECT DISTINCT day FROM dmarc_observations WHERE day >= ? AND day < ? ORDER BY day'),
      markSent: engine.prepare('INSERT OR IGNORE INTO dmarc_reports_sent VALUES (?,?,?)'),
      sent: engine.prepare('SELECT 1 AS one FROM dmarc_reports_sent WHERE day = ? AND policy_domain = ?'),
      prune: engine.prepare('DELETE FROM dmarc_observations WHERE day < ?'),
      pruneSent: engine.prepare('DELETE FROM dmarc_reports_sent WHERE day < ?'),
    };
  }

  /**
   * Counts one message, in the commit of the writes issued in the same turn. The day is the UTC day of
   * `seen.at`; the time itself is not kept (a report gives the day's range).
   */
  record(policyDomain: string, seen: DmarcSeen): Promise<void> {
    const day = utcDay(seen.at * 1000);
    const key = JSON.stringify({ ...seen, at: 0 });
    return this.engine.write(() => { this.stmts.add.run(day, policyDomain.toLowerCase(), key); });
  }

  /** The day's counts; each `seen.at` is the day's first second. */
  ofDay(day: string): DmarcDayCount[] {
    const at = Math.floor(Date.parse(`${day}T00:00:00Z`) / 1000);
    return this.stmts.ofDay.all(day).map((r) => ({ policyDomain: r.policy_domain, seen: { ...(JSON.parse(r.observation) as DmarcSeen), at }, count: Number(r.count) }));
  }

  /** Days with observations from `fromDay` up to, not including, `beforeDay`. */
  days(fromDay: string, beforeDay: string): string[] {
    return this.stmts.days.all(fromDay, beforeDay).map((r) => r.day);
  }

  markReportSent(day: string, policyDomain: string): Promise<void> {
    return this.engine.write(() => { this.stmts.markSent.run(day, policyDomain, Date.now()); });
  }

  reportSent(day: string, policyDomain: string): boolean {
    return this.stmts.sent.get(day, policyDomain) !== undefined;
  }

  async prune(beforeDay: string): Promise<number> {
    let removed = 0;
    await this.engine.write(() => {
      removed = Number(this.stmts.prune.run(beforeDay).changes);
      this.stmts.pruneSent.run(beforeDay);
    });
    return removed;
  }
}
