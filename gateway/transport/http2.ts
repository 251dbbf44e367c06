/**
 * PeerTransport over HTTP/2 + TLS 1.3 (node:http2), the fallback where UDP is blocked.
 * Wire protocol: docs/TRANSPORT.md §4.
 *
 * - TLS only encrypts: the dialer accepts any certificate. Both peers authenticate with their
 *   Ed25519 keys in a PeerAuth exchange on the first stream, bound to the TLS session by a TLS
 *   exporter (peer-auth.ts), before any other stream is allowed.
 * - Every RPC is an HTTP/2 stream at :path = method, content-type application/grpc, gRPC
 *   length-prefixed messages, trailers with grpc-status: on the wire it looks like gRPC.
 * - Backpressure is HTTP/2's own flow control: a stream whose reader stops holding `streamWindowBytes`
 *   is paused, so node stops granting window and the peer's writes stall.
 * - HTTP/2 streams are opened by the client only: on an inbound connection openStream() is UNSUPPORTED.
 *
 * The stream, connection and transport lifecycle it shares with QUIC is in base-stream.ts,
 * base-connection.ts and base-transport.ts; the HTTP/2 wire implements their hooks in http2-wire.ts
 * (constants, gRPC headers, settings, PeerAuth reading), http2-connection.ts (stream and connection)
 * and this file (transport: listener, dial, PeerAuth handshake).
 */
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { BasePeerTransport, checkPeerKey } from './base-transport.ts';
import type { DialContext } from './base-transport.ts';
import { asError, formatAddress, raceSignal } from './common.ts';
import { TransportError, isTransportError } from './errors.ts';
import { FrameType, encodeFrame } from './framing.ts';
import { Http2PeerConnection } from './http2-connection.ts';
import {
  ERROR_CODE_HEADER, GRPC_CONTENT_TYPE, GRPC_STATUS, NGHTTP2_REFUSED_STREAM,
  HTTP2_HEADER_CONTENT_TYPE, HTTP2_HEADER_METHOD, HTTP2_HEADER_PATH, HTTP2_HEADER_STATUS,
  connectionWindow, encodeGrpcMessage, maxSessionMemoryMb, readPeerAuth, sessionSettings,
} from './http2-wire.ts';
import { PEER_AUTH_PATH, ROLE_CLIENT, ROLE_SERVER, buildPeerAuth, peerAuthExporter, verifyPeerAuth } from './peer-auth.ts';
import type { ListenOptions, PeerAddress, TransportIdentity, TransportLimits } from './types.ts';

export interface Http2TransportOptions extends TransportIdentity, Partial<TransportLimits> {
  /** TLS certificate (PEM) served by the listener. Required to listen; peers do not need to trust it. */
  certPem?: string;
  /** Its private key (PEM). */
  keyPem?: string;
}

// ---------------------------------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------------------------------

export class Http2Transport extends BasePeerTransport<Http2PeerConnection> {
  readonly kind = 'http2' as const;
  readonly #certPem: string | undefined;
  readonly #keyPem: string | undefined;
  #server: http2.Http2SecureServer | undefined;
  /** Server sessions not yet authenticated, and every client socket being dialed. */
  readonly #handshaking = new Set<{ destroy(): void }>();

  constructor(opts: Http2TransportOptions) {
    super(opts);
    if ((opts.certPem === undefined) !== (opts.keyPem === undefined)) {
      throw new TransportError('INVALID_ARGUMENT', 'certPem and keyPem go together');
    }
    this.#certPem = opts.certPem;
    this.#keyPem = opts.keyPem;
  }

  protected get listening(): boolean {
    return this.#server !== undefined;
  }

