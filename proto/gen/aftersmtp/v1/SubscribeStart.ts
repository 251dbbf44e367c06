// Original file: proto/aftersmtp.proto

import type { Long } from '@grpc/proto-loader';

export interface SubscribeStart {
  /**
   * Deliver entries with seq > from_cursor that are not acknowledged. 0 = from the beginning.
   */
  'fromCursor'?: (number | string | Long);
  /**
   * unacknowledged deliveries the node may have outstanding (0 = default)
   */
  'maxInFlight'?: (number);
}

export interface SubscribeStart__Output {
  /**
   * Deliver entries with seq > from_cursor that are not acknowledged. 0 = from the beginning.
   */
  'fromCursor': (number);
  /**
   * unacknowledged deliveries the node may have outstanding (0 = default)
   */
  'maxInFlight': (number);
}
