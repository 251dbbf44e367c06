// The witness role in-process: trust on first use, consistency with the last checkpoint seen,
// CONFLICT for a stale old_size, signatures by the log DID's key, the log limit, durability.
import { describe, it, expect, afterAll } from 'vitest';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { tempDir } from '../helpers.ts';
import { DatabaseSync } from 'node:sqlite';
import { Store } from '../../gateway/store/index.ts';
import { Witness, type DomainRoute } from '../../gateway/federation/index.ts';
import { generateIdentity } from '../../gateway/datadir/index.ts';
import { createDidResolver } from '../../identity/index.ts';
import { TransparencyLog, encodeLeaf, verifyCosignature, parseNote } from '../../ledger/index.ts';

const fromB64u = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));
const dir = tempDir();
afterAll(() => dir.cleanup());

function identity(domain: string, method: 'key' | 'web' = 'key') {
  const id = generateIdentity({ method, domain });
  return { did: id.did, document: id.document, key: { privateKey: fromB64u(id.signing.privateKey), publicKey: fromB64u(id.signing.publicKey) } };
}

function openLog(name: string, key: { privateKey: Uint8Array; publicKey: Uint8Array }, origin = 'log.test/aftersmtp') {
  return TransparencyLog.open(join(dir.path, `${name}-${Math.random().toString(16).slice(2)}.db`), { origin, signingKey: key });
}
const grow = (log: TransparencyLog, n: number) => log.append(Array.from({ length: n }, () => encodeLeaf({ version: 1, type: 'message', messageHash: randomBytes(32) })));

/**
 * A witness for w.test whose routes are `routes` (domain -> DID; `configured: false` stands for a
 * route found through DNS, which only authenticated callers get).
 */
function witnessAt(file: string, routes: Record<string, DomainRoute>, maxLogs = 10) {
  const storage = new Store(file);
  const me = identity('w.test');
  // did:web documents are registered (no HTTPS here); did:key ones derive.
  const resolver = createDidResolver({ allowFetch: false });
  const witness = new Witness({
    store: storage.witness, resolver, nodeDid: me.did, signingKey: me.key, maxLogs,
    ownOrigin: 'w.test/aftersmtp', localDomains: ['w.test'],
    routeOf: async (domain, { discover }) => {
      const route = routes[domain];
      return route && (route.configured || discover) ? route : undefined;
    },
    log: pino({ level: 'silent' }),
  });
  return { storage, witness, me, resolver };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as { code: string }).code;
  }
  return 'OK';
}

