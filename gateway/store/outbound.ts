// The outbound queue (tables outbound_envelopes and outbound): messages for other nodes, one envelope
// row per message, one row per remote recipient with its state, attempts and receipt.
import type { StoreEngine, Statement } from './engine.ts';

export type OutboundState = 'queued' | 'deferred' | 'held' | 'delivered' | 'failed';

/** The delivery agent a queued recipient waits for: a peer AfterSMTP node (relay) or the SMTP bridge. */
export type OutboundTransport = 'relay' | 'smtp';

/** A remote recipient as it is queued. */
export interface QueuedRecipient { address: string; domain: string; transport: OutboundTransport }

export interface OutboundItem {
  messageId: Uint8Array;
  recipient: string;
  domain: string;
  transport: OutboundTransport;
  state: OutboundState;
  attempts: number;
  nextAttemptMs: number;
  expiresMs: number;
  lastError: string;
  receipt: string;
  updatedMs: number;
}

/** A queued envelope as the outbound queue holds it (one row per message, whatever its recipients). */
export interface HeldEnvelope { envelope: Uint8Array; sender: string; senderDomain: string; logIndex: number | null }

interface OutboundRow {
  message_id: Uint8Array; recipient: string; domain: string; transport: OutboundTransport; state: OutboundState; attempts: number; next_attempt_ms: number;
  expires_ms: number; last_error: string; receipt: string; updated_ms: number;
}
interface EnvelopeRow { message_id: Uint8Array; envelope: Uint8Array; sender: string; sender_domain: string; log_index: number | null }

export class OutboundRepository {
  private readonly engine: StoreEngine;
  private readonly stmts: {
    insertEnvelope: Statement<[Uint8Array, Uint8Array, string, string, number | null]>;
    insertEnvelopeOnce: Statement<[Uint8Array, Uint8Array, string, string, number | null]>;
    insert: Statement<[Uint8Array, string, string, OutboundTransport, number, number, number]>;
    due: Statement<[number, number], OutboundRow>;
    nextDueAfter: Statement<[number], { t: number | null }>;
    nextDue: Statement<[], { t: number | null }>;
    envelope: Statement<[Uint8Array], EnvelopeRow>;
    update: Statement<[OutboundState, number, number, string, string, number, number, Uint8Array, string]>;
    unnoticedMessages: Statement<[Uint8Array, number], { message_id: Uint8Array }>;
    unnoticedOf: Statement<[Uint8Array], OutboundRow>;
    markNoticed: Statement<[Uint8Array, string]>;
    counts: Statement<[], { state: 'queued' | 'deferred' | 'held' | 'failed'; n: number }>;
    list: Statement<[string, string], OutboundRow>;
    of: Statement<[Uint8Array, string, string], OutboundRow>;
    waitingFor: Statement<[string, string], OutboundRow>;
    delete: Statement<[Uint8Array, string]>;
    deleteEnvelopeIfDone: Statement<[Uint8Array, Uint8Array]>;
    pruneFinished: Statement<[string, number, number]>;
    setLogIndex: Statement<[number | null, Uint8Array]>;
  };

