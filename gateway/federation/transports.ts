// The node's peer transports, in preference order: QUIC, then HTTP/2 (where UDP is blocked).
import type { NodeConfig } from '../config.ts';
import { QuicTransport, Http2Transport, type PeerTransport } from '../transport/index.ts';

export interface TransportIdentity { privateKey: Uint8Array; publicKey: Uint8Array; certPem: string; keyPem: string }

export function createTransports(config: NodeConfig, id: TransportIdentity): PeerTransport[] {
  const maxMessageBytes = config.limits.maxEnvelopeBytes + 64 * 1024;
  const transports: PeerTransport[] = [];
  if (config.federation.quic.enabled) transports.push(new QuicTransport({ privateKey: id.privateKey, publicKey: id.publicKey, maxMessageBytes }));
  if (config.federation.relay.enabled) transports.push(new Http2Transport({ privateKey: id.privateKey, publicKey: id.publicKey, certPem: id.certPem, keyPem: id.keyPem, maxMessageBytes }));
  return transports;
}
