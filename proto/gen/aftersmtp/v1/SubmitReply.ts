// Original file: proto/aftersmtp.proto

import type { Receipt as _aftersmtp_v1_Receipt, Receipt__Output as _aftersmtp_v1_Receipt__Output } from '../../aftersmtp/v1/Receipt.ts';
import type { SubmitError as _aftersmtp_v1_SubmitError, SubmitError__Output as _aftersmtp_v1_SubmitError__Output } from '../../aftersmtp/v1/SubmitError.ts';
import type { Long } from '@grpc/proto-loader';

export interface SubmitReply {
  'messageId'?: (Buffer | Uint8Array | string);
  'messageHash'?: (Buffer | Uint8Array | string);
  /**
   * local recipients whose mailbox holds the envelope durably
   */
  'deliveredLocal'?: (string)[];
  /**
   * remote recipients queued for relay
   */
  'queuedRemote'?: (string)[];
  'receipt'?: (_aftersmtp_v1_Receipt | null);
  'clientRef'?: (number | string | Long);
  /**
   * set only on SubmitStream when this one message was refused
   */
  'error'?: (_aftersmtp_v1_SubmitError | null);
}

export interface SubmitReply__Output {
  'messageId': (Buffer);
  'messageHash': (Buffer);
  /**
   * local recipients whose mailbox holds the envelope durably
   */
  'deliveredLocal': (string)[];
  /**
   * remote recipients queued for relay
   */
  'queuedRemote': (string)[];
  'receipt': (_aftersmtp_v1_Receipt__Output | null);
  'clientRef': (number);
  /**
   * set only on SubmitStream when this one message was refused
   */
  'error': (_aftersmtp_v1_SubmitError__Output | null);
}
