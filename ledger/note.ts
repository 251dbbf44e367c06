/**
 * C2SP signed-note: a UTF-8 text ending in a newline, a blank line, then one or more signature lines
 *   — <key name> base64(u32 key ID || signature)
 * Key IDs follow the spec's recommendation: SHA-256(name || "\n" || type || public key)[:4], with
 * type 0x01 for Ed25519 note signatures (0x04, timestamped cosignatures, lives in cosignature.ts).
 *
 * Verification policy (spec §Signatures): signatures from unknown keys (name and ID not both
 * matching a trusted verifier) are ignored; a signature from a known key that fails rejects the
 * whole note; a note with no verified signature from a trusted key is rejected.
 */
import type { KeyObject } from 'node:crypto';
import { LedgerError } from './errors.ts';
import { sha256 } from './hash.ts';
import type { Ed25519KeyPair } from './keys.ts';
import { ed25519PrivateKeyObject, ed25519PublicKeyObject, ed25519Sign, ed25519Verify } from './keys.ts';

/** Signature type byte of Ed25519 note signatures. */
export const SIG_TYPE_ED25519 = 0x01;
/** Signature type byte of C2SP tlog-cosignature/v1 Ed25519 timestamped cosignatures. */
export const SIG_TYPE_COSIGNATURE_V1 = 0x04;

/** Upper bounds applied when parsing (the spec asks verifiers to accept at least 16 signatures). */
export const MAX_NOTE_SIGNATURES = 64;
export const MAX_NOTE_BYTES = 1 << 20;

export interface NoteSignature {
  /** Key name as written on the signature line. */
  name: string;
  /** uint32 key ID (first 4 bytes of the decoded signature, big-endian). */
  keyId: number;
  /** The bytes after the key ID (for Ed25519: 64-byte signature; for cosignatures: u64 time || sig). */
  signature: Uint8Array;
}

export interface NoteSigner {
  readonly name: string;
  readonly keyId: number;
  sign(text: Uint8Array): Uint8Array;
}

export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  /** Signature type byte (0x01 note signature, 0x04 cosignature/v1). */
  readonly type: number;
  readonly publicKey: Uint8Array;
  verify(text: Uint8Array, signature: Uint8Array): boolean;
}

export interface ParsedNote {
  /** The signed text, including its final newline. */
  text: string;
  signatures: NoteSignature[];
}

export interface OpenedNote extends ParsedNote {
  /** Signatures that matched a trusted verifier and verified, in note order. */
  verified: { signature: NoteSignature; verifier: NoteVerifier }[];
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
// eslint-disable-next-line no-control-regex
const FORBIDDEN_CONTROL = /[\u0000-\u0009\u000b-\u001f]/;
const KEY_NAME = /^[^\s+]+$/u;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Key names: non-empty, no Unicode spaces, no '+'. */
export function isValidKeyName(name: string): boolean {
  return typeof name === 'string' && name.length > 0 && KEY_NAME.test(name) && name.isWellFormed();
}

function checkKeyName(name: string): void {
  if (!isValidKeyName(name)) throw new LedgerError('BAD_KEY', `invalid note key name ${JSON.stringify(name)}`);
}

/** Strict standard base64 (RFC 4648 §4, padded, canonical). Returns null if not canonical. */
export function decodeBase64Strict(s: string): Uint8Array | null {
  if (!BASE64.test(s) || s.length % 4 !== 0) return null;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : null;
}

/** key ID = SHA-256(name || 0x0A || type || publicKey)[:4] as a big-endian uint32. */
export function noteKeyId(name: string, type: number, publicKey: Uint8Array): number {
  const nameBytes = Buffer.from(name, 'utf8');
  const buf = Buffer.alloc(nameBytes.length + 2 + publicKey.length);
  nameBytes.copy(buf, 0);
  buf[nameBytes.length] = 0x0a;
  buf[nameBytes.length + 1] = type;
  buf.set(publicKey, nameBytes.length + 2);
  return Buffer.from(sha256(buf)).readUInt32BE(0);
}

function checkText(text: string): void {
  if (typeof text !== 'string' || !text.isWellFormed()) throw new LedgerError('BAD_NOTE', 'note text must be valid UTF-8');
  if (text.length === 0 || !text.endsWith('\n')) throw new LedgerError('BAD_NOTE', 'note text must end with a newline');
  if (FORBIDDEN_CONTROL.test(text)) throw new LedgerError('BAD_NOTE', 'note text contains control characters');
}

/** Splits a signed note into text and signature lines (no verification). */
export function parseNote(note: string | Uint8Array): ParsedNote {
  let s: string;
  if (typeof note === 'string') {
    s = note;
  } else {
    if (note.length > MAX_NOTE_BYTES) throw new LedgerError('BAD_NOTE', 'note too large');
    try {
      s = utf8Decoder.decode(note);
    } catch (cause) {
      throw new LedgerError('BAD_NOTE', 'note is not valid UTF-8', { cause });
    }
  }
  if (s.length > MAX_NOTE_BYTES) throw new LedgerError('BAD_NOTE', 'note too large');
  if (!s.isWellFormed()) throw new LedgerError('BAD_NOTE', 'note is not valid UTF-8');
  if (FORBIDDEN_CONTROL.test(s)) throw new LedgerError('BAD_NOTE', 'note contains control characters');
  if (!s.endsWith('\n')) throw new LedgerError('BAD_NOTE', 'note must end with a newline');
  const split = s.lastIndexOf('\n\n');
  if (split < 0) throw new LedgerError('BAD_NOTE', 'note has no signature block');
  const text = s.slice(0, split + 1);
  const block = s.slice(split + 2);
  if (block.length === 0) throw new LedgerError('BAD_NOTE', 'note has no signatures');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES) throw new LedgerError('BAD_NOTE', `note has more than ${MAX_NOTE_SIGNATURES} signatures`);
  const signatures: NoteSignature[] = [];
  for (const line of lines) {
    const m = /^\u2014 (\S+) (\S+)$/u.exec(line);
    if (!m) throw new LedgerError('BAD_NOTE', `malformed signature line ${JSON.stringify(line)}`);
    const name = m[1]!;
    if (!isValidKeyName(name)) throw new LedgerError('BAD_NOTE', `invalid key name ${JSON.stringify(name)}`);
    const raw = decodeBase64Strict(m[2]!);
    if (raw === null || raw.length < 5) throw new LedgerError('BAD_NOTE', `malformed signature for ${name}`);
    signatures.push({
      name,
      keyId: Buffer.from(raw.buffer, raw.byteOffset, raw.length).readUInt32BE(0),
      signature: raw.slice(4),
    });
  }
  return { text, signatures };
}

