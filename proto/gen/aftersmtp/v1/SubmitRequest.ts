// Original file: proto/aftersmtp.proto

import type { Envelope as _aftersmtp_v1_Envelope, Envelope__Output as _aftersmtp_v1_Envelope__Output } from '../../aftersmtp/v1/Envelope.ts';
import type { Long } from '@grpc/proto-loader';

export interface SubmitRequest {
  'envelope'?: (_aftersmtp_v1_Envelope | null);
  /**
   * echoed in the reply; lets a streaming client match replies
   */
  'clientRef'?: (number | string | Long);
}

export interface SubmitRequest__Output {
  'envelope': (_aftersmtp_v1_Envelope__Output | null);
  /**
   * echoed in the reply; lets a streaming client match replies
   */
  'clientRef': (number);
}
