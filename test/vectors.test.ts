/**
 * Byte-for-byte checks against published vectors (RFC 8032, RFC 9180, a CFRG/BoringSSL AES-256-GCM HPKE
 * vector) and against the golden vectors of our own protocol (docs/PROTOCOL.md Appendix B).
 */
import { describe, expect, it } from 'vitest';
import rfc8032 from './vectors/rfc8032-ed25519.json' with { type: 'json' };
import rfc9180 from './vectors/rfc9180-hpke.json' with { type: 'json' };
import golden from './vectors/aftersmtp-v1.json' with { type: 'json' };
import {
  checkEnvelope,
  createStaticResolver,
  decodeEnvelope,
  decodeHeader,
  decodeSignedMessage,
  didKeyAgreementKeyId,
  didKeyFromEd25519,
  didKeySigningKeyId,
  ed25519PublicKeyFromSeed,
  encodeEnvelope,
  encodeHeader,
  encodeOuterHeader,
  envelopeAad,
  fromHex,
  hpkeDeriveKeyPair,
  hpkeKeySchedule,
  hpkeSealWithEphemeral,
  hpkeSetupBaseR,
  hpkeSetupBaseSWithEphemeral,
  hpkeSuite,
  messageSigningInput,
  openAndVerifyEnvelope,
  openEnvelope,
  sealEnvelope,
  sha256,
  sign,
  signMessage,
  toHex,
  verifySignature,
  verifySignedMessage,
  x25519FromEd25519Public,
  x25519PrivateFromEd25519Seed,
  x25519PublicKeyFromPrivate,
} from '../identity/index.ts';
import type { DidDocument, EnvelopeAead } from '../identity/index.ts';
import { buildGoldenVectors } from './vectors/generate.ts';

const h = fromHex;

describe('RFC 8032 §7.1 Ed25519 test vectors', () => {
  it.each(rfc8032.vectors)('$name', (v) => {
    const seed = h(v.secretKey);
    expect(toHex(ed25519PublicKeyFromSeed(seed))).toBe(v.publicKey);
    expect(toHex(sign(seed, h(v.message)))).toBe(v.signature);
    expect(verifySignature(h(v.publicKey), h(v.message), h(v.signature))).toBe(true);
    const flipped = h(v.signature);
    flipped[0] = flipped[0]! ^ 1;
    expect(verifySignature(h(v.publicKey), h(v.message), flipped)).toBe(false);
  });

  it('TEST 1024 message is the 1023 bytes of the RFC', () => {
    expect(h(rfc8032.vectors[3]!.message).length).toBe(1023);
  });
});

