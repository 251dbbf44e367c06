/**
 * Reading keys out of a DID document (PROTOCOL §2.2, §3).
 *
 * Accepted verification method types:
 *   Ed25519VerificationKey2020 / X25519KeyAgreementKey2020 with publicKeyMultibase,
 *   Multikey with publicKeyMultibase (the multicodec prefix says which curve),
 *   JsonWebKey2020 / JsonWebKey with an OKP Ed25519 or X25519 publicKeyJwk.
 * authentication and assertionMethod collect Ed25519 keys, keyAgreement X25519 keys; methods of other
 * types are ignored. A method of an accepted type with malformed key material makes the whole
 * document unacceptable (its owner published garbage), as does a JWK carrying a private part.
 */
import type { DIDDocument, VerificationMethod } from 'did-resolver';
import { IdentityError } from './errors.ts';
import { MULTICODEC_ED25519_PUB, MULTICODEC_X25519_PUB, decodeMultibaseKey, fromBase64Url } from './encoding.ts';

/** The type of the service entry that names an AfterSMTP node's endpoints in its DID document (PROTOCOL §3). */
export const SERVICE_TYPE = 'AfterSMTPNode';

/** The endpoints of that service entry. */
export interface AfterSmtpServiceEndpoint {
  /** host:port of the node's gRPC (HTTP/2 + TLS) listener. */
  grpc?: string;
  /** host:port of the node's QUIC listener. */
  quic?: string;
  /** host:port of the node's node-to-node HTTP/2 relay listener (QUIC's fallback). */
  relay?: string;
  /** Mail domains the node serves (a relayed envelope's sender domain must be one of them). */
  domains?: string[];
}

/**
 * A DID document as this module produces it: did-resolver's DIDDocument with the verification
 * methods and the three relationships we use always present.
 */
export type DidDocument = DIDDocument & {
  verificationMethod: VerificationMethod[];
  authentication: (string | VerificationMethod)[];
  assertionMethod: (string | VerificationMethod)[];
  keyAgreement: (string | VerificationMethod)[];
};

export interface ResolvedDid {
  did: string;
  document: DIDDocument;
  /** Ed25519 keys usable to authenticate (sign messages and envelopes), by absolute key id. */
  authentication: Map<string, Uint8Array>;
  /** Ed25519 keys for assertions (e.g. ledger checkpoints, anchoring), by absolute key id. */
  assertionMethod: Map<string, Uint8Array>;
  /** X25519 key-agreement keys (envelope recipients), by absolute key id. */
  keyAgreement: Map<string, Uint8Array>;
  /** The AfterSMTPNode service endpoints, if the document declares them. */
  service?: AfterSmtpServiceEndpoint;
}

type Curve = 'ed25519' | 'x25519';

function bad(did: string, why: string): never {
  throw new IdentityError('DID_RESOLUTION', `DID document of ${did}: ${why}`);
}

function absoluteId(did: string, id: unknown): string | undefined {
  if (typeof id !== 'string') return undefined;
  if (id.startsWith('#') && id.length > 1) return did + id;
  if (id.startsWith(did + '#') && id.length > did.length + 1) return id;
  return undefined; // a key of another DID (or not a DID URL): never usable as one of this DID's keys
}

function decodeMethod(did: string, vm: VerificationMethod): { curve: Curve; key: Uint8Array } | undefined {
  const what = `verification method ${vm.id}`;
  try {
    switch (vm.type) {
      case 'Ed25519VerificationKey2020':
        return { curve: 'ed25519', key: decodeMultibaseKey(vm.publicKeyMultibase!, MULTICODEC_ED25519_PUB, what) };
      case 'X25519KeyAgreementKey2020':
        return { curve: 'x25519', key: decodeMultibaseKey(vm.publicKeyMultibase!, MULTICODEC_X25519_PUB, what) };
      case 'Multikey': {
        const mb = vm.publicKeyMultibase;
        if (typeof mb !== 'string') bad(did, `${what}: Multikey without publicKeyMultibase`);
        try {
          return { curve: 'ed25519', key: decodeMultibaseKey(mb, MULTICODEC_ED25519_PUB, what) };
        } catch {
          try {
            return { curve: 'x25519', key: decodeMultibaseKey(mb, MULTICODEC_X25519_PUB, what) };
          } catch {
            return undefined; // another curve: not ours
          }
        }
      }
      case 'JsonWebKey2020':
      case 'JsonWebKey': {
        const jwk = vm.publicKeyJwk;
        if (jwk === undefined || typeof jwk !== 'object') bad(did, `${what}: no publicKeyJwk`);
        if ('d' in jwk) bad(did, `${what}: publicKeyJwk contains a private key`);
        if (jwk.kty !== 'OKP' || (jwk.crv !== 'Ed25519' && jwk.crv !== 'X25519')) return undefined;
        const key = fromBase64Url(String(jwk.x));
        if (key.length !== 32) bad(did, `${what}: key must be 32 bytes`);
        return { curve: jwk.crv === 'Ed25519' ? 'ed25519' : 'x25519', key };
      }
      default:
        return undefined;
    }
  } catch (e) {
    if (e instanceof IdentityError && e.code === 'DID_RESOLUTION') throw e;
    bad(did, `${what}: ${(e as Error).message}`);
  }
}

