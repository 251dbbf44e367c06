import { describe, expect, it } from 'vitest';
import {
  IdentityError,
  base58btcEncode,
  buildDidWebDocument,
  createStaticResolver,
  didKeyDocument,
  didKeyFromEd25519,
  didWebFromDomain,
  didWebUrl,
  ed25519FromDidKey,
  extractKeys,
  generateAgreementKeyPair,
  generateSigningKeyPair,
  splitKeyId,
  toBase64Url,
  x25519FromEd25519Public,
} from '../../identity/index.ts';
import type { DIDDocument } from '../../identity/index.ts';

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof IdentityError ? e.code : 'NOT_IDENTITY_ERROR';
  }
  return undefined;
}

describe('did:key', () => {
  it('round-trips an Ed25519 key through the identifier', () => {
    const kp = generateSigningKeyPair();
    const did = didKeyFromEd25519(kp.publicKey);
    expect(did).toMatch(/^did:key:z6Mk[1-9A-HJ-NP-Za-km-z]+$/);
    expect(ed25519FromDidKey(did)).toEqual(kp.publicKey);
  });

  it('derives a document with the Ed25519 key in authentication/assertionMethod and X25519 in keyAgreement', () => {
    const kp = generateSigningKeyPair();
    const did = didKeyFromEd25519(kp.publicKey);
    const doc = didKeyDocument(did);
    const msid = did.slice('did:key:'.length);
    expect(doc.id).toBe(did);
    expect(doc.authentication).toEqual([`${did}#${msid}`]);
    expect(doc.assertionMethod).toEqual([`${did}#${msid}`]);
    const resolved = extractKeys(did, doc);
    expect(resolved.authentication.get(`${did}#${msid}`)).toEqual(kp.publicKey);
    const [kaId, kaKey] = [...resolved.keyAgreement][0]!;
    expect(kaId).toMatch(new RegExp(`^${did}#z6LS`));
    expect(kaKey).toEqual(x25519FromEd25519Public(kp.publicKey));
  });

  it('rejects malformed identifiers', () => {
    const kp = generateSigningKeyPair();
    const good = didKeyFromEd25519(kp.publicKey);
    expect(code(() => ed25519FromDidKey(good.replace('z6Mk', 'z6LS')))).toBe('DID_RESOLUTION'); // x25519 multicodec
    expect(code(() => ed25519FromDidKey(good + '1'))).toBe('DID_RESOLUTION'); // wrong length
    expect(code(() => ed25519FromDidKey('did:key:' + base58btcEncode(kp.publicKey)))).toBe('DID_RESOLUTION'); // no 'z'
    expect(code(() => ed25519FromDidKey('did:key:z' + base58btcEncode(Uint8Array.of(0xed, 0x01, ...kp.publicKey, 0))))).toBe('DID_RESOLUTION');
    // An encoding of a y coordinate >= p is not a curve point.
    expect(code(() => didKeyDocument(didKeyFromEd25519(new Uint8Array(32).fill(0xff).fill(0x7f, 31))))).toBe('DID_RESOLUTION');
  });
});

describe('did:web identifiers and URLs', () => {
  it.each([
    ['did:web:example.test', 'https://example.test/.well-known/did.json'],
    ['did:web:example.test%3A8443', 'https://example.test:8443/.well-known/did.json'],
    ['did:web:example.test:users:alice', 'https://example.test/users/alice/did.json'],
    ['did:web:example.test%3A4443:users:al%40ice', 'https://example.test:4443/users/al%40ice/did.json'],
  ])('%s -> %s', (did, url) => {
    expect(didWebUrl(did).href).toBe(url);
  });

  it.each([
    'did:web:',
    'did:web:exa_mple.test',
    'did:web:example.test%3A0',
    'did:web:example.test%3A99999',
    'did:web:example.test:..',
    'did:web:example.test:%2E%2E',
    'did:web:example.test:a%2Fb',
    'did:web:example.test::x',
    'did:web:example.test#frag',
    'did:key:z6Mk',
  ])('rejects %s', (did) => {
    expect(code(() => didWebUrl(did))).toBe('DID_RESOLUTION');
  });

  it('didWebFromDomain encodes ports and path segments', () => {
    expect(didWebFromDomain('Example.Test')).toBe('did:web:example.test');
    expect(didWebFromDomain('example.test:8443', ['users', 'alice'])).toBe('did:web:example.test%3A8443:users:alice');
    expect(didWebFromDomain('example.test', ['a b', 'é'])).toBe('did:web:example.test:a%20b:%C3%A9');
    expect(code(() => didWebFromDomain('example.test', ['..']))).toBe('INVALID_ARGUMENT');
    expect(code(() => didWebFromDomain('bad_host'))).toBe('INVALID_ARGUMENT');
  });
});

