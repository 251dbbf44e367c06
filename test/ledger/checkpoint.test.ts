import { createPrivateKey, createPublicKey } from 'node:crypto';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  SIG_TYPE_ED25519,
  TransparencyLog,
  addSignatures,
  ed25519NoteSigner,
  ed25519NoteVerifier,
  encodeLeaf,
  formatCheckpoint,
  formatNote,
  formatVerifierKey,
  noteKeyId,
  openCheckpoint,
  openNote,
  parseCheckpoint,
  parseNote,
  parseVerifierKey,
  sha256,
  signCheckpointNote,
  signNote,
  verifyConsistency,
} from '../../ledger/index.ts';
import type { Ed25519KeyPair } from '../../ledger/index.ts';
import v from './vectors/signed-note.json' with { type: 'json' };
import { tempDir, testKey } from './helpers.ts';
import { detBytes, hex } from './reference.ts';

const code = (c: string) => expect.objectContaining({ code: c });

/** Key pair from a Go sumdb/note signer key: PRIVATE+KEY+<name>+<id>+base64(0x01 || seed). */
function fromGoSignerKey(skey: string): { name: string; key: Ed25519KeyPair } {
  const parts = skey.split('+');
  const raw = Buffer.from(parts.slice(4).join('+'), 'base64');
  expect(raw[0]).toBe(1);
  const seed = raw.subarray(1);
  const priv = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' });
  const x = createPublicKey(priv).export({ format: 'jwk' }).x!;
  return { name: parts[2]!, key: { privateKey: seed, publicKey: Buffer.from(x, 'base64url') } };
}

describe('signed notes (C2SP signed-note)', () => {
  it('reproduces the Go sumdb/note example byte for byte', () => {
    const { name, key } = fromGoSignerKey(v.sumdbNote.signerKey);
    expect(formatVerifierKey(name, SIG_TYPE_ED25519, key.publicKey)).toBe(v.sumdbNote.verifierKey);
    const signer = ed25519NoteSigner(name, key);
    expect(signer.keyId.toString(16)).toBe('c74f20a3');
    expect(signNote(v.sumdbNote.text, [signer])).toBe(v.sumdbNote.note);
    const opened = openNote(v.sumdbNote.note, [parseVerifierKey(v.sumdbNote.verifierKey)]);
    expect(opened.text).toBe(v.sumdbNote.text);
    expect(opened.verified).toHaveLength(1);
    expect(() => openNote(v.sumdbNote.note.replace('cryptography', 'cryptographY'), [parseVerifierKey(v.sumdbNote.verifierKey)])).toThrow(code('BAD_SIGNATURE'));
  });

  it('parses vkeys of other implementations and rejects bad ones', () => {
    for (const k of v.otherVerifierKeys) {
      const ver = parseVerifierKey(k.vkey);
      expect(ver.type).toBe(k.type);
      expect(formatVerifierKey(ver.name, ver.type, ver.publicKey)).toBe(k.vkey);
    }
    for (const bad of v.badVerifierKeys) expect(() => parseVerifierKey(bad), bad).toThrow(code('BAD_KEY'));
  });

  it('ignores unknown signers, rejects failing known ones, requires one trusted signature', () => {
    const a = ed25519NoteSigner('a.example/log', testKey('a'));
    const b = ed25519NoteSigner('b.example/w', testKey('b'));
    const va = ed25519NoteVerifier('a.example/log', testKey('a').publicKey);
    const vb = ed25519NoteVerifier('b.example/w', testKey('b').publicKey);
    const note = signNote('hello\nworld\n', [a, b]);
    expect(parseNote(note).signatures.map((s) => s.name)).toEqual(['a.example/log', 'b.example/w']);
    expect(openNote(note, [va]).verified.map((x) => x.signature.name)).toEqual(['a.example/log']);
    expect(openNote(note, [va, vb]).verified).toHaveLength(2);
    // Same name, other key: unknown (key ID differs) -> ignored; nothing else trusted -> rejected.
    expect(() => openNote(note, [ed25519NoteVerifier('a.example/log', testKey('c').publicKey)])).toThrow(code('BAD_SIGNATURE'));
    // A known key whose signature fails rejects the whole note even if another verifies.
    const forged = formatNote('hello\nworld\n', [
      ...parseNote(note).signatures.slice(0, 1),
      { name: 'b.example/w', keyId: vb.keyId, signature: new Uint8Array(64) },
    ]);
    expect(() => openNote(forged, [va, vb])).toThrow(code('BAD_SIGNATURE'));
    expect(openNote(forged, [va]).verified).toHaveLength(1);
  });

  it('rejects malformed notes', () => {
    const a = ed25519NoteSigner('a.example/log', testKey('a'));
    const good = signNote('text\n', [a]);
    for (const bad of [
      'text\n', // no signature block
      'text\n\n', // no signatures
      good.slice(0, -1), // no final newline
      good.replace('— ', '-- '),
      good.replace('a.example/log', 'a example/log'),
      good.replace('a.example/log', 'a+example/log'),
      good.replace(/=?\n$/, '!\n'),
      `te\u0001xt\n${good.slice(5)}`,
      'text\n\n— a.example/log AAAA\n', // too short
    ]) {
      expect(() => parseNote(bad), JSON.stringify(bad)).toThrow(code('BAD_NOTE'));
    }
    expect(() => parseNote(Uint8Array.of(0xff, 0x0a, 0x0a))).toThrow(code('BAD_NOTE'));
    expect(() => signNote('no newline', [a])).toThrow(code('BAD_NOTE'));
    // The text may contain blank lines: the last blank line separates the signatures.
    const multi = signNote('a\n\nb\n', [a]);
    expect(parseNote(multi).text).toBe('a\n\nb\n');
    expect(addSignatures(good, [parseNote(multi).signatures[0]!])).toContain('a.example/log');
  });
});