  protected async startListening(opts: ListenOptions): Promise<PeerAddress> {
    if (this.#certPem === undefined || this.#keyPem === undefined) {
      throw new TransportError('INVALID_ARGUMENT', 'listening over HTTP/2 needs certPem and keyPem');
    }
    let server: http2.Http2SecureServer;
    try {
      server = http2.createSecureServer({
        cert: this.#certPem,
        key: this.#keyPem,
        minVersion: 'TLSv1.3',
        allowHTTP1: false,
        handshakeTimeout: this.limits.handshakeTimeoutMs,
        settings: sessionSettings(this.limits),
        maxSessionMemory: maxSessionMemoryMb(this.limits),
      });
    } catch (err) {
      throw new TransportError('LISTEN_FAILED', `bad TLS certificate or key: ${asError(err).message}`, { cause: err });
    }
    this.#server = server;
    server.on('session', (session) => this.#onServerSession(session));
    server.on('unknownProtocol', (socket) => socket.destroy());
    server.on('tlsClientError', () => {});
    server.on('sessionError', () => {});
    try {
      await raceSignal(
        new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(opts.port, opts.host, () => {
            server.off('error', reject);
            resolve();
          });
        }),
        opts.signal,
        'listen',
      );
    } catch (err) {
      this.#server = undefined;
      server.close();
      if (isTransportError(err)) throw err;
      throw new TransportError('LISTEN_FAILED', `cannot listen on ${opts.host}:${opts.port}: ${asError(err).message}`, { cause: err });
    }
    server.on('error', () => {});
    const address = server.address() as net.AddressInfo;
    return { host: address.address, port: address.port };
  }

  protected stopListening(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    const serverClosed = server === undefined ? Promise.resolve() : new Promise<void>((resolve) => server.close(() => resolve()));
    for (const h of [...this.#handshaking]) h.destroy();
    this.#handshaking.clear();
    return serverClosed;
  }

  #onServerSession(session: http2.ServerHttp2Session): void {
    if (this.isClosed) {
      session.destroy();
      return;
    }
    session.setLocalWindowSize(connectionWindow(this.limits));
    session.on('error', () => {});
    const socket = session.socket as tls.TLSSocket;
    const remoteAddress = formatAddress(socket.remoteAddress, socket.remotePort);
    const entry = { destroy: () => session.destroy() };
    this.#handshaking.add(entry);
    let conn: Http2PeerConnection | undefined;
    let authStarted = false;
    const timer = setTimeout(() => {
      if (conn === undefined) session.destroy();
    }, this.limits.handshakeTimeoutMs);
    session.once('close', () => {
      clearTimeout(timer);
      this.#handshaking.delete(entry);
    });
    session.on('stream', (raw, headers) => {
      raw.on('error', () => {});
      if (conn !== undefined) {
        conn.acceptStream(raw, headers);
        return;
      }
      if (authStarted || headers[HTTP2_HEADER_PATH] !== PEER_AUTH_PATH) {
        raw.close(NGHTTP2_REFUSED_STREAM);
        return;
      }
      authStarted = true;
      void (async () => {
        try {
          const exporter = peerAuthExporter(socket);
          const clientAuth = await readPeerAuth(raw, 'server');
          const remotePublicKey = verifyPeerAuth(clientAuth, ROLE_CLIENT, exporter);
          const reply = buildPeerAuth(ROLE_SERVER, exporter, this.privateKey, this.publicKey);
          raw.respond({ [HTTP2_HEADER_STATUS]: 200, [HTTP2_HEADER_CONTENT_TYPE]: GRPC_CONTENT_TYPE }, { waitForTrailers: true });
          raw.once('wantTrailers', () => raw.sendTrailers({ 'grpc-status': String(GRPC_STATUS.OK) }));
          raw.end(encodeFrame(FrameType.MESSAGE, reply));
          if (this.isClosed || session.destroyed) return;
          clearTimeout(timer);
          this.#handshaking.delete(entry);
          conn = new Http2PeerConnection({ owner: this, session, direction: 'inbound', remotePublicKey, remoteAddress, limits: this.limits });
          this.addConnection(conn);
          this.deliverInbound(conn);
        } catch (err) {
          const message = asError(err).message;
          if (!raw.closed && !raw.headersSent) {
            raw.respond(
              {
                [HTTP2_HEADER_STATUS]: 200,
                [HTTP2_HEADER_CONTENT_TYPE]: GRPC_CONTENT_TYPE,
                'grpc-status': String(GRPC_STATUS.UNAUTHENTICATED),
                'grpc-message': encodeGrpcMessage(message),
                [ERROR_CODE_HEADER]: 'AUTH_FAILED',
              },
              { endStream: true },
            );
          }
          session.close();
          setTimeout(() => session.destroy(), 1_000).unref();
        }
      })();
    });
  }

  protected async connect(addr: PeerAddress, ctx: DialContext): Promise<Http2PeerConnection> {
    let socket: tls.TLSSocket | undefined;
    let session: http2.ClientHttp2Session | undefined;
    const entry = { destroy: () => (session ?? socket)?.destroy() };
    this.#handshaking.add(entry);
    try {
      socket = tls.connect({
        host: addr.host,
        port: addr.port,
        ALPNProtocols: ['h2'],
        minVersion: 'TLSv1.3',
        // TLS only encrypts; the peer is authenticated by PeerAuth below (bound to this session).
        rejectUnauthorized: false,
        ...(net.isIP(addr.host) === 0 ? { servername: addr.host } : {}),
      });
      const s = socket;
      await Promise.race([
        new Promise<void>((resolve, reject) => {
          s.once('secureConnect', resolve);
          s.once('error', reject);
        }),
        ctx.aborted,
      ]);
      s.removeAllListeners('error');
      s.on('error', () => {});
      if (s.alpnProtocol !== 'h2') throw new TransportError('DIAL_FAILED', `peer did not negotiate h2 (ALPN ${String(s.alpnProtocol)})`);
      const exporter = peerAuthExporter(s);
      const sess = http2.connect(`https://${net.isIPv6(addr.host) ? `[${addr.host}]` : addr.host}:${addr.port}`, {
        createConnection: () => s,
        settings: sessionSettings(this.limits),
        maxSessionMemory: maxSessionMemoryMb(this.limits),
      });
      session = sess;
      sess.on('error', () => {});
      sess.setLocalWindowSize(connectionWindow(this.limits));
      const req = sess.request(
        {
          [HTTP2_HEADER_METHOD]: 'POST',
          [HTTP2_HEADER_PATH]: PEER_AUTH_PATH,
          [HTTP2_HEADER_CONTENT_TYPE]: GRPC_CONTENT_TYPE,
          te: 'trailers',
        },
        { endStream: false },
      );
      req.on('error', () => {});
      const reading = readPeerAuth(req, 'client');
      reading.catch(() => {});
      req.end(encodeFrame(FrameType.MESSAGE, buildPeerAuth(ROLE_CLIENT, exporter, this.privateKey, this.publicKey)));
      const serverAuth = await Promise.race([reading, ctx.aborted]);
      const remotePublicKey = verifyPeerAuth(serverAuth, ROLE_SERVER, exporter);
      checkPeerKey(ctx.expectedPeerKey, remotePublicKey);
      if (sess.closed || sess.destroyed) throw new TransportError('DIAL_FAILED', 'connection closed during the handshake');
      const conn = new Http2PeerConnection({
        owner: this,
        session: sess,
        direction: 'outbound',
        remotePublicKey,
        remoteAddress: formatAddress(s.remoteAddress, s.remotePort),
        limits: this.limits,
      });
      this.addConnection(conn);
      return conn;
    } catch (err) {
      (session ?? socket)?.destroy();
      throw err;
    } finally {
      this.#handshaking.delete(entry);
    }
  }
}
