// Original file: proto/aftersmtp.proto

import type { Long } from '@grpc/proto-loader';

export interface CosignRequest {
  'note'?: (string);
  'oldSize'?: (number | string | Long);
  'consistency'?: (Buffer | Uint8Array | string)[];
}

export interface CosignRequest__Output {
  'note': (string);
  'oldSize': (number);
  'consistency': (Buffer)[];
}
