/**
 * Writes test/vectors/aftersmtp-v1.json: golden vectors of protocol v1 (docs/PROTOCOL.md Appendix B)
 * from fixed seeds and fixed randomness. Run: node test/vectors/generate.ts
 * The output must only change when the protocol does; test/vectors.test.ts recomputes it byte for byte.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import {
  buildDidWebDocument,
  didKeyAgreementKeyId,
  didKeyFromEd25519,
  didKeySigningKeyId,
  didWebFromDomain,
  ed25519PublicKeyFromSeed,
  encodeEnvelope,
  encodeHeader,
  encodeOuterHeader,
  envelopeAad,
  messageSigningInput,
  sealEnvelope,
  sha256,
  signMessage,
  toHex,
  x25519FromEd25519Public,
  x25519PrivateFromEd25519Seed,
  x25519PublicKeyFromPrivate,
} from '../../identity/index.ts';
import type { EnvelopeAead } from '../../identity/index.ts';

/** SHA-256(label || u32 index) — a fixed, reproducible byte source (never for real keys). */
function fixedBytes(label: string, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0, off = 0; off < n; i++, off += 32) {
    const block = createHash('sha256').update(label).update(Uint8Array.of(i >>> 24, i >>> 16, i >>> 8, i)).digest();
    out.set(block.subarray(0, Math.min(32, n - off)), off);
  }
  return out;
}

/** Deterministic rng that records what it handed out. */
function recordingRng(label: string): { rng: (n: number) => Uint8Array; drawn: Uint8Array[] } {
  const drawn: Uint8Array[] = [];
  let counter = 0;
  return {
    drawn,
    rng: (n: number) => {
      const b = fixedBytes(`${label}/${counter++}`, n);
      drawn.push(Uint8Array.from(b)); // a copy: sealEnvelope wipes the content key after use
      return b;
    },
  };
}

