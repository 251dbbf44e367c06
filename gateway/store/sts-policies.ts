// MTA-STS policies (RFC 8461 §5.1, table sts_policies): kept until their max_age runs out, so a policy
// keeps applying across restarts and while the policy host or DNS is down. The outbound bridge reads and
// writes them through its StsPolicyCache interface.
import type { CachedStsPolicy, StsPolicyCache } from '../../bridge/index.ts';
import type { StoreEngine, Statement } from './engine.ts';

interface PolicyRow { domain: string; id: string; policy: string; fetched_ms: number; expires_ms: number }

export class StsPolicyRepository implements StsPolicyCache {
  private readonly engine: StoreEngine;
  private readonly stmts: {
    get: Statement<[string], PolicyRow>;
    put: Statement<[string, string, string, number, number]>;
    list: Statement<[], PolicyRow>;
    prune: Statement<[number]>;
  };

  constructor(engine: StoreEngine) {
    this.engine = engine;
    this.stmts = {
      get: engine.prepare('SELECT * FROM sts_policies WHERE domain = ?'),
      put: engine.prepare(`INSERT INTO sts_policies VALUES (?,?,?,?,?) ON CONFLICT(domain) DO UPDATE SET
        id = excluded.id, policy = excluded.policy, fetched_ms = excluded.fetched_ms, expires_ms = excluded.expires_ms`),
      list: engine.prepare('SELECT * FROM sts_policies ORDER BY domain'),
      prune: engine.prepare('DELETE FROM sts_policies WHERE expires_ms < ?'),
    };
  }

  async get(domain: string): Promise<CachedStsPolicy | undefined> {
    const row = this.stmts.get.get(domain.toLowerCase());
    return row && toPolicy(row);
  }

  put(entry: CachedStsPolicy): Promise<void> {
    return this.engine.write(() => {
      this.stmts.put.run(entry.domain.toLowerCase(), entry.id, JSON.stringify(entry.policy), entry.fetchedMs, entry.expiresMs);
    });
  }

  list(): CachedStsPolicy[] {
    return this.stmts.list.all().map(toPolicy);
  }

  /** Drops policies whose max_age ran out before `beforeMs` (a new one is fetched when next needed). */
  async prune(beforeMs: number): Promise<number> {
    let removed = 0;
    await this.engine.write(() => { removed = Number(this.stmts.prune.run(beforeMs).changes); });
    return removed;
  }
}

function toPolicy(r: PolicyRow): CachedStsPolicy {
  return { domain: r.domain, id: r.id, policy: JSON.parse(r.policy) as CachedStsPolicy['policy'], fetchedMs: Number(r.fetched_ms), expiresMs: Number(r.expires_ms) };
}
