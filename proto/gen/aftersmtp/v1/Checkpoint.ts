// Original file: proto/aftersmtp.proto

import type { Long } from '@grpc/proto-loader';

export interface Checkpoint {
  /**
   * C2SP signed note
   */
  'note'?: (string);
  'size'?: (number | string | Long);
  'root'?: (Buffer | Uint8Array | string);
}

export interface Checkpoint__Output {
  /**
   * C2SP signed note
   */
  'note': (string);
  'size': (number);
  'root': (Buffer);
}
