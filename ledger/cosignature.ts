/**
 * C2SP tlog-cosignature/v1, Ed25519 flavour (signature type 0x04).
 *
 *   key ID   = SHA-256(name || "\n" || 0x04 || 32-byte public key)[:4]
 *   message  = "cosignature/v1\n" || "time <POSIX seconds>\n" || checkpoint note text
 *   line     = — <name> base64(key ID || u64 big-endian timestamp || Ed25519 signature)
 *
 * A cosignature states that, at that time, this is the largest consistent tree head the cosigner has
 * seen for that origin. Checking consistency before cosigning is the witness's job (federation layer).
 */
import type { Checkpoint } from './checkpoint.ts';
import { formatCheckpoint, parseCheckpoint } from './checkpoint.ts';
import { LedgerError } from './errors.ts';
import type { Ed25519KeyPair } from './keys.ts';
import { ed25519PrivateKeyObject, ed25519PublicKeyObject, ed25519Sign, ed25519Verify } from './keys.ts';
import type { NoteSignature, NoteVerifier } from './note.ts';
import { SIG_TYPE_COSIGNATURE_V1, formatSignatureLine, isValidKeyName, noteKeyId, parseNote } from './note.ts';

const MAX_TIMESTAMP = 2n ** 63n - 1n;

export function cosignatureKeyId(name: string, publicKey: Uint8Array): number {
  return noteKeyId(name, SIG_TYPE_COSIGNATURE_V1, publicKey);
}

/** The exact bytes an Ed25519 cosigner signs. */
export function cosignatureMessage(timestamp: number, checkpointText: string): Uint8Array {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new LedgerError('BAD_ARGUMENT', `invalid cosignature timestamp ${timestamp}`);
  return Buffer.from(`cosignature/v1\ntime ${timestamp}\n${checkpointText}`, 'utf8');
}

/** Timestamp of a cosignature/v1 signature payload (bytes after the key ID). */
export function cosignatureTimestamp(sig: NoteSignature | Uint8Array): number {
  const b = sig instanceof Uint8Array ? sig : sig.signature;
  if (b.length !== 72) throw new LedgerError('BAD_SIGNATURE', 'cosignature/v1 payload must be 8 + 64 bytes');
  const t = Buffer.from(b.buffer, b.byteOffset, 8).readBigUInt64BE(0);
  if (t > MAX_TIMESTAMP || t > BigInt(Number.MAX_SAFE_INTEGER)) throw new LedgerError('BAD_SIGNATURE', 'cosignature timestamp out of range');
  return Number(t);
}

/** Note text of a checkpoint given as a Checkpoint, a body, or a whole signed note. */
function checkpointText(checkpoint: string | Checkpoint): string {
  if (typeof checkpoint !== 'string') return formatCheckpoint(checkpoint);
  const text = checkpoint.includes('\n\n') ? parseNote(checkpoint).text : checkpoint;
  parseCheckpoint(text);
  return text;
}

/** A NoteVerifier for Ed25519 cosignature/v1 lines (usable with openNote / openCheckpoint). */
export function cosignatureV1Verifier(name: string, publicKey: Uint8Array): NoteVerifier {
  if (!isValidKeyName(name)) throw new LedgerError('BAD_KEY', `invalid cosigner name ${JSON.stringify(name)}`);
  const keyObject = ed25519PublicKeyObject(publicKey);
  return {
    name,
    keyId: cosignatureKeyId(name, publicKey),
    type: SIG_TYPE_COSIGNATURE_V1,
    publicKey: Uint8Array.from(publicKey),
    verify(text, sig) {
      if (sig.length !== 72) return false;
      const t = Buffer.from(sig.buffer, sig.byteOffset, 8).readBigUInt64BE(0);
      if (t > MAX_TIMESTAMP || t > BigInt(Number.MAX_SAFE_INTEGER)) return false;
      const msg = Buffer.concat([Buffer.from(`cosignature/v1\ntime ${t}\n`, 'utf8'), text]);
      return ed25519Verify(keyObject, msg, sig.subarray(8));
    },
  };
}

export interface CosignOptions {
  /** POSIX seconds; defaults to now. */
  timestamp?: number;
}

/**
 * Cosigns a checkpoint (Checkpoint, body or signed note) as witness `name`; returns the signature
 * line (with trailing newline) to append to the note.
 */
export function cosignCheckpoint(
  witnessKey: Ed25519KeyPair,
  name: string,
  checkpoint: string | Checkpoint,
  opts: CosignOptions = {},
): string {
  if (!isValidKeyName(name)) throw new LedgerError('BAD_KEY', `invalid cosigner name ${JSON.stringify(name)}`);
  const text = checkpointText(checkpoint);
  const timestamp = opts.timestamp ?? Math.floor(Date.now() / 1000);
  const key = ed25519PrivateKeyObject(witnessKey);
  const sig = ed25519Sign(key, cosignatureMessage(timestamp, text));
  const payload = Buffer.alloc(72);
  payload.writeBigUInt64BE(BigInt(timestamp), 0);
  payload.set(sig, 8);
  return formatSignatureLine({ name, keyId: cosignatureKeyId(name, witnessKey.publicKey), signature: payload });
}

export interface VerifyCosignatureOptions {
  /** Current POSIX seconds (default: now). */
  now?: number;
  /** Reject cosignatures dated more than this many seconds in the future (default 600). */
  maxFutureSeconds?: number;
}

/**
 * Verifies a cosignature by witness (`name`, `publicKey`) over a checkpoint. `cosignature` is a
 * signature line or parsed signature; when omitted, `checkpoint` must be a signed note and the
 * witness's line is looked up in it. Returns the cosignature timestamp; throws BAD_SIGNATURE when the
 * line is from another key, does not verify, or is dated in the future.
 */
export function verifyCosignature(
  publicKey: Uint8Array,
  name: string,
  checkpoint: string | Checkpoint,
  cosignature?: string | NoteSignature,
  opts: VerifyCosignatureOptions = {},
): { timestamp: number } {
  const verifier = cosignatureV1Verifier(name, publicKey);
  const text = checkpointText(checkpoint);
  let candidates: NoteSignature[];
  if (cosignature === undefined) {
    if (typeof checkpoint !== 'string' || !checkpoint.includes('\n\n')) {
      throw new LedgerError('BAD_ARGUMENT', 'no cosignature given and the checkpoint is not a signed note');
    }
    candidates = parseNote(checkpoint).signatures;
  } else if (typeof cosignature === 'string') {
    const line = cosignature.endsWith('\n') ? cosignature : `${cosignature}\n`;
    candidates = parseNote(`x\n\n${line}`).signatures;
  } else {
    candidates = [cosignature];
  }
  const mine = candidates.filter((s) => s.name === verifier.name && s.keyId === verifier.keyId);
  if (mine.length === 0) throw new LedgerError('BAD_SIGNATURE', `no cosignature by ${name} with key ${verifier.keyId.toString(16).padStart(8, '0')}`);
  const msg = Buffer.from(text, 'utf8');
  for (const sig of mine) {
    if (!verifier.verify(msg, sig.signature)) throw new LedgerError('BAD_SIGNATURE', `cosignature by ${name} does not verify`);
  }
  const timestamp = cosignatureTimestamp(mine[0]!);
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const skew = opts.maxFutureSeconds ?? 600;
  if (timestamp > now + skew) throw new LedgerError('BAD_SIGNATURE', `cosignature by ${name} is dated in the future (${timestamp} > ${now})`);
  return { timestamp };
}
