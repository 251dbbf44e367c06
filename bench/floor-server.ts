// The "floor" for bench/mailbox.ts: a grpc-js server (TLS, the node's HTTP/2 windows) that does only the
// work issue 2 makes every accepted message cost, and nothing else, with the node's own mechanisms for
// both: one Ed25519 verification (node:crypto through identity's SignatureVerifierPool: a turn's
// signatures as one batch on a worker thread) and a durable store (SQLite WAL insert, group commit per
// event-loop turn, fdatasync of the WAL off the event loop, checkpoints on a worker: gateway/wal-sync.ts).
// No envelope parsing, replay set, transparency log, routing or mailbox lookups.
// Its rate against the raw server shows how much of the node's gap to the raw ceiling any server doing
// that work would have on this machine. Run as its own process: floor-server.ts CERT KEY PUBKEY_HEX DIR.
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import * as grpc from '@grpc/grpc-js';
import { SignatureVerifierPool } from '../identity/index.ts';
import { FALLBACK_AUTOCHECKPOINT_PAGES, WalCheckpointer, WalSyncer } from '../gateway/wal-sync.ts';
import { serveRaw } from './raw-serve.ts';

const [certFile, keyFile, publicKeyHex, dir] = process.argv.slice(2) as [string, string, string, string];
const publicKey = Buffer.from(publicKeyHex, 'hex');
const verifier = new SignatureVerifierPool();
verifier.start();

const file = join(dir, 'floor.db');
const db = new DatabaseSync(file);
db.exec(`PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=${FALLBACK_AUTOCHECKPOINT_PAGES};`);
db.exec('CREATE TABLE IF NOT EXISTS blobs (seq INTEGER PRIMARY KEY, ref INTEGER NOT NULL, data BLOB NOT NULL)');
const insert = db.prepare('INSERT INTO blobs (ref, data) VALUES (?, ?)');
const syncer = new WalSyncer(file);
const checkpointer = new WalCheckpointer(file);

interface Pending { ref: number; data: Uint8Array; done: (err: Error | null) => void }
let batch: Pending[] = [];

/** Stores every message received in this event-loop turn in one commit, answers them once it is synced. */
function commitBatch(): void {
  const items = batch;
  batch = [];
  try {
    db.exec('BEGIN');
    for (const p of items) insert.run(p.ref, p.data);
    db.exec('COMMIT');
  } catch (err) {
    if (db.isTransaction) db.exec('ROLLBACK');
    for (const p of items) p.done(err as Error);
    return;
  }
  checkpointer.committed();
  syncer.sync().then(() => { for (const p of items) p.done(null); }, (err: Error) => { for (const p of items) p.done(err); });
}

function accept(blob: { data: Buffer; ref: number; sig: Buffer }, done: (err: Error | null) => void): void {
  verifier.verify(publicKey, blob.data, blob.sig).then((ok) => {
    if (!ok) { done(new Error('bad signature')); return; }
    if (batch.length === 0) setImmediate(commitBatch);
    batch.push({ ref: blob.ref, data: blob.data, done });
  }, done);
}

serveRaw(certFile, keyFile, {
  Unary: (call: any, cb: any) => accept(call.request, (err) => (err ? cb({ code: grpc.status.INTERNAL, details: err.message }) : cb(null, { ref: call.request.ref }))),
  Bidi: (call: any) => {
    call.on('data', (b: any) => accept(b, (err) => (err ? call.destroy(err) : call.write({ ref: b.ref }))));
    call.on('end', () => call.end());
  },
}, () => Promise.all([verifier.stop(), syncer.close(), checkpointer.close()]).finally(() => db.close()));
