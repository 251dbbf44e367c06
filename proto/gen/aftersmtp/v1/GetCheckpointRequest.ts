// Original file: proto/aftersmtp.proto

import type { Long } from '@grpc/proto-loader';

export interface GetCheckpointRequest {
  'minSize'?: (number | string | Long);
}

export interface GetCheckpointRequest__Output {
  'minSize': (number);
}
