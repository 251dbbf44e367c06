/**
 * Ed25519 and X25519 on node:crypto with raw 32-byte keys.
 *
 * Public keys are imported as JWK (DER import costs ~100 µs) and cached in a bounded LRU keyed by the
 * raw key; private keys are imported once per Uint8Array instance and cached in a WeakMap that also
 * remembers the bytes, so a caller mutating its array never gets a stale key.
 */
import { Buffer } from 'node:buffer';
import crypto from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { IdentityError } from './errors.ts';
import { fromBase64Url, toBase64Url } from './encoding.ts';

export type KeyKind = 'ed25519' | 'x25519';

export interface SigningKeyPair {
  /** Raw Ed25519 public key (32 bytes). */
  publicKey: Uint8Array;
  /** RFC 8032 private key: the 32-byte seed. */
  privateKey: Uint8Array;
}

export interface AgreementKeyPair {
  /** Raw X25519 public key (32 bytes). */
  publicKey: Uint8Array;
  /** Raw X25519 private key (32 bytes). */
  privateKey: Uint8Array;
}

const PKCS8_PREFIX: Record<KeyKind, Buffer> = {
  ed25519: Buffer.from('302e020100300506032b657004220420', 'hex'),
  x25519: Buffer.from('302e020100300506032b656e04220420', 'hex'),
};
const JWK_CRV: Record<KeyKind, string> = { ed25519: 'Ed25519', x25519: 'X25519' };

function assertLength(b: Uint8Array, n: number, what: string): void {
  if (!(b instanceof Uint8Array) || b.length !== n) {
    throw new IdentityError('INVALID_ARGUMENT', `${what} must be a ${n}-byte Uint8Array`);
  }
}

// ---------------------------------------------------------------------------------------------
// Public key cache (LRU on a Map: re-insert on hit, evict the oldest).

const PUBLIC_CACHE_MAX = 8192;
const publicCache = new Map<string, KeyObject>();

function publicKeyObject(kind: KeyKind, raw: Uint8Array): KeyObject {
  assertLength(raw, 32, `${kind} public key`);
  const x = toBase64Url(raw);
  const cacheKey = kind === 'ed25519' ? 'e' + x : 'x' + x;
  const hit = publicCache.get(cacheKey);
  if (hit !== undefined) {
    publicCache.delete(cacheKey);
    publicCache.set(cacheKey, hit);
    return hit;
  }
  let key: KeyObject;
  try {
    key = crypto.createPublicKey({ key: { kty: 'OKP', crv: JWK_CRV[kind], x }, format: 'jwk' });
  } catch (e) {
    throw new IdentityError('INVALID_ARGUMENT', `invalid ${kind} public key`, { cause: e });
  }
  publicCache.set(cacheKey, key);
  if (publicCache.size > PUBLIC_CACHE_MAX) publicCache.delete(publicCache.keys().next().value!);
  return key;
}

// ---------------------------------------------------------------------------------------------
// Private key cache.

interface CachedPrivate {
  kind: KeyKind;
  copy: Buffer;
  key: KeyObject;
}
const privateCache = new WeakMap<Uint8Array, CachedPrivate>();

export function privateKeyObject(kind: KeyKind, raw: Uint8Array | KeyObject): KeyObject {
  // A KeyObject is used as given (its type getters are not free); node:crypto rejects a wrong one.
  if (!(raw instanceof Uint8Array)) return raw;
  assertLength(raw, 32, `${kind} private key`);
  const hit = privateCache.get(raw);
  if (hit !== undefined && hit.kind === kind && crypto.timingSafeEqual(hit.copy, raw)) return hit.key;
  const key = crypto.createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX[kind], raw]),
    format: 'der',
    type: 'pkcs8',
  });
  privateCache.set(raw, { kind, copy: Buffer.from(raw), key });
  return key;
}

function rawPublicOf(key: KeyObject): Uint8Array {
  const jwk = key.export({ format: 'jwk' });
  if (typeof jwk.x !== 'string') throw new IdentityError('INVALID_ARGUMENT', 'key has no public part');
  return fromBase64Url(jwk.x);
}

// ---------------------------------------------------------------------------------------------
// Ed25519

export function generateSigningKeyPair(): SigningKeyPair {
  const { privateKey } = crypto.generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return { publicKey: fromBase64Url(jwk.x!), privateKey: fromBase64Url(jwk.d!) };
}

/** The Ed25519 public key of a 32-byte seed. */
export function ed25519PublicKeyFromSeed(seed: Uint8Array): Uint8Array {
  return rawPublicOf(privateKeyObject('ed25519', seed));
}

/** Pure Ed25519 (RFC 8032) signature, 64 bytes. */
export function sign(privateKey: Uint8Array | KeyObject, data: Uint8Array): Uint8Array {
  return new Uint8Array(crypto.sign(null, data, privateKeyObject('ed25519', privateKey)));
}

/** Verifies a pure Ed25519 signature. Never throws: malformed keys or signatures yield false. */
export function verifySignature(publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
  if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
  try {
    return crypto.verify(null, data, publicKeyObject('ed25519', publicKey), signature);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// X25519

export function generateAgreementKeyPair(): AgreementKeyPair {
  const { privateKey } = crypto.generateKeyPairSync('x25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return { publicKey: fromBase64Url(jwk.x!), privateKey: fromBase64Url(jwk.d!) };
}

export function x25519PublicKeyFromPrivate(privateKey: Uint8Array | KeyObject): Uint8Array {
  return rawPublicOf(privateKeyObject('x25519', privateKey));
}

/**
 * X25519 private key of a did:key identity (PROTOCOL §3): the RFC 8032 secret scalar,
 * SHA-512(seed)[0..32], clamped.
 */
export function x25519PrivateFromEd25519Seed(seed: Uint8Array): Uint8Array {
  assertLength(seed, 32, 'Ed25519 seed');
  const h = crypto.createHash('sha512').update(seed).digest();
  const sk = new Uint8Array(h.subarray(0, 32));
  h.fill(0);
  sk[0] = sk[0]! & 248;
  sk[31] = (sk[31]! & 127) | 64;
  return sk;
}

/**
 * X25519(privateKey, publicKey). Throws INVALID_ARGUMENT when the result would be all zero
 * (small-order peer key), as RFC 7748 §6.1 and RFC 9180 §7.1.4 require.
 */
export function x25519(privateKey: Uint8Array | KeyObject, publicKey: Uint8Array | KeyObject): Uint8Array {
  const pub = publicKey instanceof Uint8Array ? publicKeyObject('x25519', publicKey) : publicKey;
  let out: Buffer;
  try {
    out = crypto.diffieHellman({ privateKey: privateKeyObject('x25519', privateKey), publicKey: pub });
  } catch (e) {
    throw new IdentityError('INVALID_ARGUMENT', 'X25519 failed (small-order or invalid public key)', { cause: e });
  }
  let acc = 0;
  for (const byte of out) acc |= byte;
  if (acc === 0) throw new IdentityError('INVALID_ARGUMENT', 'X25519 produced the all-zero value');
  return new Uint8Array(out);
}

/** A fresh ephemeral X25519 key pair as a KeyObject plus its raw public key (HPKE Encap). */
export function generateEphemeralX25519(): { privateKey: KeyObject; publicKey: Uint8Array } {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('x25519');
  // JWK export is much cheaper than DER here (~3 µs vs ~60 µs).
  return { privateKey, publicKey: fromBase64Url(publicKey.export({ format: 'jwk' }).x!) };
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = crypto.createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

export function randomBytes(n: number): Uint8Array {
  return new Uint8Array(crypto.randomBytes(n));
}
