/**
 * Envelopes (PROTOCOL §2.3): sign-then-encrypt, one random content key per message, wrapped per
 * recipient key-agreement key with HPKE base mode.
 *
 *   envelope_aad    = "AfterSMTP-v1 envelope" || outer_header
 *   outer_signature = Ed25519(sender key, envelope_aad)
 *   ciphertext      = AEAD.Seal(content_key, nonce, envelope_aad, signed_message)
 *   wrapped         = HPKE(pkR, info = "AfterSMTP-v1 content-key").Seal(SHA-256(envelope_aad), content_key)
 */
import type { KeyObject } from 'node:crypto';
import { IdentityError } from './errors.ts';
import type { ErrorCode } from './errors.ts';
import { ByteReader, ByteWriter, bytesEqual, compareBytes, utf8, utf8Length } from './encoding.ts';
import { randomBytes, sha256, sign, verifySignature } from './keys.ts';
import type { SignatureCheck } from './verifier-pool.ts';
import {
  AEAD_AES_256_GCM,
  AEAD_CHACHA20_POLY1305,
  KDF_HKDF_SHA256,
  KEM_X25519_HKDF_SHA256,
  aeadOpen,
  aeadSeal,
  hpkeOpen,
  hpkeSeal,
  hpkeSealWithEphemeral,
  hpkeSuite,
} from './hpke.ts';
import type { HpkeSuite } from './hpke.ts';
import { splitKeyId } from './document.ts';
import type { KeyResolver } from './resolver.ts';
import { decodeSignedMessage, verifySignedMessage } from './message.ts';
import type { VerifyOptions, VerifyResult } from './message.ts';
import {
  CONTENT_KEY_BYTES,
  CONTENT_KEY_INFO,
  DEFAULT_MAX_LIFETIME_MS,
  DEFAULT_SKEW_MS,
  DIGEST_BYTES,
  ENC_BYTES,
  ENVELOPE_AAD_PREFIX,
  MESSAGE_ID_BYTES,
  NONCE_BYTES,
  PROTOCOL_VERSION,
  SIGNATURE_BYTES,
  WRAPPED_KEY_BYTES,
  checkTimeWindow,
  resolveLimits,
} from './protocol.ts';
import type { Limits } from './protocol.ts';

export interface EnvelopeRecipient {
  /** DID URL of the recipient's key-agreement key. */
  keyId: string;
  /** HPKE encapsulated key (32 bytes). */
  enc: Uint8Array;
  /** HPKE ciphertext of the content key (48 bytes). */
  wrapped: Uint8Array;
}

export interface Envelope {
  /** 1 (checked on validation; typed as number because it comes off the wire). */
  version: number;
  kemId: number;
  kdfId: number;
  aeadId: number;
  messageId: Uint8Array;
  senderDid: string;
  senderKeyId: string;
  recipientAddresses: string[];
  messageHash: Uint8Array;
  recipientsDigest: Uint8Array;
  createdMs: number;
  expiresMs: number;
  nonce: Uint8Array;
  outerSignature: Uint8Array;
  /** Sorted by key id, bytewise. */
  recipients: EnvelopeRecipient[];
  ciphertext: Uint8Array;
}

export type EnvelopeAead = 'aes-256-gcm' | 'chacha20-poly1305';

const AEAD_IDS: Record<EnvelopeAead, number> = {
  'aes-256-gcm': AEAD_AES_256_GCM,
  'chacha20-poly1305': AEAD_CHACHA20_POLY1305,
};

/** Content encryption and key wrap use the same AEAD; AES-128-GCM is not allowed for envelopes. */
function envelopeSuite(env: { kemId: number; kdfId: number; aeadId: number }): HpkeSuite {
  if (env.kemId !== KEM_X25519_HKDF_SHA256 || env.kdfId !== KDF_HKDF_SHA256 || (env.aeadId !== AEAD_AES_256_GCM && env.aeadId !== AEAD_CHACHA20_POLY1305)) {
    throw new IdentityError('ENCODING', `unsupported suite kem=0x${env.kemId.toString(16)} kdf=0x${env.kdfId.toString(16)} aead=0x${env.aeadId.toString(16)}`);
  }
  return hpkeSuite(env.aeadId);
}

