// Original file: proto/aftersmtp.proto

import type { RecipientKey as _aftersmtp_v1_RecipientKey, RecipientKey__Output as _aftersmtp_v1_RecipientKey__Output } from '../../aftersmtp/v1/RecipientKey.ts';
import type { Long } from '@grpc/proto-loader';

export interface Envelope {
  'version'?: (number);
  'kemId'?: (number);
  'kdfId'?: (number);
  'aeadId'?: (number);
  /**
   * 16 bytes
   */
  'messageId'?: (Buffer | Uint8Array | string);
  'senderDid'?: (string);
  'senderKeyId'?: (string);
  'recipientAddresses'?: (string)[];
  /**
   * SHA-256(signed inner message), as stated by the sender
   */
  'messageHash'?: (Buffer | Uint8Array | string);
  /**
   * SHA-256 over the sorted recipient key ids
   */
  'recipientsDigest'?: (Buffer | Uint8Array | string);
  'createdMs'?: (number | string | Long);
  'expiresMs'?: (number | string | Long);
  'nonce'?: (Buffer | Uint8Array | string);
  'outerSignature'?: (Buffer | Uint8Array | string);
  'recipients'?: (_aftersmtp_v1_RecipientKey)[];
  'ciphertext'?: (Buffer | Uint8Array | string);
}

export interface Envelope__Output {
  'version': (number);
  'kemId': (number);
  'kdfId': (number);
  'aeadId': (number);
  /**
   * 16 bytes
   */
  'messageId': (Buffer);
  'senderDid': (string);
  'senderKeyId': (string);
  'recipientAddresses': (string)[];
  /**
   * SHA-256(signed inner message), as stated by the sender
   */
  'messageHash': (Buffer);
  /**
   * SHA-256 over the sorted recipient key ids
   */
  'recipientsDigest': (Buffer);
  'createdMs': (number);
  'expiresMs': (number);
  'nonce': (Buffer);
  'outerSignature': (Buffer);
  'recipients': (_aftersmtp_v1_RecipientKey__Output)[];
  'ciphertext': (Buffer);
}
