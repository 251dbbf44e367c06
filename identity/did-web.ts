/**
 * did:web (PROTOCOL §3): identifiers, their HTTPS URLs, and the documents a node publishes.
 *   did:web:example.test              -> https://example.test/.well-known/did.json
 *   did:web:example.test%3A8443       -> https://example.test:8443/.well-known/did.json
 *   did:web:example.test:users:alice  -> https://example.test/users/alice/did.json
 */
import type { Service, VerificationMethod } from 'did-resolver';
import { SERVICE_TYPE, type AfterSmtpServiceEndpoint, type DidDocument } from './document.ts';
import { IdentityError } from './errors.ts';
import { MULTICODEC_ED25519_PUB, MULTICODEC_X25519_PUB, encodeMultibaseKey } from './encoding.ts';

export const DID_WEB_PREFIX = 'did:web:';

const HOST_RE = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const SEGMENT_RE = /^(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})+$/;

export interface DidWebParts {
  /** Host name as written in the DID (no port). */
  host: string;
  /** Explicit port, if the DID carries one (%3A). */
  port?: number;
  /** Path segments, still percent-encoded as in the DID. */
  path: string[];
  /** The HTTPS URL of the document. */
  url: URL;
}

function fail(did: string, why: string): never {
  throw new IdentityError('DID_RESOLUTION', `invalid did:web ${JSON.stringify(did)}: ${why}`);
}

