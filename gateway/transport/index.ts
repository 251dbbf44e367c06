/**
 * gateway/transport: node-to-node transports behind one interface (docs/TRANSPORT.md).
 * The relay uses PeerTransport / PeerConnection / MessageStream and never sees QUIC or HTTP/2.
 */
export type {
  DialOptions,
  ListenOptions,
  MessageStream,
  OpenStreamOptions,
  PeerAddress,
  PeerConnection,
  PeerTransport,
  SendOptions,
  TransportIdentity,
  TransportKind,
  TransportLimits,
} from './types.ts';
export { DEFAULT_LIMITS } from './types.ts';
export { TransportError, isTransportError } from './errors.ts';
export type { TransportErrorCode } from './errors.ts';
export { QuicTransport } from './quic.ts';
export { QUIC_READ_BYTES, widenQuicReads } from './quic-reads.ts';
export type { QuicTransportOptions } from './quic.ts';
export { Http2Transport } from './http2.ts';
export type { Http2TransportOptions } from './http2.ts';
