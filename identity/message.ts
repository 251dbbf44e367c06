/**
 * The signed inner message (PROTOCOL §2.1, §2.2).
 *
 *   signing_input  = "AfterSMTP-v1 message" || canonical_header || body_digest
 *   signed_message = lp(canonical_header) || lp(body) || lp(key_id) || signature(64)
 *   message_hash   = SHA-256(signed_message)
 */
import type { KeyObject } from 'node:crypto';
import { IdentityError } from './errors.ts';
import type { ErrorCode } from './errors.ts';
import { ByteReader, ByteWriter, bytesEqual, concatBytes, utf8, utf8Length } from './encoding.ts';
import { sha256, sign, verifySignature } from './keys.ts';
import { splitKeyId } from './document.ts';
import type { KeyResolver } from './resolver.ts';
import {
  DEFAULT_SKEW_MS,
  DIGEST_BYTES,
  MESSAGE_ID_BYTES,
  MESSAGE_SIGNING_PREFIX,
  PROTOCOL_VERSION,
  SIGNATURE_BYTES,
  checkTimeWindow,
  resolveLimits,
} from './protocol.ts';
import type { Limits } from './protocol.ts';

export interface Party {
  did: string;
  address: string;
}

export interface MessageHeader {
  version: 1;
  /** 16 random bytes, fresh per message. */
  messageId: Uint8Array;
  from: Party;
  to: Party[];
  /** Unix time, milliseconds (a safe integer; encoded as u64). */
  createdMs: number;
  expiresMs: number;
  contentType: string;
  /** SHA-256(body) */
  bodyDigest: Uint8Array;
}

function checkField(value: string, what: string, limits: Limits): void {
  if (typeof value !== 'string') throw new IdentityError('INVALID_ARGUMENT', `${what} must be a string`);
  if (utf8Length(value) > limits.maxFieldBytes) {
    throw new IdentityError('LIMIT', `${what} is over the limit of ${limits.maxFieldBytes} bytes`);
  }
}

/** canonical_header (PROTOCOL §2.1). Structural checks only. */
export function encodeHeader(header: MessageHeader, limits?: Partial<Limits>): Uint8Array {
  const l = resolveLimits(limits);
  if (header.version !== PROTOCOL_VERSION) throw new IdentityError('INVALID_ARGUMENT', `unsupported header version ${header.version}`);
  checkField(header.from.did, 'from DID', l);
  checkField(header.from.address, 'from address', l);
  checkField(header.contentType, 'content type', l);
  if (!Array.isArray(header.to)) throw new IdentityError('INVALID_ARGUMENT', 'to must be an array');
  if (header.to.length > l.maxRecipients) {
    throw new IdentityError('LIMIT', `${header.to.length} recipients, over the limit of ${l.maxRecipients}`);
  }
  const w = new ByteWriter()
    .u8(PROTOCOL_VERSION)
    .fixed(header.messageId, MESSAGE_ID_BYTES, 'message_id')
    .str(header.from.did, 'from DID')
    .str(header.from.address, 'from address')
    .u32(header.to.length);
  for (const [i, p] of header.to.entries()) {
    checkField(p.did, `to[${i}] DID`, l);
    checkField(p.address, `to[${i}] address`, l);
    w.str(p.did, `to[${i}] DID`).str(p.address, `to[${i}] address`);
  }
  return w
    .u64(header.createdMs)
    .u64(header.expiresMs)
    .str(header.contentType, 'content type')
    .fixed(header.bodyDigest, DIGEST_BYTES, 'body_digest')
    .finish();
}

function readHeader(r: ByteReader, l: Limits): MessageHeader {
  const version = r.u8('version');
  if (version !== PROTOCOL_VERSION) throw new IdentityError('ENCODING', `message header: unsupported version ${version}`);
  const messageId = r.fixed(MESSAGE_ID_BYTES, 'message_id');
  const from = { did: r.str('from DID', l.maxFieldBytes), address: r.str('from address', l.maxFieldBytes) };
  const n = r.count('recipients', l.maxRecipients, 8);
  const to: Party[] = [];
  for (let i = 0; i < n; i++) {
    to.push({ did: r.str(`to[${i}] DID`, l.maxFieldBytes), address: r.str(`to[${i}] address`, l.maxFieldBytes) });
  }
  const createdMs = r.u64('created_ms');
  const expiresMs = r.u64('expires_ms');
  const contentType = r.str('content type', l.maxFieldBytes);
  const bodyDigest = r.fixed(DIGEST_BYTES, 'body_digest');
  return { version: PROTOCOL_VERSION, messageId, from, to, createdMs, expiresMs, contentType, bodyDigest };
}

