// The DKIM keys of a node's domains (bridge.smtp.outbound.dkim): made by `aftersmtp init`, replaced by
// `aftersmtp dkim rotate`. A rotation adds a new RSA-2048 and Ed25519 key per domain under new selectors,
// which sign from then on; the old ones are marked retired and stay published (`dns records` lists them)
// for bridge.smtp.outbound.dkimGraceDays, so mail signed just before still verifies where it lands.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { generateDkimKey } from '../../bridge/index.ts';
import { CONFIG_FILE, dataPath, loadConfig, writeSecretFile, GatewayError } from '../core/index.ts';

export interface DkimKeyEntry { domain: string; selector: string; algorithm: 'rsa' | 'ed25519'; keyFile: string; retiredAt?: string }

/**
 * New keys for `domain`, one per algorithm, written to the data directory; their selectors say the day
 * they were made (`as20261207r`, `as20261207e`), with a letter added when that day already has one.
 */
export function newDkimKeys(dataDir: string, domain: string, taken: ReadonlySet<string>, now = new Date()): DkimKeyEntry[] {
  const stamp = now.toISOString().slice(0, 10).replace(/-/g, '');
  let suffix = '';
  for (let i = 0; ['r', 'e'].some((a) => taken.has(`as${stamp}${suffix}${a}`)); i++) suffix = String.fromCharCode(97 + i);
  return (['rsa', 'ed25519'] as const).map((algorithm) => {
    const selector = `as${stamp}${suffix}${algorithm === 'rsa' ? 'r' : 'e'}`;
    const keyFile = `keys/dkim-${selector}.pem`;
    writeSecretFile(dataPath(dataDir, keyFile), generateDkimKey(algorithm).privateKeyPem);
    return { domain, selector, algorithm, keyFile };
  });
}

/** Rotates every domain's signing keys; returns the keys made and the keys retired. Edits config.yaml in place. */
export function rotateDkimKeys(dataDir: string, now = new Date()): { added: DkimKeyEntry[]; retired: DkimKeyEntry[] } {
  const config = loadConfig(dataDir);
  const file = join(dataDir, CONFIG_FILE);
  if (!existsSync(file)) throw new GatewayError('NODE_MISSING', `no config.yaml in ${dataDir}`);
  // The document is edited, not rewritten, so the operator's comments and layout stay.
  const doc = YAML.parseDocument(readFileSync(file, 'utf8'));
  const current = config.bridge.smtp.outbound.dkim as DkimKeyEntry[];
  const taken = new Set(current.map((k) => k.selector));
  const retired = current.filter((k) => !k.retiredAt).map((k) => ({ ...k, retiredAt: now.toISOString() }));
  const added = config.node.domains.flatMap((domain) => newDkimKeys(dataDir, domain.toLowerCase(), taken, now));
  const kept = current.map((k) => retired.find((r) => r.selector === k.selector && r.domain === k.domain) ?? k);
  doc.setIn(['bridge', 'smtp', 'outbound', 'dkim'], [...added, ...kept]);
  writeSecretFile(file, doc.toString());
  return { added, retired };
}
