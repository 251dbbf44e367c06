/**
 * Property tests (fast-check): the decoders are strict and canonical, and no truncation or bit flip of
 * a valid signed message or envelope decodes to a different valid one.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ByteWriter } from '../../identity/encoding.ts';
import {
  IdentityError,
  checkEnvelope,
  createStaticResolver,
  decodeEnvelope,
  decodeHeader,
  decodeSignedMessage,
  encodeEnvelope,
  encodeHeader,
  openEnvelope,
  sealEnvelope,
  verifySignedMessage,
} from '../../identity/index.ts';
import type { MessageHeader } from '../../identity/index.ts';
import { T0, didKeyIdentity, makeSigned } from './helpers.ts';

const alice = didKeyIdentity('alice@a.test');
const bob = didKeyIdentity('bob@b.test');
const dave = didKeyIdentity('dave@d.test');
const resolver = createStaticResolver();
const now = T0 + 1000;

const signed = makeSigned(alice, [bob, dave]);
const env = sealEnvelope({
  signedMessage: signed.signedMessage,
  senderDid: alice.did,
  senderKeyId: alice.keyId,
  senderPrivateKey: alice.seed,
  recipientAddresses: [bob.address, dave.address],
  recipients: [bob, dave].map((r) => ({ keyId: r.agreementKeyId, publicKey: r.agreementPublicKey })),
});
const envBytes = encodeEnvelope(env);

/** Decoder outcome: the value, or the IdentityError code. Any other exception fails the property. */
function attempt<T>(f: () => T): { ok: true; value: T } | { ok: false; code: string } {
  try {
    return { ok: true, value: f() };
  } catch (e) {
    if (!(e instanceof IdentityError)) throw e;
    return { ok: false, code: e.code };
  }
}

function withFlips(bytes: Uint8Array, bits: number[]): Uint8Array {
  const out = Uint8Array.from(bytes);
  for (const b of bits) out[b >> 3] = out[b >> 3]! ^ (1 << (b & 7));
  return out;
}

const flipsOf = (len: number) => fc.uniqueArray(fc.integer({ min: 0, max: len * 8 - 1 }), { minLength: 1, maxLength: 3 });

const party = fc.record({ did: fc.string({ maxLength: 40 }), address: fc.string({ maxLength: 40 }) });
const headerArb: fc.Arbitrary<MessageHeader> = fc.record({
  version: fc.constant(1 as const),
  messageId: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  from: party,
  to: fc.array(party, { maxLength: 5 }),
  createdMs: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  expiresMs: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  contentType: fc.string({ maxLength: 30, unit: 'grapheme' }),
  bodyDigest: fc.uint8Array({ minLength: 32, maxLength: 32 }),
});

describe('properties', () => {
  it('decodeHeader(encodeHeader(h)) == h for arbitrary headers, including any Unicode', () => {
    fc.assert(
      fc.property(headerArb, (h) => {
        const bytes = encodeHeader(h);
        const back = decodeHeader(bytes);
        expect({ ...back, messageId: Array.from(back.messageId), bodyDigest: Array.from(back.bodyDigest) }).toEqual({
          ...h,
          messageId: Array.from(h.messageId),
          bodyDigest: Array.from(h.bodyDigest),
        });
      }),
      { numRuns: 200 },
    );
  });

  it('arbitrary bytes never crash the decoders: they decode or throw IdentityError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        attempt(() => decodeSignedMessage(b));
        attempt(() => decodeHeader(b));
        attempt(() => decodeEnvelope(b));
      }),
      { numRuns: 300 },
    );
  });

  it('every truncation of a signed message or an envelope is rejected', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: signed.signedMessage.length - 1 }), fc.integer({ min: 0, max: envBytes.length - 1 }), (a, b) => {
        expect(attempt(() => decodeSignedMessage(signed.signedMessage.subarray(0, a))).ok).toBe(false);
        expect(attempt(() => decodeEnvelope(envBytes.subarray(0, b))).ok).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it('bit flips in a signed message never yield a different valid message, and what decodes is canonical', async () => {
    await fc.assert(
      fc.asyncProperty(flipsOf(signed.signedMessage.length), async (bits) => {
        const mutated = withFlips(signed.signedMessage, bits);
        const d = attempt(() => decodeSignedMessage(mutated));
        if (d.ok) {
          // Strict decoding: only these exact bytes decode to this value.
          const again = new ByteWriter()
            .lp(encodeHeader(d.value.header))
            .lp(d.value.body)
            .lp(new TextEncoder().encode(d.value.keyId))
            .bytes(d.value.signature)
            .finish();
          expect(again).toEqual(mutated);
        }
        const r = await verifySignedMessage(mutated, resolver, { now });
        expect(r.verified).toBe(false);
      }),
      { numRuns: 150 },
    );
  });

  it('bit flips in an encoded envelope never yield a different envelope that passes the node checks and opens for every recipient', async () => {
    await fc.assert(
      fc.asyncProperty(flipsOf(envBytes.length), async (bits) => {
        const mutated = withFlips(envBytes, bits);
        const d = attempt(() => decodeEnvelope(mutated));
        if (!d.ok) return;
        expect(encodeEnvelope(d.value)).toEqual(mutated);
        let accepted = true;
        try {
          await checkEnvelope(d.value, resolver, { now });
          for (const r of [bob, dave]) openEnvelope(d.value, { keyId: r.agreementKeyId, privateKey: r.agreementPrivateKey });
        } catch (e) {
          if (!(e instanceof IdentityError)) throw e;
          accepted = false;
        }
        expect(accepted).toBe(false);
      }),
      { numRuns: 150 },
    );
  });
});
