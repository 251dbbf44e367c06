import { describe, expect, it } from 'vitest';
import {
  IdentityError,
  ed25519PublicKeyFromSeed,
  generateAgreementKeyPair,
  generateSigningKeyPair,
  hpkeOpen,
  hpkeSeal,
  hpkeSuite,
  sign,
  verifySignature,
  x25519,
  x25519FromEd25519Public,
  x25519PrivateFromEd25519Seed,
  x25519PublicKeyFromPrivate,
} from '../../identity/index.ts';

const data = new TextEncoder().encode('AfterSMTP');

describe('Ed25519', () => {
  it('generates 32-byte keys whose public part matches the seed', () => {
    const kp = generateSigningKeyPair();
    expect(kp.publicKey).toHaveLength(32);
    expect(kp.privateKey).toHaveLength(32);
    expect(ed25519PublicKeyFromSeed(kp.privateKey)).toEqual(kp.publicKey);
  });

  it('sign/verify round trip; any change to data, signature or key fails', () => {
    const kp = generateSigningKeyPair();
    const sig = sign(kp.privateKey, data);
    expect(sig).toHaveLength(64);
    expect(verifySignature(kp.publicKey, data, sig)).toBe(true);
    expect(verifySignature(kp.publicKey, new TextEncoder().encode('AfterSMTQ'), sig)).toBe(false);
    const badSig = Uint8Array.from(sig);
    badSig[63] = badSig[63]! ^ 0x80;
    expect(verifySignature(kp.publicKey, data, badSig)).toBe(false);
    expect(verifySignature(generateSigningKeyPair().publicKey, data, sig)).toBe(false);
  });

  it('verifySignature never throws on malformed input', () => {
    const kp = generateSigningKeyPair();
    const sig = sign(kp.privateKey, data);
    expect(verifySignature(kp.publicKey.subarray(0, 31), data, sig)).toBe(false);
    expect(verifySignature(kp.publicKey, data, sig.subarray(0, 63))).toBe(false);
    expect(verifySignature(new Uint8Array(32).fill(0xff), data, sig)).toBe(false);
  });

  it('a cached private key follows in-place mutation of the seed array', () => {
    const a = generateSigningKeyPair();
    const b = generateSigningKeyPair();
    const seed = Uint8Array.from(a.privateKey);
    expect(verifySignature(a.publicKey, data, sign(seed, data))).toBe(true);
    seed.set(b.privateKey);
    expect(verifySignature(b.publicKey, data, sign(seed, data))).toBe(true);
  });

  it('rejects private keys of the wrong length', () => {
    expect(() => sign(new Uint8Array(31), data)).toThrow(IdentityError);
  });
});

describe('X25519', () => {
  it('agreement is symmetric', () => {
    const a = generateAgreementKeyPair();
    const b = generateAgreementKeyPair();
    expect(x25519PublicKeyFromPrivate(a.privateKey)).toEqual(a.publicKey);
    expect(x25519(a.privateKey, b.publicKey)).toEqual(x25519(b.privateKey, a.publicKey));
  });

  it('refuses small-order public keys (all-zero shared secret)', () => {
    const a = generateAgreementKeyPair();
    expect(() => x25519(a.privateKey, new Uint8Array(32))).toThrow(IdentityError);
    const one = new Uint8Array(32);
    one[0] = 1;
    expect(() => x25519(a.privateKey, one)).toThrow(IdentityError);
  });

  it('x25519PrivateFromEd25519Seed is the clamped RFC 8032 scalar and matches the birational public key', () => {
    for (let i = 0; i < 5; i++) {
      const kp = generateSigningKeyPair();
      const sk = x25519PrivateFromEd25519Seed(kp.privateKey);
      expect(sk[0]! & 7).toBe(0);
      expect(sk[31]! & 0xc0).toBe(0x40);
      expect(x25519PublicKeyFromPrivate(sk)).toEqual(x25519FromEd25519Public(kp.publicKey));
    }
  });

  it('HPKE to the derived key opens with the derived private key only', () => {
    const kp = generateSigningKeyPair();
    const suite = hpkeSuite(2);
    const info = new TextEncoder().encode('info');
    const { enc, ct } = hpkeSeal(suite, x25519FromEd25519Public(kp.publicKey), info, data, data);
    expect(hpkeOpen(suite, x25519PrivateFromEd25519Seed(kp.privateKey), enc, info, data, ct)).toEqual(data);
    expect(() => hpkeOpen(suite, generateAgreementKeyPair().privateKey, enc, info, data, ct)).toThrow(/AEAD/);
  });
});
