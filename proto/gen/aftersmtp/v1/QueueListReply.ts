// Original file: proto/aftersmtp.proto

import type { QueueItem as _aftersmtp_v1_QueueItem, QueueItem__Output as _aftersmtp_v1_QueueItem__Output } from '../../aftersmtp/v1/QueueItem.ts';

export interface QueueListReply {
  'items'?: (_aftersmtp_v1_QueueItem)[];
}

export interface QueueListReply__Output {
  'items': (_aftersmtp_v1_QueueItem__Output)[];
}
