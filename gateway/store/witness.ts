// Witness state (docs/LEDGER.md "Witnessing"; tables witnessed_logs, split_views,
// checkpoint_cosignatures, witness_progress): as a witness of other logs, what each log showed last
// and the split views it was caught in; as a log, the cosignatures its witnesses returned and the size
// each last saw. The checks are gateway/federation/witness.ts's; this keeps their results durably.
import { addSignatures } from '../../ledger/index.ts';
import type { StoreEngine, Statement } from './engine.ts';

export interface WitnessedLog {
  origin: string;
  logDid: string;
  /** The log's Ed25519 key; undefined for state carried over from before it was recorded. */
  logKey: Uint8Array | undefined;
  size: number;
  root: Uint8Array;
  note: string;
}
export interface SplitView { logDid: string; origin: string; seenNote: string; presentedNote: string; detail: string; detectedMs: number }

/** Evidence kept per origin: enough to show a log forked; a log signing endless forks cannot fill the disk. */
const MAX_SPLIT_VIEWS_PER_ORIGIN = 16;

interface WitnessedLogRow { log_did: string; origin: string; log_key: Uint8Array | null; size: number; root: Uint8Array; note: string }
interface SplitViewRow { log_did: string; origin: string; seen_note: string; presented_note: string; detail: string; detected_ms: number }

export class WitnessRepository {
  private readonly engine: StoreEngine;
  private readonly stmts: {
    witnessedLog: Statement<[string], WitnessedLogRow>;
    countWitnessedLogs: Statement<[], { n: number }>;
    countOriginsOf: Statement<[string], { n: number }>;
    saveWitnessedLog: Statement<[string, string, Uint8Array | null, number, Uint8Array, string, number]>;
    countSplitViews: Statement<[string], { n: number }>;
    insertSplitView: Statement<[string, string, string, string, string, number]>;
    splitViews: Statement<[], SplitViewRow>;
    addCosignature: Statement<[number, string, string, string, number]>;
    setKnownSize: Statement<[string, number, number]>;
    knownSize: Statement<[string], { known_size: number }>;
    cosignedSize: Statement<[string], { s: number | null }>;
    countCosigned: Statement<[], { n: number }>;
    topCosigned: Statement<[number], { s: number | null }>;
    cosignatures: Statement<[number], { line: string; note: string }>;
  };

  constructor(engine: StoreEngine) {
    this.engine = engine;
    this.stmts = {
      witnessedLog: engine.prepare('SELECT * FROM witnessed_logs WHERE origin = ?'),
      countWitnessedLogs: engine.prepare('SELECT count(*) AS n FROM witnessed_logs'),
      countOriginsOf: engine.prepare('SELECT count(*) AS n FROM witnessed_logs WHERE log_did = ?'),
      saveWitnessedLog: engine.prepare(`INSERT INTO witnessed_logs VALUES (?,?,?,?,?,?,?)
        ON CONFLICT(origin) DO UPDATE SET log_did = excluded.log_did, log_key = excluded.log_key, size = excluded.size,
          root = excluded.root, note = excluded.note, updated_ms = excluded.updated_ms`),
      countSplitViews: engine.prepare('SELECT count(*) AS n FROM split_views WHERE origin = ?'),
      insertSplitView: engine.prepare('INSERT INTO split_views (log_did, origin, seen_note, presented_note, detail, detected_ms) VALUES (?,?,?,?,?,?)'),
      splitViews: engine.prepare('SELECT * FROM split_views ORDER BY id'),
      addCosignature: engine.prepare('INSERT OR REPLACE INTO checkpoint_cosignatures VALUES (?,?,?,?,?)'),
      setKnownSize: engine.prepare(`INSERT INTO witness_progress VALUES (?,?,?)
        ON CONFLICT(witness_did) DO UPDATE SET known_size = excluded.known_size, updated_ms = excluded.updated_ms`),
      knownSize: engine.prepare('SELECT known_size FROM witness_progress WHERE witness_did = ?'),
      cosignedSize: engine.prepare('SELECT max(size) AS s FROM checkpoint_cosignatures WHERE witness_did = ?'),
      countCosigned: engine.prepare('SELECT count(DISTINCT size) AS n FROM checkpoint_cosignatures'),
      topCosigned: engine.prepare('SELECT max(size) AS s FROM checkpoint_cosignatures WHERE size >= ?'),
      cosignatures: engine.prepare('SELECT line, note FROM checkpoint_cosignatures WHERE size = ? ORDER BY witness_did'),
    };
  }

