// Original file: proto/aftersmtp.proto

import type { Long } from '@grpc/proto-loader';

export interface StatusReply {
  'did'?: (string);
  'version'?: (string);
  'domains'?: (string)[];
  'mailboxes'?: (number | string | Long);
  'storedEnvelopes'?: (number | string | Long);
  'uptimeMs'?: (number | string | Long);
  'grpc'?: (string);
  'quic'?: (string);
  /**
   * Refusals by reason code (relay envelopes, peers, cosign requests), since start.
   */
  'refused'?: ({[key: string]: number | string | Long});
  /**
   * split views detected by this node as a witness (all time)
   */
  'splitViews'?: (number | string | Long);
  /**
   * checkpoints of this node's log that peers have cosigned
   */
  'cosignedCheckpoints'?: (number | string | Long);
  /**
   * Outbound queue: recipients not yet delivered, by state (queued, deferred, held, failed).
   */
  'outbound'?: ({[key: string]: number | string | Long});
  /**
   * Bytes of mail the store holds, and its cap (storage.maxBytes; 0 = none): OPERATIONS "Disk space".
   */
  'storeBytes'?: (number | string | Long);
  'storeMaxBytes'?: (number | string | Long);
  /**
   * Free space on the store's disk, and the least the node keeps free (storage.minFreeBytes).
   */
  'diskFreeBytes'?: (number | string | Long);
  'minFreeBytes'?: (number | string | Long);
  /**
   * The SMTP bridge's listeners, named as in the ready line (smtp = MX, submission, smtps): "host:port".
   */
  'smtp'?: ({[key: string]: string});
}

export interface StatusReply__Output {
  'did': (string);
  'version': (string);
  'domains': (string)[];
  'mailboxes': (number);
  'storedEnvelopes': (number);
  'uptimeMs': (number);
  'grpc': (string);
  'quic': (string);
  /**
   * Refusals by reason code (relay envelopes, peers, cosign requests), since start.
   */
  'refused': ({[key: string]: number});
  /**
   * split views detected by this node as a witness (all time)
   */
  'splitViews': (number);
  /**
   * checkpoints of this node's log that peers have cosigned
   */
  'cosignedCheckpoints': (number);
  /**
   * Outbound queue: recipients not yet delivered, by state (queued, deferred, held, failed).
   */
  'outbound': ({[key: string]: number});
  /**
   * Bytes of mail the store holds, and its cap (storage.maxBytes; 0 = none): OPERATIONS "Disk space".
   */
  'storeBytes': (number);
  'storeMaxBytes': (number);
  /**
   * Free space on the store's disk, and the least the node keeps free (storage.minFreeBytes).
   */
  'diskFreeBytes': (number);
  'minFreeBytes': (number);
  /**
   * The SMTP bridge's listeners, named as in the ready line (smtp = MX, submission, smtps): "host:port".
   */
  'smtp': ({[key: string]: string});
}
