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
  /**
   * Batched relay receipts (PROTOCOL.md §4.1): when batch_size > 0 the signature covers the Merkle
   * root of the batch_size receipts the receiver signed together, and batch_path is this receipt's
   * RFC 9162 inclusion path (leaf batch_index) in that tree. 0 = the signature covers this receipt alone.
   */
  'batchSize'?: (number);
  'batchIndex'?: (number);
  'batchPath'?: (Buffer | Uint8Array | string)[];
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
  /**
   * Batched relay receipts (PROTOCOL.md §4.1): when batch_size > 0 the signature covers the Merkle
   * root of the batch_size receipts the receiver signed together, and batch_path is this receipt's
   * RFC 9162 inclusion path (leaf batch_index) in that tree. 0 = the signature covers this receipt alone.
   */
  'batchSize': (number);
  'batchIndex': (number);
  'batchPath': (Buffer)[];
}
