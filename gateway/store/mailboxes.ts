// The mailboxes this node hosts (table mailboxes). Every message looks its recipients up, every call
// authenticates by token: found records are cached briefly. The CLI changes mailboxes from its own
// process, so misses are not cached and a cached record lives MAILBOX_REREAD_MS at most.
import { GatewayError } from '../core/index.ts';
import type { StoreEngine, Statement } from './engine.ts';

export interface MailboxRecord {
  address: string;
  did: string;
  signingKeyId: string;
  signingPublicKey: Uint8Array;
  agreementKeyId: string;
  agreementPublicKey: Uint8Array;
  tokenSha256: string;
  documentJson: string;
  createdMs: number;
}

interface MailboxRow {
  address: string; did: string; signing_key_id: string; signing_public_key: Uint8Array; agreement_key_id: string;
  agreement_public_key: Uint8Array; token_sha256: string; document_json: string; created_ms: number;
}
type CachedMailbox = { mailbox: MailboxRecord; until: number };

const MAILBOX_CACHE_MAX = 10_000;
/** How long a running node may still use a mailbox record it read (the CLI changes them from its own process). */
export const MAILBOX_REREAD_MS = 10_000;

export class MailboxRepository {
  private readonly cache = new Map<string, CachedMailbox>();
  private readonly tokenCache = new Map<string, CachedMailbox>();
  private readonly stmts: {
    insert: Statement<[string, string, string, Uint8Array, string, Uint8Array, string, string, number]>;
    setToken: Statement<[string, string]>;
    byAddress: Statement<[string], MailboxRow>;
    byToken: Statement<[string], MailboxRow>;
    byDid: Statement<[string], MailboxRow>;
    count: Statement<[], { n: number }>;
    list: Statement<[], MailboxRow>;
    delete: Statement<[string]>;
  };

  constructor(engine: StoreEngine) {
    this.stmts = {
      insert: engine.prepare(`INSERT INTO mailboxes VALUES (?,?,?,?,?,?,?,?,?)`),
      setToken: engine.prepare(`UPDATE mailboxes SET token_sha256 = ? WHERE address = ?`),
      byAddress: engine.prepare(`SELECT * FROM mailboxes WHERE address = ?`),
      byToken: engine.prepare(`SELECT * FROM mailboxes WHERE token_sha256 = ?`),
      byDid: engine.prepare(`SELECT * FROM mailboxes WHERE did = ?`),
      count: engine.prepare(`SELECT count(*) AS n FROM mailboxes`),
      list: engine.prepare(`SELECT * FROM mailboxes ORDER BY address`),
      delete: engine.prepare(`DELETE FROM mailboxes WHERE address = ?`),
    };
  }

  list(): MailboxRecord[] {
    return this.stmts.list.all().map(toMailbox);
  }

  /** Replaces a mailbox's API token (its hash); a running node stops accepting the old one within MAILBOX_REREAD_MS. */
  setToken(address: string, tokenSha256: string): void {
    const changed = Number(this.stmts.setToken.run(tokenSha256, address.toLowerCase()).changes);
    if (changed === 0) throw new GatewayError('NOT_FOUND', `no mailbox ${address} on this node`);
  }

  add(m: MailboxRecord): void {
    if (this.byAddress(m.address)) throw new GatewayError('MAILBOX_EXISTS', `mailbox ${m.address} already exists`);
    this.stmts.insert.run(m.address, m.did, m.signingKeyId, m.signingPublicKey, m.agreementKeyId,
      m.agreementPublicKey, m.tokenSha256, m.documentJson, m.createdMs);
  }

  /** A mailbox by address, reused for MAILBOX_REREAD_MS: a removed mailbox stops receiving within that time. */
  byAddress(address: string): MailboxRecord | undefined {
    return this.cached(this.cache, address.toLowerCase(), this.stmts.byAddress);
  }

  /** The mailbox a token hash belongs to, reused for MAILBOX_REREAD_MS: a removed token stops working within that time. */
  byToken(tokenSha256: string): MailboxRecord | undefined {
    return this.cached(this.tokenCache, tokenSha256, this.stmts.byToken);
  }

  byDid(did: string): MailboxRecord | undefined {
    const row = this.stmts.byDid.get(did);
    return row && toMailbox(row);
  }

  count(): number {
    return Number(this.stmts.count.get()!.n);
  }

  /** True when the store holds a record for this (lower-case) address, read now (no cache). */
  exists(address: string): boolean {
    return this.stmts.byAddress.get(address) !== undefined;
  }

  /** Deletes the record of a (lower-case) address; see Store.removeMailbox. */
  deleteRecord(address: string): void {
    this.stmts.delete.run(address);
  }

  /** Drops the cached record of a (lower-case) address this process removed. */
  forget(address: string): void {
    this.cache.delete(address);
  }

  /** A mailbox found by `lookup`, reused for MAILBOX_REREAD_MS; misses are not cached. */
  private cached(cache: Map<string, CachedMailbox>, key: string, lookup: Statement<[string], MailboxRow>): MailboxRecord | undefined {
    const now = Date.now();
    const held = cache.get(key);
    if (held && held.until > now) return held.mailbox;
    const row = lookup.get(key);
    cache.delete(key);
    if (!row) return undefined;
    const found = toMailbox(row);
    if (cache.size >= MAILBOX_CACHE_MAX) cache.delete(cache.keys().next().value!); // the oldest goes first
    cache.set(key, { mailbox: found, until: now + MAILBOX_REREAD_MS });
    return found;
  }
}

function toMailbox(r: MailboxRow): MailboxRecord {
  return {
    address: r.address,
    did: r.did,
    signingKeyId: r.signing_key_id,
    signingPublicKey: r.signing_public_key,
    agreementKeyId: r.agreement_key_id,
    agreementPublicKey: r.agreement_public_key,
    tokenSha256: r.token_sha256,
    documentJson: r.document_json,
    createdMs: Number(r.created_ms),
  };
}
