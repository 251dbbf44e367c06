// Original file: proto/aftersmtp.proto

import type { VerifyStep as _aftersmtp_v1_VerifyStep, VerifyStep__Output as _aftersmtp_v1_VerifyStep__Output } from '../../aftersmtp/v1/VerifyStep.ts';

export interface VerifyReply {
  'ok'?: (boolean);
  'steps'?: (_aftersmtp_v1_VerifyStep)[];
}

export interface VerifyReply__Output {
  'ok': (boolean);
  'steps': (_aftersmtp_v1_VerifyStep__Output)[];
}
