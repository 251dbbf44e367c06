import { describe, expect, it } from 'vitest';
import { aeadSeal, hpkeSeal, hpkeSuite } from '../../identity/hpke.ts';
import {
  CONTENT_KEY_INFO,
  IdentityError,
  buildDidWebDocument,
  checkEnvelope,
  computeRecipientsDigest,
  createStaticResolver,
  decodeEnvelope,
  didWebFromDomain,
  encodeEnvelope,
  envelopeAad,
  generateAgreementKeyPair,
  generateSigningKeyPair,
  openAndVerifyEnvelope,
  openEnvelope,
  randomBytes,
  sealEnvelope,
  sha256,
  sign,
} from '../../identity/index.ts';
import type { Envelope, SealEnvelopeOptions } from '../../identity/index.ts';
import { HOUR, T0, didKeyIdentity, flipBit, makeSigned } from './helpers.ts';
import type { TestIdentity } from './helpers.ts';

const alice = didKeyIdentity('alice@a.test');
const bob = didKeyIdentity('bob@b.test');
const dave = didKeyIdentity('dave@d.test');
// carol: did:web with an independent X25519 key
const carolDid = didWebFromDomain('c.test', ['users', 'carol']);
const carolSigning = generateSigningKeyPair();
const carolAgreement = generateAgreementKeyPair();
const carolDoc = buildDidWebDocument({ did: carolDid, signingPublicKey: carolSigning.publicKey, agreementPublicKey: carolAgreement.publicKey });
const resolver = createStaticResolver([carolDoc]);
const carol = { keyId: `${carolDid}#ka-1`, publicKey: carolAgreement.publicKey, privateKey: carolAgreement.privateKey };
const now = T0 + 1000;

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof IdentityError ? e.code : `not an IdentityError: ${String(e)}`;
  }
  return undefined;
}

async function asyncCode(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return e instanceof IdentityError ? e.code : `not an IdentityError: ${String(e)}`;
  }
  return undefined;
}

function seal(opts: Partial<SealEnvelopeOptions> = {}, to: TestIdentity[] = [bob, dave]): Envelope {
  const s = makeSigned(alice, to);
  return sealEnvelope({
    signedMessage: s.signedMessage,
    senderDid: alice.did,
    senderKeyId: alice.keyId,
    senderPrivateKey: alice.seed,
    recipientAddresses: [...to.map((t) => t.address), 'carol@c.test'],
    recipients: [...to.map((t) => ({ keyId: t.agreementKeyId, publicKey: t.agreementPublicKey })), { keyId: carol.keyId, publicKey: carol.publicKey }],
    ...opts,
  });
}

/** Re-signs the outer header after a field change, as a malicious but authentic sender could. */
function resign(env: Envelope): Envelope {
  return { ...env, outerSignature: sign(alice.seed, envelopeAad(env)) };
}

