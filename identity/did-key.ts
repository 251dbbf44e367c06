/**
 * did:key for Ed25519 (PROTOCOL §3): did:key:z6Mk... = 'z' + base58btc(0xed 0x01 || public key).
 * The derived document carries the Ed25519 key (authentication, assertionMethod) and its
 * birational X25519 image (keyAgreement), as the did:key method specifies.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import type { DidDocument } from './document.ts';
import { IdentityError } from './errors.ts';
import { MULTICODEC_ED25519_PUB, MULTICODEC_X25519_PUB, decodeMultibaseKey, encodeMultibaseKey } from './encoding.ts';

export const DID_KEY_PREFIX = 'did:key:';

export function didKeyFromEd25519(publicKey: Uint8Array): string {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) {
    throw new IdentityError('INVALID_ARGUMENT', 'Ed25519 public key must be 32 bytes');
  }
  return DID_KEY_PREFIX + encodeMultibaseKey(MULTICODEC_ED25519_PUB, publicKey);
}

/** The Ed25519 public key inside a did:key DID (no fragment). Throws DID_RESOLUTION if malformed. */
export function ed25519FromDidKey(did: string): Uint8Array {
  if (!did.startsWith(DID_KEY_PREFIX)) throw new IdentityError('DID_RESOLUTION', `${did} is not a did:key`);
  const id = did.slice(DID_KEY_PREFIX.length);
  let key: Uint8Array;
  try {
    key = decodeMultibaseKey(id, MULTICODEC_ED25519_PUB, 'did:key');
  } catch (e) {
    throw new IdentityError('DID_RESOLUTION', `${did}: not an Ed25519 did:key (${(e as Error).message})`, { cause: e });
  }
  // base58 has one spelling per byte string: anything else is a different identifier.
  if (encodeMultibaseKey(MULTICODEC_ED25519_PUB, key) !== id) {
    throw new IdentityError('DID_RESOLUTION', `${did}: non-canonical did:key encoding`);
  }
  return key;
}

/**
 * Edwards -> Montgomery (u = (1 + y) / (1 - y)) for the did:key keyAgreement key. One-off per DID
 * (results are cached by the resolver), so @noble/curves is acceptable here.
 */
export function x25519FromEd25519Public(publicKey: Uint8Array): Uint8Array {
  try {
    return new Uint8Array(ed25519.utils.toMontgomery(publicKey));
  } catch (e) {
    throw new IdentityError('DID_RESOLUTION', 'Ed25519 public key is not a valid curve point', { cause: e });
  }
}

/** The derived DID document of a did:key (PROTOCOL §3). */
export function didKeyDocument(did: string): DidDocument {
  const edKey = ed25519FromDidKey(did);
  const xKey = x25519FromEd25519Public(edKey);
  const edId = `${did}#${did.slice(DID_KEY_PREFIX.length)}`;
  const xMultibase = encodeMultibaseKey(MULTICODEC_X25519_PUB, xKey);
  const xId = `${did}#${xMultibase}`;
  return {
    '@context': [
      'https://www.w3.org/ns/did/v1',
      'https://w3id.org/security/suites/ed25519-2020/v1',
      'https://w3id.org/security/suites/x25519-2020/v1',
    ],
    id: did,
    verificationMethod: [
      { id: edId, type: 'Ed25519VerificationKey2020', controller: did, publicKeyMultibase: did.slice(DID_KEY_PREFIX.length) },
      { id: xId, type: 'X25519KeyAgreementKey2020', controller: did, publicKeyMultibase: xMultibase },
    ],
    authentication: [edId],
    assertionMethod: [edId],
    capabilityInvocation: [edId],
    capabilityDelegation: [edId],
    keyAgreement: [xId],
  };
}

/** The key id (DID URL) of the did:key signing key, e.g. for signMessage's keyId. */
export function didKeySigningKeyId(did: string): string {
  ed25519FromDidKey(did);
  return `${did}#${did.slice(DID_KEY_PREFIX.length)}`;
}

/** The key id (DID URL) of the did:key's derived X25519 key-agreement key. */
export function didKeyAgreementKeyId(did: string): string {
  const xKey = x25519FromEd25519Public(ed25519FromDidKey(did));
  return `${did}#${encodeMultibaseKey(MULTICODEC_X25519_PUB, xKey)}`;
}
