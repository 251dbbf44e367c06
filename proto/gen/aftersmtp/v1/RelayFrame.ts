// Original file: proto/aftersmtp.proto

import type { Envelope as _aftersmtp_v1_Envelope, Envelope__Output as _aftersmtp_v1_Envelope__Output } from '../../aftersmtp/v1/Envelope.ts';
import type { RelayAck as _aftersmtp_v1_RelayAck, RelayAck__Output as _aftersmtp_v1_RelayAck__Output } from '../../aftersmtp/v1/RelayAck.ts';
import type { Long } from '@grpc/proto-loader';

export interface RelayFrame {
  'envelope'?: (_aftersmtp_v1_Envelope | null);
  'ack'?: (_aftersmtp_v1_RelayAck | null);
  'frameId'?: (number | string | Long);
  'kind'?: "envelope"|"ack";
}

export interface RelayFrame__Output {
  'envelope'?: (_aftersmtp_v1_Envelope__Output | null);
  'ack'?: (_aftersmtp_v1_RelayAck__Output | null);
  'frameId': (number);
  'kind'?: "envelope"|"ack";
}
