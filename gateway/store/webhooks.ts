// Webhooks (tables webhooks and webhook_deliveries): the URL and signing secret of a mailbox's hook, and
// one row per delivery the hook must be told of. The row is written in the commit that stores the
// delivery (Store.storeEnvelope), so a crash between storing and posting loses no notification.
import type { StoreEngine, Statement } from './engine.ts';

/**
 * What a hook's POST carries of the sealed envelope: the envelope itself (base64), or a link the app
 * fetches it from with the mailbox's token (docs/APPS.md "Webhooks").
 */
export type WebhookPayloadForm = 'inline' | 'link';
export const WEBHOOK_PAYLOAD_FORMS: readonly WebhookPayloadForm[] = ['inline', 'link'];

export interface WebhookRecord { mailbox: string; url: string; secret: string; payload: WebhookPayloadForm; createdMs: number }

export type WebhookDeliveryState = 'queued' | 'delivered' | 'acked' | 'dead';

export interface WebhookDelivery {
  mailbox: string;
  seq: number;
  state: WebhookDeliveryState;
  attempts: number;
  nextAttemptMs: number;
  sinceMs: number;
  lastError: string;
  updatedMs: number;
}

export interface WebhookCounts { queued: number; delivered: number; acked: number; dead: number }

interface HookRow { mailbox: string; url: string; secret: string; payload: WebhookPayloadForm; created_ms: number }
interface DeliveryRow {
  mailbox: string; seq: number; state: WebhookDeliveryState; attempts: number; next_attempt_ms: number;
  since_ms: number; last_error: string; updated_ms: number;
}

export class WebhookRepository {
  private readonly engine: StoreEngine;
  private readonly stmts: {
    upsert: Statement<[string, string, string, WebhookPayloadForm | null, number]>;
    get: Statement<[string], HookRow>;
    list: Statement<[], HookRow>;
    delete: Statement<[string]>;
    deleteDeliveries: Statement<[string]>;
    enqueue: Statement<[string, number, number, number, number]>;
    dueOf: Statement<[string, number, number], DeliveryRow>;
    nextDue: Statement<[], { t: number | null }>;
    mailboxesDue: Statement<[number], { mailbox: string }>;
    get1: Statement<[string, number], DeliveryRow>;
    settle: Statement<[WebhookDeliveryState, number, string, number]>;
    settleAcked: Statement<[number, string, number]>;
    retryLater: Statement<[number, string, number, string, number]>;
    dead: Statement<[string, number, string, number]>;
    deadSince: Statement<[string, number, string, number]>;
    retryDead: Statement<[number, number, number, string]>;
    retryAllDead: Statement<[number, number, number]>;
    probe: Statement<[string]>;
    resume: Statement<[number, string, number]>;
    counts: Statement<[string], { state: WebhookDeliveryState; n: number }>;
    totals: Statement<[], { state: WebhookDeliveryState; n: number }>;
    ofState: Statement<[string, WebhookDeliveryState], DeliveryRow>;
    pruneSettled: Statement<[number]>;
  };