describe('RFC 9180 Appendix A base-mode HPKE vectors', () => {
  describe.each(rfc9180.vectors)('$name', (v) => {
    const suite = hpkeSuite(v.aeadId, v.kemId, v.kdfId);

    it('DeriveKeyPair reproduces the ephemeral and recipient keys', () => {
      const e = hpkeDeriveKeyPair(h(v.ikmE));
      const r = hpkeDeriveKeyPair(h(v.ikmR));
      expect([toHex(e.privateKey), toHex(e.publicKey)]).toEqual([v.skEm, v.pkEm]);
      expect([toHex(r.privateKey), toHex(r.publicKey)]).toEqual([v.skRm, v.pkRm]);
    });

    it('setup values: enc, shared_secret, key_schedule_context, secret, key, base_nonce, exporter_secret', () => {
      const s = hpkeSetupBaseSWithEphemeral(suite, h(v.pkRm), h(v.info), h(v.skEm));
      expect(toHex(s.enc)).toBe(v.enc);
      // The key schedule from the published shared secret must give every published value.
      const ks = hpkeKeySchedule(suite, h(v.sharedSecret), h(v.info));
      expect(toHex(ks.keyScheduleContext)).toBe(v.keyScheduleContext);
      expect(toHex(ks.secret)).toBe(v.secret);
      expect(toHex(ks.key)).toBe(v.key);
      expect(toHex(ks.baseNonce)).toBe(v.baseNonce);
      expect(toHex(ks.exporterSecret)).toBe(v.exporterSecret);
      // ...and both sides derive that shared secret: check via the first ciphertext and an export.
      const r = hpkeSetupBaseR(suite, h(v.enc), h(v.skRm), h(v.info));
      expect(toHex(r.export(new Uint8Array(0), 32))).toBe(v.exports[0]!.exportedValue);
      expect(toHex(s.context.seal(h(v.encryptions[0]!.aad), h(v.encryptions[0]!.pt)))).toBe(v.encryptions[0]!.ct);
    });

    it('every listed encryption (sequence numbers 0, 1, 2, 4, 255, 256): nonce, seal, open', () => {
      const sender = hpkeSetupBaseSWithEphemeral(suite, h(v.pkRm), h(v.info), h(v.skEm)).context;
      const recipient = hpkeSetupBaseR(suite, h(v.enc), h(v.skRm), h(v.info));
      let seq = 0;
      for (const e of v.encryptions) {
        expect(toHex(sender.computeNonce(e.sequenceNumber))).toBe(e.nonce);
        // Advance both contexts to the listed sequence number with throw-away messages.
        while (seq < e.sequenceNumber) {
          recipient.open(new Uint8Array(0), sender.seal(new Uint8Array(0), new Uint8Array(0)));
          seq++;
        }
        expect(toHex(sender.seal(h(e.aad), h(e.pt)))).toBe(e.ct);
        expect(toHex(recipient.open(h(e.aad), h(e.ct)))).toBe(e.pt);
        seq++;
      }
      expect(sender.sequenceNumber).toBe(257);
    });

    it('exported values', () => {
      const r = hpkeSetupBaseR(suite, h(v.enc), h(v.skRm), h(v.info));
      for (const x of v.exports) expect(toHex(r.export(h(x.exporterContext), x.length))).toBe(x.exportedValue);
    });
  });

  it('AES-256-GCM (aead_id 2) with DHKEM(X25519, HKDF-SHA256): sequence-0 ciphertext', () => {
    const v = rfc9180.aes256gcm;
    const suite = hpkeSuite(v.aeadId, v.kemId, v.kdfId);
    const { enc, ct } = hpkeSealWithEphemeral(suite, h(v.pkRm), h(v.info), h(v.aad), h(v.pt), h(v.skEm));
    expect(toHex(enc)).toBe(toHex(x25519PublicKeyFromPrivate(h(v.skEm))));
    expect(toHex(ct)).toBe(v.ct);
  });
});

describe('did:key specification vector', () => {
  it('derives the published X25519 keyAgreement key', () => {
    // did:key method specification, Ed25519 example and its X25519 keyAgreement key.
    const did = 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK';
    expect(didKeyAgreementKeyId(did)).toBe(`${did}#z6LSj72tK8brWgZja8NLRwPigth2T9QRiG1uH9oKZuKjdh9p`);
  });
});

