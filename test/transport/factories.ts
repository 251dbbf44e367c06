/**
 * How the conformance suite makes each transport, plus the addresses it needs to provoke failures
 * (a closed port, a black hole that never answers a handshake). Also loaded by the child-process
 * fixture, so it must not import vitest.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { createCertificateAuthority, generateSigningKeyPair, issueServerCertificate } from '../../identity/index.ts';
import type { SigningKeyPair } from '../../identity/index.ts';
import { Http2Transport, QuicTransport } from '../../gateway/transport/index.ts';
import type { PeerTransport, TransportKind, TransportLimits } from '../../gateway/transport/index.ts';

export interface CreateOptions {
  keys?: SigningKeyPair;
  limits?: Partial<TransportLimits>;
}

export interface BlackHole {
  port: number;
  close(): Promise<void>;
}

export interface TransportFactory {
  kind: TransportKind;
  /** Whether the accepting side of a connection can open streams too. */
  acceptorOpensStreams: boolean;
  create(opts?: CreateOptions): Promise<PeerTransport>;
  /** A port on 127.0.0.1 where nothing listens (for this transport's protocol). */
  closedPort(): Promise<number>;
  /** A port on 127.0.0.1 that takes packets/connections and never completes a handshake. */
  blackHole(): Promise<BlackHole>;
}

export const quicFactory: TransportFactory = {
  kind: 'quic',
  acceptorOpensStreams: true,
  async create(opts = {}) {
    const keys = opts.keys ?? generateSigningKeyPair();
    return new QuicTransport({ privateKey: keys.privateKey, publicKey: keys.publicKey, ...opts.limits });
  },
  async closedPort() {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
    const port = s.address().port;
    await new Promise<void>((resolve) => s.close(() => resolve()));
    return port;
  },
  async blackHole() {
    const s = dgram.createSocket('udp4');
    s.on('message', () => {});
    await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
    return { port: s.address().port, close: () => new Promise<void>((resolve) => s.close(() => resolve())) };
  },
};

let ca: Awaited<ReturnType<typeof createCertificateAuthority>> | undefined;

export const http2Factory: TransportFactory = {
  kind: 'http2',
  acceptorOpensStreams: false,
  async create(opts = {}) {
    const keys = opts.keys ?? generateSigningKeyPair();
    // Every transport gets its own certificate from a throwaway CA nobody trusts: the dialer must
    // not depend on certificate validation.
    ca ??= await createCertificateAuthority({ commonName: 'untrusted test CA', validDays: 2 });
    const cert = await issueServerCertificate(ca, { ipAddresses: ['127.0.0.1'], validDays: 2 });
    return new Http2Transport({ privateKey: keys.privateKey, publicKey: keys.publicKey, certPem: cert.certPem, keyPem: cert.keyPem, ...opts.limits });
  },
  async closedPort() {
    const s = net.createServer();
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    const port = (s.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => s.close(() => resolve()));
    return port;
  },
  async blackHole() {
    const sockets = new Set<net.Socket>();
    const s = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    return {
      port: (s.address() as net.AddressInfo).port,
      close: () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy();
          s.close(() => resolve());
        }),
    };
  },
};

export const factories: Record<TransportKind, TransportFactory> = { quic: quicFactory, http2: http2Factory };