function checkField(value: unknown, what: string, limits: Limits): void {
  if (typeof value !== 'string') throw new IdentityError('ENCODING', `${what} must be a string`);
  if (utf8Length(value) > limits.maxFieldBytes) throw new IdentityError('LIMIT', `${what} is over the limit of ${limits.maxFieldBytes} bytes`);
}

function checkBytes(value: unknown, n: number, what: string): void {
  if (!(value instanceof Uint8Array) || value.length !== n) throw new IdentityError('ENCODING', `${what} must be ${n} bytes`);
}

/**
 * Structural validation of every field (lengths, counts, limits, suite). Throws ENCODING or LIMIT;
 * returns the size of the binary container (encodedEnvelopeSize).
 */
export function validateEnvelope(env: Envelope, limits?: Partial<Limits>): number {
  const l = resolveLimits(limits);
  if (env === null || typeof env !== 'object') throw new IdentityError('ENCODING', 'envelope must be an object');
  if (env.version !== PROTOCOL_VERSION) throw new IdentityError('ENCODING', `unsupported envelope version ${String(env.version)}`);
  envelopeSuite(env);
  checkBytes(env.messageId, MESSAGE_ID_BYTES, 'message_id');
  checkField(env.senderDid, 'sender DID', l);
  checkField(env.senderKeyId, 'sender key id', l);
  if (!Array.isArray(env.recipientAddresses)) throw new IdentityError('ENCODING', 'recipient_addresses must be a list');
  if (env.recipientAddresses.length > l.maxRecipients) {
    throw new IdentityError('LIMIT', `${env.recipientAddresses.length} recipient addresses, over the limit of ${l.maxRecipients}`);
  }
  env.recipientAddresses.forEach((a, i) => checkField(a, `recipient address ${i}`, l));
  checkBytes(env.messageHash, DIGEST_BYTES, 'message_hash');
  checkBytes(env.recipientsDigest, DIGEST_BYTES, 'recipients_digest');
  for (const [what, v] of [['created_ms', env.createdMs], ['expires_ms', env.expiresMs]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new IdentityError('ENCODING', `${what} must be a safe non-negative integer`);
  }
  checkBytes(env.nonce, NONCE_BYTES, 'nonce');
  checkBytes(env.outerSignature, SIGNATURE_BYTES, 'outer_signature');
  if (!Array.isArray(env.recipients) || env.recipients.length === 0) throw new IdentityError('ENCODING', 'an envelope needs at least one recipient');
  if (env.recipients.length > l.maxRecipients) {
    throw new IdentityError('LIMIT', `${env.recipients.length} wrapped keys, over the limit of ${l.maxRecipients}`);
  }
  for (const [i, r] of env.recipients.entries()) {
    checkField(r?.keyId, `recipient ${i} key id`, l);
    checkBytes(r.enc, ENC_BYTES, `recipient ${i} enc`);
    checkBytes(r.wrapped, WRAPPED_KEY_BYTES, `recipient ${i} wrapped key`);
  }
  if (!(env.ciphertext instanceof Uint8Array) || env.ciphertext.length < 16) throw new IdentityError('ENCODING', 'ciphertext shorter than the AEAD tag');
  const size = encodedEnvelopeSize(env);
  if (size > l.maxEnvelopeBytes) throw new IdentityError('LIMIT', `envelope of ${size} bytes exceeds ${l.maxEnvelopeBytes}`);
  return size;
}

/** SHA-256(list(lp(key_id)...)) over the key ids sorted bytewise; rejects duplicates. */
export function computeRecipientsDigest(keyIds: string[]): Uint8Array {
  const sorted = keyIds.map((k) => utf8(k)).sort(compareBytes);
  const w = new ByteWriter().u32(sorted.length);
  for (let i = 0; i < sorted.length; i++) {
    if (i > 0 && compareBytes(sorted[i - 1]!, sorted[i]!) === 0) {
      throw new IdentityError('RECIPIENTS_DIGEST', 'duplicate recipient key id');
    }
    w.lp(sorted[i]!);
  }
  return sha256(w.finish());
}

/** outer_header (PROTOCOL §2.3), recomputed from the fields. */
export function encodeOuterHeader(env: Omit<Envelope, 'outerSignature' | 'recipients' | 'ciphertext'>): Uint8Array {
  return writeOuterHeader(new ByteWriter(outerHeaderSize(env)), env).finish();
}

function outerHeaderSize(env: Omit<Envelope, 'outerSignature' | 'recipients' | 'ciphertext'>): number {
  let n = 1 + 6 + MESSAGE_ID_BYTES + 4 + utf8Length(env.senderDid) + 4 + utf8Length(env.senderKeyId) + 4;
  for (const a of env.recipientAddresses) n += 4 + utf8Length(a);
  return n + DIGEST_BYTES * 2 + 16 + NONCE_BYTES;
}

function writeOuterHeader(w: ByteWriter, env: Omit<Envelope, 'outerSignature' | 'recipients' | 'ciphertext'>): ByteWriter {
  w.u8(PROTOCOL_VERSION)
    .u16(env.kemId)
    .u16(env.kdfId)
    .u16(env.aeadId)
    .fixed(env.messageId, MESSAGE_ID_BYTES, 'message_id')
    .str(env.senderDid, 'sender DID')
    .str(env.senderKeyId, 'sender key id')
    .u32(env.recipientAddresses.length);
  for (const a of env.recipientAddresses) w.str(a, 'recipient address');
  return w
    .fixed(env.messageHash, DIGEST_BYTES, 'message_hash')
    .fixed(env.recipientsDigest, DIGEST_BYTES, 'recipients_digest')
    .u64(env.createdMs)
    .u64(env.expiresMs)
    .fixed(env.nonce, NONCE_BYTES, 'nonce');
}

/** "AfterSMTP-v1 envelope" || outer_header */
export function envelopeAad(env: Omit<Envelope, 'outerSignature' | 'recipients' | 'ciphertext'>): Uint8Array {
  return writeOuterHeader(new ByteWriter(ENVELOPE_AAD_PREFIX.length + outerHeaderSize(env)).bytes(ENVELOPE_AAD_PREFIX), env).finish();
}

export interface RecipientPublicKey {
  /** DID URL in the recipient DID's keyAgreement. */
  keyId: string;
  /** Raw X25519 public key. */
  publicKey: Uint8Array;
}

export interface SealEnvelopeOptions {
  signedMessage: Uint8Array;
  /** Defaults to the inner header's; if given it must match. */
  messageId?: Uint8Array;
  /** Defaults to SHA-256(signedMessage); if given it must match. */
  messageHash?: Uint8Array;
  senderDid: string;
  senderKeyId: string;
  senderPrivateKey: Uint8Array | KeyObject;
  recipientAddresses: string[];
  recipients: RecipientPublicKey[];
  /** Default: the inner header's created_ms / expires_ms. */
  createdMs?: number;
  expiresMs?: number;
  /** Default AES-256-GCM. */
  aead?: EnvelopeAead;
  /**
   * Deterministic randomness, for golden vectors only. Drawn in this order: content key (32),
   * nonce (12), then one X25519 ephemeral private key (32) per recipient in key-id order.
   */
  rng?: (n: number) => Uint8Array;
  limits?: Partial<Limits>;
}

export function sealEnvelope(opts: SealEnvelopeOptions): Envelope {
  const l = resolveLimits(opts.limits);
  const inner = decodeSignedMessage(opts.signedMessage, l).header;
  const messageHash = sha256(opts.signedMessage);
  if (opts.messageHash !== undefined && !bytesEqual(opts.messageHash, messageHash)) {
    throw new IdentityError('HASH_MISMATCH', 'messageHash is not SHA-256(signedMessage)');
  }
  if (opts.messageId !== undefined && !bytesEqual(opts.messageId, inner.messageId)) {
    throw new IdentityError('MESSAGE_ID_MISMATCH', 'messageId differs from the signed message');
  }
  const parts = splitKeyId(opts.senderKeyId);
  if (parts === undefined || parts.did !== opts.senderDid) {
    throw new IdentityError('KEY_ID_MISMATCH', `sender key id ${JSON.stringify(opts.senderKeyId)} is not a key of ${opts.senderDid}`);
  }
  if (opts.recipients.length === 0) throw new IdentityError('INVALID_ARGUMENT', 'at least one recipient key is required');
  const recipients = opts.recipients
    .map((r) => ({ keyId: r.keyId, keyIdBytes: utf8(r.keyId), publicKey: r.publicKey }))
    .sort((a, b) => compareBytes(a.keyIdBytes, b.keyIdBytes));
  for (const r of recipients) {
    if (!(r.publicKey instanceof Uint8Array) || r.publicKey.length !== 32) {
      throw new IdentityError('INVALID_ARGUMENT', `recipient ${r.keyId}: X25519 public key must be 32 bytes`);
    }
  }
  const aeadId = AEAD_IDS[opts.aead ?? 'aes-256-gcm'];
  if (aeadId === undefined) throw new IdentityError('INVALID_ARGUMENT', `unsupported AEAD ${String(opts.aead)}`);
  const suite = hpkeSuite(aeadId);
  const draw = opts.rng ?? randomBytes;
  const contentKey = draw(CONTENT_KEY_BYTES);
  const nonce = draw(NONCE_BYTES);
  if (contentKey.length !== CONTENT_KEY_BYTES || nonce.length !== NONCE_BYTES) throw new IdentityError('INVALID_ARGUMENT', 'rng returned the wrong length');

  const header: Omit<Envelope, 'outerSignature' | 'recipients' | 'ciphertext'> = {
    version: PROTOCOL_VERSION,
    kemId: KEM_X25519_HKDF_SHA256,
    kdfId: KDF_HKDF_SHA256,
    aeadId,
    messageId: inner.messageId,
    senderDid: opts.senderDid,
    senderKeyId: opts.senderKeyId,
    recipientAddresses: [...opts.recipientAddresses],
    messageHash,
    recipientsDigest: computeRecipientsDigest(recipients.map((r) => r.keyId)),
    createdMs: opts.createdMs ?? inner.createdMs,
    expiresMs: opts.expiresMs ?? inner.expiresMs,
    nonce,
  };
  const aad = envelopeAad(header);
  const wrapAad = sha256(aad);
  const env: Envelope = {
    ...header,
    outerSignature: sign(opts.senderPrivateKey, aad),
    recipients: recipients.map((r) => {
      const { enc, ct } =
        opts.rng === undefined
          ? hpkeSeal(suite, r.publicKey, CONTENT_KEY_INFO, wrapAad, contentKey)
          : hpkeSealWithEphemeral(suite, r.publicKey, CONTENT_KEY_INFO, wrapAad, contentKey, opts.rng(32));
      return { keyId: r.keyId, enc, wrapped: ct };
    }),
    ciphertext: aeadSeal(suite, contentKey, nonce, aad, opts.signedMessage),
  };
  contentKey.fill(0);
  validateEnvelope(env, l);
  return env;
}

export interface CheckEnvelopeOptions {
  /** Unix ms; default Date.now(). */
  now?: number;
  /** Default 7 days. */
  maxLifetimeMs?: number;
  /** Default 5 minutes. */
  skewMs?: number;
  limits?: Partial<Limits>;
  /** Verifies the outer signature (e.g. SignatureVerifierPool.verify, off the event loop); default verifySignature. */
  verify?: SignatureCheck;
}

function checkRecipientsDigest(env: Envelope): void {
  for (let i = 1; i < env.recipients.length; i++) {
    if (compareBytes(utf8(env.recipients[i - 1]!.keyId), utf8(env.recipients[i]!.keyId)) >= 0) {
      throw new IdentityError('RECIPIENTS_DIGEST', 'recipients are not sorted by key id or contain duplicates');
    }
  }
  if (!bytesEqual(computeRecipientsDigest(env.recipients.map((r) => r.keyId)), env.recipientsDigest)) {
    throw new IdentityError('RECIPIENTS_DIGEST', 'recipients_digest does not match the recipient key ids');
  }
}

/**
 * What a node checks on acceptance without decrypting (PROTOCOL §2.3): encoding and limits,
 * recipients digest, time window, sender key in `authentication`, outer signature. Throws
 * IdentityError. Replay is the node's store's check (gateway/store/replay.ts), made in the commit that
 * stores the message.
 */
export async function checkEnvelope(env: Envelope, resolver: KeyResolver, opts: CheckEnvelopeOptions = {}): Promise<void> {
  validateEnvelope(env, opts.limits);
  checkRecipientsDigest(env);
  const now = opts.now ?? Date.now();
  checkTimeWindow(env.createdMs, env.expiresMs, {
    now,
    skewMs: opts.skewMs ?? DEFAULT_SKEW_MS,
    maxLifetimeMs: opts.maxLifetimeMs ?? DEFAULT_MAX_LIFETIME_MS,
  });
  const parts = splitKeyId(env.senderKeyId);
  if (parts === undefined || parts.did !== env.senderDid) {
    throw new IdentityError('KEY_ID_MISMATCH', `sender key id ${JSON.stringify(env.senderKeyId)} is not a key of ${env.senderDid}`);
  }
  const resolved = await resolver.resolveKeys(env.senderDid);
  const publicKey = resolved.authentication.get(env.senderKeyId);
  if (publicKey === undefined) {
    throw new IdentityError('KEY_NOT_IN_DID', `key ${env.senderKeyId} is not an Ed25519 key in the authentication of ${env.senderDid}`);
  }
  const verify = opts.verify ?? verifySignature;
  if (!(await verify(publicKey, envelopeAad(env), env.outerSignature))) {
    throw new IdentityError('SIGNATURE', 'outer signature does not verify');
  }
}

export interface RecipientPrivateKey {
  /** DID URL of the key-agreement key the envelope was sealed to. */
  keyId: string;
  /** Raw X25519 private key (for did:key: x25519PrivateFromEd25519Seed(seed)) or a KeyObject. */
  privateKey: Uint8Array | KeyObject;
}

/**
 * Opens the envelope for one recipient key and returns the signed message, after checking that
 * SHA-256(signed_message) equals message_hash and that the inner message_id equals the outer one.
 * Does not verify signatures: see checkEnvelope and verifySignedMessage (or openAndVerifyEnvelope).
 */
export function openEnvelope(env: Envelope, key: RecipientPrivateKey, limits?: Partial<Limits>): Uint8Array {
  validateEnvelope(env, limits);
  checkRecipientsDigest(env);
  const suite = envelopeSuite(env);
  const recipient = env.recipients.find((r) => r.keyId === key.keyId);
  if (recipient === undefined) throw new IdentityError('NOT_A_RECIPIENT', `no wrapped key for ${key.keyId}`);
  const aad = envelopeAad(env);
  let contentKey: Uint8Array;
  try {
    contentKey = hpkeOpen(suite, key.privateKey, recipient.enc, CONTENT_KEY_INFO, sha256(aad), recipient.wrapped);
  } catch (e) {
    if (e instanceof IdentityError && e.code === 'INVALID_ARGUMENT') throw e;
    throw new IdentityError('DECRYPT', `cannot unwrap the content key for ${key.keyId}`, { cause: e });
  }
  if (contentKey.length !== CONTENT_KEY_BYTES) throw new IdentityError('DECRYPT', 'unwrapped content key has the wrong length');
  let signedMessage: Uint8Array;
  try {
    signedMessage = aeadOpen(suite, contentKey, env.nonce, aad, env.ciphertext);
  } finally {
    contentKey.fill(0);
  }
  if (!bytesEqual(sha256(signedMessage), env.messageHash)) {
    throw new IdentityError('HASH_MISMATCH', 'SHA-256 of the decrypted message differs from message_hash');
  }
  const inner = decodeSignedMessage(signedMessage, limits).header;
  if (!bytesEqual(inner.messageId, env.messageId)) throw new IdentityError('MESSAGE_ID_MISMATCH', 'inner message_id differs from the envelope');
  return signedMessage;
}

/**
 * Recipient side in one call: open (hash and message id checks), then verify the inner signed
 * message (PROTOCOL §2.2). Never throws for a bad envelope: reports like verifySignedMessage.
 * The outer checks of a node (checkEnvelope) are separate.
 */
export async function openAndVerifyEnvelope(
  env: Envelope,
  key: RecipientPrivateKey,
  resolver: KeyResolver,
  opts: VerifyOptions = {},
): Promise<VerifyResult> {
  let signedMessage: Uint8Array;
  try {
    signedMessage = openEnvelope(env, key, opts.limits);
  } catch (e) {
    if (e instanceof IdentityError) return { verified: false, code: e.code as ErrorCode, reason: e.message };
    throw e;
  }
  return verifySignedMessage(signedMessage, resolver, opts);
}

// ---------------------------------------------------------------------------------------------
// Binary container (PROTOCOL Appendix A): "ASE1" || outer_header || outer_signature ||
// list(lp(key_id) || enc || wrapped) || lp(ciphertext)

export const ENVELOPE_MAGIC = utf8('ASE1');

export function encodedEnvelopeSize(env: Envelope): number {
  let n = ENVELOPE_MAGIC.length + outerHeaderSize(env) + SIGNATURE_BYTES + 4;
  for (const r of env.recipients) n += 4 + utf8Length(r.keyId) + ENC_BYTES + WRAPPED_KEY_BYTES;
  return n + 4 + env.ciphertext.length;
}

export function encodeEnvelope(env: Envelope, limits?: Partial<Limits>): Uint8Array {
  const w = new ByteWriter(validateEnvelope(env, limits)).bytes(ENVELOPE_MAGIC);
  writeOuterHeader(w, env).bytes(env.outerSignature).u32(env.recipients.length);
  for (const r of env.recipients) w.str(r.keyId, 'recipient key id').bytes(r.enc).bytes(r.wrapped);
  return w.lp(env.ciphertext).finish();
}

/** Strict decoder of the binary container. Byte fields are views into `bytes`. */
export function decodeEnvelope(bytes: Uint8Array, limits?: Partial<Limits>): Envelope {
  const l = resolveLimits(limits);
  if (bytes.length > l.maxEnvelopeBytes) throw new IdentityError('LIMIT', `envelope of ${bytes.length} bytes exceeds ${l.maxEnvelopeBytes}`);
  const r = new ByteReader(bytes, 'envelope');
  if (!bytesEqual(r.fixed(ENVELOPE_MAGIC.length, 'magic'), ENVELOPE_MAGIC)) throw new IdentityError('ENCODING', 'envelope: bad magic');
  const version = r.u8('version');
  if (version !== PROTOCOL_VERSION) throw new IdentityError('ENCODING', `envelope: unsupported version ${version}`);
  const kemId = r.u16('kem_id');
  const kdfId = r.u16('kdf_id');
  const aeadId = r.u16('aead_id');
  envelopeSuite({ kemId, kdfId, aeadId });
  const messageId = r.fixed(MESSAGE_ID_BYTES, 'message_id');
  const senderDid = r.str('sender DID', l.maxFieldBytes);
  const senderKeyId = r.str('sender key id', l.maxFieldBytes);
  const nAddresses = r.count('recipient addresses', l.maxRecipients, 4);
  const recipientAddresses: string[] = [];
  for (let i = 0; i < nAddresses; i++) recipientAddresses.push(r.str(`recipient address ${i}`, l.maxFieldBytes));
  const messageHash = r.fixed(DIGEST_BYTES, 'message_hash');
  const recipientsDigest = r.fixed(DIGEST_BYTES, 'recipients_digest');
  const createdMs = r.u64('created_ms');
  const expiresMs = r.u64('expires_ms');
  const nonce = r.fixed(NONCE_BYTES, 'nonce');
  const outerSignature = r.fixed(SIGNATURE_BYTES, 'outer_signature');
  const nRecipients = r.count('recipients', l.maxRecipients, 4 + ENC_BYTES + WRAPPED_KEY_BYTES);
  const recipients: EnvelopeRecipient[] = [];
  for (let i = 0; i < nRecipients; i++) {
    recipients.push({
      keyId: r.str(`recipient ${i} key id`, l.maxFieldBytes),
      enc: r.fixed(ENC_BYTES, `recipient ${i} enc`),
      wrapped: r.fixed(WRAPPED_KEY_BYTES, `recipient ${i} wrapped key`),
    });
  }
  const ciphertext = r.lp('ciphertext', bytes.length);
  r.end();
  const env: Envelope = {
    version: PROTOCOL_VERSION,
    kemId,
    kdfId,
    aeadId,
    messageId,
    senderDid,
    senderKeyId,
    recipientAddresses,
    messageHash,
    recipientsDigest,
    createdMs,
    expiresMs,
    nonce,
    outerSignature,
    recipients,
    ciphertext,
  };
  validateEnvelope(env, l);
  return env;
}
