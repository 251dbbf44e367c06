// What an SMTP client asked of delivery status notifications (RFC 3461) for a message the bridge took:
// RET and ENVID for the message, NOTIFY and ORCPT per recipient. Kept beside the message so that the
// notices sent later (delivered, delayed, failed) honour them; a message without DSN parameters has no rows.
import type { StoreEngine, Statement } from './engine.ts';

export interface DsnRecipient { address: string; notify: string[]; orcpt: string }
export interface DsnRequest { ret: '' | 'FULL' | 'HDRS'; envid: string; recipients: DsnRecipient[] }

interface DsnRow { recipient: string; notify: string; orcpt: string; ret: string; envid: string }

export class DsnRepository {
  private readonly engine: StoreEngine;
  private readonly stmts: {
    insert: Statement<[Uint8Array, string, string, string, string, string, number]>;
    forMessage: Statement<[Uint8Array], DsnRow>;
    prune: Statement<[number]>;
  };

  constructor(engine: StoreEngine) {
    this.engine = engine;
    this.stmts = {
      insert: engine.prepare('INSERT OR REPLACE INTO smtp_dsn (message_id, recipient, notify, orcpt, ret, envid, received_ms) VALUES (?,?,?,?,?,?,?)'),
      forMessage: engine.prepare('SELECT recipient, notify, orcpt, ret, envid FROM smtp_dsn WHERE message_id = ? ORDER BY recipient'),
      prune: engine.prepare('DELETE FROM smtp_dsn WHERE received_ms < ?'),
    };
  }

  /** Records the request in the commit of the writes issued in the same turn (the message's own, when called beside it). */
  record(messageId: Uint8Array, request: DsnRequest, receivedMs: number): Promise<void> {
    return this.engine.write(() => {
      for (const r of request.recipients) this.stmts.insert.run(messageId, r.address, r.notify.join(','), r.orcpt, request.ret, request.envid, receivedMs);
    });
  }

  forMessage(messageId: Uint8Array): DsnRequest | undefined {
    const rows = this.stmts.forMessage.all(messageId);
    if (rows.length === 0) return undefined;
    return {
      ret: rows[0]!.ret as DsnRequest['ret'],
      envid: rows[0]!.envid,
      recipients: rows.map((r) => ({ address: r.recipient, notify: r.notify ? r.notify.split(',') : [], orcpt: r.orcpt })),
    };
  }

  /** Drops requests older than `beforeMs` (their messages' notices are long due). */
  async prune(beforeMs: number): Promise<number> {
    let removed = 0;
    await this.engine.write(() => { removed = Number(this.stmts.prune.run(beforeMs).changes); });
    return removed;
  }
}
