// Static routes (table routes): the DID and endpoint an operator set for a domain.
import type { StoreEngine, Statement } from './engine.ts';

export interface RouteRecord { domain: string; did: string; endpoint: string }

/**
 * A static route row read from the store is reused this long. The CLI changes routes from its own
 * process, so the node cannot be told; a node under load looks a route up two or three times per
 * message, and one indexed read through node:sqlite costs 7-20 us (3-4% of the sender's main thread).
 * Changes made through this store apply at once.
 */
export const ROUTE_REREAD_MS = 200;
const MAX_ROUTE_ROWS = 1024;

export class RouteRepository {
  private readonly engine: StoreEngine;
  private readonly rows = new Map<string, { row: RouteRecord | undefined; at: number }>();
  private readonly stmts: {
    upsert: Statement<[string, string, string]>;
    list: Statement<[], RouteRecord>;
    for: Statement<[string], RouteRecord>;
    delete: Statement<[string]>;
  };

  constructor(engine: StoreEngine) {
    this.engine = engine;
    this.stmts = {
      upsert: engine.prepare(`INSERT INTO routes VALUES (?,?,?) ON CONFLICT(domain) DO UPDATE SET did = excluded.did, endpoint = excluded.endpoint`),
      list: engine.prepare(`SELECT * FROM routes ORDER BY domain`),
      for: engine.prepare(`SELECT * FROM routes WHERE domain = ?`),
      delete: engine.prepare(`DELETE FROM routes WHERE domain = ?`),
    };
  }

  set(route: RouteRecord): Promise<void> {
    return this.engine.write(() => {
      this.stmts.upsert.run(route.domain, route.did, route.endpoint);
      this.rows.delete(route.domain);
    });
  }

  list(): RouteRecord[] {
    return this.stmts.list.all();
  }

  /**
   * The static route of one domain (lower case). The CLI may change routes while the node runs: a row
   * is re-read when it is older than ROUTE_REREAD_MS.
   */
  for(domain: string): RouteRecord | undefined {
    const now = performance.now();
    const held = this.rows.get(domain);
    if (held && now - held.at < ROUTE_REREAD_MS) return held.row;
    const row = this.stmts.for.get(domain);
    if (this.rows.size >= MAX_ROUTE_ROWS) this.rows.clear();
    this.rows.set(domain, { row, at: now });
    return row;
  }

  delete(domain: string): Promise<void> {
    return this.engine.write(() => {
      this.stmts.delete.run(domain);
      this.rows.delete(domain);
    });
  }
}