describe('sealEnvelope / openEnvelope', () => {
  it.each(['aes-256-gcm', 'chacha20-poly1305'] as const)('three recipients (%s): each opens and verifies the inner message', async (aead) => {
    const s = makeSigned(alice, [bob, dave]);
    const env = sealEnvelope({
      signedMessage: s.signedMessage,
      messageId: decodeEnvelopeFree(s.signedMessage),
      messageHash: s.messageHash,
      senderDid: alice.did,
      senderKeyId: alice.keyId,
      senderPrivateKey: alice.seed,
      recipientAddresses: ['bob@b.test', 'dave@d.test', 'carol@c.test'],
      recipients: [
        { keyId: carol.keyId, publicKey: carol.publicKey },
        { keyId: bob.agreementKeyId, publicKey: bob.agreementPublicKey },
        { keyId: dave.agreementKeyId, publicKey: dave.agreementPublicKey },
      ],
      aead,
    });
    expect(env.aeadId).toBe(aead === 'aes-256-gcm' ? 2 : 3);
    expect(env.messageHash).toEqual(s.messageHash);
    // recipients sorted bytewise by key id
    const ids = env.recipients.map((r) => r.keyId);
    expect(ids).toEqual([...ids].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    await checkEnvelope(env, resolver, { now });
    for (const key of [
      { keyId: bob.agreementKeyId, privateKey: bob.agreementPrivateKey },
      { keyId: dave.agreementKeyId, privateKey: dave.agreementPrivateKey },
      { keyId: carol.keyId, privateKey: carol.privateKey },
    ]) {
      expect(openEnvelope(env, key)).toEqual(s.signedMessage);
      const r = await openAndVerifyEnvelope(env, key, resolver, { now });
      expect(r.verified).toBe(true);
    }
  });

  it('a wrong private key fails DECRYPT; an unknown key id fails NOT_A_RECIPIENT', () => {
    const env = seal();
    expect(code(() => openEnvelope(env, { keyId: bob.agreementKeyId, privateKey: dave.agreementPrivateKey }))).toBe('DECRYPT');
    expect(code(() => openEnvelope(env, { keyId: alice.agreementKeyId, privateKey: alice.agreementPrivateKey }))).toBe('NOT_A_RECIPIENT');
  });

  it('a tampered ciphertext fails DECRYPT (every region: start, middle, tag)', () => {
    const env = seal();
    const n = env.ciphertext.length;
    for (const i of [0, n >> 1, n - 1]) {
      const bad = { ...env, ciphertext: flipBit(env.ciphertext, i * 8) };
      expect(code(() => openEnvelope(bad, { keyId: bob.agreementKeyId, privateKey: bob.agreementPrivateKey }))).toBe('DECRYPT');
    }
    const badWrap = { ...env, recipients: env.recipients.map((r) => ({ ...r, wrapped: flipBit(r.wrapped, 3) })) };
    expect(code(() => openEnvelope(badWrap, { keyId: bob.agreementKeyId, privateKey: bob.agreementPrivateKey }))).toBe('DECRYPT');
  });

  it('a tampered outer header fails SIGNATURE at the node and DECRYPT at the recipient', async () => {
    const env = seal();
    const variants: Envelope[] = [
      { ...env, createdMs: env.createdMs + 1 },
      { ...env, recipientAddresses: [...env.recipientAddresses.slice(1), env.recipientAddresses[0]!] },
      { ...env, messageHash: flipBit(env.messageHash, 0) },
      { ...env, nonce: flipBit(env.nonce, 5) },
      { ...env, messageId: flipBit(env.messageId, 9) },
      { ...env, aeadId: 3 },
    ];
    for (const v of variants) {
      expect(await asyncCode(checkEnvelope(v, resolver, { now }))).toBe('SIGNATURE');
      expect(code(() => openEnvelope(v, { keyId: bob.agreementKeyId, privateKey: bob.agreementPrivateKey }))).toBe('DECRYPT');
    }
    expect(await asyncCode(checkEnvelope({ ...env, outerSignature: flipBit(env.outerSignature, 100) }, resolver, { now }))).toBe('SIGNATURE');
  });

  it('a stated message hash that does not match the content fails HASH_MISMATCH after decryption', () => {
    // A malicious sender encrypts message A but states the hash of B, and signs that header.
    const a = makeSigned(alice, [bob]);
    const b = makeSigned(alice, [bob], { messageId: decodeEnvelopeFree(a.signedMessage), body: new TextEncoder().encode('other') });
    const suite = hpkeSuite(2);
    const contentKey = randomBytes(32);
    const header = {
      version: 1,
      kemId: 0x20,
      kdfId: 1,
      aeadId: 2,
      messageId: decodeEnvelopeFree(a.signedMessage),
      senderDid: alice.did,
      senderKeyId: alice.keyId,
      recipientAddresses: ['bob@b.test'],
      messageHash: b.messageHash,
      recipientsDigest: computeRecipientsDigest([bob.agreementKeyId]),
      createdMs: T0,
      expiresMs: T0 + HOUR,
      nonce: randomBytes(12),
    };
    const aad = envelopeAad(header);
    const { enc, ct } = hpkeSeal(suite, bob.agreementPublicKey, CONTENT_KEY_INFO, sha256(aad), contentKey);
    const env: Envelope = {
      ...header,
      outerSignature: sign(alice.seed, aad),
      recipients: [{ keyId: bob.agreementKeyId, enc, wrapped: ct }],
      ciphertext: aeadSeal(suite, contentKey, header.nonce, aad, a.signedMessage),
    };
    expect(code(() => openEnvelope(env, { keyId: bob.agreementKeyId, privateKey: bob.agreementPrivateKey }))).toBe('HASH_MISMATCH');
  });

  it('sealEnvelope refuses inconsistent inputs', () => {
    const s = makeSigned(alice, [bob]);
    const base: SealEnvelopeOptions = {
      signedMessage: s.signedMessage,
      senderDid: alice.did,
      senderKeyId: alice.keyId,
      senderPrivateKey: alice.seed,
      recipientAddresses: ['bob@b.test'],
      recipients: [{ keyId: bob.agreementKeyId, publicKey: bob.agreementPublicKey }],
    };
    expect(code(() => sealEnvelope({ ...base, messageHash: randomBytes(32) }))).toBe('HASH_MISMATCH');
    expect(code(() => sealEnvelope({ ...base, messageId: randomBytes(16) }))).toBe('MESSAGE_ID_MISMATCH');
    expect(code(() => sealEnvelope({ ...base, senderKeyId: bob.keyId }))).toBe('KEY_ID_MISMATCH');
    expect(code(() => sealEnvelope({ ...base, recipients: [] }))).toBe('INVALID_ARGUMENT');
    expect(code(() => sealEnvelope({ ...base, recipients: [...base.recipients, ...base.recipients] }))).toBe('RECIPIENTS_DIGEST');
    expect(code(() => sealEnvelope({ ...base, signedMessage: s.signedMessage.subarray(1) }))).toBe('ENCODING');
    expect(code(() => sealEnvelope(base))).toBeUndefined();
  });

  it('did:key recipients open with x25519PrivateFromEd25519Seed of their seed', () => {
    const env = seal({}, [bob]);
    expect(openEnvelope(env, { keyId: bob.agreementKeyId, privateKey: bob.agreementPrivateKey }).length).toBeGreaterThan(0);
  });
});

/** The inner message id, read straight from the canonical header (offset 4 + 1). */
function decodeEnvelopeFree(signedMessage: Uint8Array): Uint8Array {
  return signedMessage.slice(5, 21);
}

describe('checkEnvelope', () => {
  it('recipients_digest mismatch, unsorted or duplicated recipients fail RECIPIENTS_DIGEST', async () => {
    const env = seal();
    const wrongDigest = resign({ ...env, recipientsDigest: computeRecipientsDigest([bob.agreementKeyId]) });
    expect(await asyncCode(checkEnvelope(wrongDigest, resolver, { now }))).toBe('RECIPIENTS_DIGEST');
    expect(code(() => openEnvelope(wrongDigest, { keyId: bob.agreementKeyId, privateKey: bob.agreementPrivateKey }))).toBe('RECIPIENTS_DIGEST');
    const dropped = { ...env, recipients: env.recipients.slice(1) };
    expect(await asyncCode(checkEnvelope(dropped, resolver, { now }))).toBe('RECIPIENTS_DIGEST');
    const reversed = { ...env, recipients: [...env.recipients].reverse() };
    expect(await asyncCode(checkEnvelope(reversed, resolver, { now }))).toBe('RECIPIENTS_DIGEST');
    const dup = { ...env, recipients: [env.recipients[0]!, ...env.recipients] };
    expect(await asyncCode(checkEnvelope(dup, resolver, { now }))).toBe('RECIPIENTS_DIGEST');
  });

  it('time window: expired, created in the future, lifetime too long', async () => {
    const env = seal({ createdMs: T0, expiresMs: T0 + HOUR });
    expect(await asyncCode(checkEnvelope(env, resolver, { now: T0 + HOUR }))).toBeUndefined();
    expect(await asyncCode(checkEnvelope(env, resolver, { now: T0 + HOUR + 1 }))).toBe('TIME_WINDOW');
    expect(await asyncCode(checkEnvelope(env, resolver, { now: T0 - 5 * 60_000 - 1 }))).toBe('TIME_WINDOW');
    expect(await asyncCode(checkEnvelope(env, resolver, { now: T0 - 60_000, skewMs: 59_999 }))).toBe('TIME_WINDOW');
    const long = seal({ createdMs: T0, expiresMs: T0 + 8 * 24 * HOUR });
    expect(await asyncCode(checkEnvelope(long, resolver, { now }))).toBe('TIME_WINDOW');
    expect(await asyncCode(checkEnvelope(long, resolver, { now, maxLifetimeMs: 9 * 24 * HOUR }))).toBeUndefined();
  });

  it('a sender key that is not in authentication fails KEY_NOT_IN_DID; a foreign key id KEY_ID_MISMATCH', async () => {
    const env = seal();
    const other = resign({ ...env, senderKeyId: alice.agreementKeyId });
    expect(await asyncCode(checkEnvelope(other, resolver, { now }))).toBe('KEY_NOT_IN_DID');
    const foreign = { ...env, senderKeyId: bob.keyId };
    expect(await asyncCode(checkEnvelope(foreign, resolver, { now }))).toBe('KEY_ID_MISMATCH');
  });

  it('oversize fields and lists fail LIMIT; malformed fields and suites fail ENCODING', async () => {
    const env = seal();
    const cases: Array<[Envelope, Parameters<typeof checkEnvelope>[2], string]> = [
      [env, { now, limits: { maxEnvelopeBytes: 200 } }, 'LIMIT'],
      [env, { now, limits: { maxRecipients: 2 } }, 'LIMIT'],
      [env, { now, limits: { maxFieldBytes: 40 } }, 'LIMIT'],
      [{ ...env, senderDid: 'x'.repeat(2049) }, { now }, 'LIMIT'],
      [{ ...env, recipientAddresses: Array.from({ length: 1001 }, () => 'a@b') }, { now }, 'LIMIT'],
      [{ ...env, aeadId: 1 }, { now }, 'ENCODING'],
      [{ ...env, kemId: 0x10 }, { now }, 'ENCODING'],
      [{ ...env, version: 2 }, { now }, 'ENCODING'],
      [{ ...env, nonce: env.nonce.subarray(1) }, { now }, 'ENCODING'],
      [{ ...env, messageHash: new Uint8Array(31) }, { now }, 'ENCODING'],
      [{ ...env, recipients: [] }, { now }, 'ENCODING'],
      [{ ...env, recipients: env.recipients.map((r) => ({ ...r, enc: r.enc.subarray(0, 31) })) }, { now }, 'ENCODING'],
      [{ ...env, ciphertext: new Uint8Array(15) }, { now }, 'ENCODING'],
      [{ ...env, createdMs: -1 }, { now }, 'ENCODING'],
    ];
    for (const [e, o, c] of cases) expect(await asyncCode(checkEnvelope(e, resolver, o))).toBe(c);
  });

  it('an unresolvable sender fails DID_RESOLUTION', async () => {
    const env = seal();
    const stranger = createStaticResolver([]);
    expect(await asyncCode(checkEnvelope({ ...env, senderDid: carolDid, senderKeyId: `${carolDid}#sig-1` }, stranger, { now }))).toBe('DID_RESOLUTION');
  });
});

describe('encodeEnvelope / decodeEnvelope (Appendix A)', () => {
  it('round-trips byte for byte and field for field', () => {
    const env = seal();
    const bytes = encodeEnvelope(env);
    const back = decodeEnvelope(bytes);
    expect(back).toEqual(env);
    expect(encodeEnvelope(back)).toEqual(bytes);
    expect(Array.from(bytes.subarray(0, 5))).toEqual([0x41, 0x53, 0x45, 0x31, 0x01]);
  });

  it('rejects trailing bytes, every truncation and a bad magic', () => {
    const bytes = encodeEnvelope(seal({}, [bob]));
    expect(code(() => decodeEnvelope(new Uint8Array([...bytes, 0])))).toBe('ENCODING');
    for (let n = 0; n < bytes.length; n += 7) expect(code(() => decodeEnvelope(bytes.subarray(0, n))), `length ${n}`).toMatch(/ENCODING|LIMIT/);
    expect(code(() => decodeEnvelope(bytes.subarray(0, bytes.length - 1)))).toBe('ENCODING');
    const magic = Uint8Array.from(bytes);
    magic[0] = 0x42;
    expect(code(() => decodeEnvelope(magic))).toBe('ENCODING');
    expect(code(() => decodeEnvelope(bytes, { maxEnvelopeBytes: bytes.length - 1 }))).toBe('LIMIT');
  });
});
