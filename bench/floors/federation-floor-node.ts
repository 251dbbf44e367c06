// A "floor node" for bench:federation (bench/floors/federation-floor.ts runs two, A and B): the least work the
// federation hop of issue 4 requires, with the node's own parts, and nothing else.
// - A takes the app's messages over grpc-js (raw.proto Bidi, TLS, the node's HTTP/2 windows), checks
//   each Ed25519 signature (identity's SignatureVerifierPool), stores it durably (bench/floors/floor-store.ts:
//   the node's WAL group commit), answers the app, and relays it to B over the node's transport
//   (gateway/transport: QUIC or HTTP/2, both ends authenticated by their Ed25519 keys) on 4 streams with
//   the relay's window of unacknowledged messages, as the relay spreads its lanes; B's acks mark it
//   delivered.
// - B checks the signature again, stores the message durably, acks it to A (one ack message per lane and
//   commit) and pushes it to the app's Subscribe call; the app's acks mark it delivered.
// No envelope parsing, replay set, transparency log, receipts, routing, DID resolution or queue state
// beyond the delivered mark. Run as its own process: federation-floor-node.ts CONFIG_JSON.
import { readFileSync } from 'node:fs';
import { SignatureVerifierPool } from '../../identity/index.ts';
import { Http2Transport, QuicTransport, isTransportError, type MessageStream, type PeerTransport } from '../../gateway/transport/index.ts';
import { configSchema } from '../../gateway/core/index.ts';
import { FloorStore, SIGNED_BYTES } from './floor-store.ts';
import { serveRaw } from '../reference/raw-serve.ts';

export interface FloorNodeConfig {
  role: 'a' | 'b';
  transport: 'quic' | 'http2';
  /** TLS certificate and key (PEM files) of the grpc-js server and of the HTTP/2 peer listener. */
  cert: string; key: string;
  /** The app's Ed25519 public key (hex), which signs every message. */
  appKey: string;
  /** This floor node's Ed25519 seed (hex): its transport identity. */
  seed: string;
  dir: string;
  /** A only: where B's transport listens, and the key B must prove. */
  peer?: { host: string; port: number; key: string };
}

const RELAY_METHOD = '/floor.Relay/Stream';
const RELAY_LANES = 4;
/** The relay's default window per peer (federation.maxInFlightPerPeer). */
const RELAY_WINDOW = configSchema.parse({}).federation.maxInFlightPerPeer;
const REF_BYTES = 8;
const SIG_BYTES = 64;

/** A relayed message: ref (float64) | signature | data. */
function relayFrame(ref: number, sig: Uint8Array, data: Uint8Array): Uint8Array {
  const frame = Buffer.allocUnsafe(REF_BYTES + SIG_BYTES + data.length);
  frame.writeDoubleBE(ref, 0);
  frame.set(sig, REF_BYTES);
  frame.set(data, REF_BYTES + SIG_BYTES);
  return frame;
}

