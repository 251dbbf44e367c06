/**
 * PeerTransport over QUIC with @chainsafe/libp2p-quic, used through its public js-libp2p transport
 * interface (`quic()` -> Transport.dial / createListener with our own minimal Upgrader; no
 * multistream-select, no libp2p node). Wire protocol: docs/TRANSPORT.md §3.
 *
 * - The libp2p TLS 1.3 handshake authenticates both peers' Ed25519 keys; the peer id libp2p derives
 *   from the peer's certificate is an identity multihash of its public key, which we decode into
 *   `remotePublicKey`.
 * - One QUIC bidirectional stream per RPC (first frame OPEN names the method), plus one control
 *   stream per connection (credit, resets, pings).
 * - The library's stream class reads eagerly into memory, so QUIC's own flow control never pushes
 *   back on a peer whose reader stopped: we add credit-based flow control per stream (WINDOW frames).
 * - When the connection closes, its stream muxer is aborted (otherwise its accept loop spins).
 * - Its native streams are read up to 64 KiB at a time instead of 4 KiB (quic-reads.ts).
 *
 * The stream, connection and transport lifecycle it shares with HTTP/2 is in base-stream.ts,
 * base-connection.ts and base-transport.ts; the QUIC wire implements their hooks in quic-frames.ts
 * (frame channel, control frames), quic-connection.ts (stream and connection) and this file (transport).
 */
import net from 'node:net';
import { quic } from '@chainsafe/libp2p-quic';
import type { QuicComponents } from '@chainsafe/libp2p-quic';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { defaultLogger } from '@libp2p/logger';
import type { ComponentLogger, Logger } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import type { ClearableSignal, Connection, Listener, MultiaddrConnection, Transport, Upgrader, UpgraderOptions } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import { base58btcDecode, bytesEqual } from '../../identity/index.ts';
import { BasePeerTransport, checkPeerKey } from './base-transport.ts';
import type { DialContext } from './base-transport.ts';
import { asError, formatAddress, raceSignal } from './common.ts';
import { TransportError, abortError } from './errors.ts';
import { QuicPeerConnection } from './quic-connection.ts';
import { widenQuicReads } from './quic-reads.ts';
import type { ListenOptions, PeerAddress, TransportIdentity, TransportLimits } from './types.ts';

export { QUIC_INITIAL_WINDOW } from './quic-connection.ts';
export { QUIC_PROTOCOL_VERSION } from './quic-frames.ts';

export interface QuicTransportOptions extends TransportIdentity, Partial<TransportLimits> {}

// ---------------------------------------------------------------------------------------------
// Peer identity from the libp2p peer id
// ---------------------------------------------------------------------------------------------

/** identity multihash (0x00, 36) of the libp2p PublicKey protobuf {Type: Ed25519 (1), Data: 32 bytes}. */
const ED25519_PEER_ID_PREFIX = Uint8Array.from([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]);

/** The raw Ed25519 public key of an authenticated libp2p peer id (base58btc), or AUTH_FAILED. */
export function ed25519KeyFromPeerId(peerId: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = base58btcDecode(peerId);
  } catch (err) {
    throw new TransportError('AUTH_FAILED', 'peer id is not base58btc', { cause: err });
  }
  if (bytes.length !== ED25519_PEER_ID_PREFIX.length + 32 || !bytesEqual(bytes.subarray(0, ED25519_PEER_ID_PREFIX.length), ED25519_PEER_ID_PREFIX)) {
    throw new TransportError('AUTH_FAILED', 'peer is not authenticated by an Ed25519 key');
  }
  return bytes.slice(ED25519_PEER_ID_PREFIX.length);
}

function keyFromMultiaddr(ma: Multiaddr): Uint8Array {
  const peerId = ma.getPeerId();
  if (peerId === null) throw new TransportError('AUTH_FAILED', 'QUIC connection carries no authenticated peer id');
  return ed25519KeyFromPeerId(peerId);
}

function quicMultiaddr(host: string, port: number): Multiaddr {
  const family = net.isIP(host);
  if (family === 0) throw new TransportError('INVALID_ARGUMENT', `QUIC needs an IP address, not ${JSON.stringify(host)}`);
  return multiaddr(`/${family === 6 ? 'ip6' : 'ip4'}/${host}/udp/${port}/quic-v1`);
}


// ---------------------------------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------------------------------

export class QuicTransport extends BasePeerTransport<QuicPeerConnection> {
  readonly kind = 'quic' as const;
  #libp2p: Promise<Transport> | undefined;
  #listener: Listener | undefined;

  constructor(opts: QuicTransportOptions) {
    super(opts);
  }

