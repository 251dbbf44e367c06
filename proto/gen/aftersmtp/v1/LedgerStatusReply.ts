// Original file: proto/aftersmtp.proto

import type { Checkpoint as _aftersmtp_v1_Checkpoint, Checkpoint__Output as _aftersmtp_v1_Checkpoint__Output } from '../../aftersmtp/v1/Checkpoint.ts';
import type { Long } from '@grpc/proto-loader';

export interface LedgerStatusReply {
  'origin'?: (string);
  'treeSize'?: (number | string | Long);
  'root'?: (Buffer | Uint8Array | string);
  'latestCheckpoint'?: (_aftersmtp_v1_Checkpoint | null);
  /**
   * C2SP note verifier key of the log
   */
  'verifierKey'?: (string);
  /**
   * "off" or the chain endpoint
   */
  'anchoring'?: (string);
  'latestAnchorJson'?: (string);
  'anchorLagEntries'?: (number | string | Long);
  'anchorLagMs'?: (number | string | Long);
  'lastAnchorError'?: (string);
  /**
   * DIDs of the witnesses this node asks to cosign its checkpoints (its configured witness peers):
   * what `aftersmtp verify --profile` trusts as witnesses of this node's log.
   */
  'witnesses'?: (string)[];
}

export interface LedgerStatusReply__Output {
  'origin': (string);
  'treeSize': (number);
  'root': (Buffer);
  'latestCheckpoint': (_aftersmtp_v1_Checkpoint__Output | null);
  /**
   * C2SP note verifier key of the log
   */
  'verifierKey': (string);
  /**
   * "off" or the chain endpoint
   */
  'anchoring': (string);
  'latestAnchorJson': (string);
  'anchorLagEntries': (number);
  'anchorLagMs': (number);
  'lastAnchorError': (string);
  /**
   * DIDs of the witnesses this node asks to cosign its checkpoints (its configured witness peers):
   * what `aftersmtp verify --profile` trusts as witnesses of this node's log.
   */
  'witnesses': (string)[];
}
