// Compliance rules (tables rules, held_deliveries, message_tags, catchalls, audit_leaves): the rules the
// operator set, deliveries a rule holds back until they are released, labels rules put on messages,
// catch-all mailboxes of the node's domains, and the audit leaves the node appended for what rules did.
// The CLI writes rules, catch-alls and release or expiry requests beside a running node, which reads
// them on every message (rules, catch-alls) or every second (release and expiry, carried out by the node).
import type { StoreEngine, Statement } from './engine.ts';
import type { Rule } from '../rules/index.ts';
import type { OutboundTransport } from './outbound.ts';


/** A rule list read from the store is reused this long (as ROUTE_REREAD_MS for routes). */
export const RULES_REREAD_MS = 200;
/**
 * held | release | expire (the last two asked for, carried out by the node); released: a queued recipient
 * given back to the queue, kept until its message leaves the queue so that no rule holds it again.
 */
export type HeldState = 'held' | 'release' | 'expire' | 'released';

export interface HeldDelivery {
  messageId: Uint8Array;
  /** The mailbox kept from the message; for a queued recipient (`transport` set), its address. */
  mailbox: string;
  /** '' for a mailbox's delivery; the delivery agent a held remote recipient is queued for on release. */
  transport: '' | OutboundTransport;
  rule: string;
  envelope: Uint8Array;
  sender: { address: string; domain: string };
  logIndex: number | null;
  messageHash: Uint8Array;
  heldMs: number;
  state: HeldState;
}

export interface AuditRecord { logIndex: number; rule: string; action: string; messageHash: Uint8Array; leafHash: Uint8Array; atMs: number }

interface HeldRow {
  message_id: Uint8Array; mailbox: string; rule: string; envelope: Uint8Array; sender: string; sender_domain: string;
  log_index: number | null; message_hash: Uint8Array; held_ms: number; state: HeldState; transport: '' | OutboundTransport;
}
interface AuditRow { log_index: number; rule: string; action: string; message_hash: Uint8Array; leaf_hash: Uint8Array; at_ms: number }

export class RuleRepository {
  private readonly engine: StoreEngine;
  private readonly stmts: {
    upsert: Statement<[string, string, number]>;
    list: Statement<[], { name: string; rule: string }>;
    delete: Statement<[string]>;
    hold: Statement<[Uint8Array, string, string, Uint8Array, string, string, number | null, Uint8Array, number, string]>;
    heldList: Statement<[], HeldRow>;
    heldOf: Statement<[Uint8Array], HeldRow>;
    heldAsked: Statement<[], HeldRow>;
    setState: Statement<[HeldState, Uint8Array]>;
    deleteHeld: Statement<[Uint8Array, string]>;
    markReleased: Statement<[Uint8Array, string]>;
    heldFor: Statement<[Uint8Array, string], { state: HeldState }>;
    pruneReleased: Statement<[number]>;
    anyOldTag: Statement<[number], { one: number }>;
    pruneTags: Statement<[number]>;
    tag: Statement<[Uint8Array, string, string, number]>;
    tagsOf: Statement<[Uint8Array], { tag: string; rule: string }>;
    anyTag: Statement<[], { one: number }>;
    setCatchall: Statement<[string, string, number]>;
    catchall: Statement<[string], { mailbox: string }>;
    catchalls: Statement<[], { domain: string; mailbox: string }>;
    deleteCatchall: Statement<[string]>;
    audit: Statement<[number, string, string, Uint8Array, Uint8Array, number]>;
    audits: Statement<[number, number], AuditRow>;
  };

