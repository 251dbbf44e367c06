// The node's peer transports, in preference order: QUIC, then HTTP/2 (where UDP is blocked).
import type { NodeConfig } from '../core/index.ts';
import { QuicTransport, Http2Transport, type PeerTransport } from '../transport/index.ts';

export interface TransportIdentity { privateKey: Uint8Array; publicKey: Uint8Array; certPem: string; keyPem: string }

/** Largest first message a peer may send on a stream it opens, before anything checked it. */
export const FIRST_PEER_MESSAGE_BYTES = 64 * 1024;

export function createTransports(config: NodeConfig, id: TransportIdentity): PeerTransport[] {
  const maxMessageBytes = config.limits.maxEnvelopeBytes + 64 * 1024;
  // A peer's first message on each stream (a relay hello, a lookup, a cosign request) is small; larger
  // ones are read only once the relay has checked the hello (serveRelayStream lifts the limit).
  const firstMessageBytes = FIRST_PEER_MESSAGE_BYTES;
  const transports: PeerTransport[] = [];
  if (config.federation.quic.enabled) transports.push(new QuicTransport({ privateKey: id.privateKey, publicKey: id.publicKey, maxMessageBytes, firstMessageBytes }));
  if (config.federation.relay.enabled) transports.push(new Http2Transport({ privateKey: id.privateKey, publicKey: id.publicKey, certPem: id.certPem, keyPem: id.keyPem, maxMessageBytes, firstMessageBytes }));
  return transports;
}
