/**
 * Peer authentication for the HTTP/2 transport (docs/TRANSPORT.md §4): each side proves possession
 * of its Ed25519 key by signing a value derived from *this* TLS session (RFC 5705/8446 exporter), so
 * a proof cannot be relayed by a man in the middle who terminates TLS on both sides.
 *
 *   exporter  = TLS-Exporter("EXPORTER-AfterSMTP-peer-auth", context = empty, 32 bytes)
 *   signed    = "AfterSMTP-v1 peer-auth" (22 ASCII bytes) || role (0x01 client, 0x02 server) || exporter
 *   PeerAuth  = version 0x01 || role || public key (32) || Ed25519 signature over `signed` (64)  = 98 bytes
 */
import type { TLSSocket } from 'node:tls';
import { sign, verifySignature } from '../../identity/index.ts';
import { TransportError } from './errors.ts';

export const PEER_AUTH_PATH = '/aftersmtp.transport.v1.PeerAuth/Handshake';
export const PEER_AUTH_EXPORTER_LABEL = 'EXPORTER-AfterSMTP-peer-auth';
export const PEER_AUTH_EXPORTER_BYTES = 32;
export const PEER_AUTH_DOMAIN = 'AfterSMTP-v1 peer-auth';
export const PEER_AUTH_VERSION = 0x01;
export const ROLE_CLIENT = 0x01;
export const ROLE_SERVER = 0x02;
export const PEER_AUTH_BYTES = 2 + 32 + 64;

export type PeerAuthRole = typeof ROLE_CLIENT | typeof ROLE_SERVER;

const DOMAIN_BYTES = new TextEncoder().encode(PEER_AUTH_DOMAIN);

/** The exporter value of a TLS 1.3 session (throws AUTH_FAILED on anything older). */
export function peerAuthExporter(socket: TLSSocket): Uint8Array {
  const version = socket.getProtocol();
  if (version !== 'TLSv1.3') throw new TransportError('AUTH_FAILED', `peer authentication needs TLS 1.3, got ${version ?? 'none'}`);
    // TLS 1.3 (RFC 8446 §7.5): an absent context and an empty context give the same value.
  return new Uint8Array(socket.exportKeyingMaterial(PEER_AUTH_EXPORTER_BYTES, PEER_AUTH_EXPORTER_LABEL, Buffer.alloc(0)));
}

export function peerAuthSignedData(role: PeerAuthRole, exporter: Uint8Array): Uint8Array {
  if (exporter.length !== PEER_AUTH_EXPORTER_BYTES) throw new TransportError('INVALID_ARGUMENT', 'exporter must be 32 bytes');
  const out = new Uint8Array(DOMAIN_BYTES.length + 1 + exporter.length);
  out.set(DOMAIN_BYTES, 0);
  out[DOMAIN_BYTES.length] = role;
  out.set(exporter, DOMAIN_BYTES.length + 1);
  return out;
}

export function buildPeerAuth(role: PeerAuthRole, exporter: Uint8Array, privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const signature = sign(privateKey, peerAuthSignedData(role, exporter));
  const out = new Uint8Array(PEER_AUTH_BYTES);
  out[0] = PEER_AUTH_VERSION;
  out[1] = role;
  out.set(publicKey, 2);
  out.set(signature, 34);
  return out;
}

/** Checks a PeerAuth message from the side with `role`; returns the peer's authenticated public key. */
export function verifyPeerAuth(message: Uint8Array, role: PeerAuthRole, exporter: Uint8Array): Uint8Array {
  if (message.length !== PEER_AUTH_BYTES) throw new TransportError('AUTH_FAILED', `PeerAuth must be ${PEER_AUTH_BYTES} bytes, got ${message.length}`);
  if (message[0] !== PEER_AUTH_VERSION) throw new TransportError('AUTH_FAILED', `unsupported PeerAuth version ${message[0]}`);
  if (message[1] !== role) throw new TransportError('AUTH_FAILED', 'PeerAuth carries the wrong role');
  const publicKey = message.slice(2, 34);
  const signature = message.subarray(34, 98);
  if (!verifySignature(publicKey, peerAuthSignedData(role, exporter), signature)) {
    throw new TransportError('AUTH_FAILED', 'PeerAuth signature does not verify for this TLS session');
  }
  return publicKey;
}
