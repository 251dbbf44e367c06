/**
 * The direct protobuf codec (proto/codec.ts) against @grpc/proto-loader, which it replaces on the hot
 * methods: for every message it handles, random messages must decode to exactly what proto-loader
 * produces, and what it encodes must decode in proto-loader to the same object.
 */
import { describe, expect, it } from 'vitest';
import protobuf from 'protobufjs';
import * as protoLoader from '@grpc/proto-loader';
import { installCodecs, loadProto, loadRoot, messageCodec, PROTO_FILE, type MessageCodec } from '../../proto/index.ts';
import { protoLoaderOptions } from '../../proto/options.ts';

const root = loadRoot(PROTO_FILE);
const reference = protoLoader.loadSync(PROTO_FILE, { ...protoLoaderOptions }) as unknown as Record<string, { serialize(v: unknown): Buffer; deserialize(b: Buffer): unknown }>;
const messageTypes = (root.lookup('aftersmtp.v1') as protobuf.Namespace).nestedArray.filter((t): t is protobuf.Type => t instanceof protobuf.Type);
const handled = messageTypes.map((t) => ({ type: t, codec: messageCodec(root, t.fullName.slice(1)) })).filter((x): x is { type: protobuf.Type; codec: MessageCodec } => !!x.codec);

/** A deterministic generator, so a failure names a reproducible seed. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 4294967296);
}

const EDGE_UINT64 = [0, 1, 127, 128, 16383, 16384, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 35 + 3, Number.MAX_SAFE_INTEGER];
const EDGE_UINT32 = [0, 1, 127, 128, 2 ** 21, 2 ** 28, 2 ** 31, 2 ** 32 - 1];
const STRINGS = ['', 'a', 'alice@a.test', 'did:web:b.test:users:bob', 'héllo wörld', '日本語のメール', '😀 emoji ✉️', 'x'.repeat(300)];

function randomMessage(type: protobuf.Type, next: () => number, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const pick = <T,>(list: readonly T[]) => list[Math.floor(next() * list.length)]!;
  const scalar = (t: string): unknown => {
    switch (t) {
      case 'uint64': return next() < 0.5 ? pick(EDGE_UINT64) : Math.floor(next() * 2 ** 40);
      case 'uint32': return next() < 0.5 ? pick(EDGE_UINT32) : Math.floor(next() * 2 ** 32);
      case 'bool': return next() < 0.5;
      case 'string': return pick(STRINGS);
      case 'bytes': { const n = pick([0, 1, 16, 32, 64, 200, 3000]); return Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256))); }
      default: throw new Error(`no generator for ${t}`);
    }
  };
  const oneofChoice = new Map<string, string | undefined>();
  for (const oneof of type.oneofsArray) oneofChoice.set(oneof.name, next() < 0.2 ? undefined : pick(oneof.fieldsArray).name);
  for (const field of type.fieldsArray) {
    if (field.partOf && oneofChoice.get(field.partOf.name) !== field.name) continue;
    if (!field.partOf && next() < 0.25) continue; // absent
    const value = () => (field.resolvedType instanceof protobuf.Type ? (depth > 4 ? {} : randomMessage(field.resolvedType, next, depth + 1)) : scalar(field.type));
    out[field.name] = field.repeated ? Array.from({ length: Math.floor(next() * 4) }, value) : value();
  }
  return out;
}

describe('direct protobuf codec (proto/codec.ts)', () => {
  it('takes over the hot methods and leaves messages it cannot map to proto-loader', () => {
    const names = handled.map((h) => h.type.name);
    for (const hot of ['Envelope', 'Receipt', 'SubmitRequest', 'SubmitReply', 'SubscribeRequest', 'Delivery', 'RelayFrame']) expect(names).toContain(hot);
    // StatusReply has maps and a double: not handled, so Admin/Status keeps proto-loader's codec.
    expect(messageCodec(root, 'aftersmtp.v1.StatusReply')).toBeUndefined();
    const fresh = protoLoader.loadSync(PROTO_FILE, { ...protoLoaderOptions }) as unknown as Record<string, unknown>;
    const installed = installCodecs(fresh, root);
    for (const hot of ['Mailbox/Submit', 'Mailbox/SubmitStream', 'Mailbox/Subscribe', 'Relay/Stream', 'Provenance/GetProof']) expect(installed).toContain(`aftersmtp.v1.${hot}`);
    expect(installed).not.toContain('aftersmtp.v1.Admin/Status');
    expect(installed).not.toContain('aftersmtp.v1.Admin/Peers');
    // loadProto() installs it on the node's own definition (proto-loader's functions are named serialize/deserialize).
    const def = loadProto().packageDefinition as unknown as Record<string, Record<string, { requestDeserialize: unknown; responseSerialize: unknown }>>;
    expect((def['aftersmtp.v1.Mailbox']!.SubmitStream!.requestDeserialize as { name: string }).name).toBe('decode');
    expect((def['aftersmtp.v1.Relay']!.Stream!.responseSerialize as { name: string }).name).toBe('encode');
    expect((def['aftersmtp.v1.Admin']!.Status!.responseSerialize as { name: string }).name).toBe('serialize');
  });

  for (const { type, codec } of handled) {
    it(`${type.name}: decodes and encodes like proto-loader (200 random messages)`, () => {
      const ref = reference[type.fullName.slice(1)]!;
      const next = rng(type.name.length * 7919);
      for (let i = 0; i < 200; i++) {
        const input = randomMessage(type, next);
        const wire = ref.serialize(input);
        const expected = ref.deserialize(wire);
        expect(codec.decode(wire), `decode, message ${i}`).toStrictEqual(expected);
        const ours = codec.encode(input);
        expect(ref.deserialize(ours), `encode, message ${i}`).toStrictEqual(expected);
        expect(codec.encode(codec.decode(ours)).equals(ours), `re-encode, message ${i}`).toBe(true);
      }
    });
  }

  const ack = messageCodec(root, 'aftersmtp.v1.Ack')!;
  const envelope = messageCodec(root, 'aftersmtp.v1.Envelope')!;

  it('reads repeated integers packed and unpacked', () => {
    const packed = Buffer.from([0x0a, 0x04, 0x01, 0x96, 0x01, 0x00]);
    const unpacked = Buffer.from([0x08, 0x01, 0x08, 0x96, 0x01, 0x08, 0x00]);
    expect(ack.decode(packed)).toStrictEqual({ seqs: [1, 150, 0] });
    expect(ack.decode(unpacked)).toStrictEqual({ seqs: [1, 150, 0] });
  });

  it('skips unknown fields of every wire type, groups included', () => {
    const known = Buffer.from([0x08, 0x07]); // version = 7
    const unknown = Buffer.from([
      0xf8, 0x07, 0x05, // field 127 varint
      0xf9, 0x07, 1, 2, 3, 4, 5, 6, 7, 8, // field 127 fixed64
      0xfa, 0x07, 0x02, 0xaa, 0xbb, // field 127 bytes
      0xfb, 0x07, 0x08, 0x01, 0xfc, 0x07, // field 127 group holding a varint
      0xfd, 0x07, 1, 2, 3, 4, // field 127 fixed32
    ]);
    const decoded = envelope.decode(Buffer.concat([unknown, known]));
    expect(decoded.version).toBe(7);
    expect(decoded).toStrictEqual(reference['aftersmtp.v1.Envelope']!.deserialize(Buffer.concat([unknown, known])));
  });

  it('refuses truncated and mistyped input with a clear error', () => {
    const wire = envelope.encode({ senderDid: 'did:key:z6Mk', ciphertext: Buffer.alloc(100, 1) });
    for (const cut of [1, 5, wire.length - 1]) expect(() => envelope.decode(wire.subarray(0, cut))).toThrow(/index out of range/);
    expect(() => envelope.decode(Buffer.from([0x32, 0x05, 0x61]))).toThrow(RangeError); // string longer than the input
    expect(() => envelope.decode(Buffer.from([0x30, 0x01]))).toThrow(/senderDid: wire type 0, expected 2/);
    expect(() => envelope.decode(Buffer.from([0x0f]))).toThrow(/wire type 7/);
    expect(() => envelope.decode(Buffer.from([0xff, 0x07]))).toThrow(/invalid wire type 7/); // unknown field 127
    expect(() => envelope.decode(Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))).toThrow(/invalid varint/);
  });

  it('answers random and corrupted bytes with a value or an Error, never anything else', () => {
    const next = rng(4242);
    const relay = messageCodec(root, 'aftersmtp.v1.RelayFrame')!;
    const valid = relay.encode({ frameId: 9, senderDomain: 'a.test', envelope: { senderDid: 'did:key:z6Mk', recipients: [{ keyId: 'k', enc: Buffer.alloc(32, 2), wrapped: Buffer.alloc(48, 3) }], ciphertext: Buffer.alloc(64, 1) } });
    let decoded = 0;
    let refused = 0;
    for (let i = 0; i < 3000; i++) {
      const input = i % 2 === 0
        ? Buffer.from(Array.from({ length: Math.floor(next() * 64) }, () => Math.floor(next() * 256)))
        : Buffer.from(valid.map((b) => (next() < 0.03 ? Math.floor(next() * 256) : b)));
      try {
        expect(typeof relay.decode(input)).toBe('object');
        decoded++;
      } catch (err) {
        expect(err).toBeInstanceOf(Error);
        expect((err as Error).message).not.toBe('');
        refused++;
      }
    }
    expect(decoded).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });

  it('hands inputs it does not map (base64 bytes, out-of-range numbers) to proto-loader', () => {
    const ref = reference['aftersmtp.v1.Envelope']!;
    const fallback = messageCodec(root, 'aftersmtp.v1.Envelope', ref.serialize)!;
    const input = { messageId: Buffer.from('00112233', 'hex').toString('base64'), createdMs: 2 ** 60 };
    expect(fallback.encode(input).equals(ref.serialize(input))).toBe(true);
    expect(() => envelope.encode(input)).toThrow(/unexpected type/);
  });

  it('leaves proto3 defaults off the wire but keeps empty oneof members and repeated entries', () => {
    const relay = messageCodec(root, 'aftersmtp.v1.RelayFrame')!;
    expect(relay.encode({ frameId: 0, senderDomain: '' }).length).toBe(0);
    const hello = relay.encode({ frameId: 0, hello: {} });
    expect(relay.decode(hello)).toStrictEqual({ frameId: 0, senderDomain: '', senderAddress: '', hello: { did: '', domains: [], maxInFlight: 0, batchedReceipts: false }, kind: 'hello' });
    const env = envelope.decode(envelope.encode({ recipientAddresses: ['', 'b@b.test'] }));
    expect(env.recipientAddresses).toStrictEqual(['', 'b@b.test']);
  });
});
