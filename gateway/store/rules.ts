// Compliance rules (tables rules, held_deliveries, message_tags, catchalls, audit_leaves): the rules the
// operator set, deliveries a rule holds back until they are released, labels rules put on messages,
// catch-all mailboxes of the node's domains, and the audit leaves the node appended for what rules did.
// The CLI writes rules, catch-alls and release or expiry requests beside a running node, which reads
// them on every message (rules, catch-alls) or every second (release and expiry, carried out by the node).
import type { StoreEngine, Statement } from './engine.ts';
import type { Rule } from '../rules/index.ts';


/** A rule list read from the store is reused this long (as ROUTE_REREAD_MS for routes). */
export const RULES_REREAD_MS = 200;
export type HeldState = 'held' | 'release' | 'expire';

export interface HeldDelivery {
  messageId: Uint8Array;
  mailbox: string;
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
  log_index: number | null; message_hash: Uint8Array; held_ms: number; state: HeldState;
}
interface AuditRow { log_index: number; rule: string; action: string; message_hash: Uint8Array; leaf_hash: Uint8Array; at_ms: number }

export class RuleRepository {
  private readonly engine: StoreEngine;
  private readonly stmts: {
    upsert: Statement<[string, string, number]>;
    list: Statement<[], { name: string; rule: string }>;
    delete: Statement<[string]>;
    hold: Statement<[Uint8Array, string, string, Uint8Array, string, string, number | null, Uint8Array, number]>;
    heldList: Statement<[], HeldRow>;
    heldOf: Statement<[Uint8Array], HeldRow>;
    heldAsked: Statement<[], HeldRow>;
    setState: Statement<[HeldState, Uint8Array]>;
    deleteHeld: Statement<[Uint8Array, string]>;
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
      hold: engine.prepare(`INSERT OR IGNORE INTO held_deliveries (message_id, mailbox, rule, envelope, sender, sender_domain, log_index, message_hash, held_ms, state)
                            VALUES (?,?,?,?,?,?,?,?,?,'held')`),
      heldList: engine.prepare('SELECT * FROM held_deliveries ORDER BY held_ms, mailbox'),
      heldOf: engine.prepare('SELECT * FROM held_deliveries WHERE message_id = ?'),
      heldAsked: engine.prepare(`SELECT * FROM held_deliveries WHERE state != 'held' ORDER BY held_ms LIMIT 100`),
      setState: engine.prepare(`UPDATE held_deliveries SET state = ? WHERE message_id = ? AND state = 'held'`),
      deleteHeld: engine.prepare('DELETE FROM held_deliveries WHERE message_id = ? AND mailbox = ?'),
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
    const rules = this.stmts.list.all().map((r) => ({ name: r.name, ...(JSON.parse(r.rule) as Omit<Rule, 'name'>) }));
    this.cached = { rules, at: now };
    return rules;
  }

  private cached?: { rules: Rule[]; at: number };

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
  hold(d: Omit<HeldDelivery, 'state' | 'heldMs'>, nowMs: number): void {
    this.stmts.hold.run(d.messageId, d.mailbox, d.rule, d.envelope, d.sender.address, d.sender.domain, d.logIndex, d.messageHash, nowMs);
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
    logIndex: r.log_index === null ? null : Number(r.log_index), messageHash: r.message_hash, heldMs: Number(r.held_ms), state: r.state,
  };
}