describe('checkpoints (C2SP tlog-checkpoint)', () => {
  it('parses the spec example and round-trips bodies', () => {
    const ex = v.c2spCheckpointExample;
    const { text, signatures } = parseNote(ex.note);
    const cp = parseCheckpoint(text);
    expect([cp.origin, cp.size, hex(cp.root), cp.extensions]).toEqual([ex.origin, ex.size, hex(Buffer.from(ex.rootBase64, 'base64')), undefined]);
    expect(formatCheckpoint(cp)).toBe(text);
    expect(signatures[0]!.signature.length).toBe(64);
    const withExt = { origin: 'o.example/x', size: 0, root: sha256(''), extensions: ['ext one', 'two'] };
    const back = parseCheckpoint(formatCheckpoint(withExt));
    expect([back.origin, back.size, hex(back.root), back.extensions]).toEqual(['o.example/x', 0, hex(sha256('')), ['ext one', 'two']]);
  });

  it('rejects malformed bodies', () => {
    const r = Buffer.alloc(32).toString('base64');
    for (const bad of [
      `o\n1\n${r}`, `o\n1\n`, `\n1\n${r}\n`, `o\n01\n${r}\n`, `o\n-1\n${r}\n`, `o\n1.0\n${r}\n`, `o\n99999999999999999999\n${r}\n`,
      `o\n1\n${Buffer.alloc(31).toString('base64')}\n`, `o\n1\n${r.replace('=', '')}\n`, `o\n1\n${r}\n\n`, `o\n 1\n${r}\n`,
    ]) {
      expect(() => parseCheckpoint(bad), JSON.stringify(bad)).toThrow(code('BAD_CHECKPOINT'));
    }
    expect(() => formatCheckpoint({ origin: 'a\nb', size: 1, root: Buffer.alloc(32) })).toThrow(code('BAD_CHECKPOINT'));
    expect(() => formatCheckpoint({ origin: 'a', size: -1, root: Buffer.alloc(32) })).toThrow(code('BAD_CHECKPOINT'));
    expect(() => formatCheckpoint({ origin: 'a', size: 1, root: Buffer.alloc(31) })).toThrow(code('BAD_CHECKPOINT'));
  });

  it('opens only with the log key, the right origin and an untampered body', () => {
    const key = testKey('cp');
    const signer = ed25519NoteSigner('log.example/a', key);
    const logV = ed25519NoteVerifier('log.example/a', key.publicKey);
    const cp = { origin: 'log.example/a', size: 5, root: detBytes('root', 0) };
    const note = signCheckpointNote(cp, signer);
    const keyId = noteKeyId('log.example/a', 1, key.publicKey);
    expect(note).toMatch(/^log\.example\/a\n5\n[A-Za-z0-9+/]{43}=\n\n— log\.example\/a [A-Za-z0-9+/]{91}=\n$/);
    expect(parseNote(note).signatures[0]!.keyId).toBe(keyId);
    const opened = openCheckpoint(note, { log: logV, origin: 'log.example/a' });
    expect(opened.checkpoint.size).toBe(5);
    expect(hex(opened.checkpoint.root)).toBe(hex(cp.root));
    expect(() => openCheckpoint(note, { log: logV, origin: 'log.example/b' })).toThrow(code('BAD_CHECKPOINT'));
    expect(() => openCheckpoint(note, { log: ed25519NoteVerifier('log.example/a', testKey('x').publicKey) })).toThrow(code('BAD_SIGNATURE'));
    expect(() => openCheckpoint(note.replace('\n5\n', '\n6\n'), { log: logV })).toThrow(code('BAD_SIGNATURE'));
    // A witness-only signature does not make the checkpoint valid.
    const w = ed25519NoteSigner('w.example', testKey('w'));
    const onlyWitness = signNote(formatCheckpoint(cp), [w]);
    expect(() => openCheckpoint(onlyWitness, { log: logV, witnesses: [ed25519NoteVerifier('w.example', testKey('w').publicKey)] })).toThrow(
      code('BAD_SIGNATURE'),
    );
  });
});

