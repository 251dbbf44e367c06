// Original file: proto/aftersmtp.proto

import type { Long } from '@grpc/proto-loader';

export interface CosignReply {
  /**
   * "— <witness name> <base64>\n", empty on error
   */
  'cosignatureLine'?: (string);
  /**
   * "" | CONFLICT | SPLIT_VIEW | BAD_SIGNATURE | PEER_REJECTED | INVALID_ARGUMENT | ...
   */
  'errorCode'?: (string);
  'errorMessage'?: (string);
  /**
   * with CONFLICT: the size the witness has seen (retry with a proof from it)
   */
  'knownSize'?: (number | string | Long);
}

export interface CosignReply__Output {
  /**
   * "— <witness name> <base64>\n", empty on error
   */
  'cosignatureLine': (string);
  /**
   * "" | CONFLICT | SPLIT_VIEW | BAD_SIGNATURE | PEER_REJECTED | INVALID_ARGUMENT | ...
   */
  'errorCode': (string);
  'errorMessage': (string);
  /**
   * with CONFLICT: the size the witness has seen (retry with a proof from it)
   */
  'knownSize': (number);
}
