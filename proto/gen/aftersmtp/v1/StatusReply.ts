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
}
