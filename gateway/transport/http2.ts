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
 * base-connection.ts and base-transport.ts; this file implements their hooks for the HTTP/2 wire.
 */
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { BasePeerConnection } from './base-connection.ts';
import type { ConnectionInit } from './base-connection.ts';
import { BaseMessageStream } from './base-stream.ts';
import { BasePeerTransport, checkPeerKey } from './base-transport.ts';
import type { DialContext } from './base-transport.ts';
import { asError, checkMethod, deferred, formatAddress, raceSignal } from './common.ts';
import type { Deferred } from './common.ts';
import { TransportError, isTransportError, remoteResetError, wireCodeOf } from './errors.ts';
import { FRAME_HEADER_BYTES, FrameDecoder, FrameType, encodeFrame, frameHeader } from './framing.ts';
import {
  PEER_AUTH_BYTES,
  PEER_AUTH_PATH,
  ROLE_CLIENT,
  ROLE_SERVER,
  buildPeerAuth,
  peerAuthExporter,
  verifyPeerAuth,
} from './peer-auth.ts';
import type { ListenOptions, PeerAddress, TransportIdentity, TransportLimits } from './types.ts';

export interface Http2TransportOptions extends TransportIdentity, Partial<TransportLimits> {
  /** TLS certificate (PEM) served by the listener. Required to listen; peers do not need to trust it. */
  certPem?: string;
  /** Its private key (PEM). */
  keyPem?: string;
}

const {
  NGHTTP2_NO_ERROR,
  NGHTTP2_PROTOCOL_ERROR,
  NGHTTP2_CANCEL,
  NGHTTP2_REFUSED_STREAM,
  NGHTTP2_ENHANCE_YOUR_CALM,
  HTTP2_HEADER_METHOD,
  HTTP2_HEADER_PATH,
  HTTP2_HEADER_STATUS,
  HTTP2_HEADER_CONTENT_TYPE,
} = http2.constants;

