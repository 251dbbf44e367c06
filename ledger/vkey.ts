/**
 * Verifier keys ("vkeys"), the text encoding of a note public key used by signed-note tooling:
 *   <name>+<8 hex digits key ID>+<base64(type byte || public key)>
 * Supported types: 0x01 (Ed25519 note signatures) and 0x04 (Ed25519 cosignature/v1).
 */
import { cosignatureV1Verifier } from './cosignature.ts';
import { LedgerError } from './errors.ts';
import type { NoteVerifier } from './note.ts';
import {
  SIG_TYPE_COSIGNATURE_V1,
  SIG_TYPE_ED25519,
  decodeBase64Strict,
  ed25519NoteVerifier,
  isValidKeyName,
  noteKeyId,
} from './note.ts';

export function formatVerifierKey(name: string, type: number, publicKey: Uint8Array): string {
  if (!isValidKeyName(name)) throw new LedgerError('BAD_KEY', `invalid key name ${JSON.stringify(name)}`);
  if (!Number.isInteger(type) || type < 0 || type > 255) throw new LedgerError('BAD_KEY', `invalid signature type ${type}`);
  const id = noteKeyId(name, type, publicKey).toString(16).padStart(8, '0');
  const material = Buffer.concat([Buffer.of(type), publicKey]).toString('base64');
  return `${name}+${id}+${material}`;
}

/** Parses a vkey into a NoteVerifier; throws BAD_KEY for malformed keys, unknown types or a wrong ID. */
export function parseVerifierKey(vkey: string): NoteVerifier {
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+={0,2})$/u.exec(vkey);
  if (!m) throw new LedgerError('BAD_KEY', 'malformed verifier key');
  const name = m[1]!;
  const raw = decodeBase64Strict(m[3]!);
  if (!isValidKeyName(name) || raw === null || raw.length < 2) throw new LedgerError('BAD_KEY', 'malformed verifier key');
  const type = raw[0]!;
  const key = raw.subarray(1);
  if (type !== SIG_TYPE_ED25519 && type !== SIG_TYPE_COSIGNATURE_V1) {
    throw new LedgerError('BAD_KEY', `unsupported verifier key type 0x${type.toString(16).padStart(2, '0')}`);
  }
  if (key.length !== 32) throw new LedgerError('BAD_KEY', 'Ed25519 verifier key must carry a 32-byte public key');
  const id = Number.parseInt(m[2]!, 16);
  if (noteKeyId(name, type, key) !== id) throw new LedgerError('BAD_KEY', 'verifier key ID does not match name and key');
  return type === SIG_TYPE_ED25519 ? ed25519NoteVerifier(name, key) : cosignatureV1Verifier(name, key);
}
