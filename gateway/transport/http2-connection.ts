/**
 * Http2MessageStream and Http2PeerConnection: one HTTP/2 stream per RPC (gRPC-shaped headers,
 * messages and trailers) and the session that opens and accepts them. They share one file because
 * they refer to each other: a stream asks its connection whether the session is gone and reports
 * its close to it, the connection creates its streams.
 */
import type http2 from 'node:http2';
import { BasePeerConnection } from './base-connection.ts';
import type { ConnectionInit } from './base-connection.ts';
import { BaseMessageStream } from './base-stream.ts';
import { asError, checkMethod, deferred, raceSignal } from './common.ts';
import type { Deferred } from './common.ts';
import { TransportError, remoteResetError, wireCodeOf } from './errors.ts';
import { FRAME_HEADER_BYTES, FrameDecoder, FrameType, encodeFrame, frameHeader } from './framing.ts';
import {
  ERROR_CODE_HEADER,
  GRPC_CONTENT_TYPE,
  GRPC_STATUS,
  HTTP2_HEADER_CONTENT_TYPE,
  HTTP2_HEADER_METHOD,
  HTTP2_HEADER_PATH,
  HTTP2_HEADER_STATUS,
  NGHTTP2_CANCEL,
  NGHTTP2_ENHANCE_YOUR_CALM,
  NGHTTP2_NO_ERROR,
  NGHTTP2_PROTOCOL_ERROR,
  NGHTTP2_REFUSED_STREAM,
  decodeGrpcMessage,
  encodeGrpcMessage,
  grpcStatusFor,
  headerString,
} from './http2-wire.ts';
import { PEER_AUTH_PATH } from './peer-auth.ts';
import type { TransportLimits } from './types.ts';

const COALESCE_BYTES = 64 * 1024;
const ABORT_TRAILERS_GRACE_MS = 1_000;
/** How long an early stream close waits for the connection to report its own close. */
const RESET_GRACE_MS = 100;

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

const NO_CONTROL_FRAMES: ReadonlySet<number> = new Set();

export class Http2MessageStream extends BaseMessageStream {
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

export class Http2PeerConnection extends BasePeerConnection<Http2MessageStream> {
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
