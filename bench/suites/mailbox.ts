// npm run bench:mailbox — 10 KB messages, Submit -> Subscribe on one node (durable), next to the raw
// @grpc/grpc-js ceilings measured in the same run (unary; bidi with a per-message ack; no storage).
// Server and client are separate processes in both cases; raw and node rounds alternate (BENCH_ROUNDS,
// default 3, medians shown). Bounded in count and time; never fails on speed.
// A third server, the "floor" (bench/floors/floor-server.ts), does only the work every accepted message must
// cost (one Ed25519 verification, a durable SQLite insert) over the same grpc-js: its rows show how close
// to the raw ceiling any server that verifies and stores can get on this machine (BENCH_FLOOR=0 skips it).
import { readFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { initNode, addMailbox } from '../../gateway/datadir/index.ts';
import { generateSigningKeyPair, sign } from '../../identity/index.ts';
import { connect, profileResolver, sealFor, submit, subscribe, type Clients } from '../../gateway/client/index.ts';
import type { Envelope } from '../../proto/index.ts';
import { CLIENT_FLOW_CONTROL_WINDOW } from '../../gateway/core/index.ts';
import { cpuSeconds, ownCpuSeconds, rssMb } from '../helpers/proc.ts';
import { medianBy, percentile } from '../helpers/stats.ts';
import { SIGNED_BYTES } from '../floors/floor-store.ts';
import { spawnReady, stopProcess, type ReadyProcess } from '../helpers/processes.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const NODE = join(ROOT, 'node_modules', '.bin', 'node');
const PAYLOAD = 10 * 1024;
const COUNT = Number(process.env.BENCH_COUNT ?? 5000);
/** Untimed messages per path before the rounds: grpc-js's own paths need a few thousand calls to warm up. */
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 64);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const TIME_LIMIT_MS = 60_000;
const FLOOR = process.env.BENCH_FLOOR !== '0';

interface Figures {
  rate: number; p50: number; p99: number; n: number;
  /** CPU per message (all threads) of the server (raw or node) and of this client process, ms. */
  serverCpuMs?: number; clientCpuMs?: number;
}

/** Runs one measured round and adds the CPU per message that the server process and this process spent in it. */
async function withCpu(serverPid: number | undefined, round: () => Promise<Figures>): Promise<Figures> {
  const server0 = cpuSeconds(serverPid);
  const client0 = process.cpuUsage();
  const f = await round();
  return { ...f, serverCpuMs: ((cpuSeconds(serverPid) - server0) * 1000) / f.n, clientCpuMs: (ownCpuSeconds(client0) * 1000) / f.n };
}

function summarize(latencies: number[], elapsedMs: number): Figures {
  const sorted = [...latencies].sort((a, b) => a - b);
  return { rate: (latencies.length / elapsedMs) * 1000, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), n: latencies.length };
}

/** Runs `count` unary operations with `concurrency` in flight; returns latencies. */
async function closedLoop(count: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<Figures> {
  const latencies: number[] = [];
  let next = 0;
  const deadline = Date.now() + TIME_LIMIT_MS;
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count && Date.now() < deadline) {
      const i = next++;
      const t0 = performance.now();
      await op(i);
      latencies.push(performance.now() - t0);
    }
  }));
  return summarize(latencies, performance.now() - start);
}

/** Streams `count` requests over one bidi call with at most `window` unanswered; replies carry the ref. */
function streamed(count: number, window: number, open: () => grpc.ClientDuplexStream<any, any>, request: (i: number) => any, refOf: (reply: any) => number): Promise<Figures> {
  return new Promise((resolve, reject) => {
    const call = open();
    const sentAt = new Map<number, number>();
    const latencies: number[] = [];
    let sent = 0;
    const start = performance.now();
    const deadline = Date.now() + TIME_LIMIT_MS;
    const fill = () => {
      while (sent < count && sentAt.size < window && Date.now() < deadline) {
        sentAt.set(sent, performance.now());
        call.write(request(sent));
        sent++;
      }
      if ((sent >= count || Date.now() >= deadline) && sentAt.size === 0) call.end();
    };
    call.on('data', (reply: any) => {
      if (reply.error) { reject(new Error(reply.error.message)); return; }
      const ref = refOf(reply);
      latencies.push(performance.now() - sentAt.get(ref)!);
      sentAt.delete(ref);
      fill();
    });
    call.on('end', () => resolve(summarize(latencies, performance.now() - start)));
    call.on('error', reject);
    fill();
  });
}

