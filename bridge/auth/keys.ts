// Signing algorithms of ARC (RFC 8617 §4.1: those of DKIM, rsa-sha256 and ed25519-sha256 per RFC 8463),
// and DKIM key records (RFC 6376 §3.6.1), for the ARC checks the bridge does itself and for sealing.
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { parseTagList } from './tag-list.ts';
import type { BridgeResolver } from './dns.ts';

export type SignatureAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

/** RFC 8301 §3.2: verifiers need not accept RSA keys under 1024 bits, and the bridge does not. */
export const MIN_RSA_BITS = 1024;

/** The DER prefix that turns the 32 raw bytes of an Ed25519 p= (RFC 8463 §4.2) into SubjectPublicKeyInfo. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function algorithmOfKey(key: KeyObject): SignatureAlgorithm {
  if (key.asymmetricKeyType === 'rsa') return 'rsa-sha256';
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519-sha256';
  throw new Error(`a ${key.asymmetricKeyType} key cannot sign ARC (RSA or Ed25519 only)`);
}

/** Ed25519 signs the SHA-256 of the data (RFC 8463 §3); RSA signs the data with SHA-256. */
export function signData(algorithm: SignatureAlgorithm, data: Buffer, privateKey: KeyObject): Buffer {
  return algorithm === 'rsa-sha256'
    ? sign('sha256', data, privateKey)
    : sign(null, createHash('sha256').update(data).digest(), privateKey);
}

export function verifyData(algorithm: SignatureAlgorithm, data: Buffer, publicKey: KeyObject, signature: Buffer): boolean {
  try {
    return algorithm === 'rsa-sha256'
      ? verify('sha256', data, publicKey, signature)
      : verify(null, createHash('sha256').update(data).digest(), publicKey, signature);
  } catch {
    return false;
  }
}

/** The key a record's p= holds: SPKI DER for RSA, the 32 raw bytes for Ed25519 (RFC 8463 §4.2). Throws when unreadable. */
export function publicKeyFromDns(keyType: 'rsa' | 'ed25519', p: string): KeyObject {
  const der = Buffer.from(p, 'base64');
  return createPublicKey({ key: keyType === 'rsa' ? der : Buffer.concat([ED25519_SPKI_PREFIX, der]), format: 'der', type: 'spki' });
}

/** The p= value of a key record for a public (or private) key: the inverse of publicKeyFromDns. */
export function publicKeyDnsValue(key: KeyObject): string {
  const spki = (key.type === 'public' ? key : createPublicKey(key)).export({ type: 'spki', format: 'der' });
  return (key.asymmetricKeyType === 'ed25519' ? spki.subarray(ED25519_SPKI_PREFIX.length) : spki).toString('base64');
}

export type KeyLookup =
  | { ok: true; key: KeyObject }
  | { ok: false; temporary: boolean; reason: string };

/** The public key at `selector._domainkey.domain`, checked against the signature's algorithm. */
export async function lookupKey(resolver: BridgeResolver, domain: string, selector: string, algorithm: SignatureAlgorithm): Promise<KeyLookup> {
  const name = `${selector}._domainkey.${domain}`;
  let records: string[];
  try {
    const answer = await resolver.txt(name);
    records = answer.records;
  } catch (err) {
    return { ok: false, temporary: true, reason: `key lookup for ${name} failed: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (records.length !== 1) return { ok: false, temporary: false, reason: records.length === 0 ? `no key for ${name}` : `several key records for ${name}` };
  const parsed = parseTagList(records[0]!);
  if (!parsed.ok) return { ok: false, temporary: false, reason: `key record ${name}: ${parsed.detail}` };
  const tags = parsed.tags;
  if (tags.has('v') && tags.get('v') !== 'DKIM1') return { ok: false, temporary: false, reason: `key record ${name} is not DKIM1` };
  const keyType = tags.get('k') ?? 'rsa';
  if ((keyType === 'rsa') !== (algorithm === 'rsa-sha256') || (keyType !== 'rsa' && keyType !== 'ed25519')) {
    return { ok: false, temporary: false, reason: `key record ${name} is k=${keyType}, the signature is ${algorithm}` };
  }
  const hashes = tags.get('h');
  if (hashes !== undefined && !hashes.split(':').map((h) => h.trim()).includes('sha256')) return { ok: false, temporary: false, reason: `key record ${name} does not allow sha256` };
  const p = (tags.get('p') ?? '').replace(/[ \t\r\n]/g, '');
  if (p === '') return { ok: false, temporary: false, reason: `key for ${name} is revoked (empty p=)` };
  try {
    const key = publicKeyFromDns(keyType, p);
    if (key.asymmetricKeyType !== keyType) return { ok: false, temporary: false, reason: `key for ${name} is not a ${keyType} key` };
    if (keyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) return { ok: false, temporary: false, reason: `key for ${name} is shorter than ${MIN_RSA_BITS} bits` };
    return { ok: true, key };
  } catch {
    return { ok: false, temporary: false, reason: `key for ${name} cannot be read` };
  }
}
