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
  /**
   * the largest checkpoint of our log this peer has cosigned
   */
  'cosignedSize'?: (number | string | Long);
  /**
   * the last error of asking this peer to cosign
   */
  'witnessError'?: (string);
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
  /**
   * the largest checkpoint of our log this peer has cosigned
   */
  'cosignedSize': (number);
  /**
   * the last error of asking this peer to cosign
   */
  'witnessError': (string);
}