  constructor(engine: StoreEngine) {
    this.engine = engine;
    this.stmts = {
      upsert: engine.prepare('INSERT INTO rules (name, rule, created_ms) VALUES (?,?,?) ON CONFLICT(name) DO UPDATE SET rule = excluded.rule'),
      list: engine.prepare('SELECT name, rule FROM rules ORDER BY created_ms, name'),
      delete: engine.prepare('DELETE FROM rules WHERE name = ?'),
      hold: engine.prepare(`INSERT OR IGNORE INTO held_deliveries (message_id, mailbox, rule, envelope, sender, sender_domain, log_index, message_hash, held_ms, transport, state)
                            VALUES (?,?,?,?,?,?,?,?,?,?,'held')`),
      heldList: engine.prepare(`SELECT * FROM held_deliveries WHERE state != 'released' ORDER BY held_ms, mailbox`),
      heldOf: engine.prepare(`SELECT * FROM held_deliveries WHERE message_id = ? AND state != 'released'`),
      heldAsked: engine.prepare(`SELECT * FROM held_deliveries WHERE state IN ('release','expire') ORDER BY held_ms LIMIT 100`),
      setState: engine.prepare(`UPDATE held_deliveries SET state = ? WHERE message_id = ? AND state = 'held'`),
      deleteHeld: engine.prepare('DELETE FROM held_deliveries WHERE message_id = ? AND mailbox = ?'),
      // The envelope goes: the queue holds its own copy from here on.
      markReleased: engine.prepare(`UPDATE held_deliveries SET state = 'released', envelope = x'' WHERE message_id = ? AND mailbox = ?`),
      heldFor: engine.prepare('SELECT state FROM held_deliveries WHERE message_id = ? AND mailbox = ?'),
      pruneReleased: engine.prepare(`DELETE FROM held_deliveries WHERE rowid IN (SELECT rowid FROM held_deliveries h WHERE state = 'released'
                                       AND NOT EXISTS (SELECT 1 FROM outbound o WHERE o.message_id = h.message_id AND o.recipient = h.mailbox) LIMIT ?)`),
      // A label is read with a delivery of its message: it goes once nothing of the message is left to read.
      // Deliveries have no index by message id (DECISIONS 29): each IN list is read once, into a
      // temporary index, per prune (hourly), not once per label.
      anyOldTag: engine.prepare('SELECT 1 AS one FROM message_tags WHERE tagged_ms < ? LIMIT 1'),
      pruneTags: engine.prepare(`DELETE FROM message_tags WHERE tagged_ms < ?
                                   AND message_id NOT IN (SELECT message_id FROM deliveries)
                                   AND message_id NOT IN (SELECT message_id FROM held_deliveries)
                                   AND message_id NOT IN (SELECT message_id FROM outbound_envelopes)`),
      tag: engine.prepare('INSERT OR IGNORE INTO message_tags (message_id, tag, rule, tagged_ms) VALUES (?,?,?,?)'),
      tagsOf: engine.prepare('SELECT tag, rule FROM message_tags WHERE message_id = ? ORDER BY tag'),
      anyTag: engine.prepare('SELECT 1 AS one FROM message_tags LIMIT 1'),
      setCatchall: engine.prepare('INSERT INTO catchalls (domain, mailbox, created_ms) VALUES (?,?,?) ON CONFLICT(domain) DO UPDATE SET mailbox = excluded.mailbox'),
      catchall: engine.prepare('SELECT mailbox FROM catchalls WHERE domain = ?'),
      catchalls: engine.prepare('SELECT domain, mailbox FROM catchalls ORDER BY domain'),
      deleteCatchall: engine.prepare('DELETE FROM catchalls WHERE domain = ?'),
      audit: engine.prepare('INSERT OR REPLACE INTO audit_leaves (log_index, rule, action, message_hash, leaf_hash, at_ms) VALUES (?,?,?,?,?,?)'),
      audits: engine.prepare('SELECT * FROM audit_leaves WHERE at_ms >= ? ORDER BY log_index LIMIT ?'),
    };
  }

  /**
   * The rules in the order they were added. Every message asks: the list is read and parsed again when
   * older than RULES_REREAD_MS (the CLI changes rules beside a running node; as with routes, a change
   * applies within that), not once per message.
   */
  list(): Rule[] {
    const now = performance.now();
    if (this.cached && now - this.cached.at < RULES_REREAD_MS) return this.cached.rules;
    const stored = this.stmts.list.all().map((r) => ({ name: r.name, ...(JSON.parse(r.rule) as Omit<Rule, 'name'>) }));
    // A stored rule under a configured rule's name (added before the file named it) gives way to it.
    const rules = [...this.configured, ...stored.filter((r) => !this.configured.some((c) => c.name === r.name))];
    this.cached = { rules, at: now };
    return rules;
  }

  private cached?: { rules: Rule[]; at: number };
  private configured: Rule[] = [];

  /** The rules of config.yaml (`rules`): listed first, before the stored ones; the CLI cannot change them. */
  configure(rules: Rule[]): void {
    this.configured = rules;
    this.cached = undefined;
  }

  /** Whether a rule of that name comes from config.yaml. */
  isConfigured(name: string): boolean {
    return this.configured.some((r) => r.name === name);
  }

  set(rule: Rule): Promise<void> {
    return this.engine.write(() => {
      this.stmts.upsert.run(rule.name, JSON.stringify({ when: rule.when, then: rule.then }), Date.now());
      this.cached = undefined;
    });
  }

  async remove(name: string): Promise<boolean> {
    let removed = false;
    await this.engine.write(() => {
      removed = Number(this.stmts.delete.run(name).changes) > 0;
      this.cached = undefined;
    });
    return removed;
  }

  /** Keeps one delivery back (inside the acceptance write). */
  hold(d: Omit<HeldDelivery, 'state' | 'heldMs'>, nowMs: number): boolean {
    return Number(this.stmts.hold.run(d.messageId, d.mailbox, d.rule, d.envelope, d.sender.address, d.sender.domain, d.logIndex, d.messageHash, nowMs, d.transport).changes) > 0;
  }

  held(): HeldDelivery[] {
    return this.stmts.heldList.all().map(toHeld);
  }

