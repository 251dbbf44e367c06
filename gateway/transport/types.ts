/**
 * The one interface the relay uses for node-to-node traffic, whatever carries it (QUIC or HTTP/2).
 * Normative description: docs/TRANSPORT.md.
 */

export type TransportKind = 'quic' | 'http2';

export interface PeerAddress {
  host: string;
  port: number;
}

export interface ListenOptions extends PeerAddress {
  signal?: AbortSignal;
}

export interface DialOptions {
  /** Raw 32-byte Ed25519 key the peer must authenticate with; otherwise the dial fails with PEER_KEY_MISMATCH before any stream is opened. */
  expectedPeerKey?: Uint8Array;
  signal?: AbortSignal;
  /** Whole dial (connect + handshake + peer authentication). Default: the transport's handshakeTimeoutMs. */
  timeoutMs?: number;
}

export interface PeerTransport {
  readonly kind: TransportKind;
  /** This node's raw Ed25519 public key (what peers see as `remotePublicKey`). */
  readonly publicKey: Uint8Array;
  /** Starts listening; resolves with the bound address (port 0 picks a free port). One listener per transport. */
  listen(opts: ListenOptions): Promise<PeerAddress>;
  dial(addr: PeerAddress, opts?: DialOptions): Promise<PeerConnection>;
  /** Inbound connections, already authenticated. Connections that arrive before a handler is set are held until one is. */
  onConnection(handler: (conn: PeerConnection) => void): void;
  /** Stops the listener, closes every connection (both directions), fails pending dials. Idempotent. */
  close(): Promise<void>;
}

export interface OpenStreamOptions {
  signal?: AbortSignal;
}

export interface PeerConnection {
  /** The peer's authenticated raw Ed25519 public key (32 bytes). Check it against the peer's DID document. */
  readonly remotePublicKey: Uint8Array;
  readonly transport: TransportKind;
  /** "host:port" of the peer's socket. */
  readonly remoteAddress: string;
  /** Who dialed: 'outbound' = this side. */
  readonly direction: 'inbound' | 'outbound';
  /**
   * Opens a stream for `method` (e.g. "/aftersmtp.v1.Relay/Stream"). Waits while the peer's
   * concurrent-stream limit is reached. HTTP/2 inbound connections cannot open streams (UNSUPPORTED):
   * in HTTP/2 only the client opens streams.
   */
  openStream(method: string, opts?: OpenStreamOptions): Promise<MessageStream>;
  /** Inbound streams. Streams that arrive before a handler is set are held until one is. */
  onStream(handler: (method: string, stream: MessageStream) => void): void;
  /** Smoothed round-trip time in milliseconds from keep-alive pings, once one was answered. */
  rtt?(): number | undefined;
  /** Closes the connection at once: every open stream fails with CONNECTION_CLOSED. Idempotent. */
  close(): Promise<void>;
  /** Resolves (never rejects) when the connection is closed, for whatever reason. */
  readonly closed: Promise<void>;
}

export interface SendOptions {
  /**
   * Aborts a send that is waiting for its turn or for flow control. If part of the message was already
   * written the whole stream is aborted (its framing cannot be resumed); otherwise only this send rejects.
   */
  signal?: AbortSignal;
}

/**
 * One RPC: whole messages in both directions, gRPC length-prefixed framing on the wire.
 * Iterate it once to receive; iteration ends when the peer half-closes, and throws a TransportError
 * when the stream is reset or the connection is lost. Breaking out of the loop discards what the
 * peer sends afterwards (without resetting the stream).
 */
export interface MessageStream extends AsyncIterable<Uint8Array> {
  readonly method: string;
  /** Resolves when the transport accepted the message; waits while the peer's receive window is full. */
  send(message: Uint8Array, opts?: SendOptions): Promise<void>;
  /** Half-close: no more messages from this side; resolves once pending sends and the end marker are written. */
  end(): Promise<void>;
  /** Resets both directions; the peer's iteration and pending sends fail (code STREAM_RESET, or a code passed through). */
  abort(err: Error): void;
  /**
   * On a stream the peer opened: accept messages up to `maxMessageBytes` from now on. Until then they are
   * held to `firstMessageBytes`, so an opener cannot make this side buffer a large message before the
   * reader has checked the first one (the relay's hello). No effect on streams this side opened.
   */
  liftFirstMessageLimit(): void;
}

/** Limits and timeouts, per connection unless noted. All optional in the constructors. */
export interface TransportLimits {
  /** Largest message accepted (payload bytes). A bigger incoming frame aborts the stream with MESSAGE_TOO_LARGE. Default 32 MiB + 64 KiB. */
  maxMessageBytes: number;
  /**
   * Largest message accepted on a stream the peer opened until its reader calls liftFirstMessageLimit()
   * (capped by maxMessageBytes). A bigger one aborts the stream with MESSAGE_TOO_LARGE before it is
   * buffered. Default: maxMessageBytes (no separate limit).
   */
  firstMessageBytes: number;
  /** Streams the peer may have open towards us at once; extra ones are refused. Default 64. */
  maxConcurrentStreams: number;
  /** Receive window per stream in bytes: how much a peer may send ahead of what the reader consumed. Default 1 MiB. */
  streamWindowBytes: number;
  /** TLS/QUIC handshake plus peer authentication. Default 10 s. */
  handshakeTimeoutMs: number;
  /** A connection whose peer is silent (no keep-alive answered) this long is closed. Default 30 s. */
  idleTimeoutMs: number;
}

export const DEFAULT_LIMITS: Readonly<TransportLimits> = Object.freeze({
  maxMessageBytes: 32 * 1024 * 1024 + 64 * 1024,
  firstMessageBytes: 32 * 1024 * 1024 + 64 * 1024,
  maxConcurrentStreams: 64,
  streamWindowBytes: 1024 * 1024,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
});

export interface TransportIdentity {
  /** Raw 32-byte Ed25519 seed (RFC 8032 private key). */
  privateKey: Uint8Array;
  /** Raw 32-byte Ed25519 public key; checked against the seed when given. */
  publicKey?: Uint8Array;
}
