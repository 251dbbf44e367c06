/**
 * Throughput probe for the node-to-node transports (not a test): two transports in this process on
 * 127.0.0.1, real sockets.
 *
 *   node bench/transport.ts [--mib 256] [--streams 5000] [--inflight 32] [--only quic|http2]
 *
 * Prints, per transport: MB/s for one stream (1 MiB messages, one direction), and streams/s for short
 * request/response streams (100-byte request, echoed, `inflight` streams at a time).
 * Reference figures measured on this machine (DESIGN.md §9): @chainsafe/libp2p-quic through its
 * transport interface ~51 MB/s and ~3.5k streams/s; its native layer ~170 MB/s and ~11k streams/s.
 */
import { parseArgs } from 'node:util';
import { generateSigningKeyPair } from '../identity/index.ts';
import { createCertificateAuthority, issueServerCertificate } from '../identity/index.ts';
import { Http2Transport, QuicTransport } from '../gateway/transport/index.ts';
import type { PeerConnection, PeerTransport, TransportKind } from '../gateway/transport/index.ts';

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

const kinds: TransportKind[] = values.only ? [values.only as TransportKind] : ['quic', 'http2'];
console.log(`transport bench: ${MIB} MiB on one stream (1 MiB messages); ${STREAMS} request/response streams, ${INFLIGHT} in flight`);
for (const kind of kinds) {
  const { server, client } = await makePair(kind);
  server.onConnection(serve);
  const addr = await server.listen({ host: '127.0.0.1', port: 0 });
  const conn = await client.dial(addr, { expectedPeerKey: server.publicKey });
  await shortStreams(conn); // warm-up
  const mbps = await bulk(conn);
  const sps = await shortStreams(conn);
  const rss = process.memoryUsage().rss / 2 ** 20;
  console.log(
    `${kind.padEnd(6)} one stream ${mbps.toFixed(1).padStart(6)} MB/s   short streams ${Math.round(sps).toString().padStart(6)} /s   rtt ${(conn.rtt?.() ?? NaN).toFixed(2)} ms   rss ${rss.toFixed(0)} MB`,
  );
  await client.close();
  await server.close();
}
console.log('reference (DESIGN.md §9, libp2p-quic): transport interface ~51 MB/s, ~3.5k streams/s; native layer ~170 MB/s, ~11k streams/s');
