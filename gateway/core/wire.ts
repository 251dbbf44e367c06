// Conversions between the protobuf shapes of proto/ and the plain types of identity/.
import type { Envelope as WireEnvelope, Envelope__Output } from '../../proto/index.ts';
import type { Envelope } from '../../identity/index.ts';
import { GatewayError } from './errors.ts';

export function envelopeFromWire(w: Envelope__Output | null | undefined): Envelope {
  if (!w) throw new GatewayError('INVALID_ARGUMENT', 'request carries no envelope');
  return {
    version: w.version,
    kemId: w.kemId,
    kdfId: w.kdfId,
    aeadId: w.aeadId,
    messageId: w.messageId,
    senderDid: w.senderDid,
    senderKeyId: w.senderKeyId,
    recipientAddresses: w.recipientAddresses,
    messageHash: w.messageHash,
    recipientsDigest: w.recipientsDigest,
    createdMs: w.createdMs,
    expiresMs: w.expiresMs,
    nonce: w.nonce,
    outerSignature: w.outerSignature,
    recipients: w.recipients.map((r) => ({ keyId: r.keyId, enc: r.enc, wrapped: r.wrapped })),
    ciphertext: w.ciphertext,
  };
}

export function envelopeToWire(e: Envelope): WireEnvelope {
  return { ...e, recipients: e.recipients.map((r) => ({ ...r })) };
}