describe('TransparencyLog.signCheckpoint', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());
  const key = testKey('signer');
  const origin = 'node.example/ledger';
  const leaf = (seed: string, i: number) => encodeLeaf({ version: 1, type: 'message', messageHash: detBytes(seed, i) });
  const openLog = (file: string) => TransparencyLog.open(tmp.path(file), { origin, signingKey: key });
  const fill = (log: TransparencyLog, seed: string, upTo: number) => {
    const leaves = [];
    for (let i = log.size; i < upTo; i++) leaves.push(leaf(seed, i));
    log.append(leaves);
  };
  /** Copies the checkpoints table of `from` into the database `to` (a forked / restored store). */
  const injectCheckpoints = (fromFile: string, toFile: string, where = '1') => {
    const src = new DatabaseSync(tmp.path(fromFile), { readOnly: true });
    const rows = src.prepare(`SELECT size, root, note, signed_at FROM checkpoints WHERE ${where} ORDER BY seq`).all() as {
      size: number; root: Uint8Array; note: string; signed_at: number;
    }[];
    src.close();
    const dst = new DatabaseSync(tmp.path(toFile));
    for (const r of rows) dst.prepare('INSERT INTO checkpoints (size, root, note, signed_at) VALUES (?, ?, ?, ?)').run(r.size, r.root, r.note, r.signed_at);
    dst.close();
  };

  it('signs the tree head, persists every checkpoint, verifies with the log vkey', () => {
    const log = openLog('a.db');
    const c0 = log.signCheckpoint();
    expect(c0.size).toBe(0);
    expect(hex(c0.root)).toBe(hex(sha256('')));
    fill(log, 'a', 10);
    const c1 = log.signCheckpoint();
    fill(log, 'a', 300);
    const c2 = log.signCheckpoint();
    const again = log.signCheckpoint();
    expect(again.seq).toBe(c2.seq); // identical note: not stored twice
    const c3 = log.signCheckpoint({ size: 10 }); // smaller, consistent: allowed
    expect(c3.note).toBe(c1.note);
    expect(log.checkpoints().map((c) => c.size)).toEqual([0, 10, 300, 10]);
    for (const c of log.checkpoints()) {
      const o = openCheckpoint(c.note, { log: parseVerifierKey(log.verifierKey), origin });
      expect(o.checkpoint.size).toBe(c.size);
      expect(hex(o.checkpoint.root)).toBe(hex(log.rootAt(c.size)));
      expect(verifyConsistency(c.size, log.size, log.consistencyProof(c.size), c.root, log.root())).toBe(true);
    }
    expect(log.verifierKey.startsWith(`${origin}+`)).toBe(true);
    expect(hex(log.resource('checkpoint'))).toBe(hex(Buffer.from(c3.note)));
    const ext = log.signCheckpoint({ extensions: ['anchor 1'] });
    expect(parseCheckpoint(parseNote(ext.note).text).extensions).toEqual(['anchor 1']);
    expect(() => log.signCheckpoint({ size: 301 })).toThrow(code('BAD_ARGUMENT'));
    log.close();
  });

  it('refuses a checkpoint of the same size with another root', () => {
    const a = openLog('a.db');
    fill(a, 'A', 10);
    a.signCheckpoint();
    a.close();
    const b = openLog('b.db');
    fill(b, 'B', 10);
    injectCheckpoints('a.db', 'b.db');
    const before = b.checkpoints().length;
    expect(() => b.signCheckpoint()).toThrow(code('INCONSISTENT_CHECKPOINT'));
    expect(b.checkpoints().length).toBe(before); // nothing persisted
    b.close();
  });

  it('refuses a larger checkpoint whose consistency proof from the last fails', () => {
    const a = openLog('a.db');
    fill(a, 'A', 5);
    a.signCheckpoint();
    a.close();
    const b = openLog('b.db');
    fill(b, 'A', 4); // shares 4 leaves with A ...
    fill(b, 'B', 12); // ... then differs
    injectCheckpoints('a.db', 'b.db');
    expect(() => b.signCheckpoint()).toThrow(code('INCONSISTENT_CHECKPOINT'));
    b.close();
  });

  it('refuses a smaller checkpoint with another root, and a tree rolled back below the last checkpoint', () => {
    const a = openLog('a.db');
    fill(a, 'A', 20);
    a.signCheckpoint();
    a.close();
    const b = openLog('b.db');
    fill(b, 'B', 30);
    injectCheckpoints('a.db', 'b.db');
    expect(() => b.signCheckpoint({ size: 10 })).toThrow(code('INCONSISTENT_CHECKPOINT'));
    b.close();
    const c = openLog('c.db');
    fill(c, 'A', 15); // a prefix of A, but smaller than A's signed checkpoint: rolled back
    injectCheckpoints('a.db', 'c.db');
    expect(() => c.signCheckpoint()).toThrow(code('INCONSISTENT_CHECKPOINT'));
    fill(c, 'A', 20); // once it has caught up with identical leaves, signing works again
    expect(c.signCheckpoint().size).toBe(20);
    c.close();
  });

  it('refuses to open a store whose tree no longer matches its signed checkpoints', () => {
    const a = openLog('a.db');
    fill(a, 'A', 300);
    a.signCheckpoint();
    a.close();
    // Tamper with stored leaf hashes after signing: in the right-edge (partial) tile the signed root
    // no longer matches; in a full tile, the tile no longer hashes to its parent entry.
    const flip = (idx: number) => {
      const db = new DatabaseSync(tmp.path('a.db'));
      const row = db.prepare('SELECT data FROM tiles WHERE level = 0 AND idx = ?').get(idx) as { data: Uint8Array };
      const data = Uint8Array.from(row.data);
      data[100]! ^= 1;
      db.prepare('UPDATE tiles SET data = ? WHERE level = 0 AND idx = ?').run(data, idx);
      db.close();
    };
    flip(1);
    expect(() => openLog('a.db')).toThrow(code('INCONSISTENT_CHECKPOINT'));
    flip(1);
    openLog('a.db').close();
    flip(0);
    expect(() => openLog('a.db')).toThrow(code('CORRUPT'));
    // Tampering with an entry only (tiles intact) is caught by the full audit.
    const b = openLog('b.db');
    fill(b, 'B', 50);
    b.signCheckpoint();
    const db2 = new DatabaseSync(tmp.path('b.db'));
    db2.prepare('UPDATE entries SET data = ? WHERE idx = 7').run(leaf('evil', 7));
    db2.close();
    expect(() => b.verifyStorage()).toThrow(code('CORRUPT'));
    b.close();
  });
});