  constructor(engine: StoreEngine) {
    this.engine = engine;
    this.stmts = {
      // A payload form not given (null) is 'inline' for a new hook and the hook's own for one set again.
      upsert: engine.prepare(`INSERT INTO webhooks (mailbox, url, secret, payload, created_ms) VALUES (?1, ?2, ?3, coalesce(?4, 'inline'), ?5)
                              ON CONFLICT(mailbox) DO UPDATE SET url = excluded.url, secret = excluded.secret, payload = coalesce(?4, webhooks.payload)`),
      get: engine.prepare('SELECT * FROM webhooks WHERE mailbox = ?'),
      list: engine.prepare('SELECT * FROM webhooks ORDER BY mailbox'),
      delete: engine.prepare('DELETE FROM webhooks WHERE mailbox = ?'),
      deleteDeliveries: engine.prepare(`DELETE FROM webhook_deliveries WHERE mailbox = ?`),
      enqueue: engine.prepare(`INSERT OR IGNORE INTO webhook_deliveries (mailbox, seq, state, next_attempt_ms, since_ms, updated_ms) VALUES (?,?,'queued',?,?,?)`),
      dueOf: engine.prepare(`SELECT * FROM webhook_deliveries WHERE mailbox = ? AND state = 'queued' AND next_attempt_ms <= ? ORDER BY next_attempt_ms LIMIT ?`),
      mailboxesDue: engine.prepare(`SELECT DISTINCT mailbox FROM webhook_deliveries WHERE state = 'queued' AND next_attempt_ms <= ?`),
      nextDue: engine.prepare(`SELECT min(next_attempt_ms) AS t FROM webhook_deliveries WHERE state = 'queued'`),
      get1: engine.prepare('SELECT * FROM webhook_deliveries WHERE mailbox = ? AND seq = ?'),
      settle: engine.prepare(`UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, last_error = '', updated_ms = ? WHERE mailbox = ? AND seq = ?`),
      // A subscriber's ack: the hook is not told of a delivery its app already has.
      settleAcked: engine.prepare(`UPDATE webhook_deliveries SET state = 'acked', updated_ms = ? WHERE mailbox = ? AND seq = ? AND state IN ('queued', 'dead')`),
      retryLater: engine.prepare(`UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_ms = ?, last_error = ?, updated_ms = ? WHERE mailbox = ? AND seq = ? AND state = 'queued'`),
      dead: engine.prepare(`UPDATE webhook_deliveries SET state = 'dead', attempts = attempts + 1, last_error = ?, updated_ms = ? WHERE mailbox = ? AND seq = ? AND state = 'queued'`),
      // The hook failed past the max age: its other deliveries as old are dead-lettered with it.
      deadSince: engine.prepare(`UPDATE webhook_deliveries SET state = 'dead', last_error = ?, updated_ms = ? WHERE mailbox = ? AND state = 'queued' AND since_ms <= ?`),
      retryDead: engine.prepare(`UPDATE webhook_deliveries SET state = 'queued', next_attempt_ms = ?, since_ms = ?, updated_ms = ? WHERE mailbox = ? AND state = 'dead'`),
      retryAllDead: engine.prepare(`UPDATE webhook_deliveries SET state = 'queued', next_attempt_ms = ?, since_ms = ?, updated_ms = ? WHERE state = 'dead'`),
      // An operator's change (a hook set again, dead ones retried): the hook's earliest queued delivery
      // becomes due before anything (0), which the sender tries even while it holds the hook after failures.
      probe: engine.prepare(`UPDATE webhook_deliveries SET next_attempt_ms = 0 WHERE rowid =
                             (SELECT rowid FROM webhook_deliveries WHERE mailbox = ? AND state = 'queued' ORDER BY next_attempt_ms, seq LIMIT 1)`),
      resume: engine.prepare(`UPDATE webhook_deliveries SET next_attempt_ms = ? WHERE mailbox = ? AND state = 'queued' AND next_attempt_ms > ?`),
      counts: engine.prepare(`SELECT state, count(*) AS n FROM webhook_deliveries WHERE mailbox = ? GROUP BY state`),
      // Waiting and dead-lettered ones only: each is a range of the (state, next_attempt_ms) index.
      totals: engine.prepare(`SELECT state, count(*) AS n FROM webhook_deliveries WHERE state IN ('queued','dead') GROUP BY state`),
      ofState: engine.prepare(`SELECT * FROM webhook_deliveries WHERE mailbox = ? AND state = ? ORDER BY seq`),
      pruneSettled: engine.prepare(`DELETE FROM webhook_deliveries WHERE state IN ('delivered', 'acked') AND updated_ms < ?`),
    };
  }

  /**
   * Sets (or replaces) a mailbox's hook; its queued deliveries go to the new URL with the new secret, the
   * earliest at once (a hook held after failures is tried again now). `payload` undefined: 'inline' for a
   * new hook, unchanged for one set again.
   */
  set(mailbox: string, url: string, secret: string, payload?: WebhookPayloadForm): Promise<void> {
    return this.engine.write(() => {
      this.stmts.upsert.run(mailbox.toLowerCase(), url, secret, payload ?? null, Date.now());
      this.stmts.probe.run(mailbox.toLowerCase());
    });
  }

  /** The hook of a mailbox, read for every delivery it is due (the CLI changes hooks beside a running node). */
  of(mailbox: string): WebhookRecord | undefined {
    const row = this.stmts.get.get(mailbox.toLowerCase());
    return row && toHook(row);
  }

  list(): WebhookRecord[] {
    return this.stmts.list.all().map(toHook);
  }

  /** Removes a hook and its rows (mail it had not acknowledged stays in the mailbox); true if there was one. */
  async remove(mailbox: string): Promise<boolean> {
    let removed = false;
    await this.engine.write(() => {
      removed = this.of(mailbox) !== undefined;
      this.deleteOf(mailbox);
    });
    return removed;
  }

  /** Inside a write (a mailbox removed): its hook and rows go with it. */
  deleteOf(mailbox: string): void {
    this.stmts.delete.run(mailbox.toLowerCase());
    this.stmts.deleteDeliveries.run(mailbox.toLowerCase());
  }

  /** Inside the write that stores delivery `seq` of `mailbox`: queues it for the hook, if the mailbox has one. */
  enqueueIfHooked(mailbox: string, seq: number, nowMs: number): boolean {
    if (!this.stmts.get.get(mailbox)) return false;
    this.stmts.enqueue.run(mailbox, seq, nowMs, nowMs, nowMs);
    return true;
  }