describe('AfterSMTP v1 golden vectors', () => {
  const g = golden;

  it('the generator reproduces the committed file exactly', () => {
    expect(JSON.parse(JSON.stringify(buildGoldenVectors()))).toEqual(g);
  });

  it('keys and DIDs', () => {
    const seed = h(g.sender.ed25519Seed);
    expect(toHex(ed25519PublicKeyFromSeed(seed))).toBe(g.sender.ed25519PublicKey);
    expect(didKeyFromEd25519(h(g.sender.ed25519PublicKey))).toBe(g.sender.did);
    expect(didKeySigningKeyId(g.sender.did)).toBe(g.sender.keyId);
    for (const r of g.recipients) {
      expect(toHex(x25519PublicKeyFromPrivate(h(r.x25519PrivateKey)))).toBe(r.x25519PublicKey);
      if (r.ed25519Seed !== undefined) {
        const ed = ed25519PublicKeyFromSeed(h(r.ed25519Seed));
        expect(didKeyFromEd25519(ed)).toBe(r.did);
        expect(toHex(x25519PrivateFromEd25519Seed(h(r.ed25519Seed)))).toBe(r.x25519PrivateKey);
        expect(toHex(x25519FromEd25519Public(ed))).toBe(r.x25519PublicKey);
        expect(didKeyAgreementKeyId(r.did)).toBe(r.keyId);
      }
    }
  });

  it('canonical header, signing input, signature, signed message, message hash', () => {
    const m = g.message;
    const body = h(m.body);
    expect(toHex(sha256(body))).toBe(m.bodyDigest);
    const header = {
      version: 1 as const,
      messageId: h(m.messageId),
      from: { did: g.sender.did, address: g.sender.address },
      to: g.recipients.map((r) => ({ did: r.did, address: r.address })),
      createdMs: m.createdMs,
      expiresMs: m.expiresMs,
      contentType: m.contentType,
      bodyDigest: h(m.bodyDigest),
    };
    const canonical = encodeHeader(header);
    expect(toHex(canonical)).toBe(m.canonicalHeader);
    expect(decodeHeader(canonical)).toEqual(header);
    const input = messageSigningInput(canonical, header.bodyDigest);
    expect(toHex(input)).toBe(m.signingInput);
    expect(toHex(sign(h(g.sender.ed25519Seed), input))).toBe(m.signature);

    const signed = signMessage({ header, body, keyId: m.keyId, privateKey: h(g.sender.ed25519Seed) });
    expect(toHex(signed.signedMessage)).toBe(m.signedMessage);
    expect(toHex(signed.messageHash)).toBe(m.messageHash);
    expect(toHex(sha256(h(m.signedMessage)))).toBe(m.messageHash);
    const decoded = decodeSignedMessage(h(m.signedMessage));
    expect(decoded.keyId).toBe(m.keyId);
    expect(toHex(decoded.signature)).toBe(m.signature);
  });

  describe.each(g.envelopes)('envelope $aead', (e) => {
    const recipients = g.recipients.map((r) => ({ keyId: r.keyId, publicKey: h(r.x25519PublicKey) }));
    const replay = [h(e.contentKey), h(e.nonce), ...e.ephemeralPrivateKeys.map(h)];
    const rng = (n: number): Uint8Array => {
      const next = replay.shift();
      if (next === undefined || next.length !== n) throw new Error('unexpected draw');
      return next;
    };
    const env = sealEnvelope({
      signedMessage: h(g.message.signedMessage),
      senderDid: g.sender.did,
      senderKeyId: g.sender.keyId,
      senderPrivateKey: h(g.sender.ed25519Seed),
      recipientAddresses: e.recipientAddresses,
      recipients,
      aead: e.aead as EnvelopeAead,
      rng,
    });

    it('outer header, AADs, outer signature, wrapped keys, ciphertext, encoding', () => {
      expect(replay).toHaveLength(0);
      expect(env.aeadId).toBe(e.aeadId);
      expect(toHex(env.recipientsDigest)).toBe(e.recipientsDigest);
      expect(toHex(encodeOuterHeader(env))).toBe(e.outerHeader);
      const aad = envelopeAad(env);
      expect(toHex(aad)).toBe(e.envelopeAad);
      expect(toHex(sha256(aad))).toBe(e.wrapAad);
      expect(toHex(env.outerSignature)).toBe(e.outerSignature);
      expect(env.recipients.map((r) => ({ keyId: r.keyId, enc: toHex(r.enc), wrapped: toHex(r.wrapped) }))).toEqual(e.recipients);
      expect(toHex(env.ciphertext)).toBe(e.ciphertext);
      expect(toHex(encodeEnvelope(env))).toBe(e.encodedEnvelope);
      // Each enc is the public key of the recorded ephemeral key, in key-id order.
      expect(env.recipients.map((r) => toHex(r.enc))).toEqual(e.ephemeralPrivateKeys.map((k) => toHex(x25519PublicKeyFromPrivate(h(k)))));
    });

    it('decodes, passes the node checks and opens for every recipient', async () => {
      const decodedEnv = decodeEnvelope(h(e.encodedEnvelope));
      expect(toHex(encodeEnvelope(decodedEnv))).toBe(e.encodedEnvelope);
      const resolver = createStaticResolver(g.didWebDocuments as DidDocument[]);
      await checkEnvelope(decodedEnv, resolver, { now: g.message.createdMs + 1000 });
      for (const r of g.recipients) {
        const opened = openEnvelope(decodedEnv, { keyId: r.keyId, privateKey: h(r.x25519PrivateKey) });
        expect(toHex(opened)).toBe(g.message.signedMessage);
        const result = await openAndVerifyEnvelope(decodedEnv, { keyId: r.keyId, privateKey: h(r.x25519PrivateKey) }, resolver, {
          now: g.message.createdMs + 1000,
        });
        expect(result.verified).toBe(true);
      }
      const verified = await verifySignedMessage(h(g.message.signedMessage), resolver, { now: g.message.createdMs });
      expect(verified.verified && toHex(verified.messageHash)).toBe(g.message.messageHash);
    });
  });
});
