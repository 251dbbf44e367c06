// Micro-benchmark: the protobuf codec of the hot messages, proto-loader and protobuf-es
// (@bufbuild/protobuf, schemas generated into bench/codec-es/gen/) against the direct codec
// (proto/codec.ts), for envelopes of the federation bench's sizes. Prints us per operation and each
// codec's time over the direct codec's (DECISIONS 27, 37).
//   node bench/suites/codec.ts
import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import * as protoLoader from '@grpc/proto-loader';
import { create, fromBinary, toBinary, type DescMessage, type Message } from '@bufbuild/protobuf';
import { loadRoot, messageCodec, PROTO_FILE } from '../../proto/index.ts';
import { protoLoaderOptions } from '../../proto/options.ts';
import { DeliverySchema, EnvelopeSchema, ReceiptSchema, RelayFrameSchema, SubmitReplySchema, SubmitRequestSchema } from '../codec-es/gen/aftersmtp_pb.ts';

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

// The same messages in protobuf-es's shapes: uint64 as bigint, a oneof as { case, value }.
type Envelope = ReturnType<typeof envelope>;
const esEnvelope = (e: Envelope) => create(EnvelopeSchema, { ...e, createdMs: BigInt(e.createdMs), expiresMs: BigInt(e.expiresMs) });
const esReceipt = create(ReceiptSchema, { ...receipt, leafIndex: BigInt(receipt.leafIndex), checkpointSize: BigInt(receipt.checkpointSize) });

interface Case { label: string; name: string; value: object; schema: DescMessage; es: Message }
const relayFrame = (label: string, e: Envelope): Case => ({
  label, name: 'aftersmtp.v1.RelayFrame', value: { frameId: 42, senderDomain: 'a.test', envelope: e },
  schema: RelayFrameSchema, es: create(RelayFrameSchema, { frameId: 42n, senderDomain: 'a.test', kind: { case: 'envelope', value: esEnvelope(e) } }),
});
const submitRequest = (label: string, e: Envelope): Case => ({
  label, name: 'aftersmtp.v1.SubmitRequest', value: { clientRef: 7, envelope: e },
  schema: SubmitRequestSchema, es: create(SubmitRequestSchema, { clientRef: 7n, envelope: esEnvelope(e) }),
});
const delivery = (label: string, e: Envelope, receivedMs: number): Case => ({
  label, name: 'aftersmtp.v1.Delivery', value: { seq: 99, envelope: e, receivedMs, receipt, confirmedAcks: [] },
  schema: DeliverySchema, es: create(DeliverySchema, { seq: 99n, envelope: esEnvelope(e), receivedMs: BigInt(receivedMs), receipt: esReceipt, confirmedAcks: [] }),
});
const small = envelope(2100);
const large = envelope(51_252);
const now = Date.now();
const replyIds = { messageId: randomBytes(16), messageHash: randomBytes(32) };
const cases: Case[] = [
  relayFrame('RelayFrame (envelope, 2 KB)', small),
  relayFrame('RelayFrame (envelope, 50 KB)', large),
  {
    label: 'RelayFrame (ack with receipt)', name: 'aftersmtp.v1.RelayFrame', value: { frameId: 42, ack: { frameId: 42, receipt } },
    schema: RelayFrameSchema, es: create(RelayFrameSchema, { frameId: 42n, kind: { case: 'ack', value: { frameId: 42n, receipt: esReceipt } } }),
  },
  submitRequest('SubmitRequest (2 KB)', small),
  submitRequest('SubmitRequest (50 KB)', large),
  {
    label: 'SubmitReply', name: 'aftersmtp.v1.SubmitReply', value: { ...replyIds, deliveredLocal: [], queuedRemote: ['bob@b.test'], receipt, clientRef: 7 },
    schema: SubmitReplySchema, es: create(SubmitReplySchema, { ...replyIds, deliveredLocal: [], queuedRemote: ['bob@b.test'], receipt: esReceipt, clientRef: 7n }),
  },
  delivery('Delivery (2 KB)', small, now),
  delivery('Delivery (50 KB)', large, now),
];

/** us per call of `fn`, over at least `ms`. */
function time(fn: () => void, ms: number): number {
  let n = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < ms * 1e6) {
    for (let i = 0; i < 20; i++) fn();
    n += 20;
    elapsed = Number(process.hrtime.bigint() - start);
  }
  return elapsed / n / 1000;
}

/**
 * us per call of each of `fns`: the fastest of `rounds` short timings, taken in turn, so that other
 * processes on a shared machine (which only ever add time) weigh on every codec alike and a round
 * that ran undisturbed decides.
 */
function timeEach(fns: (() => void)[], rounds: number, ms = 5): number[] {
  for (const fn of fns) for (let i = 0; i < 500; i++) fn();
  const best = fns.map(() => Infinity);
  for (let r = 0; r < rounds; r++) for (const [i, fn] of fns.entries()) best[i] = Math.min(best[i]!, time(fn, ms));
  return best;
}

let sink = 0;
/** Times each case's encode and decode by the three codecs; returns the printed rows. */
function pass(rounds: number): string[] {
  const rows: string[] = [];
  for (const { label, name, value, schema, es } of cases) {
    const ref = reference[name]!;
    const direct = messageCodec(root, name)!;
    const wire = ref.serialize(value);
    // The protobuf-es message must be the same message, or the comparison means nothing.
    if (!isDeepStrictEqual(direct.decode(toBinary(schema, es)), direct.decode(wire))) throw new Error(`${label}: the protobuf-es message differs`);
    const row = (op: string, [a, b, c]: number[]) =>
      rows.push(`${label.padEnd(31)} ${op.padEnd(7)} ${a.toFixed(2).padStart(8)} ${c.toFixed(2).padStart(8)} ${b.toFixed(2).padStart(8)} ${(a / b).toFixed(2).padStart(9)} ${(c / b).toFixed(2).padStart(9)}`);
    row('encode', timeEach([
      () => { sink += ref.serialize(value).length; },
      () => { sink += direct.encode(value).length; },
      () => { sink += toBinary(schema, es).length; },
    ], rounds));
    row('decode', timeEach([
      () => { sink += (ref.deserialize(wire) as object) ? 1 : 0; },
      () => { sink += direct.decode(wire) ? 1 : 0; },
      () => { sink += fromBinary(schema, wire) ? 1 : 0; },
    ], rounds));
  }
  return rows;
}
pass(1); // warms every path (JIT) first, with every case's shapes seen
console.log('us per operation (fastest of the rounds); pl = @grpc/proto-loader, es = @bufbuild/protobuf, direct = proto/codec.ts');
console.log('message                         op            pl       es   direct pl/direct es/direct');
for (const row of pass(Number(process.env.BENCH_CODEC_ROUNDS ?? 40))) console.log(row);
if (sink < 0) console.log(sink);