/** Strict decoder of canonical_header: rejects trailing bytes, truncation, bad UTF-8, over-limit fields. */
export function decodeHeader(bytes: Uint8Array, limits?: Partial<Limits>): MessageHeader {
  const r = new ByteReader(bytes, 'message header');
  const h = readHeader(r, resolveLimits(limits));
  r.end();
  return h;
}

/** "AfterSMTP-v1 message" || canonical_header || body_digest */
export function messageSigningInput(canonicalHeader: Uint8Array, bodyDigest: Uint8Array): Uint8Array {
  return concatBytes(MESSAGE_SIGNING_PREFIX, canonicalHeader, bodyDigest);
}

export interface SignMessageOptions {
  header: Omit<MessageHeader, 'bodyDigest' | 'version'>;
  body: Uint8Array;
  /** DID URL of the signing key; its DID must be header.from.did. */
  keyId: string;
  /** Ed25519 seed (32 bytes) or a private KeyObject. */
  privateKey: Uint8Array | KeyObject;
  limits?: Partial<Limits>;
}

export interface SignedMessageResult {
  signedMessage: Uint8Array;
  /** SHA-256(signed_message): what goes on the ledger. */
  messageHash: Uint8Array;
  header: MessageHeader;
}

export function signMessage(opts: SignMessageOptions): SignedMessageResult {
  const l = resolveLimits(opts.limits);
  const { header: h, body, keyId } = opts;
  if (!(body instanceof Uint8Array)) throw new IdentityError('INVALID_ARGUMENT', 'body must be a Uint8Array');
  const parts = splitKeyId(keyId);
  if (parts === undefined || parts.did !== h.from.did) {
    throw new IdentityError('KEY_ID_MISMATCH', `key id ${JSON.stringify(keyId)} is not a DID URL of the sender DID ${h.from.did}`);
  }
  checkField(keyId, 'key id', l);
  if (!Number.isSafeInteger(h.createdMs) || !Number.isSafeInteger(h.expiresMs) || h.createdMs < 0 || h.expiresMs <= h.createdMs) {
    throw new IdentityError('INVALID_ARGUMENT', 'createdMs/expiresMs must be safe non-negative integers with expiresMs > createdMs');
  }
  const header: MessageHeader = {
    version: PROTOCOL_VERSION,
    messageId: h.messageId,
    from: { did: h.from.did, address: h.from.address },
    to: h.to.map((p) => ({ did: p.did, address: p.address })),
    createdMs: h.createdMs,
    expiresMs: h.expiresMs,
    contentType: h.contentType,
    bodyDigest: sha256(body),
  };
  const canonical = encodeHeader(header, l);
  const signature = sign(opts.privateKey, messageSigningInput(canonical, header.bodyDigest));
  const signedMessage = new ByteWriter().lp(canonical).lp(body).lp(utf8(keyId)).bytes(signature).finish();
  if (signedMessage.length > l.maxEnvelopeBytes) {
    throw new IdentityError('LIMIT', `signed message of ${signedMessage.length} bytes exceeds ${l.maxEnvelopeBytes}`);
  }
  return { signedMessage, messageHash: sha256(signedMessage), header };
}

export interface DecodedSignedMessage {
  header: MessageHeader;
  /** The canonical header bytes as received (a view). */
  headerBytes: Uint8Array;
  /** A view into the input. */
  body: Uint8Array;
  keyId: string;
  signature: Uint8Array;
}