  constructor(engine: StoreEngine) {
    this.engine = engine;
    this.stmts = {
      insertEnvelope: engine.prepare(`INSERT INTO outbound_envelopes VALUES (?,?,?,?,?)`),
      insertEnvelopeOnce: engine.prepare(`INSERT OR IGNORE INTO outbound_envelopes VALUES (?,?,?,?,?)`),
      insert: engine.prepare(`INSERT INTO outbound (message_id, recipient, domain, transport, state, next_attempt_ms, expires_ms, updated_ms) VALUES (?,?,?,?,'queued',?,?,?)`),
      due: engine.prepare(`SELECT * FROM outbound WHERE state IN ('queued','deferred') AND next_attempt_ms <= ? ORDER BY next_attempt_ms LIMIT ?`),
      nextDueAfter: engine.prepare(`SELECT min(next_attempt_ms) AS t FROM outbound WHERE state IN ('queued','deferred') AND next_attempt_ms > ?`),
      nextDue: engine.prepare(`SELECT min(next_attempt_ms) AS t FROM outbound WHERE state IN ('queued','deferred')`),
      envelope: engine.prepare(`SELECT * FROM outbound_envelopes WHERE message_id = ?`),
      update: engine.prepare(`UPDATE outbound SET state = ?, attempts = ?, next_attempt_ms = ?, last_error = ?, receipt = ?, noticed = ?, updated_ms = ? WHERE message_id = ? AND recipient = ?`),
      // The partial index outbound_unnoticed holds only these rows: none, unless a crash or a failed store
      // left a notice unsent.
      unnoticedMessages: engine.prepare(`SELECT DISTINCT message_id FROM outbound WHERE noticed = 0 AND message_id > ? ORDER BY message_id LIMIT ?`),
      unnoticedOf: engine.prepare(`SELECT * FROM outbound WHERE message_id = ? AND state = 'failed' AND noticed = 0`),
      markNoticed: engine.prepare(`UPDATE outbound SET noticed = 1 WHERE message_id = ? AND recipient = ?`),
      counts: engine.prepare(`SELECT state, count(*) AS n FROM outbound WHERE state IN ('queued','deferred','held','failed') GROUP BY state`),
      list: engine.prepare(`SELECT * FROM outbound WHERE (? = '' OR state = ?) ORDER BY updated_ms DESC LIMIT 1000`),
      of: engine.prepare(`SELECT * FROM outbound WHERE message_id = ? AND (? = '' OR recipient = ?)`),
      waitingFor: engine.prepare(`SELECT * FROM outbound WHERE state IN ('queued','deferred','held') AND (? = '*' OR domain = ?)`),
      delete: engine.prepare(`DELETE FROM outbound WHERE message_id = ? AND recipient = ?`),
      // A failed recipient whose notice is not stored yet still needs the envelope: the notice is built from it.
      deleteEnvelopeIfDone: engine.prepare(`DELETE FROM outbound_envelopes WHERE message_id = ? AND NOT EXISTS
                                            (SELECT 1 FROM outbound WHERE message_id = ? AND (state NOT IN ('delivered','failed') OR noticed = 0))`),
      // For a delivered or failed recipient next_attempt_ms is when it finished (updateMany), so the
      // (state, next_attempt_ms) index finds the oldest records first. A failure whose notice is still
      // owed stays.
      pruneFinished: engine.prepare(`DELETE FROM outbound WHERE (message_id, recipient) IN
                                     (SELECT message_id, recipient FROM outbound WHERE state = ? AND next_attempt_ms < ? AND noticed = 1 LIMIT ?)`),
      setLogIndex: engine.prepare(`UPDATE outbound_envelopes SET log_index = ? WHERE message_id = ?`),
    };
  }

  /**
   * Holds a message's envelope for relay (inside a write). Keyed on the message id: a second message
   * under a queued id throws SQLite's primary-key error (see Store.storeEnvelope).
   */
  holdEnvelope(messageId: Uint8Array, held: HeldEnvelope): void {
    this.stmts.insertEnvelope.run(messageId, held.envelope, held.sender, held.senderDomain, held.logIndex);
  }

  /** Holds a message's envelope for relay unless the queue holds it already (inside a write). */
  holdEnvelopeOnce(messageId: Uint8Array, held: HeldEnvelope): void {
    this.stmts.insertEnvelopeOnce.run(messageId, held.envelope, held.sender, held.senderDomain, held.logIndex);
  }

  /** Queues a held message for its remote recipients (inside a write). */
  addRecipients(messageId: Uint8Array, recipients: QueuedRecipient[], nowMs: number, expiresMs: number): void {
    for (const r of recipients) this.stmts.insert.run(messageId, r.address, r.domain, r.transport, nowMs, expiresMs, nowMs);
  }

  due(nowMs: number, limit: number): OutboundItem[] {
    return this.stmts.due.all(nowMs, limit).map(toOutbound);
  }

  /** When the next queued item due strictly after `afterMs` falls due (ms), or undefined. */
  nextDueAfter(afterMs: number): number | undefined {
    const t = this.stmts.nextDueAfter.get(afterMs)!.t;
    return t === null ? undefined : Number(t);
  }

  /** When the next queued item falls due (ms), or undefined when nothing waits. */
  nextDue(): number | undefined {
    const t = this.stmts.nextDue.get()!.t;
    return t === null ? undefined : Number(t);
  }

  envelope(messageId: Uint8Array): HeldEnvelope | undefined {
    const r = this.stmts.envelope.get(messageId);
    if (!r) return undefined;
    return { envelope: r.envelope, sender: r.sender, senderDomain: r.sender_domain, logIndex: r.log_index === null ? null : Number(r.log_index) };
  }

  /**
   * Recipients waiting in the outbound queue, by state. Delivered ones (kept with their receipts) are not
   * counted: each state is a range of the (state, next_attempt_ms) index, so this costs what is waiting.
   */
  counts(): Record<'queued' | 'deferred' | 'held' | 'failed', number> {
    const counts = { queued: 0, deferred: 0, held: 0, failed: 0 };
    for (const row of this.stmts.counts.all()) counts[row.state] = Number(row.n);
    return counts;
  }

