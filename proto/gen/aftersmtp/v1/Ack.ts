// Original file: proto/aftersmtp.proto

import type { Long } from '@grpc/proto-loader';

export interface Ack {
  'seqs'?: (number | string | Long)[];
}

export interface Ack__Output {
  'seqs': (number)[];
}
