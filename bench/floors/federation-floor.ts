// The floor of bench:federation: two floor nodes (bench/floors/federation-floor-node.ts) doing only the work the
// federation hop requires (Ed25519 check and durable store at both ends, the node-to-node transport,
// delivered marks), measured with the same app pattern as the nodes: messages signed before the clock
// starts, one submit stream with CONCURRENCY unanswered into A, a subscriber at B that acks each arrival.
// Its rate says how far any server doing that work with these parts gets on this machine.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { CLIENT_FLOW_CONTROL_WINDOW } from '../../gateway/core/index.ts';
import { generateSigningKeyPair, randomBytes, sign, type SigningKeyPair } from '../../identity/index.ts';
import type { FloorNodeConfig } from './federation-floor-node.ts';
import { SIGNED_BYTES } from './floor-store.ts';
import { cpuSeconds, ownCpuSeconds, rssMb, writtenBytes } from '../helpers/proc.ts';
import { spawnReady, stopProcess, type ReadyProcess } from '../helpers/processes.ts';
import { percentile } from '../helpers/stats.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const NODE = join(ROOT, 'node_modules', '.bin', 'node');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export interface FloorHop {
  rate: number; p50: number; p99: number; arrived: number; n: number; elapsedMs: number;
  /** CPU of A, B and this process as a share of one core over the run; peak RSS of A and B (MB). */
  cpuA: number; cpuB: number; cpuBench: number; rssA: number; rssB: number;
  /** KiB A and B wrote to storage per arrived message. */
  kibA: number; kibB: number;
  errors: string[];
}

type FloorProcess = ReadyProcess<{ grpc: string; peer?: string }>;

function spawnFloorNode(config: FloorNodeConfig): Promise<FloorProcess> {
  return spawnReady(`floor ${config.role}`, NODE, [join(ROOT, 'bench', 'floors', 'federation-floor-node.ts'), JSON.stringify(config)], { echoStderr: true });
}

/** Floor nodes A and B for one transport, with their data in `dir`, serving TLS from the two nodes' data directories. */
export class FloorPair {
  readonly transport: 'quic' | 'http2';
  private readonly a: FloorProcess;
  private readonly b: FloorProcess;
  private readonly toA: any;
  private readonly toB: any;
  private readonly appKey: SigningKeyPair;
  private nextRef = 1;

  private constructor(transport: 'quic' | 'http2', a: FloorProcess, b: FloorProcess, toA: any, toB: any, appKey: SigningKeyPair) {
    this.transport = transport;
    this.a = a;
    this.b = b;
    this.toA = toA;
    this.toB = toB;
    this.appKey = appKey;
  }

  static async start(transport: 'quic' | 'http2', dir: string, dataA: string, dataB: string): Promise<FloorPair> {
    const appKey = generateSigningKeyPair();
    const appPub = hex(appKey.publicKey);
    const keysA = generateSigningKeyPair();
    const keysB = generateSigningKeyPair();
    const tls = (data: string) => ({ cert: join(data, 'tls/server.crt'), key: join(data, 'tls/server.key') });
    const dirOf = (name: string) => { const d = join(dir, `floor-${transport}-${name}`); mkdirSync(d, { recursive: true }); return d; };
    const b = await spawnFloorNode({ role: 'b', transport, ...tls(dataB), appKey: appPub, seed: hex(keysB.privateKey), dir: dirOf('b') });
    let a: FloorProcess;
    try {
      const [host, port] = b.ready.peer!.split(':');
      a = await spawnFloorNode({ role: 'a', transport, ...tls(dataA), appKey: appPub, seed: hex(keysA.privateKey), dir: dirOf('a'), peer: { host: host!, port: Number(port), key: hex(keysB.publicKey) } });
    } catch (err) {
      b.child.kill('SIGKILL');
      throw err;
    }
    const def = protoLoader.loadSync(join(ROOT, 'bench', 'reference', 'raw.proto'), { longs: Number, defaults: true });
    const Raw = (grpc.loadPackageDefinition(def) as any).rawbench.Raw;
    const client = (address: string, data: string) => new Raw(address, grpc.credentials.createSsl(readFileSync(join(data, 'tls/ca.crt'))), {
      'grpc.max_receive_message_length': 64 << 20, 'grpc-node.flow_control_window': CLIENT_FLOW_CONTROL_WINDOW,
      'grpc.ssl_target_name_override': 'localhost', // as gateway/client/client.ts names an IP target's server
    });
    return new FloorPair(transport, a, b, client(a.ready.grpc, dataA), client(b.ready.grpc, dataB), appKey);
  }