  /** One hook's rows due by `nowMs`, earliest first (each hook read apart: a backlog of one starves no other). */
  dueOf(mailbox: string, nowMs: number, limit: number): WebhookDelivery[] {
    return this.stmts.dueOf.all(mailbox, nowMs, limit).map(toDelivery);
  }

  /** The hooks with rows due by `nowMs`. */
  mailboxesDue(nowMs: number): string[] {
    return this.stmts.mailboxesDue.all(nowMs).map((r) => r.mailbox);
  }

  /** When the earliest queued row is due (undefined: none queued). */
  nextDueMs(): number | undefined {
    const t = this.stmts.nextDue.get()!.t;
    return t === null ? undefined : Number(t);
  }

  get(mailbox: string, seq: number): WebhookDelivery | undefined {
    const row = this.stmts.get1.get(mailbox, seq);
    return row && toDelivery(row);
  }

  /** Inside a write: the hook answered 2xx. */
  delivered(mailbox: string, seq: number, nowMs: number): void {
    this.stmts.settle.run('delivered', nowMs, mailbox, seq);
  }

  /** Inside a write (DeliveryRepository.ack): the mailbox's app acknowledged the delivery. */
  settleAcked(mailbox: string, seq: number, nowMs: number): void {
    this.stmts.settleAcked.run(nowMs, mailbox, seq);
  }

  /**
   * Records a failed attempt: retried at `retryAtMs`, or dead-lettered with every queued delivery of the
   * hook queued at or before `deadSinceMs` (the hook has failed for longer than they may wait).
   */
  failed(mailbox: string, seq: number, error: string, retryAtMs: number | { deadSinceMs: number }, nowMs: number): Promise<void> {
    return this.engine.write(() => {
      if (typeof retryAtMs === 'object') {
        this.stmts.dead.run(error, nowMs, mailbox, seq);
        this.stmts.deadSince.run(error, nowMs, mailbox, retryAtMs.deadSinceMs);
      } else this.stmts.retryLater.run(retryAtMs, error, nowMs, mailbox, seq);
    });
  }

  /** The hook answers again: its deliveries waiting out a backoff are due now. */
  resume(mailbox: string, nowMs: number): Promise<void> {
    return this.engine.write(() => { this.stmts.resume.run(nowMs, mailbox, nowMs); });
  }

  /**
   * Queues dead-lettered rows again, due now and with a fresh max age, the earliest of each hook at once
   * (see set); `mailbox` undefined = every hook's.
   */
  async retryDead(mailbox: string | undefined, nowMs = Date.now()): Promise<number> {
    let n = 0;
    await this.engine.write(() => {
      n = Number((mailbox === undefined
        ? this.stmts.retryAllDead.run(nowMs, nowMs, nowMs)
        : this.stmts.retryDead.run(nowMs, nowMs, nowMs, mailbox.toLowerCase())).changes);
      for (const hook of mailbox === undefined ? this.stmts.list.all().map((h) => h.mailbox) : [mailbox.toLowerCase()]) this.stmts.probe.run(hook);
    });
    return n;
  }

  /** Hook deliveries waiting and dead-lettered, over every mailbox (metrics). */
  totals(): { queued: number; dead: number } {
    const totals = { queued: 0, dead: 0 };
    for (const r of this.stmts.totals.all()) if (r.state === 'queued' || r.state === 'dead') totals[r.state] = Number(r.n);
    return totals;
  }

  counts(mailbox: string): WebhookCounts {
    const counts: WebhookCounts = { queued: 0, delivered: 0, acked: 0, dead: 0 };
    for (const r of this.stmts.counts.all(mailbox.toLowerCase())) counts[r.state] = Number(r.n);
    return counts;
  }

  ofState(mailbox: string, state: WebhookDeliveryState): WebhookDelivery[] {
    return this.stmts.ofState.all(mailbox.toLowerCase(), state).map(toDelivery);
  }

  /** Forgets settled rows last changed before `beforeMs` (queued and dead ones stay). */
  async pruneSettled(beforeMs: number): Promise<number> {
    let n = 0;
    await this.engine.write(() => { n = Number(this.stmts.pruneSettled.run(beforeMs).changes); });
    return n;
  }
}

function toHook(r: HookRow): WebhookRecord {
  return { mailbox: r.mailbox, url: r.url, secret: r.secret, payload: r.payload, createdMs: Number(r.created_ms) };
}

function toDelivery(r: DeliveryRow): WebhookDelivery {
  return {
    mailbox: r.mailbox, seq: Number(r.seq), state: r.state, attempts: Number(r.attempts), nextAttemptMs: Number(r.next_attempt_ms),
    sinceMs: Number(r.since_ms), lastError: r.last_error, updatedMs: Number(r.updated_ms),
  };
}