describe('witness', () => {
  it('cosigns a first checkpoint, then only consistent growth; the cosignature verifies with the witness key', async () => {
    const logId = identity('log.test');
    const { witness, me, storage } = witnessAt(join(dir.path, 'w1.db'), { 'log.test': { did: logId.did, configured: true } });
    const log = openLog('honest', logId.key);
    grow(log, 5);
    const cp5 = log.signCheckpoint({ size: 5 });
    const line = await witness.cosign({ note: cp5.note, oldSize: 0, consistency: [], logDid: logId.did });
    expect(verifyCosignature(me.key.publicKey, me.did, parseNote(cp5.note).text, line).timestamp).toBeGreaterThan(0);
    // Growth with a proof from the size it saw: cosigned. Without the proof: a split view.
    grow(log, 7);
    const cp12 = log.signCheckpoint({ size: 12 });
    expect(await codeOf(witness.cosign({ note: cp12.note, oldSize: 5, consistency: log.consistencyProof(5, 12), logDid: logId.did }))).toBe('OK');
    grow(log, 1);
    const cp13 = log.signCheckpoint({ size: 13 });
    expect(await codeOf(witness.cosign({ note: cp13.note, oldSize: 12, consistency: log.consistencyProof(5, 12), logDid: logId.did }))).toBe('SPLIT_VIEW');
    // The same checkpoint again is fine (idempotent); an older one is a CONFLICT naming the size seen.
    expect(await codeOf(witness.cosign({ note: cp12.note, oldSize: 12, consistency: [], logDid: logId.did }))).toBe('OK');
    const stale = await witness.cosign({ note: cp5.note, oldSize: 12, consistency: [], logDid: logId.did }).catch((e: { code: string; knownSize: number }) => e);
    expect(stale).toMatchObject({ code: 'CONFLICT', knownSize: 12 });
    expect(witness.refused).toMatchObject({ SPLIT_VIEW: 1, CONFLICT: 1 });
    log.close();
    await storage.close();
  });

  it('refuses a first checkpoint with old_size > 0, a note not signed by the DID\'s key, garbage, and logs beyond the limit', async () => {
    const logId = identity('log.test');
    const routes: Record<string, DomainRoute> = { 'log.test': { did: logId.did, configured: true } };
    const { witness, storage, resolver } = witnessAt(join(dir.path, 'w2.db'), routes, 1);
    const log = openLog('l', logId.key);
    grow(log, 3);
    const cp = log.signCheckpoint({ size: 3 });
    expect(await codeOf(witness.cosign({ note: cp.note, oldSize: 2, consistency: [], logDid: logId.did }))).toBe('CONFLICT');
    // A DID the route names, but whose keys did not sign the note.
    const impostor = identity('log.test');
    routes['log.test'] = { did: impostor.did, configured: true };
    expect(await codeOf(witness.cosign({ note: cp.note, oldSize: 0, consistency: [], logDid: impostor.did }))).toBe('BAD_SIGNATURE');
    routes['log.test'] = { did: logId.did, configured: true };
    expect(await codeOf(witness.cosign({ note: 'not a note', oldSize: 0, consistency: [], logDid: logId.did }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(witness.cosign({ note: cp.note, oldSize: 0, consistency: [], logDid: 'mailto:x' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(witness.cosign({ note: cp.note, oldSize: 0, consistency: [], logDid: logId.did }, { authenticatedKey: impostor.key.publicKey }))).toBe('PEER_REJECTED');
    expect(await codeOf(witness.cosign({ note: cp.note, oldSize: 0, consistency: [], logDid: logId.did }))).toBe('OK');
    // Without a configured route, did:web:<domain> speaks for its domain over the peer transport; beyond
    // maxLogs such a log is refused, a configured peer's log never is.
    const second = identity('other.test', 'web');
    resolver.register(second.document);
    const log2 = openLog('l2', second.key, 'other.test/aftersmtp');
    grow(log2, 1);
    const cp2 = log2.signCheckpoint({ size: 1 });
    expect(await codeOf(witness.cosign({ note: cp2.note, oldSize: 0, consistency: [], logDid: second.did }))).toBe('PEER_REJECTED');
    expect(await codeOf(witness.cosign({ note: cp2.note, oldSize: 0, consistency: [], logDid: second.did }, { authenticatedKey: second.key.publicKey }))).toBe('LIMIT');
    // A did:key speaks for a domain only through a configured route, never a discovered one.
    const keyed = identity('keyed.test');
    routes['keyed.test'] = { did: keyed.did, configured: false };
    const logK = openLog('lk', keyed.key, 'keyed.test/aftersmtp');
    grow(logK, 1);
    expect(await codeOf(witness.cosign({ note: logK.signCheckpoint({ size: 1 }).note, oldSize: 0, consistency: [], logDid: keyed.did }, { authenticatedKey: keyed.key.publicKey }))).toBe('PEER_REJECTED');
    logK.close();
    const third = identity('third.test');
    routes['third.test'] = { did: third.did, configured: true };
    const log3 = openLog('l3', third.key, 'third.test/aftersmtp');
    grow(log3, 1);
    expect(await codeOf(witness.cosign({ note: log3.signCheckpoint({ size: 1 }).note, oldSize: 0, consistency: [], logDid: third.did }))).toBe('OK');
    log.close();
    log2.close();
    log3.close();
    await storage.close();
  });

  it('remembers the last checkpoint and the split views across a reopen', async () => {
    const file = join(dir.path, 'w3.db');
    const logId = identity('log.test');
    const routes = { 'log.test': { did: logId.did, configured: true } };
    const log = openLog('l3', logId.key);
    grow(log, 4);
    const cp4 = log.signCheckpoint({ size: 4 });
    {
      const { witness, storage } = witnessAt(file, routes);
      await witness.cosign({ note: cp4.note, oldSize: 0, consistency: [], logDid: logId.did });
      const fork = openLog('fork', logId.key);
      grow(fork, 4);
      expect(await codeOf(witness.cosign({ note: fork.signCheckpoint({ size: 4 }).note, oldSize: 4, consistency: [], logDid: logId.did }))).toBe('SPLIT_VIEW');
      fork.close();
      await storage.close();
    }
    const { witness, storage } = witnessAt(file, routes);
    expect(witness.splitViewCount).toBe(1);
    grow(log, 2);
    const cp6 = log.signCheckpoint({ size: 6 });
    // It still expects old_size 4 (it did not forget), and cosigns the honest continuation.
    expect(await codeOf(witness.cosign({ note: cp6.note, oldSize: 0, consistency: [], logDid: logId.did }))).toBe('CONFLICT');
    expect(await codeOf(witness.cosign({ note: cp6.note, oldSize: 4, consistency: log.consistencyProof(4, 6), logDid: logId.did }))).toBe('OK');
    log.close();
    await storage.close();
  });
  it('upgrades state kept per (DID, origin) to one row per origin, learns the log key from it, and refuses a second key', async () => {
    const file = join(dir.path, 'w4.db');
    const origin = 'log.test/aftersmtp';
    const logId = identity('log.test');
    const other = identity('log.test');
    const log = openLog('l4', logId.key);
    grow(log, 4);
    const cp4 = log.signCheckpoint({ size: 4 });
    const rival = openLog('r4', other.key);
    grow(rival, 2);
    const rival2 = rival.signCheckpoint({ size: 2 });
    {
      // The layout before witness state was keyed by origin: one origin could have a row per DID, in a
      // store of layout 4 (whose witness tables the node created on start).
      await new Store(file).close();
      const db = new DatabaseSync(file);
      db.exec(`DROP TABLE witnessed_logs; CREATE TABLE witnessed_logs (
        log_did TEXT NOT NULL, origin TEXT NOT NULL, size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL,
        updated_ms INTEGER NOT NULL, PRIMARY KEY (log_did, origin)); PRAGMA user_version=4;`);
      const insert = db.prepare('INSERT INTO witnessed_logs VALUES (?,?,?,?,?,?)');
      insert.run(other.did, origin, 2, rival2.root, rival2.note, 1);
      insert.run(logId.did, origin, 4, cp4.root, cp4.note, 2);
      db.close();
    }
    const routes: Record<string, DomainRoute> = { 'log.test': { did: logId.did, configured: true } };
    const { witness, storage } = witnessAt(file, routes);
    const store = storage.witness;
    expect(store.countWitnessedLogs()).toBe(1);
    expect(store.witnessedLog(origin)).toMatchObject({ logDid: logId.did, size: 4, logKey: undefined });
    // The next checkpoint by the key that signed the kept one is cosigned, and that key is remembered.
    grow(log, 2);
    const cp6 = log.signCheckpoint({ size: 6 });
    expect(await codeOf(witness.cosign({ note: cp6.note, oldSize: 4, consistency: log.consistencyProof(4, 6), logDid: logId.did }))).toBe('OK');
    expect(store.witnessedLog(origin)!.logKey).toEqual(logId.key.publicKey);
    // Even when the route comes to name another DID, its other key does not take the origin over.
    routes['log.test'] = { did: other.did, configured: true };
    grow(rival, 5);
    const rival7 = rival.signCheckpoint({ size: 7 });
    expect(await codeOf(witness.cosign({ note: rival7.note, oldSize: 6, consistency: [], logDid: other.did }))).toBe('PEER_REJECTED');
    expect(witness.splitViewCount).toBe(1);
    expect(store.witnessedLog(origin)).toMatchObject({ size: 6, logKey: logId.key.publicKey });
    log.close();
    rival.close();
    await storage.close();
  });
});
