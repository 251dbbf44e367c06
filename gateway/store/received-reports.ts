// Reports others send about the node's domains (table received_reports): TLS-RPT (RFC 8460) and DMARC
// aggregate reports, kept as a summary per report (who, which period, per policy domain what passed and
// what failed how), not the report itself. A report sent twice (by mail and by HTTPS, or again) is kept once.
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
  receivedMs: number;
}

interface Row { kind: ReceivedReportKind; organization: string; report_id: string; begin_ms: number; end_ms: number; summary: string; via: 'mail' | 'https'; received_ms: number }

export class ReceivedReportRepository {
  private readonly engine: StoreEngine;
  private readonly stmts: {
    add: Statement<[string, string, string, number, number, string, string, number]>;
    since: Statement<[string, number], Row>;
    countSince: Statement<[number], { n: number }>;
    prune: Statement<[number]>;
  };

  constructor(engine: StoreEngine) {
    this.engine = engine;
    this.stmts = {
      add: engine.prepare('INSERT OR IGNORE INTO received_reports (kind, organization, report_id, begin_ms, end_ms, summary, via, received_ms) VALUES (?,?,?,?,?,?,?,?)'),
      since: engine.prepare('SELECT * FROM received_reports WHERE kind = ? AND end_ms >= ? ORDER BY begin_ms, organization LIMIT 10000'),
      countSince: engine.prepare('SELECT count(*) AS n FROM received_reports WHERE received_ms >= ?'),
      prune: engine.prepare('DELETE FROM received_reports WHERE received_ms < ?'),
    };
  }

  /** Keeps a report; resolves false when the same report (kind, organization, id) was already kept. */
  async add(r: Omit<ReceivedReport, 'receivedMs'>): Promise<boolean> {
    let added = false;
    await this.engine.write(() => {
      added = Number(this.stmts.add.run(r.kind, r.organization, r.reportId, r.beginMs, r.endMs, JSON.stringify(r.summary), r.via, Date.now()).changes) > 0;
    });
    return added;
  }

  /** Reports of `kind` whose period ends at or after `sinceMs`, oldest first (at most 10,000). */
  since(kind: ReceivedReportKind, sinceMs: number): ReceivedReport[] {
    return this.stmts.since.all(kind, sinceMs).map((r) => ({
      kind: r.kind, organization: r.organization, reportId: r.report_id, beginMs: Number(r.begin_ms), endMs: Number(r.end_ms),
      summary: JSON.parse(r.summary) as ReportSummary, via: r.via, receivedMs: Number(r.received_ms),
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
