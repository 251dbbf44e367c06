/**
 * Throughput probe for the node-to-node transports (not a test): two transports in this process on
 * 127.0.0.1, real sockets.
 *
 *   node bench/suites/transport.ts [--mib 256] [--streams 5000] [--inflight 32] [--only quic|http2]
 *
 * Prints, per transport: MB/s for one stream (1 MiB messages, one direction), and streams/s for short
 * request/response streams (100-byte request, echoed, `inflight` streams at a time); for QUIC also the
 * library alone, as shipped and with the native reads QuicTransport widens (DECISIONS 31).
 * Reference figures for the library alone on this machine, the yardstick QuicTransport is held to:
 * @chainsafe/libp2p-quic through its transport interface ~51 MB/s and ~3.5k streams/s; its native
 * layer ~170 MB/s and ~11k streams/s.
 */
import { parseArgs } from 'node:util';
import { quic } from '@chainsafe/libp2p-quic';
import type { QuicComponents } from '@chainsafe/libp2p-quic';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { defaultLogger } from '@libp2p/logger';
import { multiaddr } from '@multiformats/multiaddr';
import type { Connection, MultiaddrConnection, Stream, StreamMuxer, Upgrader } from '@libp2p/interface';
import { generateSigningKeyPair } from '../../identity/index.ts';
import { createCertificateAuthority, issueServerCertificate } from '../../identity/index.ts';
import { Http2Transport, QUIC_READ_BYTES, QuicTransport, widenQuicReads } from '../../gateway/transport/index.ts';
import type { PeerConnection, PeerTransport, TransportKind } from '../../gateway/transport/index.ts';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '256' },
    streams: { type: 'string', default: '5000' },
    inflight: { type: 'string', default: '32' },
    only: { type: 'string' },
  },
});
const MIB = Number(values.mib);
const STREAMS = Number(values.streams);
const INFLIGHT = Number(values.inflight);

/** CPU (user + system, both ends: they share this process) since `start`, in ms. */
function cpuMs(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

async function makePair(kind: TransportKind): Promise<{ server: PeerTransport; client: PeerTransport }> {
  const a = generateSigningKeyPair();
  const b = generateSigningKeyPair();
  if (kind === 'quic') {
    return { server: new QuicTransport(a), client: new QuicTransport(b) };
  }
  const ca = await createCertificateAuthority({ commonName: 'bench', validDays: 1 });
  const cert = await issueServerCertificate(ca, { ipAddresses: ['127.0.0.1'], validDays: 1 });
  return { server: new Http2Transport({ ...a, ...cert }), client: new Http2Transport(b) };
}

function serve(conn: PeerConnection): void {
  conn.onStream((method, stream) => {
    void (async () => {
      try {
        if (method === '/bench/Sink') {
          let bytes = 0;
          for await (const m of stream) bytes += m.length;
          await stream.send(new TextEncoder().encode(String(bytes)));
          await stream.end();
        } else {
          for await (const m of stream) await stream.send(m);
          await stream.end();
        }
      } catch {
        // bench client went away
      }
    })();
  });
}

async function bulk(conn: PeerConnection): Promise<number> {
  const chunk = new Uint8Array(1024 * 1024).fill(7);
  const stream = await conn.openStream('/bench/Sink');
  const reply = (async () => {
    const out: Uint8Array[] = [];
    for await (const m of stream) out.push(m);
    return Number(new TextDecoder().decode(out[0]));
  })();
  const t0 = performance.now();
  for (let i = 0; i < MIB; i++) await stream.send(chunk);
  await stream.end();
  const received = await reply;
  const seconds = (performance.now() - t0) / 1000;
  if (received !== MIB * chunk.length) throw new Error(`sink got ${received} bytes`);
  return received / 1e6 / seconds;
}

async function shortStreams(conn: PeerConnection): Promise<number> {
  const request = new Uint8Array(100).fill(1);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: INFLIGHT }, async () => {
      while (next < STREAMS) {
        next++;
        const s = await conn.openStream('/bench/Echo');
        await s.send(request);
        await s.end();
        let n = 0;
        for await (const _m of s) n++;
        if (n !== 1) throw new Error('no echo');
      }
    }),
  );
  return STREAMS / ((performance.now() - t0) / 1000);
}

/**
 * Same-run reference: @chainsafe/libp2p-quic through its transport interface with nothing of ours on
 * top (no framing, no control stream, no credit): the ceiling for QuicTransport.
 */