async function main(config: FloorNodeConfig): Promise<void> {
  const appKey = Buffer.from(config.appKey, 'hex');
  const verifier = new SignatureVerifierPool();
  verifier.start();
  const store = new FloorStore(config.dir);
  const rowOf = new Map<number, number>();
  const identity = { privateKey: Buffer.from(config.seed, 'hex') };
  const transport: PeerTransport = config.transport === 'quic'
    ? new QuicTransport(identity)
    : new Http2Transport({ ...identity, certPem: readFileSync(config.cert, 'utf8'), keyPem: readFileSync(config.key, 'utf8') });

  const accept = async (ref: number, data: Uint8Array, sig: Uint8Array): Promise<void> => {
    if (!(await verifier.verify(appKey, data.subarray(0, SIGNED_BYTES), sig))) throw new Error(`message ${ref}: bad signature`);
    rowOf.set(ref, await store.store(ref, data));
  };
  const delivered = (ref: number) => {
    const row = rowOf.get(ref);
    if (row === undefined) return;
    rowOf.delete(ref);
    store.delivered(row);
  };
  // The lanes end with CONNECTION_CLOSED when either floor node stops: not worth a line.
  const fail = (err: Error) => { if (!isTransportError(err, 'CONNECTION_CLOSED')) process.stderr.write(`floor ${config.role}: ${err.message}\n`); };
  const stop = () => Promise.all([transport.close(), verifier.stop(), store.close()]);

  if (config.role === 'a') {
    const peer = config.peer!;
    const conn = await transport.dial({ host: peer.host, port: peer.port }, { expectedPeerKey: Buffer.from(peer.key, 'hex') });
    // As the relay does: at most RELAY_WINDOW messages unacknowledged by B, each on the lane with the
    // fewest in flight; the rest wait at A (in the node, in its durable queue).
    const lanes: { stream: MessageStream; inFlight: number }[] = [];
    const waiting: Uint8Array[] = [];
    let inFlight = 0;
    const relay = (frame?: Uint8Array) => {
      if (frame) waiting.push(frame);
      while (inFlight < RELAY_WINDOW && waiting.length > 0) {
        let lane = lanes[0]!;
        for (const l of lanes) if (l.inFlight < lane.inFlight) lane = l;
        lane.inFlight++;
        inFlight++;
        lane.stream.send(waiting.shift()!).catch(fail);
      }
    };
    for (let i = 0; i < RELAY_LANES; i++) {
      const lane = { stream: await conn.openStream(RELAY_METHOD), inFlight: 0 };
      lanes.push(lane);
      void (async () => {
        for await (const acks of lane.stream) {
          const view = Buffer.from(acks.buffer, acks.byteOffset, acks.byteLength);
          for (let at = 0; at < view.length; at += REF_BYTES) delivered(view.readDoubleBE(at));
          lane.inFlight -= view.length / REF_BYTES;
          inFlight -= view.length / REF_BYTES;
          relay();
        }
      })().catch(fail);
    }
    serveRaw(config.cert, config.key, {
      Bidi: (call: any) => {
        call.on('data', (b: { data: Buffer; ref: number; sig: Buffer }) => {
          accept(b.ref, b.data, b.sig).then(() => {
            call.write({ ref: b.ref });
            relay(relayFrame(b.ref, b.sig, b.data));
          }).catch((err: Error) => { fail(err); call.destroy(err); });
        });
        call.on('end', () => call.end());
      },
    }, stop);
    return;
  }

  // B: relay lanes in, the app's subscription out.
  let subscriber: any;
  const waiting: { data: Uint8Array; ref: number; sig: Uint8Array }[] = [];
  const push = (blob: { data: Uint8Array; ref: number; sig: Uint8Array }) => { if (subscriber) subscriber.write(blob); else waiting.push(blob); };
  transport.onConnection((conn) => {
    conn.onStream((method, lane) => {
      if (method !== RELAY_METHOD) { lane.abort(new Error(`unknown method ${method}`)); return; }
      let acks: number[] = [];
      const flushAcks = () => {
        const out = Buffer.allocUnsafe(acks.length * REF_BYTES);
        acks.forEach((ref, i) => out.writeDoubleBE(ref, i * REF_BYTES));
        acks = [];
        lane.send(out).catch(fail);
      };
      void (async () => {
        for await (const frame of lane) {
          const view = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
          const ref = view.readDoubleBE(0);
          const sig = view.subarray(REF_BYTES, REF_BYTES + SIG_BYTES);
          const data = view.subarray(REF_BYTES + SIG_BYTES);
          accept(ref, data, sig).then(() => {
            if (acks.length === 0) setImmediate(flushAcks);
            acks.push(ref);
            push({ data, ref, sig });
          }, fail);
        }
      })().catch(fail);
    });
  });
  const bound = await transport.listen({ host: '127.0.0.1', port: 0 });
  serveRaw(config.cert, config.key, {
    Subscribe: (call: any) => {
      subscriber = call;
      for (const blob of waiting.splice(0)) call.write(blob);
      call.on('data', (m: { refs: number[] }) => { for (const ref of m.refs) delivered(ref); });
      call.on('end', () => { if (subscriber === call) subscriber = undefined; call.end(); });
      call.on('error', () => { if (subscriber === call) subscriber = undefined; });
    },
  }, stop, { peer: `${bound.host}:${bound.port}` });
}

await main(JSON.parse(process.argv[2]!) as FloorNodeConfig);
