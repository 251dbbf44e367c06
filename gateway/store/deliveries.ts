// Mail delivered to local mailboxes (tables deliveries and delivery_envelopes): each mailbox's inbox,
// numbered by seq, its acks and their retention. Envelopes live apart from the small delivery rows, so
// an ack rewrites a page of those only (docs/DECISIONS.md 29).
import type { StoreEngine, Statement } from './engine.ts';
import type { WebhookRepository } from './webhooks.ts';

export interface StoredDelivery {
  mailbox: string;
  seq: number;
  messageId: Uint8Array;
  envelope: Uint8Array;
  receivedMs: number;
  logIndex: number | null;
  /**
   * Who vouched for the sender (docs/PROTOCOL.md §4 "Sender binding"): the address this node
   * authenticated or the sending node vouched for ('' if none did), and the vouched-for domain ('' if
   * none; also for deliveries stored before layout 4).
   */
  authenticatedSender: string;
  senderDomain: string;
}

/** Who vouched for a message's sender, as stored with its deliveries (see StoredDelivery). */
export interface VouchedSender { address: string; domain: string }

interface DeliveryRow {
  mailbox: string; seq: number; message_id: Uint8Array; envelope: Uint8Array; received_ms: number;
  log_index: number | null; sender: string; sender_domain: string;
}

/** A delivery row with its envelope: `SELECT ${DELIVERY_FIELDS} ${DELIVERY_ROWS} WHERE ...`. */
const DELIVERY_FIELDS = 'mailbox, seq, message_id, envelope, received_ms, log_index, sender, sender_domain';
const DELIVERY_ROWS = 'FROM deliveries JOIN delivery_envelopes ON delivery_envelopes.id = deliveries.rowid';

export class DeliveryRepository {
  private readonly engine: StoreEngine;
  /** An ack settles the delivery's webhook row too, in the same commit (the hook is not told of it then). */
  private readonly webhooks: WebhookRepository;
  /** Each mailbox's next seq, kept ahead of its rows inside a commit (dropped when one rolls back). */
  private readonly nextSeq = new Map<string, number>();
  private readonly stmts: {
    maxSeq: Statement<[string], { s: number }>;
    insert: Statement<[string, number, Uint8Array, number, number | null]>;
    insertEnvelope: Statement<[Uint8Array, string, string]>;
    pending: Statement<[string, number, number], DeliveryRow>;
    one: Statement<[string, number], DeliveryRow & { acked: number }>;
    ack: Statement<[number, string, number]>;
    countUnacked: Statement<[string], { n: number }>;
    count: Statement<[], { n: number }>;
    deleteOfMailbox: Statement<[string, number]>;
    mailboxAddresses: Statement<[], { address: string }>;
    pruneAcked: Statement<[string, number, number, number]>;
    heldLogIndex: Statement<[string, Uint8Array], { log_index: number }>;
    fromLogIndex: Statement<[number], { id: number; log_index: number; envelope: Uint8Array }>;
    setLogIndex: Statement<[number | null, number]>;
  };

  constructor(engine: StoreEngine, webhooks: WebhookRepository) {
    this.engine = engine;
    this.webhooks = webhooks;
    engine.onRollback(() => this.nextSeq.clear()); // counters may be ahead of what was rolled back
    this.stmts = {
      maxSeq: engine.prepare(`SELECT coalesce(max(seq), 0) AS s FROM deliveries WHERE mailbox = ?`),
      insert: engine.prepare(`INSERT INTO deliveries (mailbox, seq, message_id, received_ms, log_index) VALUES (?,?,?,?,?)`),
      insertEnvelope: engine.prepare(`INSERT INTO delivery_envelopes (id, envelope, sender, sender_domain) VALUES (last_insert_rowid(), ?, ?, ?)`),
      pending: engine.prepare(`SELECT ${DELIVERY_FIELDS} ${DELIVERY_ROWS} WHERE mailbox = ? AND acked = 0 AND seq > ? ORDER BY seq LIMIT ?`),
      one: engine.prepare(`SELECT ${DELIVERY_FIELDS}, acked ${DELIVERY_ROWS} WHERE mailbox = ? AND seq = ?`),
      ack: engine.prepare(`UPDATE deliveries SET acked = ? WHERE mailbox = ? AND seq = ? AND acked = 0`),
      countUnacked: engine.prepare(`SELECT count(*) AS n FROM deliveries WHERE mailbox = ? AND acked = 0`),
      count: engine.prepare(`SELECT count(*) AS n FROM deliveries`),
      deleteOfMailbox: engine.prepare(`DELETE FROM deliveries WHERE rowid IN (SELECT rowid FROM deliveries WHERE mailbox = ? LIMIT ?)`),
      mailboxAddresses: engine.prepare(`SELECT address FROM mailboxes ORDER BY address`),
      // Through the (mailbox, acked, seq) index. The mailbox's newest row stays: its seq is where the
      // mailbox's numbering resumes after a restart, so a subscriber's cursor never sees a seq twice.
      pruneAcked: engine.prepare(`DELETE FROM deliveries WHERE rowid IN (SELECT rowid FROM deliveries
                                  WHERE mailbox = ? AND acked > 0 AND acked < ? AND seq < ? LIMIT ?)`),
      heldLogIndex: engine.prepare(`SELECT DISTINCT log_index FROM deliveries WHERE mailbox = ? AND message_id = ? AND log_index IS NOT NULL LIMIT 2`),
      // Repair after a crash (startup): scans, since nothing indexes log_index; read only when the
      // replay set names a lost leaf.
      fromLogIndex: engine.prepare(`SELECT deliveries.rowid AS id, log_index, envelope ${DELIVERY_ROWS} WHERE log_index >= ?`),
      setLogIndex: engine.prepare(`UPDATE deliveries SET log_index = ? WHERE rowid = ?`),
    };
  }