/** Strict decoder of signed_message. Byte fields are views into `bytes`. */
export function decodeSignedMessage(bytes: Uint8Array, limits?: Partial<Limits>): DecodedSignedMessage {
  const l = resolveLimits(limits);
  if (bytes.length > l.maxEnvelopeBytes) {
    throw new IdentityError('LIMIT', `signed message of ${bytes.length} bytes exceeds ${l.maxEnvelopeBytes}`);
  }
  const r = new ByteReader(bytes, 'signed message');
  const headerBytes = r.lp('header', bytes.length);
  const header = decodeHeader(headerBytes, l);
  const body = r.lp('body', bytes.length);
  const keyId = r.str('key id', l.maxFieldBytes);
  const signature = r.fixed(SIGNATURE_BYTES, 'signature');
  r.end();
  return { header, headerBytes, body, keyId, signature };
}

export interface VerifyOptions {
  /** Unix ms; default Date.now(). */
  now?: number;
  /** Allowed clock skew for created_ms; default 5 minutes. */
  skewMs?: number;
  limits?: Partial<Limits>;
}

export type VerifyResult =
  | {
      verified: true;
      code?: undefined;
      reason?: undefined;
      header: MessageHeader;
      body: Uint8Array;
      keyId: string;
      messageHash: Uint8Array;
    }
  | {
      verified: false;
      code: ErrorCode;
      reason: string;
      header?: MessageHeader;
      body?: Uint8Array;
      keyId?: string;
      messageHash?: Uint8Array;
    };

/**
 * Verifies a signed message in the order PROTOCOL §2.2 prescribes: encoding, body digest, key id's
 * DID, key in `authentication`, signature, time. Never throws for a bad message: it reports.
 */
export async function verifySignedMessage(bytes: Uint8Array, resolver: KeyResolver, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const fail = (code: ErrorCode, reason: string, d?: DecodedSignedMessage, messageHash?: Uint8Array): VerifyResult => {
    const r: VerifyResult = { verified: false, code, reason };
    if (d !== undefined) {
      r.header = d.header;
      r.body = d.body;
      r.keyId = d.keyId;
    }
    if (messageHash !== undefined) r.messageHash = messageHash;
    return r;
  };
  let d: DecodedSignedMessage;
  try {
    d = decodeSignedMessage(bytes, opts.limits);
  } catch (e) {
    if (e instanceof IdentityError) return fail(e.code, e.message);
    throw e;
  }
  const messageHash = sha256(bytes);
  if (!bytesEqual(sha256(d.body), d.header.bodyDigest)) {
    return fail('BODY_DIGEST', 'SHA-256(body) does not equal body_digest', d, messageHash);
  }
  const parts = splitKeyId(d.keyId);
  if (parts === undefined || parts.did !== d.header.from.did) {
    return fail('KEY_ID_MISMATCH', `key id ${JSON.stringify(d.keyId)} is not a key of the sender DID ${d.header.from.did}`, d, messageHash);
  }
  let publicKey: Uint8Array | undefined;
  try {
    publicKey = (await resolver.resolveKeys(parts.did)).authentication.get(d.keyId);
  } catch (e) {
    if (e instanceof IdentityError) return fail(e.code === 'DID_RESOLUTION' ? 'DID_RESOLUTION' : e.code, e.message, d, messageHash);
    return fail('DID_RESOLUTION', `cannot resolve ${parts.did}: ${(e as Error).message}`, d, messageHash);
  }
  if (publicKey === undefined) {
    return fail('KEY_NOT_IN_DID', `key ${d.keyId} is not an Ed25519 key in the authentication of ${parts.did}`, d, messageHash);
  }
  if (!verifySignature(publicKey, messageSigningInput(d.headerBytes, d.header.bodyDigest), d.signature)) {
    return fail('SIGNATURE', 'message signature does not verify', d, messageHash);
  }
  try {
    checkTimeWindow(d.header.createdMs, d.header.expiresMs, { now: opts.now ?? Date.now(), skewMs: opts.skewMs ?? DEFAULT_SKEW_MS });
  } catch (e) {
    if (e instanceof IdentityError) return fail(e.code, e.message, d, messageHash);
    throw e;
  }
  return { verified: true, header: d.header, body: d.body, keyId: d.keyId, messageHash };
}