/** One signature line, including its trailing newline. */
export function formatSignatureLine(sig: NoteSignature): string {
  checkKeyName(sig.name);
  const raw = Buffer.alloc(4 + sig.signature.length);
  raw.writeUInt32BE(sig.keyId >>> 0, 0);
  raw.set(sig.signature, 4);
  return `\u2014 ${sig.name} ${raw.toString('base64')}\n`;
}

/** text + blank line + signature lines. */
export function formatNote(text: string, signatures: readonly NoteSignature[]): string {
  checkText(text);
  if (signatures.length === 0) throw new LedgerError('BAD_NOTE', 'a signed note needs at least one signature');
  return `${text}\n${signatures.map(formatSignatureLine).join('')}`;
}

/** Signs `text` with every signer and formats the note. */
export function signNote(text: string, signers: readonly NoteSigner[]): string {
  checkText(text);
  const msg = Buffer.from(text, 'utf8');
  return formatNote(
    text,
    signers.map((s) => ({ name: s.name, keyId: s.keyId, signature: s.sign(msg) })),
  );
}

/** Appends signature lines (e.g. witness cosignatures) to a signed note, dropping exact duplicates. */
export function addSignatures(note: string, lines: readonly (string | NoteSignature)[]): string {
  const parsed = parseNote(note);
  const have = new Set(parsed.signatures.map(formatSignatureLine));
  let out = note;
  for (const l of lines) {
    const line = typeof l === 'string' ? l : formatSignatureLine(l);
    const sig = parseNote(`x\n\n${line.endsWith('\n') ? line : `${line}\n`}`).signatures;
    if (sig.length !== 1) throw new LedgerError('BAD_NOTE', 'expected exactly one signature line');
    const canon = formatSignatureLine(sig[0]!);
    if (have.has(canon)) continue;
    have.add(canon);
    out += canon;
  }
  parseNote(out);
  return out;
}

/**
 * Verifies a note against trusted verifiers. Throws BAD_NOTE if malformed, BAD_SIGNATURE if a
 * signature from a known key fails or if no trusted signature verifies.
 */
export function openNote(note: string | Uint8Array, verifiers: readonly NoteVerifier[]): OpenedNote {
  const parsed = parseNote(note);
  const msg = Buffer.from(parsed.text, 'utf8');
  const verified: OpenedNote['verified'] = [];
  for (const sig of parsed.signatures) {
    const candidates = verifiers.filter((v) => v.name === sig.name && v.keyId === sig.keyId);
    if (candidates.length === 0) continue;
    const ok = candidates.find((v) => v.verify(msg, sig.signature));
    if (ok === undefined) {
      throw new LedgerError('BAD_SIGNATURE', `signature by ${sig.name} (key ${sig.keyId.toString(16).padStart(8, '0')}) does not verify`);
    }
    verified.push({ signature: sig, verifier: ok });
  }
  if (verified.length === 0) throw new LedgerError('BAD_SIGNATURE', 'note carries no verified signature from a trusted key');
  return { ...parsed, verified };
}

// --- Ed25519 (type 0x01) -------------------------------------------------------------------------

/** A note signer for an Ed25519 key (signature type 0x01). */
export function ed25519NoteSigner(name: string, key: Ed25519KeyPair): NoteSigner {
  checkKeyName(name);
  const keyObject: KeyObject = ed25519PrivateKeyObject(key);
  const keyId = noteKeyId(name, SIG_TYPE_ED25519, key.publicKey);
  return { name, keyId, sign: (text) => ed25519Sign(keyObject, text) };
}

/** A note verifier for an Ed25519 public key (signature type 0x01). */
export function ed25519NoteVerifier(name: string, publicKey: Uint8Array): NoteVerifier {
  checkKeyName(name);
  const keyObject = ed25519PublicKeyObject(publicKey);
  return {
    name,
    keyId: noteKeyId(name, SIG_TYPE_ED25519, publicKey),
    type: SIG_TYPE_ED25519,
    publicKey: Uint8Array.from(publicKey),
    verify: (text, sig) => ed25519Verify(keyObject, text, sig),
  };
}
