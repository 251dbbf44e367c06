// The "floor" for bench/suites/mailbox.ts: a grpc-js server (TLS, the node's HTTP/2 windows) that does only the
// work issue 2 makes every accepted message cost, and nothing else, with the node's own mechanisms for
// both: one Ed25519 verification of a header-sized prefix, as the node checks the envelope header (node:crypto through identity's SignatureVerifierPool: a turn's
// signatures as one batch on a worker thread) and a durable store (bench/floors/floor-store.ts: SQLite WAL
// insert, group commit per event-loop turn, fdatasync of the WAL off the event loop, checkpoints on a
// worker). No envelope parsing, replay set, transparency log, routing or mailbox lookups.
// Its rate against the raw server shows how much of the node's gap to the raw ceiling any server doing
// that work would have on this machine. Run as its own process: floor-server.ts CERT KEY PUBKEY_HEX DIR.
import * as grpc from '@grpc/grpc-js';
import { SignatureVerifierPool } from '../../identity/index.ts';
import { FloorStore, SIGNED_BYTES } from './floor-store.ts';
import { serveRaw } from '../reference/raw-serve.ts';

const [certFile, keyFile, publicKeyHex, dir] = process.argv.slice(2) as [string, string, string, string];
const publicKey = Buffer.from(publicKeyHex, 'hex');
const verifier = new SignatureVerifierPool();
verifier.start();
const store = new FloorStore(dir);

async function accept(blob: { data: Buffer; ref: number; sig: Buffer }): Promise<void> {
  if (!(await verifier.verify(publicKey, blob.data.subarray(0, SIGNED_BYTES), blob.sig))) throw new Error('bad signature');
  await store.store(blob.ref, blob.data);
}

serveRaw(certFile, keyFile, {
  Unary: (call: any, cb: any) => accept(call.request).then(() => cb(null, { ref: call.request.ref }), (err: Error) => cb({ code: grpc.status.INTERNAL, details: err.message })),
  Bidi: (call: any) => {
    call.on('data', (b: any) => accept(b).then(() => call.write({ ref: b.ref }), (err: Error) => call.destroy(err)));
    call.on('end', () => call.end());
  },
}, () => Promise.all([verifier.stop(), store.close()]));
