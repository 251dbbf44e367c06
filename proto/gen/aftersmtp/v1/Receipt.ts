// Original file: proto/aftersmtp.proto

import type { Long } from '@grpc/proto-loader';

/**
 * Where a message hash entered a node's transparency log.
 */
export interface Receipt {
  'logOrigin'?: (string);
  'leafIndex'?: (number | string | Long);
  /**
   * the first checkpoint that will include the leaf (or does)
   */
  'checkpointSize'?: (number | string | Long);
  'messageHash'?: (Buffer | Uint8Array | string);
  /**
   * Between nodes (relay acks): Ed25519 signature by the receiving node's key over the receipt
   * (PROTOCOL.md §4.1 "Receipts"); the sender keeps a receipt only if it verifies.
   */
  'signature'?: (Buffer | Uint8Array | string);
}

/**
 * Where a message hash entered a node's transparency log.
 */
export interface Receipt__Output {
  'logOrigin': (string);
  'leafIndex': (number);
  /**
   * the first checkpoint that will include the leaf (or does)
   */
  'checkpointSize': (number);
  'messageHash': (Buffer);
  /**
   * Between nodes (relay acks): Ed25519 signature by the receiving node's key over the receipt
   * (PROTOCOL.md §4.1 "Receipts"); the sender keeps a receipt only if it verifies.
   */
  'signature': (Buffer);
}
