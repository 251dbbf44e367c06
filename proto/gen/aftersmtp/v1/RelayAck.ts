// Original file: proto/aftersmtp.proto

import type { Receipt as _aftersmtp_v1_Receipt, Receipt__Output as _aftersmtp_v1_Receipt__Output } from '../../aftersmtp/v1/Receipt.ts';
import type { SubmitError as _aftersmtp_v1_SubmitError, SubmitError__Output as _aftersmtp_v1_SubmitError__Output } from '../../aftersmtp/v1/SubmitError.ts';
import type { Long } from '@grpc/proto-loader';

export interface RelayAck {
  'frameId'?: (number | string | Long);
  'receipt'?: (_aftersmtp_v1_Receipt | null);
  'error'?: (_aftersmtp_v1_SubmitError | null);
}

export interface RelayAck__Output {
  'frameId': (number);
  'receipt': (_aftersmtp_v1_Receipt__Output | null);
  'error': (_aftersmtp_v1_SubmitError__Output | null);
}