function row(name: string, f: Figures, ref?: Figures): string {
  const ratio = ref ? `${((f.rate / ref.rate) * 100).toFixed(0)}% of raw` : '';
  // Cores busy = CPU per message x rate: well below the machine's cores means the loop waits, not works.
  const cpu = f.serverCpuMs !== undefined
    ? `  CPU/msg server ${f.serverCpuMs.toFixed(3)} ms, client ${f.clientCpuMs!.toFixed(3)} ms (${(((f.serverCpuMs + f.clientCpuMs!) * f.rate) / 1000).toFixed(2)} of ${availableParallelism()} cores)`
    : '';
  return `${name.padEnd(44)} ${f.rate.toFixed(0).padStart(7)} msg/s  p50 ${f.p50.toFixed(2).padStart(6)} ms  p99 ${f.p99.toFixed(2).padStart(6)} ms  ${ratio.padEnd(11)}${cpu}`;
}

/** The median round by rate; its latencies come from that same round. */
const median = (runs: Figures[]): Figures => medianBy(runs, (f) => f.rate)!;

function rates(runs: Figures[]): string {
  return `rounds ${runs.map((f) => f.rate.toFixed(0)).join(', ')}`;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'asmtp-bench-'));
  const servers: ReadyProcess<{ grpc: string }>[] = [];
  /** A server process of this bench; its stderr goes to ours. */
  const start = async (name: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env) => {
    const p = await spawnReady<{ grpc: string }>(name, command, args, { env, echoStderr: true });
    servers.push(p);
    return p;
  };
  try {
    const data = join(dir, 'node');
    await initNode({ dataDir: data, domain: 'bench.test', grpcPort: 0, logLevel: 'warn' });
    const alice = addMailbox({ dataDir: data, address: 'alice@bench.test', profileFile: join(dir, 'alice.json') });
    const bob = addMailbox({ dataDir: data, address: 'bob@bench.test', profileFile: join(dir, 'bob.json') });

    // Both servers run side by side and their rounds alternate (raw, node, raw, node, ...): this machine's
    // speed drifts by tens of percent within a minute, so a ratio of figures taken minutes apart would
    // measure the drift as much as the node. Each figure is the median of ROUNDS rounds.
    const raw = await start('raw server', NODE, [join(ROOT, 'bench', 'reference', 'raw-server.ts'), join(data, 'tls/server.crt'), join(data, 'tls/server.key')]);
    const def = protoLoader.loadSync(join(ROOT, 'bench', 'reference', 'raw.proto'), { longs: Number, defaults: true });
    const rawPkg = grpc.loadPackageDefinition(def) as any;
    // TLS names the server "localhost" (in the node's certificate), as gateway/client/client.ts does for IP targets.
    const rawWindows = { 'grpc.ssl_target_name_override': 'localhost', ...(process.env.BENCH_RAW_WINDOWS === 'default' ? {} : { 'grpc-node.flow_control_window': CLIENT_FLOW_CONTROL_WINDOW }) };
    const blob = Buffer.alloc(PAYLOAD, 7);
    /** A client of a raw.proto server (raw or floor): its unary call and its bidi run, `sig` sent along if given. */
    const rawPaths = (address: string, sig?: Buffer) => {
      const client = new rawPkg.rawbench.Raw(address, grpc.credentials.createSsl(readFileSync(join(data, 'tls/ca.crt'))), rawWindows);
      const request = (i: number) => ({ data: blob, ref: i, ...(sig ? { sig } : {}) });
      return {
        unary: (i: number) => new Promise((res, rej) => client.Unary(request(i), (e: Error | null, r: unknown) => (e ? rej(e) : res(r)))),
        bidi: (count: number) => streamed(count, WINDOW, () => client.Bidi(), request, (r) => r.ref),
        close: () => client.close(),
      };
    };
    const rawCalls = rawPaths(raw.ready.grpc);

    // The floor: same client code, the blob signed once (verification costs the same for any message).
    const floorKeys = generateSigningKeyPair();
    const floorPub = Buffer.from(floorKeys.publicKey).toString('hex');
    const floorDir = join(dir, 'floor');
    const floor = FLOOR
      ? (mkdirSync(floorDir), await start('floor server', NODE, [join(ROOT, 'bench', 'floors', 'floor-server.ts'), join(data, 'tls/server.crt'), join(data, 'tls/server.key'), floorPub, floorDir]))
      : undefined;
    const floorCalls = floor ? rawPaths(floor.ready.grpc, Buffer.from(sign(floorKeys.privateKey, blob.subarray(0, SIGNED_BYTES)))) : undefined;

    // BENCH_PROFILE=DIR writes a V8 CPU profile of the node process there (for finding hot spots).
    const profile = process.env.BENCH_PROFILE ? `--cpu-prof --cpu-prof-dir=${process.env.BENCH_PROFILE}` : '';
    // BENCH_NODE_FLAGS="--flag ..." passes Node/V8 flags to the node process only, through NODE_OPTIONS
    // (the launcher's own flags, in its shebang, take precedence).
    const nodeOptions = [profile, process.env.BENCH_NODE_FLAGS ?? ''].filter(Boolean).join(' ');
    // Started as `npx aftersmtp start` runs it: the command file through its shebang, node from node_modules.
    const node = await start('node', join(ROOT, 'bin', 'aftersmtp.js'), ['start', '--data', data], {
      ...process.env,
      PATH: `${join(ROOT, 'node_modules', '.bin')}:${process.env.PATH}`,
      ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}),
    });
    await new Promise((r) => setTimeout(r, 500));
    const idleRss = rssMb(node.child.pid!);
    const aliceClients: Clients = connect(alice, node.ready.grpc);
    const resolver = profileResolver(alice);
    const text = 'x'.repeat(PAYLOAD);
    const knownDids = { 'bob@bench.test': bob.did };
    const sealBatch = async (n: number): Promise<Envelope[]> => {
      const out: Envelope[] = [];
      for (let i = 0; i < n; i++) out.push((await sealFor(alice, aliceClients, resolver, { to: ['bob@bench.test'], subject: 'bench', text, knownDids })).envelope);
      return out;
    };
    const nodeUnary = (envelopes: Envelope[]) => closedLoop(envelopes.length, CONCURRENCY, (i) => submit(aliceClients, envelopes[i]!));
    const nodeStream = (envelopes: Envelope[]) => streamed(envelopes.length, WINDOW, () => aliceClients.mailbox.SubmitStream(aliceClients.metadata) as any,
      (i) => ({ envelope: envelopes[i], clientRef: i }), (r) => r.clientRef);

    // Warm-up of every path (JIT, connections, the node's first commits), not counted.
    for (const calls of [rawCalls, floorCalls]) {
      if (!calls) continue;
      await closedLoop(WARMUP, CONCURRENCY, calls.unary);
      await calls.bidi(WARMUP);
    }
    let stored = 0;
    for (const run of [nodeUnary, nodeStream]) {
      const warm = await sealBatch(WARMUP);
      await run(warm);
      stored += warm.length;
    }

    // Sealing is the client's work: it happens before each timed round, so the figures are the node's.
    const figures = { rawUnary: [] as Figures[], floorUnary: [] as Figures[], unary: [] as Figures[], rawBidi: [] as Figures[], floorBidi: [] as Figures[], stream: [] as Figures[] };
    let loadedRss = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const forUnary = await sealBatch(COUNT);
      const forStream = await sealBatch(COUNT);
      figures.rawUnary.push(await withCpu(raw.child.pid, () => closedLoop(COUNT, CONCURRENCY, rawCalls.unary)));
      if (floor && floorCalls) figures.floorUnary.push(await withCpu(floor.child.pid, () => closedLoop(COUNT, CONCURRENCY, floorCalls.unary)));
      figures.unary.push(await withCpu(node.child.pid, () => nodeUnary(forUnary)));
      if (round === 0) loadedRss = rssMb(node.child.pid!);
      figures.rawBidi.push(await withCpu(raw.child.pid, () => rawCalls.bidi(COUNT)));
      if (floor && floorCalls) figures.floorBidi.push(await withCpu(floor.child.pid, () => floorCalls.bidi(COUNT)));
      figures.stream.push(await withCpu(node.child.pid, () => nodeStream(forStream)));
      stored += forUnary.length + forStream.length;
    }
    rawCalls.close();
    floorCalls?.close();

    // Subscribe: drain everything stored, decrypting and verifying each, acking each.
    const bobClients = connect(bob, node.ready.grpc);
    const t0 = performance.now();
    let verified = 0;
    await subscribe(bob, bobClients, profileResolver(bob), { count: stored, maxInFlight: 256, onMessage: (m) => { if (m.verified) verified++; } });
    const subscribeRate = (stored / (performance.now() - t0)) * 1000;
    const afterRss = rssMb(node.child.pid!);
    bobClients.close();
    aliceClients.close();

    const [rawUnary, unary, rawStream, stream] = [median(figures.rawUnary), median(figures.unary), median(figures.rawBidi), median(figures.stream)];
    console.log(`\nbench:mailbox  payload ${PAYLOAD} B, ${COUNT} msgs per round, ${ROUNDS} rounds (median shown), ${CONCURRENCY} unary in flight, stream window ${WINDOW}`);
    console.log(`${row('raw grpc-js unary (no storage)', rawUnary)}  ${rates(figures.rawUnary)}`);
    console.log(`${row('raw grpc-js bidi, per-message ack', rawStream)}  ${rates(figures.rawBidi)}`);
    if (floor) {
      console.log(`${row('floor unary (verify + durable insert only)', median(figures.floorUnary), rawUnary)}  ${rates(figures.floorUnary)}`);
      console.log(`${row('floor bidi (verify + durable insert only)', median(figures.floorBidi), rawStream)}  ${rates(figures.floorBidi)}`);
    }
    console.log(`${row('node Submit (unary, durable)', unary, rawUnary)}  ${rates(figures.unary)}`);
    console.log(`${row('node SubmitStream (durable)', stream, rawStream)}  ${rates(figures.stream)}`);
    console.log(`${'node Subscribe (decrypt+verify+ack, client)'.padEnd(44)} ${subscribeRate.toFixed(0).padStart(7)} msg/s  (${verified}/${stored} verified)`);
    console.log(`node RSS: idle ${idleRss.toFixed(0)} MB, after unary load ${loadedRss.toFixed(0)} MB, after subscribe ${afterRss.toFixed(0)} MB`);
    console.log(`targets: unary >= 70% of raw unary (${((unary.rate / rawUnary.rate) * 100).toFixed(0)}%), stream >= 50% of raw bidi (${((stream.rate / rawStream.rate) * 100).toFixed(0)}%), idle RSS <= 120 MB`);
    if (floor) {
      const pct = (a: Figures, b: Figures) => `${((a.rate / b.rate) * 100).toFixed(0)}%`;
      console.log(`the floor (verify + durable insert, nothing else) reaches ${pct(median(figures.floorUnary), rawUnary)} of raw unary and ${pct(median(figures.floorBidi), rawStream)} of raw bidi; the node reaches ${pct(unary, median(figures.floorUnary))} and ${pct(stream, median(figures.floorBidi))} of the floor`);
    }
  } finally {
    await Promise.all(servers.map((p) => stopProcess(p)));
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
