// Forwarding (tables forwards and smtp_forwarded): addresses of the node whose mail goes on to an address
// elsewhere over SMTP, and the messages the node sends as they are (forwards, bounces returned to an SRS
// address, its own reports), with the envelope sender they leave with.
import type { StoreEngine, Statement } from './engine.ts';

export interface ForwardRecord { address: string; target: string; keep: boolean; createdMs: number }

/** Mail the node sends over SMTP as it is: what it is, and the envelope sender it leaves with. */
export type SentAsIsKind = 'forward' | 'bounce' | 'report';
export interface SentAsIs { mailFrom: string; kind: SentAsIsKind }

interface ForwardRow { address: string; target: string; keep: number; created_ms: number }

export class ForwardRepository {
  private readonly engine: StoreEngine;
  private readonly stmts: {
    upsert: Statement<[string, string, number, number]>;
    get: Statement<[string], ForwardRow>;
    list: Statement<[], ForwardRow>;
    delete: Statement<[string]>;
    recordSent: Statement<[Uint8Array, string, SentAsIsKind, number]>;
    sentAsIs: Statement<[Uint8Array], { mail_from: string; kind: SentAsIsKind }>;
    prune: Statement<[number]>;
  };

  constructor(engine: StoreEngine) {
    this.engine = engine;
    this.stmts = {
      upsert: engine.prepare(`INSERT INTO forwards VALUES (?,?,?,?) ON CONFLICT(address) DO UPDATE SET target = excluded.target, keep = excluded.keep`),
      get: engine.prepare('SELECT * FROM forwards WHERE address = ?'),
      list: engine.prepare('SELECT * FROM forwards ORDER BY address'),
      delete: engine.prepare('DELETE FROM forwards WHERE address = ?'),
      recordSent: engine.prepare('INSERT OR REPLACE INTO smtp_forwarded (message_id, mail_from, kind, received_ms) VALUES (?,?,?,?)'),
      sentAsIs: engine.prepare('SELECT mail_from, kind FROM smtp_forwarded WHERE message_id = ?'),
      prune: engine.prepare('DELETE FROM smtp_forwarded WHERE received_ms < ?'),
    };
  }

  set(address: string, target: string, keep: boolean): Promise<void> {
    return this.engine.write(() => { this.stmts.upsert.run(address.toLowerCase(), target.toLowerCase(), keep ? 1 : 0, Date.now()); });
  }

  /** The forward of an address, read on every message (the CLI changes forwards beside a running node). */
  of(address: string): ForwardRecord | undefined {
    const row = this.stmts.get.get(address.toLowerCase());
    return row && toForward(row);
  }

  list(): ForwardRecord[] {
    return this.stmts.list.all().map(toForward);
  }

  /** Resolves true when there was a forward to remove. */
  async remove(address: string): Promise<boolean> {
    let removed = false;
    await this.engine.write(() => { removed = Number(this.stmts.delete.run(address.toLowerCase()).changes) > 0; });
    return removed;
  }

  /** Records, in the commit of the message itself, that it goes out as it is with this envelope sender. */
  recordSentAsIs(messageId: Uint8Array, sent: SentAsIs, receivedMs: number): Promise<void> {
    return this.engine.write(() => { this.stmts.recordSent.run(messageId, sent.mailFrom, sent.kind, receivedMs); });
  }

  /** How a message the node sends as it is goes out; undefined for any other message. */
  sentAsIs(messageId: Uint8Array): SentAsIs | undefined {
    const row = this.stmts.sentAsIs.get(messageId);
    return row && { mailFrom: row.mail_from, kind: row.kind };
  }

  async pruneForwarded(beforeMs: number): Promise<number> {
    let removed = 0;
    await this.engine.write(() => { removed = Number(this.stmts.prune.run(beforeMs).changes); });
    return removed;
  }
}

function toForward(r: ForwardRow): ForwardRecord {
  return { address: r.address, target: r.target, keep: Number(r.keep) === 1, createdMs: Number(r.created_ms) };
}
