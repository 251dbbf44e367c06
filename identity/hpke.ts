/**
 * HPKE (RFC 9180), base mode only, on node:crypto:
 *   KEM  DHKEM(X25519, HKDF-SHA256)  0x0020
 *   KDF  HKDF-SHA256                 0x0001
 *   AEAD AES-128-GCM 0x0001, AES-256-GCM 0x0002, ChaCha20Poly1305 0x0003
 *
 * The default sender path draws a fresh ephemeral key; the *WithEphemeral variants take a fixed
 * ephemeral private key and exist only to reproduce test vectors.
 */
import { Buffer } from 'node:buffer';
import crypto from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { IdentityError } from './errors.ts';
import { asU8, concatBytes, toHex } from './encoding.ts';
import { generateEphemeralX25519, privateKeyObject, x25519, x25519PublicKeyFromPrivate } from './keys.ts';

export const KEM_X25519_HKDF_SHA256 = 0x0020;
export const KDF_HKDF_SHA256 = 0x0001;
export const AEAD_AES_128_GCM = 0x0001;
export const AEAD_AES_256_GCM = 0x0002;
export const AEAD_CHACHA20_POLY1305 = 0x0003;

export type HpkeAeadId = typeof AEAD_AES_128_GCM | typeof AEAD_AES_256_GCM | typeof AEAD_CHACHA20_POLY1305;

export interface HpkeSuite {
  readonly kemId: number;
  readonly kdfId: number;
  readonly aeadId: HpkeAeadId;
  /** AEAD key length. */
  readonly nk: number;
  /** AEAD nonce length. */
  readonly nn: number;
  /** AEAD tag length. */
  readonly nt: number;
  /** node:crypto cipher name. */
  readonly cipher: 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305';
  /** "HPKE" || kem_id || kdf_id || aead_id */
  readonly suiteId: Uint8Array;
}

const NH = 32; // HKDF-SHA256 output
const NSECRET = 32;
const MODE_BASE = 0x00;

const ascii = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
const HPKE_V1 = ascii('HPKE-v1');
const KEM_SUITE_ID = concatBytes(ascii('KEM'), Uint8Array.of(0x00, 0x20));
const EMPTY = new Uint8Array(0);

const AEADS: Record<HpkeAeadId, { nk: number; cipher: HpkeSuite['cipher'] }> = {
  [AEAD_AES_128_GCM]: { nk: 16, cipher: 'aes-128-gcm' },
  [AEAD_AES_256_GCM]: { nk: 32, cipher: 'aes-256-gcm' },
  [AEAD_CHACHA20_POLY1305]: { nk: 32, cipher: 'chacha20-poly1305' },
};

const suites = new Map<number, HpkeSuite>();

/** The supported suite for an AEAD id (KEM and KDF are fixed). */
export function hpkeSuite(aeadId: number, kemId = KEM_X25519_HKDF_SHA256, kdfId = KDF_HKDF_SHA256): HpkeSuite {
  if (kemId !== KEM_X25519_HKDF_SHA256) throw new IdentityError('INVALID_ARGUMENT', `unsupported HPKE KEM 0x${kemId.toString(16)}`);
  if (kdfId !== KDF_HKDF_SHA256) throw new IdentityError('INVALID_ARGUMENT', `unsupported HPKE KDF 0x${kdfId.toString(16)}`);
  const cached = suites.get(aeadId);
  if (cached) return cached;
  const aead = AEADS[aeadId as HpkeAeadId];
  if (aead === undefined) throw new IdentityError('INVALID_ARGUMENT', `unsupported HPKE AEAD 0x${aeadId.toString(16)}`);
  const suite: HpkeSuite = Object.freeze({
    kemId,
    kdfId,
    aeadId: aeadId as HpkeAeadId,
    nk: aead.nk,
    nn: 12,
    nt: 16,
    cipher: aead.cipher,
    suiteId: concatBytes(ascii('HPKE'), Uint8Array.of(kemId >> 8, kemId & 0xff, kdfId >> 8, kdfId & 0xff, aeadId >> 8, aeadId & 0xff)),
  });
  suites.set(aeadId, suite);
  return suite;
}

// ---------------------------------------------------------------------------------------------
// HKDF (RFC 5869) and the labeled variants of RFC 9180 §4.

const HMAC_BLOCK = 64;
const IPAD = new Uint8Array(HMAC_BLOCK).fill(0x36);
const OPAD = new Uint8Array(HMAC_BLOCK).fill(0x5c);