function serviceOf(doc: DIDDocument): AfterSmtpServiceEndpoint | undefined {
  for (const s of doc.service ?? []) {
    if (s === null || typeof s !== 'object' || s.type !== SERVICE_TYPE) continue;
    const ep = s.serviceEndpoint;
    if (ep === null || typeof ep !== 'object' || Array.isArray(ep)) continue;
    const out: AfterSmtpServiceEndpoint = {};
    if (typeof ep['grpc'] === 'string') out.grpc = ep['grpc'];
    if (typeof ep['quic'] === 'string') out.quic = ep['quic'];
    if (typeof ep['relay'] === 'string') out.relay = ep['relay'];
    const domains = ep['domains'];
    if (Array.isArray(domains) && domains.every((d) => typeof d === 'string')) out.domains = domains as string[];
    return out;
  }
  return undefined;
}

/** Validates a document for `did` and indexes its usable keys. Throws DID_RESOLUTION. */
export function extractKeys(did: string, document: unknown): ResolvedDid {
  if (document === null || typeof document !== 'object' || Array.isArray(document)) bad(did, 'not a JSON object');
  const doc = document as DIDDocument;
  if (doc.id !== did) bad(did, `id ${JSON.stringify(doc.id)} does not equal the DID`);

  const methods = new Map<string, VerificationMethod>();
  const vms = doc.verificationMethod ?? [];
  if (!Array.isArray(vms)) bad(did, 'verificationMethod is not an array');
  for (const vm of vms) {
    if (vm === null || typeof vm !== 'object') bad(did, 'verificationMethod entry is not an object');
    if (vm.publicKeyJwk !== null && typeof vm.publicKeyJwk === 'object' && 'd' in vm.publicKeyJwk) {
      bad(did, `verification method ${String(vm.id)}: publicKeyJwk contains a private key`);
    }
    const id = absoluteId(did, vm.id);
    if (id === undefined) continue;
    if (methods.has(id)) bad(did, `duplicate verification method ${id}`);
    methods.set(id, vm);
  }

  const collect = (relationship: 'authentication' | 'assertionMethod' | 'keyAgreement', curve: Curve): Map<string, Uint8Array> => {
    const out = new Map<string, Uint8Array>();
    const entries = doc[relationship] ?? [];
    if (!Array.isArray(entries)) bad(did, `${relationship} is not an array`);
    for (const entry of entries) {
      let id: string | undefined;
      let vm: VerificationMethod | undefined;
      if (typeof entry === 'string') {
        id = absoluteId(did, entry);
        vm = id === undefined ? undefined : methods.get(id);
        if (id !== undefined && vm === undefined) bad(did, `${relationship} references unknown method ${entry}`);
      } else if (entry !== null && typeof entry === 'object') {
        id = absoluteId(did, entry.id);
        vm = entry;
      } else {
        bad(did, `${relationship} entry is neither a reference nor a method`);
      }
      if (id === undefined || vm === undefined) continue;
      const decoded = decodeMethod(did, vm);
      if (decoded === undefined || decoded.curve !== curve) continue;
      out.set(id, decoded.key);
    }
    return out;
  };

  const resolved: ResolvedDid = {
    did,
    document: doc,
    authentication: collect('authentication', 'ed25519'),
    assertionMethod: collect('assertionMethod', 'ed25519'),
    keyAgreement: collect('keyAgreement', 'x25519'),
  };
  const service = serviceOf(doc);
  if (service !== undefined) resolved.service = service;
  return resolved;
}

/** Splits a DID URL into its DID and fragment: "did:x:y#k" -> ["did:x:y", "k"]. */
export function splitKeyId(keyId: string): { did: string; fragment: string } | undefined {
  const i = keyId.indexOf('#');
  if (i <= 0 || i === keyId.length - 1) return undefined;
  const did = keyId.slice(0, i);
  if (!did.startsWith('did:') || /[?/]/.test(did.slice(4))) return undefined;
  return { did, fragment: keyId.slice(i + 1) };
}
