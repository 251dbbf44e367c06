// Original file: proto/aftersmtp.proto

import type { Long } from '@grpc/proto-loader';

export interface QueueItem {
  'messageId'?: (Buffer | Uint8Array | string);
  'recipient'?: (string);
  /**
   * queued | held | deferred | delivered | failed
   */
  'state'?: (string);
  'attempts'?: (number);
  /**
   * when it is due; for delivered and failed: when it finished
   */
  'nextAttemptMs'?: (number | string | Long);
  'lastError'?: (string);
  /**
   * the delivery agent: relay (a peer AfterSMTP node) | smtp (the SMTP bridge)
   */
  'transport'?: (string);
}

export interface QueueItem__Output {
  'messageId': (Buffer);
  'recipient': (string);
  /**
   * queued | held | deferred | delivered | failed
   */
  'state': (string);
  'attempts': (number);
  /**
   * when it is due; for delivered and failed: when it finished
   */
  'nextAttemptMs': (number);
  'lastError': (string);
  /**
   * the delivery agent: relay (a peer AfterSMTP node) | smtp (the SMTP bridge)
   */
  'transport': (string);
}