  pids(): { a?: number; b?: number } { return { a: this.a.child.pid, b: this.b.child.pid }; }

  /** `count` messages of `bytes` through A to B's subscriber with `concurrency` unanswered; bounded by `limitMs`. */
  async hop(bytes: number, count: number, concurrency: number, limitMs: number): Promise<FloorHop> {
    const errors: string[] = [];
    // Signed before the clock starts, like the nodes' app seals before it.
    const messages = Array.from({ length: count }, () => {
      const ref = this.nextRef++;
      const data = randomBytes(bytes);
      return { ref, data, sig: sign(this.appKey.privateKey, data.subarray(0, SIGNED_BYTES)) };
    });
    const submittedAt = new Map<number, number>();
    const latencies: number[] = [];
    let arrived = 0;
    let lastArrival = 0;
    let allArrived!: () => void;
    const arrivedAll = new Promise<void>((r) => { allArrived = r; });
    const sub = this.toB.Subscribe();
    let toAck: number[] = [];
    const flushAcks = () => { sub.write({ refs: toAck }); toAck = []; };
    sub.on('data', (blob: { ref: number }) => {
      if (toAck.length === 0) setImmediate(flushAcks);
      toAck.push(blob.ref);
      const t0 = submittedAt.get(blob.ref);
      if (t0 === undefined) return;
      submittedAt.delete(blob.ref);
      lastArrival = performance.now();
      latencies.push(lastArrival - t0);
      if (++arrived >= count) allArrived();
    });
    sub.on('error', (err: Error) => { if (!/CANCELLED/.test(err.message)) errors.push(`subscribe: ${err.message}`); allArrived(); });
    sub.write({ refs: [] }); // starts the call at B before the first message arrives

    const pids = this.pids();
    const cpu0 = [cpuSeconds(pids.a), cpuSeconds(pids.b)];
    const written0 = [writtenBytes(pids.a), writtenBytes(pids.b)];
    const rss = { a: 0, b: 0 };
    const sampler = setInterval(() => { rss.a = Math.max(rss.a, rssMb(pids.a)); rss.b = Math.max(rss.b, rssMb(pids.b)); }, 200);
    const bench0 = process.cpuUsage();
    const deadline = Date.now() + limitMs;
    const start = performance.now();
    await new Promise<void>((resolve) => {
      const call = this.toA.Bidi();
      let next = 0;
      let open = 0;
      const fill = () => {
        while (next < count && open < concurrency && Date.now() < deadline) {
          const m = messages[next++]!;
          open++;
          submittedAt.set(m.ref, performance.now());
          call.write(m);
        }
        if (open === 0 && (next >= count || Date.now() >= deadline)) call.end();
      };
      call.on('data', () => { open--; fill(); });
      call.on('error', (err: Error) => { errors.push(`submit: ${err.message}`); resolve(); });
      call.on('end', () => resolve());
      fill();
    });
    let limitTimer: NodeJS.Timeout | undefined;
    await Promise.race([arrivedAll, new Promise<void>((r) => { limitTimer = setTimeout(r, Math.max(0, deadline - Date.now())); })]);
    clearTimeout(limitTimer);
    clearInterval(sampler);
    const elapsedMs = (lastArrival || performance.now()) - start;
    const seconds = elapsedMs / 1000;
    const cpuA = (cpuSeconds(pids.a) - cpu0[0]!) / seconds;
    const cpuB = (cpuSeconds(pids.b) - cpu0[1]!) / seconds;
    const cpuBench = ownCpuSeconds(bench0) / seconds;
    const [kibA, kibB] = [pids.a, pids.b].map((pid, i) => (writtenBytes(pid) - written0[i]!) / 1024 / Math.max(1, arrived));
    if (toAck.length) flushAcks();
    await new Promise((r) => setTimeout(r, 200)); // the last acks reach B before the call ends
    sub.cancel();
    if (arrived < count) errors.push(`only ${arrived}/${count} arrived at the subscriber within ${limitMs} ms`);
    latencies.sort((x, y) => x - y);
    return {
      rate: (arrived / elapsedMs) * 1000, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), arrived, n: count, elapsedMs,
      cpuA, cpuB, cpuBench, rssA: rss.a, rssB: rss.b, kibA: kibA!, kibB: kibB!, errors,
    };
  }

  async stop(): Promise<void> {
    this.toA.close();
    this.toB.close();
    await stopProcess(this.a);
    await stopProcess(this.b);
  }
}
