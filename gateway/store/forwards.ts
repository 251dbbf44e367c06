// Forwarding (tables forwards and smtp_forwarded): addresses of the node whose mail goes on to an address
// elsewhere over SMTP, and the messages the node sends on as it received them (forwards, and bounces
// returned to an SRS address), with the envelope sender they leave with.
import type { StoreEngine, Statement } from './engine.ts';

export interface ForwardRecord { address: string; target: string; keep: boolean; createdMs: number }

interface ForwardRow { address: string; target: string; keep: number; created_ms: number }

export class ForwardRepository {
  private readonly engine: StoreEngine;
  private readonly stmts: {
    upsert: Statement<[string, string, number, number]>;
    get: Statement<[string], ForwardRow>;
    list: Statement<[], ForwardRow>;
    delete: Statement<[string]>;
    recordSent: Statement<[Uint8Array, string, number]>;
    mailFrom: Statement<[Uint8Array], { mail_from: string }>;
    prune: Statement<[number]>;
  };

  constructor(engine: StoreEngine) {
    this.engine = engine;
    this.stmts = {
      upsert: engine.prepare(`INSERT INTO forwards VALUES (?,?,?,?) ON CONFLICT(address) DO UPDATE SET target = excluded.target, keep = excluded.keep`),
      get: engine.prepare('SELECT * FROM forwards WHERE address = ?'),
      list: engine.prepare('SELECT * FROM forwards ORDER BY address'),
      delete: engine.prepare('DELETE FROM forwards WHERE address = ?'),
      recordSent: engine.prepare('INSERT OR REPLACE INTO smtp_forwarded VALUES (?,?,?)'),
      mailFrom: engine.prepare('SELECT mail_from FROM smtp_forwarded WHERE message_id = ?'),
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

  /** Records, in the commit of the message itself, that it is sent on as received with this envelope sender. */
  recordForwarded(messageId: Uint8Array, mailFrom: string, receivedMs: number): Promise<void> {
    return this.engine.write(() => { this.stmts.recordSent.run(messageId, mailFrom, receivedMs); });
  }

  /** The envelope sender of a message sent on as received; undefined for any other message. */
  forwardedMailFrom(messageId: Uint8Array): string | undefined {
    return this.stmts.mailFrom.get(messageId)?.mail_from;
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