describe('did:web documents', () => {
  const signing = generateSigningKeyPair();
  const agreement = generateAgreementKeyPair();
  const anchor = generateSigningKeyPair();
  const did = didWebFromDomain('node.test');

  it('buildDidWebDocument lays out #sig-1, #ka-1, #anchor-1 and the AfterSMTPNode service', () => {
    const doc = buildDidWebDocument({
      did,
      signingPublicKey: signing.publicKey,
      agreementPublicKey: agreement.publicKey,
      anchoringPublicKey: anchor.publicKey,
      service: { grpc: 'node.test:7443', quic: 'node.test:7444' },
    });
    expect(doc.authentication).toEqual([`${did}#sig-1`]);
    expect(doc.assertionMethod).toEqual([`${did}#sig-1`, `${did}#anchor-1`]);
    expect(doc.keyAgreement).toEqual([`${did}#ka-1`]);
    expect(doc.verificationMethod.map((m) => m.type)).toEqual([
      'Ed25519VerificationKey2020',
      'X25519KeyAgreementKey2020',
      'Ed25519VerificationKey2020',
    ]);
    expect(doc.service).toEqual([
      { id: `${did}#aftersmtp`, type: 'AfterSMTPNode', serviceEndpoint: { grpc: 'node.test:7443', quic: 'node.test:7444' } },
    ]);
    const keys = extractKeys(did, JSON.parse(JSON.stringify(doc)));
    expect(keys.authentication.get(`${did}#sig-1`)).toEqual(signing.publicKey);
    expect(keys.authentication.has(`${did}#anchor-1`)).toBe(false);
    expect(keys.assertionMethod.get(`${did}#anchor-1`)).toEqual(anchor.publicKey);
    expect(keys.keyAgreement.get(`${did}#ka-1`)).toEqual(agreement.publicKey);
    expect(keys.service).toEqual({ grpc: 'node.test:7443', quic: 'node.test:7444' });
  });

  it('extractKeys accepts relative references, embedded methods, JWKs and Multikey', () => {
    const doc: DIDDocument = {
      id: did,
      verificationMethod: [
        { id: '#jwk', type: 'JsonWebKey2020', controller: did, publicKeyJwk: { kty: 'OKP', crv: 'Ed25519', x: toBase64Url(signing.publicKey) } },
        { id: `${did}#mk`, type: 'Multikey', controller: did, publicKeyMultibase: 'z' + base58btcEncode(Uint8Array.of(0xec, 0x01, ...agreement.publicKey)) },
        { id: '#unknown', type: 'EcdsaSecp256k1VerificationKey2019', controller: did, publicKeyHex: '00' },
      ],
      authentication: ['#jwk', '#unknown', { id: '#emb', type: 'Multikey', controller: did, publicKeyMultibase: 'z' + base58btcEncode(Uint8Array.of(0xed, 0x01, ...anchor.publicKey)) }],
      keyAgreement: ['#mk', '#jwk'],
    };
    const keys = extractKeys(did, doc);
    expect([...keys.authentication.keys()]).toEqual([`${did}#jwk`, `${did}#emb`]);
    expect(keys.authentication.get(`${did}#emb`)).toEqual(anchor.publicKey);
    // #jwk is an Ed25519 key: not usable for key agreement.
    expect([...keys.keyAgreement.keys()]).toEqual([`${did}#mk`]);
  });

  it('extractKeys rejects a mismatched id, private JWKs, dangling references and duplicates', () => {
    const base = buildDidWebDocument({ did, signingPublicKey: signing.publicKey, agreementPublicKey: agreement.publicKey });
    expect(code(() => extractKeys('did:web:other.test', base))).toBe('DID_RESOLUTION');
    const withD = structuredClone(base) as DIDDocument;
    withD.verificationMethod!.push({ id: '#p', type: 'JsonWebKey2020', controller: did, publicKeyJwk: { kty: 'OKP', crv: 'Ed25519', x: 'AA', d: 'AA' } });
    expect(code(() => extractKeys(did, withD))).toBe('DID_RESOLUTION');
    const dangling = { ...structuredClone(base), authentication: ['#nope'] };
    expect(code(() => extractKeys(did, dangling))).toBe('DID_RESOLUTION');
    const dup = structuredClone(base) as DIDDocument;
    dup.verificationMethod!.push({ ...dup.verificationMethod![0]!, id: '#sig-1' });
    expect(code(() => extractKeys(did, dup))).toBe('DID_RESOLUTION');
    const badKey = structuredClone(base) as DIDDocument;
    badKey.verificationMethod![0]!.publicKeyMultibase = 'z111';
    expect(code(() => extractKeys(did, badKey))).toBe('DID_RESOLUTION');
    expect(code(() => extractKeys(did, [base]))).toBe('DID_RESOLUTION');
  });

  it('splitKeyId', () => {
    expect(splitKeyId('did:web:a.test#sig-1')).toEqual({ did: 'did:web:a.test', fragment: 'sig-1' });
    expect(splitKeyId('did:web:a.test')).toBeUndefined();
    expect(splitKeyId('did:web:a.test#')).toBeUndefined();
    expect(splitKeyId('#sig-1')).toBeUndefined();
    expect(splitKeyId('did:web:a.test/path#k')).toBeUndefined();
  });

  it('a static resolver serves registered documents and derives did:key, but never fetches', async () => {
    const doc = buildDidWebDocument({ did, signingPublicKey: signing.publicKey, agreementPublicKey: agreement.publicKey });
    const r = createStaticResolver([doc]);
    expect((await r.resolveKeys(did)).authentication.get(`${did}#sig-1`)).toEqual(signing.publicKey);
    const k = didKeyFromEd25519(signing.publicKey);
    expect((await r.resolveKeys(k)).document.id).toBe(k);
    await expect(r.resolveKeys('did:web:unknown.test')).rejects.toMatchObject({ code: 'DID_RESOLUTION' });
    await expect(r.resolveKeys(`${did}#sig-1`)).rejects.toMatchObject({ code: 'DID_RESOLUTION' });
    await expect(r.resolveKeys('did:example:123')).rejects.toMatchObject({ code: 'DID_RESOLUTION' });
    r.unregister(did);
    await expect(r.resolveKeys(did)).rejects.toMatchObject({ code: 'DID_RESOLUTION' });
  });
});
