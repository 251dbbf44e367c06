import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import type { Ed25519KeyPair } from '../../ledger/index.ts';
import { detBytes } from './reference.ts';

export function tempDir(prefix = 'ledger-test-'): { dir: string; path: (name: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, path: (name) => join(dir, name), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Deterministic Ed25519 key pair from a label. */
export function testKey(label: string): Ed25519KeyPair {
  const seed = detBytes(`key/${label}`, 0);
  const priv = createPrivateKey({
    key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const x = createPublicKey(priv).export({ format: 'jwk' }).x!;
  return { privateKey: seed, publicKey: Buffer.from(x, 'base64url') };
}