/**
 * HMAC-SHA256 (RFC 2104) over createHash: node's createHmac with a raw key costs ~30 µs per call here
 * (it builds a KeyObject each time), two SHA-256 contexts cost a few.
 */
export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const k = new Uint8Array(HMAC_BLOCK);
  k.set(key.length > HMAC_BLOCK ? crypto.createHash('sha256').update(key).digest() : key);
  const ipadKey = new Uint8Array(HMAC_BLOCK);
  const opadKey = new Uint8Array(HMAC_BLOCK);
  for (let i = 0; i < HMAC_BLOCK; i++) {
    ipadKey[i] = k[i]! ^ IPAD[i]!;
    opadKey[i] = k[i]! ^ OPAD[i]!;
  }
  const inner = crypto.hash('sha256', Buffer.concat([ipadKey, ...parts]), 'buffer');
  const out = crypto.hash('sha256', Buffer.concat([opadKey, inner]), 'buffer');
  k.fill(0);
  ipadKey.fill(0);
  opadKey.fill(0);
  return asU8(out);
}

export function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  // An empty salt is the RFC's string of Nh zeros: HMAC pads short keys with zeros.
  return hmacSha256(salt, ikm);
}

export function hkdfExpand(prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (length > 255 * NH) throw new IdentityError('INVALID_ARGUMENT', 'HKDF-Expand length too large');
  const out = new Uint8Array(length);
  let t: Uint8Array = EMPTY;
  let filled = 0;
  for (let i = 1; filled < length; i++) {
    t = hmacSha256(prk, t, info, Uint8Array.of(i));
    const n = Math.min(t.length, length - filled);
    out.set(t.subarray(0, n), filled);
    filled += n;
  }
  return out;
}

function labeledExtract(suiteId: Uint8Array, salt: Uint8Array, label: string, ikm: Uint8Array): Uint8Array {
  return hkdfExtract(salt, concatBytes(HPKE_V1, suiteId, ascii(label), ikm));
}

function labeledExpand(suiteId: Uint8Array, prk: Uint8Array, label: string, info: Uint8Array, length: number): Uint8Array {
  if (length > 0xffff) throw new IdentityError('INVALID_ARGUMENT', 'LabeledExpand length too large');
  const labeledInfo = concatBytes(Uint8Array.of(length >> 8, length & 0xff), HPKE_V1, suiteId, ascii(label), info);
  return hkdfExpand(prk, labeledInfo, length);
}

// ---------------------------------------------------------------------------------------------
// DHKEM(X25519, HKDF-SHA256), RFC 9180 §4.1 and §7.1.3.

