/** Shared fixtures for identity tests. */
import {
  didKeyAgreementKeyId,
  didKeyFromEd25519,
  didKeySigningKeyId,
  generateSigningKeyPair,
  randomBytes,
  signMessage,
  x25519FromEd25519Public,
  x25519PrivateFromEd25519Seed,
} from '../../identity/index.ts';
import type { MessageHeader, SignedMessageResult } from '../../identity/index.ts';

export interface TestIdentity {
  did: string;
  address: string;
  seed: Uint8Array;
  publicKey: Uint8Array;
  keyId: string;
  agreementKeyId: string;
  agreementPublicKey: Uint8Array;
  agreementPrivateKey: Uint8Array;
}

export function didKeyIdentity(address: string): TestIdentity {
  const kp = generateSigningKeyPair();
  const did = didKeyFromEd25519(kp.publicKey);
  return {
    did,
    address,
    seed: kp.privateKey,
    publicKey: kp.publicKey,
    keyId: didKeySigningKeyId(did),
    agreementKeyId: didKeyAgreementKeyId(did),
    agreementPublicKey: x25519FromEd25519Public(kp.publicKey),
    agreementPrivateKey: x25519PrivateFromEd25519Seed(kp.privateKey),
  };
}

export const T0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
export const HOUR = 3_600_000;

export function makeSigned(
  from: TestIdentity,
  to: TestIdentity[],
  opts: { body?: Uint8Array; createdMs?: number; expiresMs?: number; messageId?: Uint8Array } = {},
): SignedMessageResult & { body: Uint8Array } {
  const body = opts.body ?? new TextEncoder().encode('Subject: test\r\n\r\nhello\r\n');
  const header: Omit<MessageHeader, 'bodyDigest' | 'version'> = {
    messageId: opts.messageId ?? randomBytes(16),
    from: { did: from.did, address: from.address },
    to: to.map((t) => ({ did: t.did, address: t.address })),
    createdMs: opts.createdMs ?? T0,
    expiresMs: opts.expiresMs ?? T0 + 24 * HOUR,
    contentType: 'message/rfc822',
  };
  return { ...signMessage({ header, body, keyId: from.keyId, privateKey: from.seed }), body };
}

export function flipBit(b: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(b);
  out[bit >> 3] = out[bit >> 3]! ^ (1 << (bit & 7));
  return out;
}
