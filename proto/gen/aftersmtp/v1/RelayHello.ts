// Original file: proto/aftersmtp.proto


/**
 * First frame in each direction: who the node is. The transport has already authenticated the peer's
 * Ed25519 key; the receiver checks that key is in this DID's document.
 */
export interface RelayHello {
  'did'?: (string);
  'domains'?: (string)[];
  /**
   * envelopes the sender may have unacknowledged on this stream
   */
  'maxInFlight'?: (number);
  /**
   * the sender of this hello accepts batched receipts in acks
   */
  'batchedReceipts'?: (boolean);
}

/**
 * First frame in each direction: who the node is. The transport has already authenticated the peer's
 * Ed25519 key; the receiver checks that key is in this DID's document.
 */
export interface RelayHello__Output {
  'did': (string);
  'domains': (string)[];
  /**
   * envelopes the sender may have unacknowledged on this stream
   */
  'maxInFlight': (number);
  /**
   * the sender of this hello accepts batched receipts in acks
   */
  'batchedReceipts': (boolean);
}