export function parseDidWeb(did: string): DidWebParts {
  if (typeof did !== 'string' || !did.startsWith(DID_WEB_PREFIX)) fail(String(did), 'not a did:web');
  const msid = did.slice(DID_WEB_PREFIX.length);
  if (/[#?/]/.test(msid)) fail(did, 'a DID (not a DID URL) is required');
  const [hostPart, ...path] = msid.split(':');
  if (hostPart === undefined || hostPart === '') fail(did, 'empty host');
  const m = /^(.*?)(?:%3[Aa]([0-9]{1,5}))?$/.exec(hostPart);
  const host = m?.[1] ?? '';
  if (!HOST_RE.test(host)) fail(did, `bad host ${JSON.stringify(host)}`);
  let port: number | undefined;
  if (m?.[2] !== undefined) {
    port = Number(m[2]);
    if (port < 1 || port > 65535 || String(port) !== m[2]) fail(did, 'bad port');
  }
  for (const seg of path) {
    if (!SEGMENT_RE.test(seg)) fail(did, `bad path segment ${JSON.stringify(seg)}`);
    let decoded: string;
    try {
      decoded = decodeURIComponent(seg);
    } catch {
      fail(did, `bad percent-encoding in ${JSON.stringify(seg)}`);
    }
    // "." and ".." (also as %2E) would be resolved away by URL parsing; separators would change the path.
    if (decoded === '.' || decoded === '..' || /[/\\?#]/.test(decoded)) fail(did, `forbidden path segment ${JSON.stringify(seg)}`);
  }
  const authority = port === undefined ? host : `${host}:${port}`;
  const pathname = path.length === 0 ? '/.well-known/did.json' : `/${path.join('/')}/did.json`;
  const url = new URL(`https://${authority}${pathname}`);
  return port === undefined ? { host, path, url } : { host, port, path, url };
}

/** The HTTPS URL where a did:web document lives. */
export function didWebUrl(did: string): URL {
  return parseDidWeb(did).url;
}

function encodeSegment(s: string): string {
  let out = '';
  for (const byte of new TextEncoder().encode(s)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9._-]/.test(c) ? c : '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/**
 * did:web for a domain ("example.test" or "example.test:8443") and optional path segments
 * (["users", "alice"]). Path segments are percent-encoded where needed.
 */
export function didWebFromDomain(domain: string, path: string[] = []): string {
  const m = /^([^:]+)(?::([0-9]{1,5}))?$/.exec(domain);
  if (!m || !HOST_RE.test(m[1]!)) throw new IdentityError('INVALID_ARGUMENT', `invalid domain ${JSON.stringify(domain)}`);
  let id = m[1]!.toLowerCase();
  if (m[2] !== undefined) {
    const port = Number(m[2]);
    if (port < 1 || port > 65535 || String(port) !== m[2]) throw new IdentityError('INVALID_ARGUMENT', `invalid port in ${domain}`);
    id += '%3A' + m[2];
  }
  for (const seg of path) {
    if (seg === '' || seg === '.' || seg === '..') throw new IdentityError('INVALID_ARGUMENT', `invalid path segment ${JSON.stringify(seg)}`);
    id += ':' + encodeSegment(seg);
  }
  const did = DID_WEB_PREFIX + id;
  parseDidWeb(did);
  return did;
}

export interface DidWebDocumentOptions {
  did: string;
  /** Ed25519 public key: #sig-1 in authentication and assertionMethod. */
  signingPublicKey: Uint8Array;
  /** X25519 public key: #ka-1 in keyAgreement. */
  agreementPublicKey: Uint8Array;
  /** Optional Ed25519 anchoring key (ledger, Substrate account): #anchor-1 in assertionMethod only. */
  anchoringPublicKey?: Uint8Array;
  service?: AfterSmtpServiceEndpoint;
}

export const SIGNING_FRAGMENT = 'sig-1';
export const AGREEMENT_FRAGMENT = 'ka-1';
export const ANCHORING_FRAGMENT = 'anchor-1';
export const SERVICE_FRAGMENT = 'aftersmtp';

function key32(k: Uint8Array, what: string): Uint8Array {
  if (!(k instanceof Uint8Array) || k.length !== 32) throw new IdentityError('INVALID_ARGUMENT', `${what} must be 32 bytes`);
  return k;
}

/** A W3C DID document for a did:web node or mailbox (PROTOCOL §3). */
export function buildDidWebDocument(opts: DidWebDocumentOptions): DidDocument {
  const { did } = opts;
  parseDidWeb(did);
  const sigId = `${did}#${SIGNING_FRAGMENT}`;
  const kaId = `${did}#${AGREEMENT_FRAGMENT}`;
  const methods: VerificationMethod[] = [
    {
      id: sigId,
      type: 'Ed25519VerificationKey2020',
      controller: did,
      publicKeyMultibase: encodeMultibaseKey(MULTICODEC_ED25519_PUB, key32(opts.signingPublicKey, 'signingPublicKey')),
    },
    {
      id: kaId,
      type: 'X25519KeyAgreementKey2020',
      controller: did,
      publicKeyMultibase: encodeMultibaseKey(MULTICODEC_X25519_PUB, key32(opts.agreementPublicKey, 'agreementPublicKey')),
    },
  ];
  const assertionMethod = [sigId];
  if (opts.anchoringPublicKey !== undefined) {
    const anchorId = `${did}#${ANCHORING_FRAGMENT}`;
    methods.push({
      id: anchorId,
      type: 'Ed25519VerificationKey2020',
      controller: did,
      publicKeyMultibase: encodeMultibaseKey(MULTICODEC_ED25519_PUB, key32(opts.anchoringPublicKey, 'anchoringPublicKey')),
    });
    assertionMethod.push(anchorId);
  }
  const doc: DidDocument = {
    '@context': [
      'https://www.w3.org/ns/did/v1',
      'https://w3id.org/security/suites/ed25519-2020/v1',
      'https://w3id.org/security/suites/x25519-2020/v1',
    ],
    id: did,
    verificationMethod: methods,
    authentication: [sigId],
    assertionMethod,
    keyAgreement: [kaId],
  };
  if (opts.service !== undefined && Object.values(opts.service).some((v) => v !== undefined)) {
    const endpoint: Record<string, string | string[]> = {};
    if (opts.service.grpc !== undefined) endpoint['grpc'] = opts.service.grpc;
    if (opts.service.quic !== undefined) endpoint['quic'] = opts.service.quic;
    if (opts.service.relay !== undefined) endpoint['relay'] = opts.service.relay;
    if (opts.service.domains !== undefined) endpoint['domains'] = [...opts.service.domains];
    const service: Service = { id: `${did}#${SERVICE_FRAGMENT}`, type: SERVICE_TYPE, serviceEndpoint: endpoint };
    doc.service = [service];
  }
  return doc;
}
