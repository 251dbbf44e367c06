import { verify as rawVerify, createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  SIG_TYPE_COSIGNATURE_V1,
  addSignatures,
  cosignCheckpoint,
  cosignatureKeyId,
  cosignatureMessage,
  cosignatureTimestamp,
  cosignatureV1Verifier,
  ed25519NoteSigner,
  ed25519NoteVerifier,
  formatCheckpoint,
  formatSignatureLine,
  formatVerifierKey,
  noteKeyId,
  openCheckpoint,
  parseNote,
  parseVerifierKey,
  signCheckpointNote,
  verifyCosignature,
} from '../../ledger/index.ts';
import v from './vectors/signed-note.json' with { type: 'json' };
import { testKey } from './helpers.ts';
import { detBytes } from './reference.ts';

const code = (c: string) => expect.objectContaining({ code: c });
const logKey = testKey('cosig-log');
const witness = testKey('witness-1');
const other = testKey('witness-2');
const W = 'witness.example/w1';
const cp = { origin: 'log.example/a', size: 1234, root: detBytes('cosig', 0) };
const note = signCheckpointNote(cp, ed25519NoteSigner('log.example/a', logKey));
const T = 1_700_000_000;
const NOW = { now: T + 60 };

describe('tlog-cosignature/v1 (Ed25519, type 0x04)', () => {
  it('signs the spec message format with the 0x04 key ID', () => {
    const ex = v.c2spCosignatureMessageExample;
    expect(Buffer.from(cosignatureMessage(ex.timestamp, ex.checkpoint)).toString('utf8')).toBe(ex.message);
    const line = cosignCheckpoint(witness, W, note, { timestamp: T });
    const [sig] = parseNote(`${formatCheckpoint(cp)}\n${line}`).signatures;
    expect(sig!.name).toBe(W);
    expect(sig!.keyId).toBe(cosignatureKeyId(W, witness.publicKey));
    expect(sig!.keyId).toBe(noteKeyId(W, 0x04, witness.publicKey));
    expect(sig!.keyId).not.toBe(noteKeyId(W, 0x01, witness.publicKey));
    expect(sig!.signature.length).toBe(8 + 64);
    expect(cosignatureTimestamp(sig!)).toBe(T);
    // Independent check: plain Ed25519 over "cosignature/v1\ntime T\n" || body.
    const pub = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(witness.publicKey).toString('base64url') }, format: 'jwk' });
    const msg = Buffer.from(`cosignature/v1\ntime ${T}\n${formatCheckpoint(cp)}`);
    expect(rawVerify(null, msg, pub, sig!.signature.subarray(8))).toBe(true);
  });

  it('reads timestamps of other implementations', () => {
    const [good, wrongType] = v.cosignatureTimestamps;
    expect(cosignatureTimestamp(Buffer.from(good!.base64, 'base64').subarray(4))).toBe(good!.timestamp);
    expect(() => cosignatureTimestamp(Buffer.from(wrongType!.base64, 'base64').subarray(4))).toThrow(code('BAD_SIGNATURE'));
  });

  it('verifies: line given, line found in the note, body or Checkpoint object', () => {
    const line = cosignCheckpoint(witness, W, note, { timestamp: T });
    expect(verifyCosignature(witness.publicKey, W, note, line, NOW)).toEqual({ timestamp: T });
    expect(verifyCosignature(witness.publicKey, W, formatCheckpoint(cp), line, NOW).timestamp).toBe(T);
    expect(verifyCosignature(witness.publicKey, W, cp, line, NOW).timestamp).toBe(T);
    const cosigned = addSignatures(note, [line]);
    expect(verifyCosignature(witness.publicKey, W, cosigned, undefined, NOW).timestamp).toBe(T);
    expect(addSignatures(cosigned, [line])).toBe(cosigned); // idempotent
  });

  it('rejects the wrong key', () => {
    const line = cosignCheckpoint(witness, W, note, { timestamp: T });
    expect(() => verifyCosignature(other.publicKey, W, note, line, NOW)).toThrow(code('BAD_SIGNATURE'));
    expect(() => verifyCosignature(witness.publicKey, 'witness.example/w2', note, line, NOW)).toThrow(code('BAD_SIGNATURE'));
    // A line claiming the witness's name and key ID but signed by another key.
    const forged = parseNote(`x\n\n${cosignCheckpoint(other, W, note, { timestamp: T })}`).signatures[0]!;
    forged.keyId = cosignatureKeyId(W, witness.publicKey);
    expect(() => verifyCosignature(witness.publicKey, W, note, formatSignatureLine(forged), NOW)).toThrow(/does not verify/);
    // A plain (0x01) note signature by the witness key is not a cosignature.
    const plain = parseNote(signCheckpointNote(cp, ed25519NoteSigner(W, witness))).signatures[0]!;
    expect(() => verifyCosignature(witness.publicKey, W, note, plain, NOW)).toThrow(code('BAD_SIGNATURE'));
  });

  it('rejects a changed or future time', () => {
    const sig = parseNote(`x\n\n${cosignCheckpoint(witness, W, note, { timestamp: T })}`).signatures[0]!;
    const moved = { ...sig, signature: Uint8Array.from(sig.signature) };
    Buffer.from(moved.signature.buffer).writeBigUInt64BE(BigInt(T + 1), 0);
    expect(() => verifyCosignature(witness.publicKey, W, note, moved, NOW)).toThrow(/does not verify/);
    const future = cosignCheckpoint(witness, W, note, { timestamp: T + 3600 });
    expect(() => verifyCosignature(witness.publicKey, W, note, future, NOW)).toThrow(/future/);
    expect(verifyCosignature(witness.publicKey, W, note, future, { now: T, maxFutureSeconds: 7200 }).timestamp).toBe(T + 3600);
  });

  it('rejects another body (size, root, origin, extension lines)', () => {
    const line = cosignCheckpoint(witness, W, note, { timestamp: T });
    for (const changed of [
      { ...cp, size: cp.size + 1 },
      { ...cp, root: detBytes('cosig', 1) },
      { ...cp, origin: 'log.example/b' },
      { ...cp, extensions: ['x'] },
    ]) {
      expect(() => verifyCosignature(witness.publicKey, W, changed, line, NOW)).toThrow(code('BAD_SIGNATURE'));
    }
  });

  it('works through openCheckpoint and vkeys; a failing known cosignature rejects the note', () => {
    const line = cosignCheckpoint(witness, W, note, { timestamp: T });
    const line2 = cosignCheckpoint(other, 'witness.example/w2', note, { timestamp: T + 1 });
    const cosigned = addSignatures(note, [line, line2]);
    const vkey = formatVerifierKey(W, SIG_TYPE_COSIGNATURE_V1, witness.publicKey);
    expect(vkey.startsWith(`${W}+`)).toBe(true);
    const opened = openCheckpoint(cosigned, {
      log: ed25519NoteVerifier('log.example/a', logKey.publicKey),
      witnesses: [parseVerifierKey(vkey)],
    });
    expect(opened.cosignatures.map((c) => [c.name, c.timestamp])).toEqual([[W, T]]); // w2 unknown: ignored
    expect(opened.signatures).toHaveLength(3);
    const both = openCheckpoint(cosigned, {
      log: ed25519NoteVerifier('log.example/a', logKey.publicKey),
      witnesses: [cosignatureV1Verifier(W, witness.publicKey), cosignatureV1Verifier('witness.example/w2', other.publicKey)],
    });
    expect(both.cosignatures.map((c) => c.timestamp)).toEqual([T, T + 1]);
    const sig = parseNote(`x\n\n${line}`).signatures[0]!;
    sig.signature[20]! ^= 0x40;
    const tampered = addSignatures(note, [sig]);
    expect(() =>
      openCheckpoint(tampered, { log: ed25519NoteVerifier('log.example/a', logKey.publicKey), witnesses: [cosignatureV1Verifier(W, witness.publicKey)] }),
    ).toThrow(code('BAD_SIGNATURE'));
  });
});