export function buildGoldenVectors(): Record<string, unknown> {
  const senderSeed = fixedBytes('AfterSMTP-v1 golden: sender seed', 32);
  const sender = {
    seed: senderSeed,
    publicKey: ed25519PublicKeyFromSeed(senderSeed),
  };
  const senderDid = didKeyFromEd25519(sender.publicKey);
  const senderKeyId = didKeySigningKeyId(senderDid);

  // Two did:key recipients (X25519 derived from the Ed25519 seed) and one did:web recipient with an
  // independent X25519 key.
  const bobSeed = fixedBytes('AfterSMTP-v1 golden: bob seed', 32);
  const bobDid = didKeyFromEd25519(ed25519PublicKeyFromSeed(bobSeed));
  const daveSeed = fixedBytes('AfterSMTP-v1 golden: dave seed', 32);
  const daveDid = didKeyFromEd25519(ed25519PublicKeyFromSeed(daveSeed));
  const carolSigningSeed = fixedBytes('AfterSMTP-v1 golden: carol signing seed', 32);
  const carolAgreementKey = fixedBytes('AfterSMTP-v1 golden: carol x25519', 32);
  const carolDid = didWebFromDomain('b.test', ['users', 'carol']);
  const carolDocument = buildDidWebDocument({
    did: carolDid,
    signingPublicKey: ed25519PublicKeyFromSeed(carolSigningSeed),
    agreementPublicKey: x25519PublicKeyFromPrivate(carolAgreementKey),
  });

  const recipients = [
    {
      name: 'bob',
      did: bobDid,
      address: 'bob@b.test',
      ed25519Seed: toHex(bobSeed),
      keyId: didKeyAgreementKeyId(bobDid),
      x25519PrivateKey: toHex(x25519PrivateFromEd25519Seed(bobSeed)),
      x25519PublicKey: toHex(x25519FromEd25519Public(ed25519PublicKeyFromSeed(bobSeed))),
    },
    {
      name: 'carol',
      did: carolDid,
      address: 'carol@b.test',
      keyId: `${carolDid}#ka-1`,
      x25519PrivateKey: toHex(carolAgreementKey),
      x25519PublicKey: toHex(x25519PublicKeyFromPrivate(carolAgreementKey)),
    },
    {
      name: 'dave',
      did: daveDid,
      address: 'dave@d.test',
      ed25519Seed: toHex(daveSeed),
      keyId: didKeyAgreementKeyId(daveDid),
      x25519PrivateKey: toHex(x25519PrivateFromEd25519Seed(daveSeed)),
      x25519PublicKey: toHex(x25519FromEd25519Public(ed25519PublicKeyFromSeed(daveSeed))),
    },
  ];

  const body = new TextEncoder().encode(
    'From: Alice <alice@a.test>\r\nTo: bob@b.test, carol@b.test, dave@d.test\r\nSubject: Golden vector\r\n' +
      'Message-ID: <golden-1@a.test>\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\nHello from AfterSMTP v1.\r\n',
  );
  const messageId = fixedBytes('AfterSMTP-v1 golden: message id', 16);
  const createdMs = 1767225600000; // 2026-01-01T00:00:00Z
  const expiresMs = createdMs + 7 * 24 * 60 * 60 * 1000;
  const header = {
    messageId,
    from: { did: senderDid, address: 'alice@a.test' },
    to: recipients.map((r) => ({ did: r.did, address: r.address })),
    createdMs,
    expiresMs,
    contentType: 'message/rfc822',
  };
  const signed = signMessage({ header, body, keyId: senderKeyId, privateKey: sender.seed });
  const canonicalHeader = encodeHeader(signed.header);

  const envelopes = (['aes-256-gcm', 'chacha20-poly1305'] as EnvelopeAead[]).map((aead) => {
    const rngLabel = `AfterSMTP-v1 golden: envelope rng ${aead}`;
    const { rng, drawn } = recordingRng(rngLabel);
    const env = sealEnvelope({
      signedMessage: signed.signedMessage,
      senderDid,
      senderKeyId,
      senderPrivateKey: sender.seed,
      recipientAddresses: recipients.map((r) => r.address),
      recipients: recipients.map((r) => ({ keyId: r.keyId, publicKey: Buffer.from(r.x25519PublicKey, 'hex') })),
      aead,
      rng,
    });
    const aad = envelopeAad(env);
    return {
      aead,
      aeadId: env.aeadId,
      rngLabel,
      contentKey: toHex(drawn[0]!),
      nonce: toHex(drawn[1]!),
      ephemeralPrivateKeys: drawn.slice(2).map(toHex),
      recipientAddresses: env.recipientAddresses,
      createdMs: env.createdMs,
      expiresMs: env.expiresMs,
      recipientsDigest: toHex(env.recipientsDigest),
      outerHeader: toHex(encodeOuterHeader(env)),
      envelopeAad: toHex(aad),
      wrapAad: toHex(sha256(aad)),
      outerSignature: toHex(env.outerSignature),
      recipients: env.recipients.map((r) => ({ keyId: r.keyId, enc: toHex(r.enc), wrapped: toHex(r.wrapped) })),
      ciphertext: toHex(env.ciphertext),
      encodedEnvelope: toHex(encodeEnvelope(env)),
    };
  });

  return {
    description:
      'AfterSMTP protocol v1 golden vectors (docs/PROTOCOL.md §2, Appendix A/B). All byte strings are lowercase hex. ' +
      'Randomness is fixed: see rngLabel and the draw order content key, nonce, one ephemeral key per recipient in key-id order.',
    generator: 'test/vectors/generate.ts',
    sender: {
      ed25519Seed: toHex(sender.seed),
      ed25519PublicKey: toHex(sender.publicKey),
      did: senderDid,
      keyId: senderKeyId,
      address: 'alice@a.test',
    },
    recipients,
    didWebDocuments: [carolDocument],
    message: {
      messageId: toHex(messageId),
      createdMs,
      expiresMs,
      contentType: header.contentType,
      body: toHex(body),
      bodyDigest: toHex(signed.header.bodyDigest),
      canonicalHeader: toHex(canonicalHeader),
      signingInput: toHex(messageSigningInput(canonicalHeader, signed.header.bodyDigest)),
      keyId: senderKeyId,
      signature: toHex(signed.signedMessage.subarray(signed.signedMessage.length - 64)),
      signedMessage: toHex(signed.signedMessage),
      messageHash: toHex(signed.messageHash),
    },
    envelopes,
  };
}

const out = new URL('./aftersmtp-v1.json', import.meta.url);
if (process.argv[1] !== undefined && pathToFileURL(process.argv[1]).href === import.meta.url) {
  writeFileSync(out, JSON.stringify(buildGoldenVectors(), null, 2) + '\n');
  console.log(`wrote ${out.pathname}`);
}
