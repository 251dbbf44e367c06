// Original file: proto/aftersmtp.proto

import type { Long } from '@grpc/proto-loader';

/**
 * A log asks a witness to cosign its checkpoint (C2SP tlog-witness add-checkpoint, carried as an RPC):
 * `note` is the log's signed checkpoint, `old_size` the size the witness last saw from this log (0 if
 * none), `consistency` the proof from old_size to the note's size. Over the federation transport the
 * witness also checks that the connection's authenticated key is in log_did's DID document.
 */
export interface CosignRequest {
  'note'?: (string);
  'oldSize'?: (number | string | Long);
  'consistency'?: (Buffer | Uint8Array | string)[];
  'logDid'?: (string);
}

/**
 * A log asks a witness to cosign its checkpoint (C2SP tlog-witness add-checkpoint, carried as an RPC):
 * `note` is the log's signed checkpoint, `old_size` the size the witness last saw from this log (0 if
 * none), `consistency` the proof from old_size to the note's size. Over the federation transport the
 * witness also checks that the connection's authenticated key is in log_did's DID document.
 */
export interface CosignRequest__Output {
  'note': (string);
  'oldSize': (number);
  'consistency': (Buffer)[];
  'logDid': (string);
}
