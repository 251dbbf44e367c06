// Messages an SMTP client sent with REQUIRETLS (RFC 8689, table smtp_require_tls): the outbound bridge
// may pass them on only over verified TLS to a server that offers REQUIRETLS too.
import type { StoreEngine, Statement } from './engine.ts';

export class RequireTlsRepository {
  private readonly engine: StoreEngine;
  private readonly stmts: {
    insert: Statement<[Uint8Array, number]>;
    has: Statement<[Uint8Array], { one: number }>;
    prune: Statement<[number]>;
  };

  constructor(engine: StoreEngine) {
    this.engine = engine;
    this.stmts = {
      insert: engine.prepare('INSERT OR IGNORE INTO smtp_require_tls (message_id, received_ms) VALUES (?,?)'),
      has: engine.prepare('SELECT 1 AS one FROM smtp_require_tls WHERE message_id = ?'),
      prune: engine.prepare('DELETE FROM smtp_require_tls WHERE received_ms < ?'),
    };
  }

  /** Records the request in the commit of the writes issued in the same turn (the message's own). */
  record(messageId: Uint8Array, receivedMs: number): Promise<void> {
    return this.engine.write(() => { this.stmts.insert.run(messageId, receivedMs); });
  }

  has(messageId: Uint8Array): boolean {
    return this.stmts.has.get(messageId) !== undefined;
  }

  async prune(beforeMs: number): Promise<number> {
    let removed = 0;
    await this.engine.write(() => { removed = Number(this.stmts.prune.run(beforeMs).changes); });
    return removed;
  }
}