  list(state = ''): OutboundItem[] {
    return this.stmts.list.all(state, state).map(toOutbound);
  }

  /** Recipients still waiting (queued, deferred, held) for `domain`, or for every domain with "*". */
  waiting(domain: string): OutboundItem[] {
    const d = domain === '*' ? '*' : domain.toLowerCase();
    return this.stmts.waitingFor.all(d, d).map(toOutbound);
  }

  of(messageId: Uint8Array, recipient = ''): OutboundItem[] {
    return this.stmts.of.all(messageId, recipient, recipient).map(toOutbound);
  }

  /** Updates one queue item durably; the envelope is dropped once no recipient still needs it. */
  update(item: OutboundItem): Promise<void> {
    return this.updateMany([item]);
  }

  /**
   * Updates queue items in one durable write (all or none). A recipient that fails is marked as owed its
   * failure notice in that same write (noticed = 0), until markNoticed: a crash in between leaves the mark,
   * and the envelope the notice is made from.
   */
  updateMany(items: OutboundItem[]): Promise<void> {
    return this.engine.write(() => {
      const now = Date.now();
      const done = new Map<string, Uint8Array>();
      for (const item of items) {
        const finished = item.state === 'delivered' || item.state === 'failed';
        const noticed = item.state === 'failed' ? 0 : 1;
        this.stmts.update.run(item.state, item.attempts, finished ? now : item.nextAttemptMs, item.lastError, item.receipt, noticed, now, item.messageId, item.recipient);
        if (finished) done.set(Buffer.from(item.messageId).toString('hex'), item.messageId);
      }
      for (const messageId of done.values()) this.stmts.deleteEnvelopeIfDone.run(messageId, messageId);
    });
  }

  /**
   * Records that the failure notice of these failed recipients of one message is stored, or that none is
   * due, in one write; the envelope goes once nothing else needs it.
   */
  markNoticed(messageId: Uint8Array, recipients: string[]): Promise<void> {
    return this.engine.write(() => {
      for (const recipient of recipients) this.stmts.markNoticed.run(messageId, recipient);
      this.stmts.deleteEnvelopeIfDone.run(messageId, messageId);
    });
  }

  /** Up to `limit` messages, in id order after `afterId`, with a failed recipient still owed its notice. */
  unnoticedMessages(afterId: Uint8Array, limit: number): Uint8Array[] {
    return this.stmts.unnoticedMessages.all(afterId, limit).map((r) => r.message_id);
  }

  /** The failed recipients of one message still owed their notice. */
  unnoticed(messageId: Uint8Array): OutboundItem[] {
    return this.stmts.unnoticedOf.all(messageId).map(toOutbound);
  }

  /** Removes one queue item (operator purge). */
  purge(messageId: Uint8Array, recipient: string): Promise<void> {
    return this.engine.write(() => this.remove(messageId, recipient));
  }

  /** Removes one queue item, and the envelope once no recipient needs it (inside a write). */
  remove(messageId: Uint8Array, recipient: string): void {
    this.stmts.delete.run(messageId, recipient);
    this.stmts.deleteEnvelopeIfDone.run(messageId, messageId);
  }

  /**
   * Deletes the queue records of recipients delivered or failed before `beforeMs`, at most `limit` per
   * state in one commit (a large backlog is pruned in several, so other writes interleave). Resolves
   * with how many were deleted.
   */
  pruneFinished(beforeMs: number, limit = 1000): Promise<number> {
    let deleted = 0;
    return this.engine.write(() => {
      deleted = 0;
      for (const state of ['delivered', 'failed']) deleted += Number(this.stmts.pruneFinished.run(state, beforeMs, limit).changes);
    }).then(() => deleted);
  }

  /** Sets a queued message's log index (inside a write; crash repair). */
  setLogIndex(messageId: Uint8Array, logIndex: number | null): void {
    this.stmts.setLogIndex.run(logIndex, messageId);
  }
}

function toOutbound(r: OutboundRow): OutboundItem {
  return {
    messageId: r.message_id,
    recipient: r.recipient,
    domain: r.domain,
    transport: r.transport,
    state: r.state,
    attempts: Number(r.attempts),
    nextAttemptMs: Number(r.next_attempt_ms),
    expiresMs: Number(r.expires_ms),
    lastError: r.last_error,
    receipt: r.receipt,
    updatedMs: Number(r.updated_ms),
  };
}