export interface KemKeyPair {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

/** DeriveKeyPair(ikm) for X25519. */
export function hpkeDeriveKeyPair(ikm: Uint8Array): KemKeyPair {
  const dkpPrk = labeledExtract(KEM_SUITE_ID, EMPTY, 'dkp_prk', ikm);
  const privateKey = labeledExpand(KEM_SUITE_ID, dkpPrk, 'sk', EMPTY, 32);
  return { privateKey, publicKey: x25519PublicKeyFromPrivate(privateKey) };
}

function extractAndExpand(dh: Uint8Array, kemContext: Uint8Array): Uint8Array {
  const eaePrk = labeledExtract(KEM_SUITE_ID, EMPTY, 'eae_prk', dh);
  return labeledExpand(KEM_SUITE_ID, eaePrk, 'shared_secret', kemContext, NSECRET);
}

function dh(sk: Uint8Array | KeyObject, pk: Uint8Array): Uint8Array {
  try {
    return x25519(sk, pk);
  } catch (e) {
    throw new IdentityError('DECRYPT', 'HPKE: Diffie-Hellman failed (invalid or small-order public key)', { cause: e });
  }
}

/** Encap(pkR); with skE given, the deterministic variant of RFC 9180 test vectors. */
export function hpkeEncap(pkR: Uint8Array, skE?: Uint8Array): { sharedSecret: Uint8Array; enc: Uint8Array } {
  let sk: Uint8Array | KeyObject;
  let enc: Uint8Array;
  if (skE === undefined) {
    const eph = generateEphemeralX25519();
    sk = eph.privateKey;
    enc = eph.publicKey;
  } else {
    sk = privateKeyObject('x25519', skE);
    enc = x25519PublicKeyFromPrivate(sk);
  }
  const sharedSecret = extractAndExpand(dh(sk, pkR), concatBytes(enc, pkR));
  return { sharedSecret, enc };
}

/** Decap(enc, skR) */
export function hpkeDecap(enc: Uint8Array, skR: Uint8Array | KeyObject): Uint8Array {
  if (enc.length !== 32) throw new IdentityError('DECRYPT', `HPKE: enc must be 32 bytes, got ${enc.length}`);
  const sk = privateKeyObject('x25519', skR);
  const pkRm = x25519PublicKeyFromPrivate(sk);
  return extractAndExpand(dh(sk, enc), concatBytes(enc, pkRm));
}

// ---------------------------------------------------------------------------------------------
// Key schedule, RFC 9180 §5.1 (mode_base: psk and psk_id empty).

export interface KeyScheduleValues {
  keyScheduleContext: Uint8Array;
  secret: Uint8Array;
  key: Uint8Array;
  baseNonce: Uint8Array;
  exporterSecret: Uint8Array;
}

// psk_id_hash and info_hash depend only on (suite, info): memoize for the protocol's fixed info.
const contextCache = new Map<string, Uint8Array>();

export function hpkeKeySchedule(suite: HpkeSuite, sharedSecret: Uint8Array, info: Uint8Array): KeyScheduleValues {
  const cacheKey = info.length <= 256 ? suite.aeadId + ':' + toHex(info) : undefined;
  let keyScheduleContext = cacheKey === undefined ? undefined : contextCache.get(cacheKey);
  if (keyScheduleContext === undefined) {
    const pskIdHash = labeledExtract(suite.suiteId, EMPTY, 'psk_id_hash', EMPTY);
    const infoHash = labeledExtract(suite.suiteId, EMPTY, 'info_hash', info);
    keyScheduleContext = concatBytes(Uint8Array.of(MODE_BASE), pskIdHash, infoHash);
    if (cacheKey !== undefined && contextCache.size < 64) contextCache.set(cacheKey, keyScheduleContext);
  }
  const secret = labeledExtract(suite.suiteId, sharedSecret, 'secret', EMPTY);
  return {
    keyScheduleContext,
    secret,
    key: labeledExpand(suite.suiteId, secret, 'key', keyScheduleContext, suite.nk),
    baseNonce: labeledExpand(suite.suiteId, secret, 'base_nonce', keyScheduleContext, suite.nn),
    exporterSecret: labeledExpand(suite.suiteId, secret, 'exp', keyScheduleContext, NH),
  };
}

// ---------------------------------------------------------------------------------------------
// AEAD

export function aeadSeal(suite: HpkeSuite, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, pt: Uint8Array): Uint8Array {
  const c = crypto.createCipheriv(suite.cipher as crypto.CipherGCMTypes, key, nonce, { authTagLength: suite.nt });
  c.setAAD(aad);
  const head = c.update(pt);
  const tail = c.final();
  return asU8(Buffer.concat([head, tail, c.getAuthTag()]));
}

export function aeadOpen(suite: HpkeSuite, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ct: Uint8Array): Uint8Array {
  if (ct.length < suite.nt) throw new IdentityError('DECRYPT', 'ciphertext shorter than the AEAD tag');
  try {
    const d = crypto.createDecipheriv(suite.cipher as crypto.CipherGCMTypes, key, nonce, { authTagLength: suite.nt });
    d.setAAD(aad);
    d.setAuthTag(ct.subarray(ct.length - suite.nt));
    const head = d.update(ct.subarray(0, ct.length - suite.nt));
    const tail = d.final();
    return asU8(tail.length === 0 ? head : Buffer.concat([head, tail]));
  } catch (e) {
    throw new IdentityError('DECRYPT', 'AEAD authentication failed', { cause: e });
  }
}

// ---------------------------------------------------------------------------------------------
// Encryption context, RFC 9180 §5.2 and §5.3.

export class HpkeContext {
  readonly suite: HpkeSuite;
  readonly role: 'sender' | 'recipient';
  readonly #key: Uint8Array;
  readonly #baseNonce: Uint8Array;
  readonly #exporterSecret: Uint8Array;
  #seq = 0;

  constructor(suite: HpkeSuite, role: 'sender' | 'recipient', values: KeyScheduleValues) {
    this.suite = suite;
    this.role = role;
    this.#key = values.key;
    this.#baseNonce = values.baseNonce;
    this.#exporterSecret = values.exporterSecret;
  }