const GRPC_CONTENT_TYPE = 'application/grpc';
const ERROR_CODE_HEADER = 'aftersmtp-error';
const COALESCE_BYTES = 64 * 1024;
const ABORT_TRAILERS_GRACE_MS = 1_000;
/** How long an early stream close waits for the connection to report its own close. */
const RESET_GRACE_MS = 100;
/** gRPC status codes used in trailers. */
const GRPC_STATUS = { OK: 0, CANCELLED: 1, UNKNOWN: 2, RESOURCE_EXHAUSTED: 8, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;

function grpcStatusFor(code: string): number {
  switch (code) {
    case 'MESSAGE_TOO_LARGE':
    case 'STREAM_REFUSED':
      return GRPC_STATUS.RESOURCE_EXHAUSTED;
    case 'PROTOCOL_ERROR':
      return GRPC_STATUS.INTERNAL;
    case 'CANCELLED':
    case 'ABORTED':
      return GRPC_STATUS.CANCELLED;
    default:
      return GRPC_STATUS.UNKNOWN;
  }
}

/** gRPC percent-encodes grpc-message. */
function encodeGrpcMessage(s: string): string {
  return encodeURIComponent(s.slice(0, 512));
}

function decodeGrpcMessage(s: unknown): string | undefined {
  if (typeof s !== 'string') return undefined;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function headerString(h: http2.IncomingHttpHeaders | undefined, name: string): string | undefined {
  const v = h?.[name];
  return Array.isArray(v) ? v[0] : v;
}

function sessionSettings(limits: TransportLimits): http2.Settings {
  return {
    enablePush: false,
    initialWindowSize: limits.streamWindowBytes,
    maxConcurrentStreams: limits.maxConcurrentStreams,
    maxFrameSize: 64 * 1024,
  };
}

/** Connection-level window: generous (per-stream windows bound the memory), avoids head-of-line blocking. */
function connectionWindow(limits: TransportLimits): number {
  return Math.min(0x7fff_ffff, limits.streamWindowBytes * (limits.maxConcurrentStreams + 1));
}

/** node's per-session memory cap (MB): buffered data of every stream must fit. */
function maxSessionMemoryMb(limits: TransportLimits): number {
  return Math.ceil((2 * limits.streamWindowBytes * (limits.maxConcurrentStreams + 1)) / 2 ** 20) + 32;
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

const NO_CONTROL_FRAMES: ReadonlySet<number> = new Set();

class Http2MessageStream extends BaseMessageStream {
  readonly #conn: Http2PeerConnection;
  readonly #raw: http2.ClientHttp2Stream | http2.ServerHttp2Stream;
  readonly #side: 'client' | 'server';
  #sending = 0;
  #responseHeaders: http2.IncomingHttpHeaders | undefined;
  #trailers: http2.IncomingHttpHeaders | undefined;
  #pendingTrailers: http2.OutgoingHttpHeaders | undefined;
  #trailersSent: Deferred<void> | undefined;
  readonly #accepted = deferred<boolean>();

  constructor(
    conn: Http2PeerConnection,
    raw: http2.ClientHttp2Stream | http2.ServerHttp2Stream,
    side: 'client' | 'server',
    method: string,
    limits: TransportLimits,
  ) {
    const decoder = new FrameDecoder({ maxMessageBytes: limits.maxMessageBytes, allowedControl: NO_CONTROL_FRAMES, allowMessages: true });
    super({ method, inbound: side === 'server', limits, decoder });
    this.#conn = conn;
    this.#raw = raw;
    this.#side = side;
    if (side === 'server') this.#accepted.resolve(true);

    raw.on('data', (chunk: Buffer) => this.#onData(chunk));
    raw.on('end', () => this.#onEnd());
    raw.on('close', () => this.#onClose());
    raw.on('drain', () => this.wakeWriter());
    raw.on('error', () => {
      // Reported through 'close' (rstCode) or the connection; the listener keeps node from throwing.
    });
    if (side === 'client') {
      const client = raw as http2.ClientHttp2Stream;
      client.on('response', (headers) => this.#onResponse(headers));
      client.on('trailers', (headers) => {
        this.#trailers = headers;
      });
      // Requests are opened with waitForTrailers: a clean end() sends empty trailers, which node
      // turns into a plain END_STREAM (gRPC's wire). Without it, node ends the request (END_STREAM)
      // before the RST_STREAM when a stream is reset, and the server would first see a clean end.
      client.on('wantTrailers', () => {
        if (this.failure === undefined) {
          try {
            client.sendTrailers({});
          } catch {
            // stream already gone
          }
        }
        this.#trailersSent?.resolve();
      });
    } else {
      const server = raw as http2.ServerHttp2Stream;
      server.on('wantTrailers', () => {
        const trailers = this.#pendingTrailers ?? { 'grpc-status': String(GRPC_STATUS.OK) };
        try {
          server.sendTrailers(trailers);
        } catch {
          // stream already gone
        }
        this.#trailersSent?.resolve();
        if (this.#pendingTrailers !== undefined) {
          // An abort: the peer must stop sending too (RFC 9113 §8.1: RST_STREAM NO_ERROR).
          setImmediate(() => {
            if (!server.closed) server.close(NGHTTP2_NO_ERROR);
          });
        }
      });
    }
  }

  /** The readable side ended because of a reset or teardown, not an END_STREAM from the peer. */
  #endedAbnormally(): boolean {
    const raw = this.#raw;
    return raw.aborted || raw.destroyed || (raw.closed && raw.rstCode !== undefined && raw.rstCode !== NGHTTP2_NO_ERROR);
  }

  // --- receiving ---

  #onData(chunk: Buffer): void {
    if (this.failure !== undefined) return;
    try {
      this.decoder.push(chunk, (frame) => this.queue.push(frame.payload, frame.endPos));
    } catch (err) {
      this.abortWith(asError(err));
      return;
    }
    this.queue.progress(this.decoder.messagePos);
    if (this.queue.held >= this.window && !this.#raw.isPaused()) this.#raw.pause();
  }

  protected onRelease(): void {
    if (this.#raw.isPaused() && this.queue.held < this.window / 2) this.#raw.resume();
  }

  #onResponse(headers: http2.IncomingHttpHeaders): void {
    this.#responseHeaders = headers;
    const status = headers[HTTP2_HEADER_STATUS];
    const contentType = headerString(headers, HTTP2_HEADER_CONTENT_TYPE) ?? '';
    if (headers['grpc-status'] === undefined && (Number(status) !== 200 || !contentType.startsWith(GRPC_CONTENT_TYPE))) {
      this.abortWith(new TransportError('PROTOCOL_ERROR', `peer answered HTTP ${status} ${contentType}`));
    }
    // (a trailers-only response is judged at 'end')
    this.#accepted.resolve(true);
  }

  /**
   * Client: true once the server answered with response headers; false if it refused the stream
   * without processing it (REFUSED_STREAM, or node's ENHANCE_YOUR_CALM when its stream table is
   * still full of streams the protocol already closed): such a stream can be retried.
   */
  get accepted(): Promise<boolean> {
    return this.#accepted.promise;
  }

  #onEnd(): void {
    if (this.failure !== undefined) return;
    if (this.#endedAbnormally()) return; // judged in #onClose
    if (this.decoder.midFrame) {
      this.abortWith(new TransportError('PROTOCOL_ERROR', 'stream ended inside a message'));
      return;
    }
    if (this.#side === 'server') {
      this.queue.end();
      return;
    }
    const status = this.#trailers?.['grpc-status'] ?? this.#responseHeaders?.['grpc-status'];
    const statusText = Array.isArray(status) ? status[0] : status;
    if (statusText === undefined) {
      this.abortWith(new TransportError('PROTOCOL_ERROR', 'response ended without grpc-status'));
      return;
    }
    if (statusText === '0') {
      this.queue.end();
      return;
    }
    const source = this.#trailers ?? this.#responseHeaders;
    const code = headerString(source, ERROR_CODE_HEADER) ?? `GRPC_STATUS_${statusText}`;
    this.fail(remoteResetError(code, decodeGrpcMessage(headerString(source, 'grpc-message'))));
    if (!this.#raw.closed) this.#raw.close(NGHTTP2_CANCEL);
  }

  #onClose(): void {
    this.markFinished();
    this.wakeWriter();
    if (this.failure !== undefined || (this.queue.ended && this.localEnded)) {
      this.#settled();
      return;
    }
    const rst = this.#raw.rstCode;
    if (this.#responseHeaders === undefined && (rst === NGHTTP2_REFUSED_STREAM || rst === NGHTTP2_ENHANCE_YOUR_CALM) && !this.#conn.sessionGone) {
      this.#accepted.resolve(false);
      this.fail(new TransportError('STREAM_REFUSED', 'the peer refused the stream', { remote: true }));
      this.#conn.streamClosed(this);
      return;
    }
    // Closed early. A peer that tears the whole connection down resets its streams first, so give
    // the connection a moment to report that before blaming the stream.
    const classify = (): void => {
      if (this.failure === undefined) this.fail(this.#earlyCloseError());
      this.#settled();
    };
    if (this.#conn.isClosed) classify();
    else setTimeout(classify, RESET_GRACE_MS);
  }

  #earlyCloseError(): TransportError {
    const code = this.#raw.rstCode;
    if (this.#conn.isClosed || this.#conn.sessionGone) return this.#conn.closeReason();
    if (code === NGHTTP2_REFUSED_STREAM) return remoteResetError('STREAM_REFUSED', 'the peer refused the stream');
    if (code === NGHTTP2_PROTOCOL_ERROR) return remoteResetError('PROTOCOL_ERROR', undefined);
    if (code === NGHTTP2_NO_ERROR && this.queue.ended) return new TransportError('STREAM_CLOSED', 'the peer finished the call', { remote: true });
    if (code === NGHTTP2_NO_ERROR || code === NGHTTP2_CANCEL || code === undefined) return remoteResetError(undefined, undefined);
    return remoteResetError(`HTTP2_ERROR_${code}`, undefined);
  }

  /** The stream is over: nothing waits for trailers or acceptance any more, the connection forgets it. */
  #settled(): void {
    this.#trailersSent?.resolve();
    this.#accepted.resolve(true);
    this.#conn.streamClosed(this);
  }

  // --- sending ---

  protected async sendData(message: Uint8Array, signal: AbortSignal | undefined): Promise<undefined> {
    if (this.finished || this.#raw.writableEnded) throw new TransportError('STREAM_CLOSED', 'stream closed');
    const raw = this.#raw;
    let ok: boolean;
    this.#sending++;
    try {
      if (FRAME_HEADER_BYTES + message.length <= COALESCE_BYTES) {
        ok = raw.write(encodeFrame(FrameType.MESSAGE, message));
      } else {
        raw.cork();
        raw.write(frameHeader(FrameType.MESSAGE, message.length));
        ok = raw.write(message);
        raw.uncork();
      }
      if (!ok) {
        try {
          await this.#drain(signal);
        } catch (err) {
          // The message is partly queued: the stream cannot continue.
          if (this.failure === undefined) this.abort(asError(err));
          throw this.failure ?? err;
        }
      }
    } finally {
      this.#sending--;
    }
    return undefined;
  }

  async #drain(signal: AbortSignal | undefined): Promise<void> {
    while (this.#raw.writableNeedDrain) {
      if (this.failure !== undefined) throw this.failure;
      if (this.finished) throw new TransportError('STREAM_CLOSED', 'stream closed');
      await this.writable(signal);
    }
    if (this.failure !== undefined) throw this.failure;
  }

  protected async sendEnd(): Promise<void> {
    if (this.finished) throw new TransportError('STREAM_CLOSED', 'stream closed');
    const failed = this.failed.then((e) => Promise.reject(e));
    // Both sides end with trailers (the client's are empty: a plain END_STREAM on the wire).
    this.#trailersSent = deferred<void>();
    this.#raw.end();
    await Promise.race([this.#trailersSent.promise, failed]);
    if (this.failure !== undefined) throw this.failure;
  }

  protected sendReset(err: Error): void {
    const raw = this.#raw;
    if (raw.closed) return;
    const code = wireCodeOf(err);
    if (this.#side === 'client') {
      raw.close(code === 'PROTOCOL_ERROR' ? NGHTTP2_PROTOCOL_ERROR : NGHTTP2_CANCEL);
      return;
    }
    // Server: tell the client why in the trailers (gRPC style) when nothing is queued in front of
    // them; otherwise (or if they cannot be flushed promptly) reset the stream.
    if (!raw.writableEnded && raw.writableLength === 0 && this.#sending === 0 && (raw as http2.ServerHttp2Stream).headersSent) {
      this.#pendingTrailers = {
        'grpc-status': String(grpcStatusFor(code)),
        'grpc-message': encodeGrpcMessage(err.message),
        [ERROR_CODE_HEADER]: code,
      };
      raw.end();
      const timer = setTimeout(() => {
        if (!raw.closed) raw.close(NGHTTP2_CANCEL);
      }, ABORT_TRAILERS_GRACE_MS);
      timer.unref();
      raw.once('close', () => clearTimeout(timer));
    } else {
      raw.close(NGHTTP2_CANCEL);
    }
  }

  protected onFailed(): void {
    this.#accepted.resolve(true);
    if (this.#raw.isPaused()) this.#raw.resume(); // drain whatever still arrives
  }
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

interface Http2ConnectionInit extends ConnectionInit {
  session: http2.ClientHttp2Session | http2.ServerHttp2Session;
}

class Http2PeerConnection extends BasePeerConnection<Http2MessageStream> {
  readonly transport = 'http2' as const;
  readonly #session: http2.ClientHttp2Session | http2.ServerHttp2Session;
  /** Outbound streams waiting for a slot under the peer's SETTINGS_MAX_CONCURRENT_STREAMS. */
  #slotWaiters: Deferred<void>[] = [];
  #outboundOpen = 0;

  constructor(init: Http2ConnectionInit) {
    super(init);
    const session = init.session;
    this.#session = session;
    session.on('close', () => this.markClosed());
    session.on('error', (err: Error) => {
      this.noteCloseReason(new TransportError('CONNECTION_CLOSED', `connection failed: ${err.message}`, { cause: err, remote: true }));
    });
    session.on('goaway', () => {
      this.noteCloseReason(new TransportError('CONNECTION_CLOSED', 'the peer is closing the connection', { remote: true }));
    });
    if (session.closed || session.destroyed) queueMicrotask(() => this.markClosed());
    this.startPings();
  }

  /** The HTTP/2 session is closing or gone (its 'close' event may still be pending). */
  get sessionGone(): boolean {
    return this.#session.destroyed || this.#session.closed;
  }

  protected async newStream(method: string, signal: AbortSignal | undefined): Promise<Http2MessageStream> {
    if (this.direction === 'inbound') {
      throw new TransportError('UNSUPPORTED', 'HTTP/2 streams are opened by the client: this connection was dialed by the peer');
    }
    const deadline = performance.now() + this.limits.handshakeTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      const stream = await this.#request(method, signal);
      let accepted: boolean;
      try {
        accepted = await raceSignal(stream.accepted, signal, 'openStream');
      } catch (err) {
        stream.abort(asError(err));
        throw err;
      }
      if (accepted) {
        if (stream.failure !== undefined) throw stream.failure;
        return stream;
      }
      // Refused before the peer processed anything: safe to retry (RFC 9113 §8.7).
      if (performance.now() > deadline) throw new TransportError('STREAM_REFUSED', 'the peer keeps refusing new streams', { remote: true });
      await raceSignal(new Promise((resolve) => setTimeout(resolve, Math.min(2 ** attempt, 50))), signal, 'openStream');
      if (this.isClosed) throw this.closeReason();
    }
  }

  async #request(method: string, signal: AbortSignal | undefined): Promise<Http2MessageStream> {
    await this.#acquireSlot(signal);
    if (this.isClosed) {
      this.#releaseSlot();
      throw this.closeReason();
    }
    const session = this.#session as http2.ClientHttp2Session;
    let raw: http2.ClientHttp2Stream;
    try {
      raw = session.request(
        {
          [HTTP2_HEADER_METHOD]: 'POST',
          [HTTP2_HEADER_PATH]: method,
          [HTTP2_HEADER_CONTENT_TYPE]: GRPC_CONTENT_TYPE,
          te: 'trailers',
        },
        { endStream: false, waitForTrailers: true },
      );
    } catch (err) {
      this.#releaseSlot();
      throw new TransportError('CONNECTION_CLOSED', `cannot open a stream: ${asError(err).message}`, { cause: err });
    }
    const stream = new Http2MessageStream(this, raw, 'client', method, this.limits);
    this.trackOutgoing(stream);
    return stream;
  }

  async #acquireSlot(signal: AbortSignal | undefined): Promise<void> {
    const limit = (): number => this.#session.remoteSettings.maxConcurrentStreams ?? 100;
    while (this.#outboundOpen >= limit()) {
      const w = deferred<void>();
      this.#slotWaiters.push(w);
      try {
        await raceSignal(w.promise, signal, 'openStream');
      } catch (err) {
        const i = this.#slotWaiters.indexOf(w);
        if (i >= 0) this.#slotWaiters.splice(i, 1);
        throw err;
      }
      if (this.isClosed) throw this.closeReason();
    }
    this.#outboundOpen++;
  }

  #releaseSlot(): void {
    this.#outboundOpen--;
    this.#slotWaiters.shift()?.resolve();
  }

  /** Server side: a new authenticated-session stream. */
  acceptStream(raw: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const method = headerString(headers, HTTP2_HEADER_PATH) ?? '';
    const contentType = headerString(headers, HTTP2_HEADER_CONTENT_TYPE) ?? '';
    if (headers[HTTP2_HEADER_METHOD] !== 'POST' || !contentType.startsWith(GRPC_CONTENT_TYPE) || method === PEER_AUTH_PATH) {
      raw.respond({ [HTTP2_HEADER_STATUS]: 415 }, { endStream: true });
      return;
    }
    try {
      checkMethod(method);
    } catch {
      raw.respond({ [HTTP2_HEADER_STATUS]: 400 }, { endStream: true });
      return;
    }
    // nghttp2 enforces SETTINGS_MAX_CONCURRENT_STREAMS at the protocol level.
    if (this.tooManyIncoming()) {
      raw.close(NGHTTP2_REFUSED_STREAM);
      return;
    }
    raw.respond({ [HTTP2_HEADER_STATUS]: 200, [HTTP2_HEADER_CONTENT_TYPE]: GRPC_CONTENT_TYPE }, { waitForTrailers: true });
    this.acceptIncoming(new Http2MessageStream(this, raw, 'server', method, this.limits));
  }

  streamClosed(stream: Http2MessageStream): void {
    if (this.forgetStream(stream) && !stream.inbound) this.#releaseSlot();
  }

  protected async closeWire(): Promise<void> {
    this.#failAll();
    this.#session.destroy();
  }

  protected onWireClosed(err: TransportError): void {
    for (const w of this.#slotWaiters.splice(0)) w.reject(err);
  }

  #failAll(): void {
    this.failStreams();
    this.onWireClosed(this.closeReason());
  }

  protected sendPing(): void {
    try {
      this.#session.ping((err, duration) => {
        if (err === null) this.pingAnswered(duration);
        else this.pingFailed();
      });
    } catch {
      this.pingFailed();
    }
  }

  /** Nothing else watches the peer: a ping unanswered this long closes the connection. */
  protected pingUnanswered(): boolean {
    this.noteCloseReason(new TransportError('CONNECTION_CLOSED', `peer silent for ${this.limits.idleTimeoutMs} ms`, { remote: true }));
    this.#failAll();
    this.#session.destroy();
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Handshake helpers
// ---------------------------------------------------------------------------------------------

/** Reads one PeerAuth message from an auth stream (plus, for the client, the trailers' grpc-status). */
function readPeerAuth(raw: http2.Http2Stream, side: 'client' | 'server'): Promise<Uint8Array> {
  return new Promise<Uint8Array>((resolve, reject) => {
    const decoder = new FrameDecoder({ maxMessageBytes: PEER_AUTH_BYTES, allowedControl: new Set(), allowMessages: true });
    const messages: Uint8Array[] = [];
    let trailers: http2.IncomingHttpHeaders | undefined;
    let response: http2.IncomingHttpHeaders | undefined;
    const fail = (err: TransportError): void => {
      reject(err);
      if (!raw.closed) raw.close(NGHTTP2_CANCEL);
    };
    raw.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk, (f) => messages.push(f.payload));
      } catch (err) {
        fail(new TransportError('AUTH_FAILED', 'malformed PeerAuth', { cause: err }));
      }
      if (messages.length > 1) fail(new TransportError('AUTH_FAILED', 'more than one PeerAuth message'));
    });
    if (side === 'client') {
      (raw as http2.ClientHttp2Stream).on('response', (h) => {
        response = h;
      });
      (raw as http2.ClientHttp2Stream).on('trailers', (h) => {
        trailers = h;
      });
    }
    raw.on('end', () => {
      if (side === 'client') {
        const status = headerString(trailers, 'grpc-status') ?? headerString(response, 'grpc-status');
        if (status !== '0') {
          const why = decodeGrpcMessage(headerString(trailers ?? response, 'grpc-message')) ?? 'no status';
          reject(new TransportError('AUTH_FAILED', `the peer rejected our authentication (grpc-status ${status}: ${why})`, { remote: true }));
          return;
        }
      }
      if (messages.length !== 1 || decoder.midFrame) {
        reject(new TransportError('AUTH_FAILED', 'PeerAuth stream did not carry exactly one message'));
        return;
      }
      resolve(messages[0]!);
    });
    raw.on('error', () => {});
    raw.on('close', () => reject(new TransportError('AUTH_FAILED', `PeerAuth stream closed early (code ${raw.rstCode})`)));
  });
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
