// Original file: proto/aftersmtp.proto


/**
 * A reviewer's release of mail a `divert` rule kept from its recipients (docs/OPERATIONS.md "Compliance
 * rules"): allowed to the mailbox the rule diverts to, for a message every hold of which is such a divert.
 */
export interface ReleaseRequest {
  'messageId'?: (Buffer | Uint8Array | string);
}

/**
 * A reviewer's release of mail a `divert` rule kept from its recipients (docs/OPERATIONS.md "Compliance
 * rules"): allowed to the mailbox the rule diverts to, for a message every hold of which is such a divert.
 */
export interface ReleaseRequest__Output {
  'messageId': (Buffer);
}
