/**
 * C2SP tlog-checkpoint: the note text of a signed tree head,
 *   <origin>\n<tree size, decimal>\n<base64 root hash>\n[<extension line>\n ...]
 * signed as a C2SP signed-note.
 */
import { LedgerError } from './errors.ts';
import { HASH_SIZE, toBase64 } from './hash.ts';
import type { NoteSignature, NoteSigner, NoteVerifier } from './note.ts';
import { SIG_TYPE_COSIGNATURE_V1, decodeBase64Strict, openNote, parseNote, signNote } from './note.ts';

export interface Checkpoint {
  origin: string;
  size: number;
  root: Uint8Array;
  /** Opaque extension lines (NOT RECOMMENDED by the spec; kept for completeness). */
  extensions?: readonly string[];
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f]/;
const DECIMAL = /^(0|[1-9][0-9]*)$/;

function checkLine(what: string, line: string): void {
  if (typeof line !== 'string' || line.length === 0 || CONTROL.test(line) || !line.isWellFormed()) {
    throw new LedgerError('BAD_CHECKPOINT', `${what} must be a non-empty line without control characters`);
  }
}

/** The checkpoint note text (body), ending in a newline. */
export function formatCheckpoint(cp: Checkpoint): string {
  checkLine('origin', cp.origin);
  if (!Number.isSafeInteger(cp.size) || cp.size < 0) throw new LedgerError('BAD_CHECKPOINT', `invalid tree size ${cp.size}`);
  if (!(cp.root instanceof Uint8Array) || cp.root.length !== HASH_SIZE) throw new LedgerError('BAD_CHECKPOINT', 'root hash must be 32 bytes');
  let out = `${cp.origin}\n${cp.size}\n${toBase64(cp.root)}\n`;
  for (const ext of cp.extensions ?? []) {
    checkLine('extension line', ext);
    out += `${ext}\n`;
  }
  return out;
}

/** Parses a checkpoint body (the note text, not the whole note). */
export function parseCheckpoint(text: string): Checkpoint {
  if (typeof text !== 'string' || !text.endsWith('\n')) throw new LedgerError('BAD_CHECKPOINT', 'checkpoint must end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) throw new LedgerError('BAD_CHECKPOINT', 'checkpoint needs origin, size and root lines');
  const [origin, sizeLine, rootLine, ...extensions] = lines as [string, string, string, ...string[]];
  checkLine('origin', origin);
  if (!DECIMAL.test(sizeLine)) throw new LedgerError('BAD_CHECKPOINT', `invalid tree size line ${JSON.stringify(sizeLine)}`);
  const size = Number(sizeLine);
  if (!Number.isSafeInteger(size)) throw new LedgerError('BAD_CHECKPOINT', `tree size ${sizeLine} is too large`);
  const root = decodeBase64Strict(rootLine);
  if (root === null || root.length !== HASH_SIZE) throw new LedgerError('BAD_CHECKPOINT', 'root line is not the base64 of a 32-byte hash');
  for (const ext of extensions) checkLine('extension line', ext);
  return extensions.length > 0 ? { origin, size, root, extensions } : { origin, size, root };
}

/** Formats and signs a checkpoint; returns the signed note. */
export function signCheckpointNote(cp: Checkpoint, signers: NoteSigner | readonly NoteSigner[]): string {
  return signNote(formatCheckpoint(cp), Array.isArray(signers) ? signers : [signers as NoteSigner]);
}

export interface CheckpointCosignature {
  name: string;
  keyId: number;
  /** POSIX seconds from the cosignature. */
  timestamp: number;
  verifier: NoteVerifier;
}

export interface OpenedCheckpoint {
  checkpoint: Checkpoint;
  /** The note text (checkpoint body). */
  text: string;
  /** Signatures by the log's key(s) that verified. */
  logSignatures: NoteSignature[];
  /** Verified cosignatures by the given witnesses. */
  cosignatures: CheckpointCosignature[];
  /** Every signature line of the note, known or not. */
  signatures: NoteSignature[];
}

export interface OpenCheckpointOptions {
  /** Trusted key(s) of the log; at least one of them must have signed. */
  log: NoteVerifier | readonly NoteVerifier[];
  /** Trusted witness (cosigner) keys; their lines are verified, unknown lines ignored. */
  witnesses?: readonly NoteVerifier[];
  /** Expected origin line. */
  origin?: string;
}

/**
 * Parses and verifies a signed checkpoint. Throws BAD_NOTE / BAD_CHECKPOINT for malformed input,
 * BAD_SIGNATURE when no trusted log signature verifies or a known signature (log or witness) fails.
 */
export function openCheckpoint(note: string | Uint8Array, opts: OpenCheckpointOptions): OpenedCheckpoint {
  const logVerifiers: readonly NoteVerifier[] = Array.isArray(opts.log) ? opts.log : [opts.log as NoteVerifier];
  const witnesses = opts.witnesses ?? [];
  const parsed = parseNote(note);
  const checkpoint = parseCheckpoint(parsed.text);
  if (opts.origin !== undefined && checkpoint.origin !== opts.origin) {
    throw new LedgerError('BAD_CHECKPOINT', `checkpoint origin ${JSON.stringify(checkpoint.origin)} is not ${JSON.stringify(opts.origin)}`);
  }
  let opened;
  try {
    opened = openNote(note, [...logVerifiers, ...witnesses]);
  } catch (err) {
    if (err instanceof LedgerError && err.code === 'BAD_SIGNATURE' && err.message.startsWith('note carries no')) {
      throw new LedgerError('BAD_SIGNATURE', 'checkpoint is not signed by a trusted log key');
    }
    throw err;
  }
  const logSet = new Set<NoteVerifier>(logVerifiers);
  const logSignatures = opened.verified.filter((v) => logSet.has(v.verifier)).map((v) => v.signature);
  if (logSignatures.length === 0) throw new LedgerError('BAD_SIGNATURE', 'checkpoint is not signed by a trusted log key');
  const cosignatures: CheckpointCosignature[] = [];
  for (const v of opened.verified) {
    if (logSet.has(v.verifier)) continue;
    const sig = v.signature;
    const timestamp =
      v.verifier.type === SIG_TYPE_COSIGNATURE_V1 && sig.signature.length >= 8
        ? Number(Buffer.from(sig.signature.buffer, sig.signature.byteOffset, 8).readBigUInt64BE(0))
        : Number.NaN;
    cosignatures.push({ name: sig.name, keyId: sig.keyId, timestamp, verifier: v.verifier });
  }
  return { checkpoint, text: parsed.text, logSignatures, cosignatures, signatures: parsed.signatures };
}
