// Reports others send about the node's domains (table received_reports): TLS-RPT (RFC 8460) and DMARC
// aggregate reports, kept as a summary per report (who, which period, per policy domain what passed and
// what failed how), not the report itself. A report sent twice (by mail and by HTTPS, or again) is kept once;
// a copy whose DKIM signature passed replaces one that had none, summary and all (what was kept unsigned may
// have been anyone's, sent first under the same organization and id).
import type { StoreEngine, Statement } from './engine.ts';

export type ReceivedReportKind = 'tlsrpt' | 'dmarc';

/** Per policy domain: counts of successes and of each failure (TLS result type, or DMARC result). */
export type ReportSummary = Record<string, { successes: number; failures: Record<string, number> }>;

export interface ReceivedReport {
  kind: ReceivedReportKind;
  organization: string;
  reportId: string;
  beginMs: number;
  endMs: number;
  summary: ReportSummary;
  via: 'mail' | 'https';
  /**
   * The domains whose DKIM signature on the report's mail passed, space-separated; '' for a POST or mail
   * without one. The organization a report names is only its claim.
   */
  signedBy: string;
  receivedMs: number;
}

interface Row {
  kind: ReceivedReportKind; organization: string; report_id: string; begin_ms: number; end_ms: number; summary: string; via: 'mail' | 'https';
  signed_by: string; received_ms: number;
}

export class ReceivedReportRepository {
  private readonly engine: StoreEngine;
  private readonly stmts: {
    add: Statement<[string, string, string, number, number, string, string, string, number]>;
    since: Statement<[string, number], Row>;
    countSince: Statement<[number], { n: number }>;
    prune: Statement<[number]>;
  };

  constructor(engine: StoreEngine) {
    this.engine = engine;
    this.stmts = {
      add: engine.prepare(`INSERT INTO received_reports (kind, organization, report_id, begin_ms, end_ms, summary, via, signed_by, received_ms)
        VALUES (?,?,?,?,?,?,?,?,?)
        ON CONFLICT (kind, organization, report_id) DO UPDATE SET begin_ms = excluded.begin_ms, end_ms = excluded.end_ms,
          summary = excluded.summary, via = excluded.via, signed_by = excluded.signed_by, received_ms = excluded.received_ms
        WHERE received_reports.signed_by = '' AND excluded.signed_by != ''`),
      since: engine.prepare('SELECT * FROM received_reports WHERE kind = ? AND end_ms >= ? ORDER BY begin_ms, organization LIMIT 10000'),
      countSince: engine.prepare('SELECT count(*) AS n FROM received_reports WHERE received_ms >= ?'),
      prune: engine.prepare('DELETE FROM received_reports WHERE received_ms < ?'),
    };
  }

  /**
   * Keeps a report; resolves false when the same report (kind, organization, id) was already kept, unless
   * this copy is signed and the kept one was not: it then takes the kept one's place.
   */
  async add(r: Omit<ReceivedReport, 'receivedMs'>): Promise<boolean> {
    let added = false;
    await this.engine.write(() => {
      added = Number(this.stmts.add.run(r.kind, r.organization, r.reportId, r.beginMs, r.endMs, JSON.stringify(r.summary), r.via, r.signedBy, Date.now()).changes) > 0;
    });
    return added;
  }

  /** Reports of `kind` whose period ends at or after `sinceMs`, oldest first (at most 10,000). */
  since(kind: ReceivedReportKind, sinceMs: number): ReceivedReport[] {
    return this.stmts.since.all(kind, sinceMs).map((r) => ({
      kind: r.kind, organization: r.organization, reportId: r.report_id, beginMs: Number(r.begin_ms), endMs: Number(r.end_ms),
      summary: JSON.parse(r.summary) as ReportSummary, via: r.via, signedBy: r.signed_by, receivedMs: Number(r.received_ms),
    }));
  }

  /** How many reports arrived since `sinceMs` (the intake's daily bound). */
  receivedSince(sinceMs: number): number {
    return Number(this.stmts.countSince.get(sinceMs)!.n);
  }

  async prune(beforeMs: number): Promise<number> {
    let removed = 0;
    await this.engine.write(() => { removed = Number(this.stmts.prune.run(beforeMs).changes); });
    return removed;
  }
}