async function rawLibp2pQuic(): Promise<{ mbps: number; sps: number }> {
  const muxers: StreamMuxer[] = [];
  const conns: MultiaddrConnection[] = [];
  const upgrader = (onStream?: (s: Stream) => void): Upgrader => ({
    upgradeInbound: async (maConn, opts) => {
      conns.push(maConn);
      muxers.push(opts!.muxerFactory!.createStreamMuxer({ direction: 'inbound', onIncomingStream: onStream }));
    },
    upgradeOutbound: async (maConn, opts) => {
      conns.push(maConn);
      const muxer = opts!.muxerFactory!.createStreamMuxer({ direction: 'outbound' });
      muxers.push(muxer);
      return muxer as unknown as Connection;
    },
    createInboundAbortSignal: (signal) => Object.assign(signal, { clear: () => {} }),
    getStreamMuxers: () => new Map(),
    getConnectionEncrypters: () => new Map(),
  });
  const make = async () => quic()({ privateKey: (await generateKeyPair('Ed25519')) as unknown as QuicComponents['privateKey'], logger: defaultLogger() });
  const server = await make();
  const client = await make();
  const listener = server.createListener({
    upgrader: upgrader((s) => {
      void (async () => {
        if (s.protocol === undefined && s.direction === 'inbound') {
          // first bytes tell bulk ("B") from echo
          const chunks: Uint8Array[] = [];
          let bytes = 0;
          let bulk = false;
          for await (const c of s.source) {
            const b = c.subarray();
            if (bytes === 0 && b[0] === 0x42) bulk = true;
            bytes += b.length;
            if (!bulk) chunks.push(b);
          }
          await s.sink([bulk ? new TextEncoder().encode(String(bytes)) : chunks[0]!]);
        }
      })().catch(() => {});
    }),
  });
  await listener.listen(multiaddr('/ip4/127.0.0.1/udp/0/quic-v1'));
  const muxer = (await client.dial(listener.getAddrs()[0]!, { upgrader: upgrader(), signal: AbortSignal.timeout(5000) })) as unknown as StreamMuxer;
  const chunk = new Uint8Array(1024 * 1024).fill(0x42);
  const t0 = performance.now();
  const bs = await muxer.newStream();
  const reply = (async () => {
    let text = '';
    for await (const c of bs.source) text += new TextDecoder().decode(c.subarray());
    return Number(text);
  })();
  await bs.sink((async function* () {
    for (let i = 0; i < MIB; i++) yield chunk;
  })());
  const got = await reply;
  const mbps = got / 1e6 / ((performance.now() - t0) / 1000);
  const request = new Uint8Array(100).fill(1);
  let next = 0;
  const t1 = performance.now();
  await Promise.all(
    Array.from({ length: INFLIGHT }, async () => {
      while (next < STREAMS) {
        next++;
        const s = await muxer.newStream();
        await s.sink([request]);
        for await (const _c of s.source) {
          // the echo
        }
      }
    }),
  );
  const sps = STREAMS / ((performance.now() - t1) / 1000);
  for (const m of muxers) m.abort(new Error('bench done'));
  for (const c of conns) await c.close();
  await listener.close();
  return { mbps, sps };
}

const kinds: TransportKind[] = values.only ? [values.only as TransportKind] : ['quic', 'http2'];
console.log(`transport bench: ${MIB} MiB on one stream (1 MiB messages); ${STREAMS} request/response streams, ${INFLIGHT} in flight`);
// Before any QuicTransport exists: the library as shipped (4 KiB native reads; DECISIONS 31).
const stock = kinds.includes('quic') ? await rawLibp2pQuic() : undefined;
for (const kind of kinds) {
  const { server, client } = await makePair(kind);
  server.onConnection(serve);
  const addr = await server.listen({ host: '127.0.0.1', port: 0 });
  const conn = await client.dial(addr, { expectedPeerKey: server.publicKey });
  await shortStreams(conn); // warm-up
  let cpu = process.cpuUsage();
  const mbps = await bulk(conn);
  const cpuPerMb = cpuMs(cpu) / (MIB * 1.048576);
  cpu = process.cpuUsage();
  const sps = await shortStreams(conn);
  const cpuPerStream = (cpuMs(cpu) * 1000) / STREAMS;
  const rss = process.memoryUsage().rss / 2 ** 20;
  console.log(
    `${kind.padEnd(6)} one stream ${mbps.toFixed(1).padStart(6)} MB/s (${cpuPerMb.toFixed(1)} ms CPU/MB)   ` +
      `short streams ${Math.round(sps).toString().padStart(6)} /s (${cpuPerStream.toFixed(0)} µs CPU/stream)   rss ${rss.toFixed(0)} MB`,
  );
  await client.close();
  await server.close();
}
if (stock !== undefined) {
  // QuicTransport has widened the reads by now; asked again (memoized) so the label cannot claim it wrongly.
  const isWidened = await widenQuicReads();
  const widened = await rawLibp2pQuic();
  const row = (r: { mbps: number; sps: number }, what: string) =>
    console.log(`ref    one stream ${r.mbps.toFixed(1).padStart(6)} MB/s   short streams ${Math.round(r.sps).toString().padStart(6)} /s   (libp2p-quic transport interface alone, ${what})`);
  row(stock, 'as shipped: 4 KiB native reads');
  row(widened, isWidened ? `native reads widened as QuicTransport does: ${QUIC_READ_BYTES / 1024} KiB` : 'as shipped again: this library version could not be widened');
}
console.log('reference (libp2p-quic alone on this machine): transport interface ~51 MB/s, ~3.5k streams/s; native layer ~170 MB/s, ~11k streams/s');