  #transport(): Promise<Transport> {
    this.#libp2p ??= (async () => {
      await widenQuicReads();
      const privateKey = await generateKeyPairFromSeed('Ed25519', this.privateKey);
      const factory = quic({
        handshakeTimeout: this.limits.handshakeTimeoutMs,
        maxIdleTimeout: this.limits.idleTimeoutMs,
        keepAliveInterval: Math.max(500, Math.floor(this.limits.idleTimeoutMs / 3)),
        // + the control stream
        maxConcurrentStreamLimit: this.limits.maxConcurrentStreams + 1,
      });
      // @libp2p/crypto 5 types its keys with @libp2p/interface 3, the transport with 2: same runtime shape.
      return factory({ privateKey: privateKey as unknown as QuicComponents['privateKey'], logger: libp2pLogger() });
    })();
    return this.#libp2p;
  }

  protected get listening(): boolean {
    return this.#listener !== undefined;
  }

  protected async startListening(opts: ListenOptions): Promise<PeerAddress> {
    const ma = quicMultiaddr(opts.host, opts.port);
    const t = await raceSignal(this.#transport(), opts.signal, 'listen');
    const listener = t.createListener({ upgrader: this.#upgrader(undefined) });
    this.#listener = listener;
    try {
      await listener.listen(ma);
    } catch (err) {
      this.#listener = undefined;
      await listener.close().catch(() => {});
      throw new TransportError('LISTEN_FAILED', `cannot listen on ${opts.host}:${opts.port}: ${asError(err).message}`, { cause: err });
    }
    if (opts.signal?.aborted || this.isClosed) {
      this.#listener = undefined;
      await listener.close();
      throw this.isClosed ? new TransportError('TRANSPORT_CLOSED', 'transport closed') : abortError(opts.signal, 'listen');
    }
    const bound = listener.getAddrs()[0]?.nodeAddress();
    if (bound === undefined) throw new TransportError('LISTEN_FAILED', 'listener has no address');
    return { host: bound.address, port: bound.port };
  }

  protected async stopListening(): Promise<void> {
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.close().catch(() => {});
  }

  protected async connect(addr: PeerAddress, ctx: DialContext): Promise<QuicPeerConnection> {
    const ma = quicMultiaddr(addr.host, addr.port);
    const state: DialState = { cancelled: false, expectedPeerKey: ctx.expectedPeerKey };
    let dialing: Promise<Connection> | undefined;
    try {
      const t = await Promise.race([this.#transport(), ctx.aborted]);
      dialing = t.dial(ma, { upgrader: this.#upgrader(state), signal: ctx.signal });
      return (await Promise.race([dialing, ctx.aborted])) as unknown as QuicPeerConnection;
    } catch (err) {
      state.cancelled = true;
      // A dial the library completes after we gave up must not leak a connection.
      dialing?.then((c) => void (c as unknown as QuicPeerConnection).close().catch(() => {}), () => {});
      throw err;
    }
  }

  #upgrader(dial: DialState | undefined): Upgrader {
    const make = (maConn: MultiaddrConnection, opts: UpgraderOptions | undefined, direction: 'inbound' | 'outbound'): QuicPeerConnection => {
      this.checkOpen();
      if (dial?.cancelled) throw new TransportError('ABORTED', 'dial cancelled');
      const muxerFactory = opts?.muxerFactory;
      if (muxerFactory === undefined) throw new TransportError('PROTOCOL_ERROR', 'QUIC connection without stream muxer');
      const remotePublicKey = keyFromMultiaddr(maConn.remoteAddr);
      checkPeerKey(dial?.expectedPeerKey, remotePublicKey);
      const node = maConn.remoteAddr.nodeAddress();
      const conn = new QuicPeerConnection({
        owner: this,
        maConn,
        muxerFactory,
        direction,
        remotePublicKey,
        remoteAddress: formatAddress(node.address, node.port),
        limits: this.limits,
      });
      this.addConnection(conn);
      return conn;
    };
    return {
      upgradeOutbound: async (maConn, opts) => {
        const conn = make(maConn, opts, 'outbound');
        try {
          await conn.openControl();
        } catch (err) {
          await conn.close();
          throw new TransportError('DIAL_FAILED', 'could not open the control stream', { cause: err });
        }
        // The library's contract returns a libp2p Connection; our dial() is its only consumer.
        return conn as unknown as Connection;
      },
      upgradeInbound: async (maConn, opts) => {
        this.deliverInbound(make(maConn, opts, 'inbound'));
      },
      createInboundAbortSignal: (signal: AbortSignal): ClearableSignal => {
        const s = AbortSignal.any([signal, AbortSignal.timeout(this.limits.handshakeTimeoutMs)]);
        return Object.assign(s, { clear: () => {} });
      },
      getStreamMuxers: () => new Map(),
      getConnectionEncrypters: () => new Map(),
    };
  }
}

/**
 * The library makes a logger per stream; debug's loggers are not free (~50 µs each). Use them only
 * when libp2p debugging is switched on (DEBUG=libp2p:*), else a no-op logger.
 */
function libp2pLogger(): ComponentLogger {
  if (/libp2p/.test(process.env.DEBUG ?? '')) return defaultLogger();
  const noop = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false }) as unknown as Logger;
  (noop as { newScope: (name: string) => Logger }).newScope = () => noop;
  return { forComponent: () => noop };
}

interface DialState {
  cancelled: boolean;
  expectedPeerKey: Uint8Array | undefined;
}