  // --- as a witness of other logs ---

  witnessedLog(origin: string): WitnessedLog | undefined {
    const row = this.stmts.witnessedLog.get(origin);
    return row && {
      origin: row.origin, logDid: row.log_did, logKey: row.log_key ? new Uint8Array(row.log_key) : undefined,
      size: Number(row.size), root: new Uint8Array(row.root), note: row.note,
    };
  }

  countWitnessedLogs(): number {
    return Number(this.stmts.countWitnessedLogs.get()!.n);
  }

  /** How many origins `logDid` presented (a DID may have a few logs, not endless ones). */
  countOriginsOf(logDid: string): number {
    return Number(this.stmts.countOriginsOf.get(logDid)!.n);
  }

  saveWitnessedLog(w: WitnessedLog): Promise<void> {
    return this.engine.write(() => {
      this.stmts.saveWitnessedLog.run(w.origin, w.logDid, w.logKey ?? null, w.size, w.root, w.note, Date.now());
    });
  }

  /** Stores the evidence; beyond MAX_SPLIT_VIEWS_PER_ORIGIN for one origin, only the refusal is counted. */
  recordSplitView(s: SplitView): Promise<void> {
    return this.engine.write(() => {
      if (Number(this.stmts.countSplitViews.get(s.origin)!.n) >= MAX_SPLIT_VIEWS_PER_ORIGIN) return;
      this.stmts.insertSplitView.run(s.logDid, s.origin, s.seenNote, s.presentedNote, s.detail, s.detectedMs);
    });
  }

  splitViews(): SplitView[] {
    return this.stmts.splitViews.all().map((r) => ({
      logDid: r.log_did, origin: r.origin, seenNote: r.seen_note, presentedNote: r.presented_note, detail: r.detail, detectedMs: Number(r.detected_ms),
    }));
  }

  // --- as a log whose checkpoints others cosign ---

  addCosignature(args: { size: number; witnessDid: string; line: string; note: string; knownSize: number }): Promise<void> {
    return this.engine.write(() => {
      this.stmts.addCosignature.run(args.size, args.witnessDid, args.line, args.note, Date.now());
      this.stmts.setKnownSize.run(args.witnessDid, args.knownSize, Date.now());
    });
  }

  setKnownSize(witnessDid: string, size: number): Promise<void> {
    return this.engine.write(() => { this.stmts.setKnownSize.run(witnessDid, size, Date.now()); });
  }

  /** The size the witness last saw of our log (what it expects as old_size), 0 if it saw none. */
  knownSize(witnessDid: string): number {
    const row = this.stmts.knownSize.get(witnessDid);
    return row ? Number(row.known_size) : 0;
  }

  /** The largest of our checkpoints this witness has cosigned (0 = none). */
  cosignedSize(witnessDid: string): number {
    return Number(this.stmts.cosignedSize.get(witnessDid)!.s ?? 0);
  }

  countCosignedCheckpoints(): number {
    return Number(this.stmts.countCosigned.get()!.n);
  }

  /**
   * The newest of our checkpoints of size >= minSize that carries cosignatures, as a signed note with
   * every cosignature line appended; undefined when none does.
   */
  cosignedCheckpoint(minSize: number): { size: number; note: string; witnesses: number } | undefined {
    const top = this.stmts.topCosigned.get(minSize)!;
    if (top.s === null) return undefined;
    const rows = this.stmts.cosignatures.all(top.s);
    return { size: Number(top.s), note: addSignatures(rows[0]!.note, rows.map((r) => r.line)), witnesses: rows.length };
  }
}
