/**
 * identity/: keys, DID documents, did:key + did:web resolution, signed messages and envelopes
 * (docs/PROTOCOL.md §1-3, §5). Other modules use this surface only.
 */
export { ErrorCodes, IdentityError, isIdentityError } from './errors.ts';
export type { ErrorCode } from './errors.ts';

export {
  base58btcDecode,
  base58btcEncode,
  bytesEqual,
  compareBytes,
  concatBytes,
  fromBase64Url,
  fromHex,
  toBase64Url,
  toHex,
} from './encoding.ts';

export {
  ed25519PublicKeyFromSeed,
  generateAgreementKeyPair,
  generateSigningKeyPair,
  randomBytes,
  sha256,
  sign,
  verifySignature,
  x25519,
  x25519PrivateFromEd25519Seed,
  x25519PublicKeyFromPrivate,
} from './keys.ts';
export type { AgreementKeyPair, SigningKeyPair } from './keys.ts';

export {
  AEAD_AES_128_GCM,
  AEAD_AES_256_GCM,
  AEAD_CHACHA20_POLY1305,
  HpkeContext,
  KDF_HKDF_SHA256,
  KEM_X25519_HKDF_SHA256,
  hpkeDeriveKeyPair,
  hpkeKeySchedule,
  hpkeOpen,
  hpkeSeal,
  hpkeSealWithEphemeral,
  hpkeSetupBaseR,
  hpkeSetupBaseS,
  hpkeSetupBaseSWithEphemeral,
  hpkeSuite,
} from './hpke.ts';
export type { HpkeAeadId, HpkeSuite, KemKeyPair, KeyScheduleValues } from './hpke.ts';

export { didKeyAgreementKeyId, didKeyDocument, didKeyFromEd25519, didKeySigningKeyId, ed25519FromDidKey, x25519FromEd25519Public } from './did-key.ts';
export {
  AGREEMENT_FRAGMENT,
  ANCHORING_FRAGMENT,
  SERVICE_FRAGMENT,
  SIGNING_FRAGMENT,
  buildDidWebDocument,
  didWebFromDomain,
  didWebUrl,
  parseDidWeb,
} from './did-web.ts';
export type { DidWebDocumentOptions, DidWebParts } from './did-web.ts';

export { SERVICE_TYPE, extractKeys, splitKeyId } from './document.ts';
export type { AfterSmtpServiceEndpoint, DidDocument, ResolvedDid } from './document.ts';
export { createDidResolver, createStaticResolver } from './resolver.ts';
export type { DidResolver, DidResolverOptions, KeyResolver, ResolveHost } from './resolver.ts';
export type { DIDDocument, Service, VerificationMethod } from 'did-resolver';

export {
  CONTENT_KEY_INFO,
  DEFAULT_LIMITS,
  DEFAULT_MAX_LIFETIME_MS,
  DEFAULT_SKEW_MS,
  ENVELOPE_AAD_PREFIX,
  MAX_ENVELOPE_BYTES_HARD,
  MESSAGE_SIGNING_PREFIX,
  PROTOCOL_VERSION,
  checkTimeWindow,
} from './protocol.ts';
export type { Limits } from './protocol.ts';

export { decodeHeader, decodeSignedMessage, encodeHeader, messageSigningInput, signMessage, verifySignedMessage } from './message.ts';
export type { DecodedSignedMessage, MessageHeader, Party, SignMessageOptions, SignedMessageResult, VerifyOptions, VerifyResult } from './message.ts';

export {
  ENVELOPE_MAGIC,
  checkEnvelope,
  computeRecipientsDigest,
  decodeEnvelope,
  encodeEnvelope,
  encodeOuterHeader,
  encodedEnvelopeSize,
  envelopeAad,
  openAndVerifyEnvelope,
  openEnvelope,
  sealEnvelope,
  validateEnvelope,
} from './envelope.ts';
export type {
  CheckEnvelopeOptions,
  Envelope,
  EnvelopeAead,
  EnvelopeRecipient,
  RecipientPrivateKey,
  RecipientPublicKey,
  SealEnvelopeOptions,
} from './envelope.ts';

export { SignatureVerifierPool } from './verifier-pool.ts';
export type { SignatureCheck } from './verifier-pool.ts';

export { createCertificateAuthority, issueServerCertificate } from './certificates.ts';
export type { CertificateAuthorityOptions, PemKeyPair, ServerCertificateOptions } from './certificates.ts';