  get sequenceNumber(): number {
    return this.#seq;
  }

  /** base_nonce XOR I2OSP(seq, Nn) */
  computeNonce(seq: number): Uint8Array {
    if (!Number.isSafeInteger(seq) || seq < 0) throw new IdentityError('INVALID_ARGUMENT', 'invalid HPKE sequence number');
    const nonce = Uint8Array.from(this.#baseNonce);
    let s = seq;
    for (let i = nonce.length - 1; i >= 0 && s > 0; i--) {
      nonce[i] = nonce[i]! ^ s % 256;
      s = Math.floor(s / 256);
    }
    return nonce;
  }

  #increment(): void {
    if (this.#seq >= Number.MAX_SAFE_INTEGER) throw new IdentityError('LIMIT', 'HPKE message limit reached');
    this.#seq++;
  }

  seal(aad: Uint8Array, pt: Uint8Array): Uint8Array {
    if (this.role !== 'sender') throw new IdentityError('INVALID_ARGUMENT', 'a recipient context cannot seal');
    const ct = aeadSeal(this.suite, this.#key, this.computeNonce(this.#seq), aad, pt);
    this.#increment();
    return ct;
  }

  open(aad: Uint8Array, ct: Uint8Array): Uint8Array {
    if (this.role !== 'recipient') throw new IdentityError('INVALID_ARGUMENT', 'a sender context cannot open');
    const pt = aeadOpen(this.suite, this.#key, this.computeNonce(this.#seq), aad, ct);
    this.#increment();
    return pt;
  }

  /** Export(exporter_context, L) */
  export(exporterContext: Uint8Array, length: number): Uint8Array {
    return labeledExpand(this.suite.suiteId, this.#exporterSecret, 'sec', exporterContext, length);
  }
}

/** SetupBaseS(pkR, info) with a fresh ephemeral key. */
export function hpkeSetupBaseS(suite: HpkeSuite, pkR: Uint8Array, info: Uint8Array): { enc: Uint8Array; context: HpkeContext } {
  const { sharedSecret, enc } = hpkeEncap(pkR);
  return { enc, context: new HpkeContext(suite, 'sender', hpkeKeySchedule(suite, sharedSecret, info)) };
}

/** SetupBaseS with a fixed ephemeral private key: deterministic, for test vectors only. */
export function hpkeSetupBaseSWithEphemeral(
  suite: HpkeSuite,
  pkR: Uint8Array,
  info: Uint8Array,
  skE: Uint8Array,
): { enc: Uint8Array; context: HpkeContext } {
  const { sharedSecret, enc } = hpkeEncap(pkR, skE);
  return { enc, context: new HpkeContext(suite, 'sender', hpkeKeySchedule(suite, sharedSecret, info)) };
}

/** SetupBaseR(enc, skR, info) */
export function hpkeSetupBaseR(suite: HpkeSuite, enc: Uint8Array, skR: Uint8Array | KeyObject, info: Uint8Array): HpkeContext {
  const sharedSecret = hpkeDecap(enc, skR);
  return new HpkeContext(suite, 'recipient', hpkeKeySchedule(suite, sharedSecret, info));
}

/** Single-shot Seal (RFC 9180 §6.1) with a fresh ephemeral key. */
export function hpkeSeal(
  suite: HpkeSuite,
  pkR: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  pt: Uint8Array,
): { enc: Uint8Array; ct: Uint8Array } {
  const { enc, context } = hpkeSetupBaseS(suite, pkR, info);
  return { enc, ct: context.seal(aad, pt) };
}

/** Single-shot Seal with a fixed ephemeral private key: deterministic, for test vectors only. */
export function hpkeSealWithEphemeral(
  suite: HpkeSuite,
  pkR: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  pt: Uint8Array,
  skE: Uint8Array,
): { enc: Uint8Array; ct: Uint8Array } {
  const { enc, context } = hpkeSetupBaseSWithEphemeral(suite, pkR, info, skE);
  return { enc, ct: context.seal(aad, pt) };
}

/** Single-shot Open (RFC 9180 §6.1). Throws IdentityError DECRYPT on any failure. */
export function hpkeOpen(
  suite: HpkeSuite,
  skR: Uint8Array | KeyObject,
  enc: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  ct: Uint8Array,
): Uint8Array {
  return hpkeSetupBaseR(suite, enc, skR, info).open(aad, ct);
}