  heldOf(messageId: Uint8Array): HeldDelivery[] {
    return this.stmts.heldOf.all(messageId).map(toHeld);
  }

  /** Asks for a held message to be released or dropped (the node carries it out); resolves with how many deliveries. */
  async ask(messageId: Uint8Array, state: 'release' | 'expire'): Promise<number> {
    let n = 0;
    await this.engine.write(() => { n = Number(this.stmts.setState.run(state, messageId).changes); });
    return n;
  }

  /** Held deliveries whose release or expiry was asked for, oldest first (at most 100). */
  asked(): HeldDelivery[] {
    return this.stmts.heldAsked.all().map(toHeld);
  }

  /** Forgets one held delivery (inside a write: released into the mailbox, or dropped). */
  dropHeld(messageId: Uint8Array, mailbox: string): void {
    this.stmts.deleteHeld.run(messageId, mailbox);
  }

  /** Whether a rule held this recipient of the message (held still, or released): no rule holds it twice. */
  everHeld(messageId: Uint8Array, recipient: string): boolean {
    return this.stmts.heldFor.get(messageId, recipient) !== undefined;
  }

  /** Marks a held queued recipient given back to the queue (inside a write): no rule holds it again. */
  markReleased(messageId: Uint8Array, recipient: string): void {
    this.stmts.markReleased.run(messageId, recipient);
  }

  /**
   * Housekeeping: the marks of released recipients whose queue record is gone (at most `limit`), and
   * labels older than `taggedBeforeMs` of messages no mailbox, hold or queue still has. Resolves with
   * how many rows went.
   */
  async prune(taggedBeforeMs: number, limit = 1000): Promise<number> {
    let n = 0;
    await this.engine.write(() => {
      n = Number(this.stmts.pruneReleased.run(limit).changes);
      if (this.stmts.anyOldTag.get(taggedBeforeMs)) n += Number(this.stmts.pruneTags.run(taggedBeforeMs).changes);
    });
    return n;
  }

  /** Labels a message (inside the acceptance write). */
  tag(messageId: Uint8Array, tag: string, rule: string, nowMs: number): void {
    this.stmts.tag.run(messageId, tag, rule, nowMs);
    this.labelled = { any: true, at: performance.now() }; // deliveries of this node look labels up from now on
  }

  /**
   * Whether any message carries a label (re-read at most every RULES_REREAD_MS): a delivery looks up its
   * labels only then, so a node without tag rules pays nothing per delivery.
   */
  anyLabels(): boolean {
    const now = performance.now();
    if (this.labelled && now - this.labelled.at < RULES_REREAD_MS) return this.labelled.any;
    const any = this.stmts.anyTag.get() !== undefined;
    this.labelled = { any, at: now };
    return any;
  }

  private labelled?: { any: boolean; at: number };

  tagsOf(messageId: Uint8Array): { tag: string; rule: string }[] {
    return this.stmts.tagsOf.all(messageId);
  }

  /** A message's labels, as an app or a hook sees them: no lookup at all while nothing was ever tagged. */
  labelsOf(messageId: Uint8Array): string[] {
    return this.anyLabels() ? this.tagsOf(messageId).map((t) => t.tag) : [];
  }

  setCatchall(domain: string, mailbox: string): Promise<void> {
    return this.engine.write(() => { this.stmts.setCatchall.run(domain.toLowerCase(), mailbox.toLowerCase(), Date.now()); });
  }

  async removeCatchall(domain: string): Promise<boolean> {
    let removed = false;
    await this.engine.write(() => { removed = Number(this.stmts.deleteCatchall.run(domain.toLowerCase()).changes) > 0; });
    return removed;
  }

  /** The catch-all mailbox of a domain, read on every message for an address without a mailbox. */
  catchallOf(domain: string): string | undefined {
    return this.stmts.catchall.get(domain.toLowerCase())?.mailbox;
  }

  catchalls(): { domain: string; mailbox: string }[] {
    return this.stmts.catchalls.all();
  }

  recordAudit(a: AuditRecord): Promise<void> {
    return this.engine.write(() => { this.stmts.audit.run(a.logIndex, a.rule, a.action, a.messageHash, a.leafHash, a.atMs); });
  }

  audits(sinceMs: number, limit = 10_000): AuditRecord[] {
    return this.stmts.audits.all(sinceMs, limit).map((r) => ({
      logIndex: Number(r.log_index), rule: r.rule, action: r.action, messageHash: r.message_hash, leafHash: r.leaf_hash, atMs: Number(r.at_ms),
    }));
  }
}

function toHeld(r: HeldRow): HeldDelivery {
  return {
    messageId: r.message_id, mailbox: r.mailbox, rule: r.rule, envelope: r.envelope, sender: { address: r.sender, domain: r.sender_domain },
    logIndex: r.log_index === null ? null : Number(r.log_index), messageHash: r.message_hash, heldMs: Number(r.held_ms), state: r.state, transport: r.transport,
  };
}
