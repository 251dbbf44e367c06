// Original file: proto/aftersmtp.proto

import type { Long } from '@grpc/proto-loader';

export interface Peer {
  'domain'?: (string);
  'did'?: (string);
  /**
   * quic://host:port or grpc://host:port
   */
  'endpoint'?: (string);
  /**
   * quic | http2 | "" (not connected)
   */
  'transport'?: (string);
  'rttMs'?: (number | string);
  'lastError'?: (string);
  'lastSeenMs'?: (number | string | Long);
  /**
   * static | dns
   */
  'source'?: (string);
}

export interface Peer__Output {
  'domain': (string);
  'did': (string);
  /**
   * quic://host:port or grpc://host:port
   */
  'endpoint': (string);
  /**
   * quic | http2 | "" (not connected)
   */
  'transport': (string);
  'rttMs': (number);
  'lastError': (string);
  'lastSeenMs': (number);
  /**
   * static | dns
   */
  'source': (string);
}
