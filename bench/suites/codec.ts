// Micro-benchmark: the protobuf codec of the hot messages, proto-loader against the direct codec
// (proto/codec.ts), for an envelope of the federation bench's sizes. Prints us per operation.
//   node bench/suites/codec.ts
import { randomBytes } from 'node:crypto';
import * as protoLoader from '@grpc/proto-loader';
import { loadRoot, messageCodec, PROTO_FILE } from '../../proto/index.ts';
import { protoLoaderOptions } from '../../proto/options.ts';

const root = loadRoot(PROTO_FILE);
const reference = protoLoader.loadSync(PROTO_FILE, { ...protoLoaderOptions }) as unknown as Record<string, { serialize(v: unknown): Buffer; deserialize(b: Buffer): unknown }>;

function envelope(ciphertextBytes: number) {
  return {
    version: 1, kemId: 32, kdfId: 1, aeadId: 3, messageId: randomBytes(16), senderDid: 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK',
    senderKeyId: 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK#z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK', recipientAddresses: ['bob@b.test'],
    messageHash: randomBytes(32), recipientsDigest: randomBytes(32), createdMs: Date.now(), expiresMs: Date.now() + 86_400_000, nonce: randomBytes(16), outerSignature: randomBytes(64),
    recipients: [{ keyId: 'did:key:z6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc#z6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc', enc: randomBytes(32), wrapped: randomBytes(48) }],
    ciphertext: randomBytes(ciphertextBytes),
  };
}
const receipt = { logOrigin: 'b.test/log', leafIndex: 123456, checkpointSize: 123460, messageHash: randomBytes(32), signature: randomBytes(64), batchSize: 32, batchIndex: 7, batchPath: [randomBytes(32), randomBytes(32), randomBytes(32), randomBytes(32), randomBytes(32)] };

const cases: [string, string, object][] = [
  ['RelayFrame (envelope, 2 KB)', 'aftersmtp.v1.RelayFrame', { frameId: 42, senderDomain: 'a.test', envelope: envelope(2100) }],
  ['RelayFrame (ack with receipt)', 'aftersmtp.v1.RelayFrame', { frameId: 42, ack: { frameId: 42, receipt } }],
  ['SubmitRequest (2 KB)', 'aftersmtp.v1.SubmitRequest', { clientRef: 7, envelope: envelope(2100) }],
  ['SubmitReply', 'aftersmtp.v1.SubmitReply', { messageId: randomBytes(16), messageHash: randomBytes(32), deliveredLocal: [], queuedRemote: ['bob@b.test'], receipt, clientRef: 7 }],
  ['Delivery (2 KB)', 'aftersmtp.v1.Delivery', { seq: 99, envelope: envelope(2100), receivedMs: Date.now(), receipt, confirmedAcks: [] }],
];

function time(fn: () => void, minMs = 300): number {
  for (let i = 0; i < 2000; i++) fn();
  let n = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < minMs * 1e6) {
    for (let i = 0; i < 1000; i++) fn();
    n += 1000;
    elapsed = Number(process.hrtime.bigint() - start);
  }
  return elapsed / n / 1000;
}

let sink = 0;
/** Times each case's encode and decode both ways; returns the printed rows. */
function pass(): string[] {
  const rows: string[] = [];
  for (const [label, name, value] of cases) {
    const ref = reference[name]!;
    const direct = messageCodec(root, name)!;
    const wire = ref.serialize(value);
    const row = (op: string, a: number, b: number) => rows.push(`${label.padEnd(31)} ${op.padEnd(8)} ${a.toFixed(2).padStart(15)} ${b.toFixed(2).padStart(11)} ${(a / b).toFixed(1).padStart(6)}x`);
    row('encode', time(() => { sink += ref.serialize(value).length; }), time(() => { sink += direct.encode(value).length; }));
    row('decode', time(() => { sink += (ref.deserialize(wire) as object) ? 1 : 0; }), time(() => { sink += direct.decode(wire) ? 1 : 0; }));
  }
  return rows;
}
pass(); // warms every path (JIT) first
console.log('message                         op       proto-loader us   direct us   ratio');
for (const row of pass()) console.log(row);
if (sink < 0) console.log(sink);
