// Original file: proto/aftersmtp.proto

import type { SubscribeStart as _aftersmtp_v1_SubscribeStart, SubscribeStart__Output as _aftersmtp_v1_SubscribeStart__Output } from '../../aftersmtp/v1/SubscribeStart.ts';
import type { Ack as _aftersmtp_v1_Ack, Ack__Output as _aftersmtp_v1_Ack__Output } from '../../aftersmtp/v1/Ack.ts';

export interface SubscribeRequest {
  'start'?: (_aftersmtp_v1_SubscribeStart | null);
  'ack'?: (_aftersmtp_v1_Ack | null);
  'kind'?: "start"|"ack";
}

export interface SubscribeRequest__Output {
  'start'?: (_aftersmtp_v1_SubscribeStart__Output | null);
  'ack'?: (_aftersmtp_v1_Ack__Output | null);
  'kind'?: "start"|"ack";
}
