// The outcome of every TLS negotiation of the outbound bridge, counted per UTC day, policy and result
// (table tls_outcomes): what a TLS-RPT report (RFC 8460) for that day says. Recording is a counter
// update, so a busy destination adds no rows. Table tlsrpt_sent remembers where each day's report went.
import type { TlsOutcome, TlsOutcomeDayCount } from '../../bridge/index.ts';
import type { StoreEngine, Statement } from './engine.ts';

/** A day's count as the TLS-RPT report is built from it, with when the first and last outcome were recorded. */
export interface TlsOutcomeCount extends TlsOutcomeDayCount {
  firstMs: number;
  lastMs: number;
}

interface OutcomeRow {
  day: string; policy_domain: string; policy_type: TlsOutcome['policyType']; policy_strings: string; mx_host: string; receiving_ip: string;
  result: TlsOutcome['result']; detail: string; count: number; first_ms: number; last_ms: number;
}

export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export class TlsOutcomeRepository {
  private readonly engine: StoreEngine;
  private readonly stmts: {
    add: Statement<[string, string, string, string, string, string, string, string, number, number]>;
    since: Statement<[string], OutcomeRow>;
    prune: Statement<[string]>;
    markSent: Statement<[string, string, string, number]>;
    sent: Statement<[string, string, string], { one: number }>;
    pruneSent: Statement<[string]>;
  };

  constructor(engine: StoreEngine) {
    this.engine = engine;
    this.stmts = {
      add: engine.prepare(`INSERT INTO tls_outcomes VALUES (?,?,?,?,?,?,?,?,1,?,?)
        ON CONFLICT(day, policy_domain, policy_type, mx_host, receiving_ip, result) DO UPDATE SET
        count = count + 1, last_ms = excluded.last_ms, detail = excluded.detail, policy_strings = excluded.policy_strings`),
      since: engine.prepare('SELECT * FROM tls_outcomes WHERE day >= ? ORDER BY day, policy_domain, result'),
      prune: engine.prepare('DELETE FROM tls_outcomes WHERE day < ?'),
      markSent: engine.prepare('INSERT OR IGNORE INTO tlsrpt_sent VALUES (?,?,?,?)'),
      sent: engine.prepare('SELECT 1 AS one FROM tlsrpt_sent WHERE day = ? AND policy_domain = ? AND destination = ?'),
      pruneSent: engine.prepare('DELETE FROM tlsrpt_sent WHERE day < ?'),
    };
  }

  record(o: TlsOutcome): Promise<void> {
    return this.engine.write(() => {
      this.stmts.add.run(utcDay(o.atMs), o.policyDomain.toLowerCase(), o.policyType, JSON.stringify(o.policyStrings), o.mxHost.toLowerCase(),
        o.receivingIp, o.result, o.detail, o.atMs, o.atMs);
    });
  }

  /** Counts from `day` (YYYY-MM-DD, UTC) on. */
  since(day: string): TlsOutcomeCount[] {
    return this.stmts.since.all(day).map((r) => ({
      day: r.day, policyDomain: r.policy_domain, policyType: r.policy_type, policyStrings: JSON.parse(r.policy_strings) as string[],
      mxHost: r.mx_host, receivingIp: r.receiving_ip, result: r.result, detail: r.detail, count: Number(r.count),
      firstMs: Number(r.first_ms), lastMs: Number(r.last_ms),
    }));
  }

  /** Drops the days before `day` (reported, or too old to report), and the record of their reports. */
  async prune(day: string): Promise<number> {
    let removed = 0;
    await this.engine.write(() => {
      removed = Number(this.stmts.prune.run(day).changes);
      this.stmts.pruneSent.run(day);
    });
    return removed;
  }

  /**
   * Records that the report of `day` for `policyDomain` reached `destination` (a rua URI; '' = the domain
   * asks for none), so it is never sent there twice.
   */
  markReportSent(day: string, policyDomain: string, destination: string): Promise<void> {
    return this.engine.write(() => { this.stmts.markSent.run(day, policyDomain, destination, Date.now()); });
  }

  reportSent(day: string, policyDomain: string, destination: string): boolean {
    return this.stmts.sent.get(day, policyDomain, destination) !== undefined;
  }
}
