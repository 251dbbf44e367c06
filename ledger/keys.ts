/**
 * Ed25519 keys as raw bytes (32-byte seed, 32-byte public key), turned into node:crypto KeyObjects
 * through JWK import (cheap, unlike DER) and cached.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { LedgerError } from './errors.ts';
import { bytesEqual } from './hash.ts';

export interface Ed25519KeyPair {
  /** 32-byte RFC 8032 seed (a 64-byte seed || public key is accepted too). */
  privateKey: Uint8Array;
  /** 32-byte RFC 8032 public key. */
  publicKey: Uint8Array;
}

function b64url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('base64url');
}

const PUBLIC_CACHE_MAX = 4096;
const publicCache = new Map<string, KeyObject>();

/** KeyObject for a raw Ed25519 public key (cached). */
export function ed25519PublicKeyObject(publicKey: Uint8Array): KeyObject {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) {
    throw new LedgerError('BAD_KEY', 'Ed25519 public key must be 32 bytes');
  }
  const x = b64url(publicKey);
  let key = publicCache.get(x);
  if (key === undefined) {
    try {
      key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
    } catch (cause) {
      throw new LedgerError('BAD_KEY', 'invalid Ed25519 public key', { cause });
    }
    if (publicCache.size >= PUBLIC_CACHE_MAX) publicCache.delete(publicCache.keys().next().value!);
    publicCache.set(x, key);
  }
  return key;
}

/** KeyObject for a raw Ed25519 key pair; checks that the public key belongs to the seed. */
export function ed25519PrivateKeyObject(pair: Ed25519KeyPair): KeyObject {
  const { publicKey } = pair;
  let seed = pair.privateKey;
  if (!(seed instanceof Uint8Array) || !(publicKey instanceof Uint8Array) || publicKey.length !== 32) {
    throw new LedgerError('BAD_KEY', 'Ed25519 key pair must be raw bytes (32-byte seed, 32-byte public key)');
  }
  if (seed.length === 64) {
    if (!bytesEqual(seed.subarray(32), publicKey)) throw new LedgerError('BAD_KEY', '64-byte private key does not end in the public key');
    seed = seed.subarray(0, 32);
  }
  if (seed.length !== 32) throw new LedgerError('BAD_KEY', 'Ed25519 private key must be a 32-byte seed');
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64url(seed), x: b64url(publicKey) }, format: 'jwk' });
  } catch (cause) {
    throw new LedgerError('BAD_KEY', 'invalid Ed25519 private key', { cause });
  }
  const derived = createPublicKey(key).export({ format: 'jwk' }).x;
  if (derived !== b64url(publicKey)) throw new LedgerError('BAD_KEY', 'Ed25519 public key does not match the private key');
  return key;
}

export function generateEd25519KeyPair(): Ed25519KeyPair {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return { privateKey: Buffer.from(jwk.d!, 'base64url'), publicKey: Buffer.from(jwk.x!, 'base64url') };
}

export function ed25519Sign(key: KeyObject, message: Uint8Array): Uint8Array {
  return sign(null, message, key);
}

export function ed25519Verify(key: KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  try {
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}