  /** The highest seq a mailbox's rows hold (0 = none). */
  lastSeq(mailbox: string): number {
    return Number(this.stmts.maxSeq.get(mailbox)!.s);
  }

  /**
   * Adds one delivery (inside a write): the mailbox's next seq, returned. `sender`: who vouched for the
   * message's sender.
   */
  insert(mailbox: string, messageId: Uint8Array, envelope: Uint8Array, receivedMs: number, logIndex: number | null, sender: VouchedSender): number {
    let seq = this.nextSeq.get(mailbox);
    if (seq === undefined) seq = this.lastSeq(mailbox) + 1;
    this.nextSeq.set(mailbox, seq + 1);
    this.stmts.insert.run(mailbox, seq, messageId, receivedMs, logIndex);
    this.stmts.insertEnvelope.run(envelope, sender.address, sender.domain);
    return seq;
  }

  pending(mailbox: string, afterSeq: number, limit: number): StoredDelivery[] {
    return this.stmts.pending.all(mailbox, afterSeq, limit).map(toDelivery);
  }

  /** One delivery and whether it was acknowledged; undefined once pruned (or never stored). */
  get(mailbox: string, seq: number): { delivery: StoredDelivery; acked: boolean } | undefined {
    const row = this.stmts.one.get(mailbox, seq);
    return row && { delivery: toDelivery(row), acked: Number(row.acked) > 0 };
  }

  /** Marks deliveries acknowledged (recording when, for retention); resolves once durable. */
  ack(mailbox: string, seqs: number[], nowMs = Date.now()): Promise<void> {
    return this.engine.write(() => {
      for (const seq of seqs) this.ackInWrite(mailbox, seq, nowMs);
    });
  }

  /** ack() of one delivery inside a write that does more (the hook's 2xx recorded with it). */
  ackInWrite(mailbox: string, seq: number, nowMs: number): void {
    this.stmts.ack.run(nowMs, mailbox, seq);
    this.webhooks.settleAcked(mailbox, seq, nowMs);
  }

  /**
   * Deletes deliveries acknowledged before `beforeMs`, at most `limit` in one commit (a large backlog
   * goes in several, so other writes interleave); each mailbox keeps its newest row. Resolves with how
   * many were deleted. Frees room in a full store at once.
   */
  pruneAcked(beforeMs: number, limit = 1000): Promise<number> {
    let deleted = 0;
    return this.engine.write(() => {
      deleted = 0;
      for (const { address } of this.stmts.mailboxAddresses.all()) {
        if (deleted >= limit) break;
        deleted += Number(this.stmts.pruneAcked.run(address, beforeMs, this.lastSeq(address), limit - deleted).changes);
      }
    }).then(() => {
      if (deleted > 0) this.engine.freed();
      return deleted;
    });
  }

  count(): number {
    return Number(this.stmts.count.get()!.n);
  }

  countUnacked(mailbox: string): number {
    return Number(this.stmts.countUnacked.get(mailbox)!.n);
  }

  /** Deletes the stored mail of a removed mailbox, `chunk` rows per commit; returns how many. */
  deleteMailboxMail(address: string, chunk = 1000): number {
    let deleted = 0;
    for (;;) {
      const n = Number(this.stmts.deleteOfMailbox.run(address.toLowerCase(), chunk).changes);
      deleted += n;
      if (n === 0) return deleted;
    }
  }

  /** A removed mailbox's numbering is forgotten (a mailbox created again under its address starts anew). */
  forget(mailbox: string): void {
    this.nextSeq.delete(mailbox);
  }

  /** The distinct log indexes of `messageId` in one mailbox (at most 2: one is an answer, two are not). */
  heldLogIndexes(mailbox: string, messageId: Uint8Array): number[] {
    return this.stmts.heldLogIndex.all(mailbox, messageId).map((r) => Number(r.log_index));
  }

  /** Deliveries (row id, log index, envelope) whose log index is at or past `size` (crash repair). */
  fromLogIndex(size: number): { id: number; logIndex: number; envelope: Uint8Array }[] {
    return this.stmts.fromLogIndex.all(size).map((r) => ({ id: Number(r.id), logIndex: Number(r.log_index), envelope: r.envelope }));
  }

  /** Sets a delivery's log index, by row id (inside a write). */
  setLogIndex(row: number, logIndex: number | null): void {
    this.stmts.setLogIndex.run(logIndex, row);
  }
}

function toDelivery(r: DeliveryRow): StoredDelivery {
  return {
    mailbox: r.mailbox,
    seq: Number(r.seq),
    messageId: r.message_id,
    envelope: r.envelope,
    receivedMs: Number(r.received_ms),
    logIndex: r.log_index === null ? null : Number(r.log_index),
    authenticatedSender: r.sender,
    senderDomain: r.sender_domain,
  };
}
