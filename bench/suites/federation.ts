// npm run bench:federation (node_modules/.bin/node bench/suites/federation.ts) — the federation hop between two
// nodes (a.test, b.test), separate processes on 127.0.0.1, each with its own data directory.
// alice@a.test's app seals 2 KB and 50 KB messages to bob@b.test BEFORE timing, then submits them to A
// with CONCURRENCY calls in flight; A stores each durably, relays it to B (QUIC, then in a second pass
// HTTP/2 only), B stores it durably and pushes it to bob's subscriber, which acks it. Figures: msgs/s
// from the first submit to the last arrival at bob's subscriber, per-message latency submit -> arrival
// (p50/p99), the RSS of both node processes sampled during the run, their CPU and the bytes each wrote
// to storage per message (/proc/PID/io); each row is the median of
// BENCH_ROUNDS rounds (default 3, sizes alternating). Next to them: Postfix's durable acceptance rate with
// `smtp-source -s 10 -m N` (bench/reference/federation-postfix.ts), measured between the same rounds, and the
// "floor" (bench/floors/federation-floor.ts): two processes doing only the work the hop requires, whose rounds
// follow the nodes' (BENCH_FLOOR=0 skips them).
// Bounded in count and time; never fails because something is slow. All traffic on 127.0.0.1.
import { writeFileSync, mkdtempSync, readFileSync, rmSync, openSync, writeSync, fsyncSync, closeSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { buildRfc5322, connect, openDelivery, profileResolver, readProfile, sealFor, submit, type Clients, type MailboxProfile } from '../../gateway/client/index.ts';
import type { Delivery__Output, Envelope, Envelope__Output } from '../../proto/index.ts';
import { encodeEnvelope } from '../../identity/index.ts';
import { envelopeFromWire } from '../../gateway/core/index.ts';
import { FloorPair, type FloorHop } from '../floors/federation-floor.ts';
import { cli, CLI, NODE_ENV } from '../helpers/node-cli.ts';
import { bodyFor } from '../helpers/messages.ts';
import { submitStream } from '../helpers/submit-stream.ts';
import { killAll, spawnReady, stopProcess, type ReadyProcess } from '../helpers/processes.ts';
import { findExecutable, INSTALL_HINT, smtpSource, startPostfix, type PostfixInstance, type SourceRun } from '../reference/federation-postfix.ts';
import { cpuSeconds, ownCpuSeconds, rssMb, writtenBytes } from '../helpers/proc.ts';
import { medianBy, percentile } from '../helpers/stats.ts';

const num = (name: string, dflt: number) => { const v = Number(process.env[name]); return Number.isFinite(v) && v > 0 ? v : dflt; };

const SIZES = [
  { label: '2 KB', bytes: 2 * 1024, count: num('BENCH_COUNT_2K', 5000) },
  { label: '50 KB', bytes: 50 * 1024, count: num('BENCH_COUNT_50K', 1500) },
];
/** Floor rounds (bench/floors/federation-floor.ts) beside the nodes' for each transport; BENCH_FLOOR=0 skips them. */
const FLOOR = process.env.BENCH_FLOOR !== '0';
const TRANSPORTS = (process.env.BENCH_TRANSPORTS ?? 'quic,http2').split(',').map((t) => t.trim()).filter((t): t is 'quic' | 'http2' => t === 'quic' || t === 'http2');
const CONCURRENCY = num('BENCH_CONCURRENCY', 32);
/** How the app submits: 'stream' (SubmitStream, the bulk path; default) or 'unary' (one Submit call per message). */
const SUBMIT_MODE = process.env.BENCH_SUBMIT === 'unary' ? 'unary' : 'stream';
const WARMUP = num('BENCH_WARMUP', 100);
const RUN_LIMIT_MS = num('BENCH_RUN_LIMIT_MS', 40_000);
/** Timed rounds per transport and size; the median round is reported. */
const ROUNDS = num('BENCH_ROUNDS', 3);
const POSTFIX_SESSIONS = 10;
const POSTFIX_LIMIT_MS = 90_000;
const RSS_TARGET_MB = 300;
const SAMPLE_VERIFY = 8;

// --- processes ------------------------------------------------------------------------------------

type RunningNode = ReadyProcess<{ grpc: string; quic: string; relay: string; did: string; http: string; metrics: string }>;

/** The store's group commits a node has made so far (its /metrics counter, from its loopback metrics listener). */
function storeCommits(node: RunningNode): Promise<number> {
  return new Promise((resolve) => {
    const req = httpRequest(`http://${node.ready.metrics}/metrics`, { timeout: 5000,
      // A fresh connection each time: a kept-alive one may have been closed by the node while the app sealed.
      agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => {
        const commits = Number(/^aftersmtp_store_commits_total (\d+)$/m.exec(body)?.[1] ?? NaN);
        if (Number.isNaN(commits)) console.log(`  (${node.name}'s /metrics: HTTP ${res.statusCode}, no store commit counter; its msg/commit shows -)`);
        resolve(commits);
      });
    });
    req.on('error', (err) => {
      console.log(`  (${node.name}'s /metrics unreadable: ${err.message}; its msg/commit shows -)`);
      resolve(NaN);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

function startNode(name: string, dataDir: string): Promise<RunningNode> {
  // BENCH_PROFILE=DIR writes a V8 CPU profile of each node process there (written when it stops).
  // BENCH_NODE_FLAGS="--flag ..." passes Node/V8 flags to the node processes only (e.g. heap sizing).
  const flags = [
    ...(process.env.BENCH_PROFILE ? [`--cpu-prof --cpu-prof-dir=${process.env.BENCH_PROFILE} --cpu-prof-name=${name}-${Date.now()}.cpuprofile`] : []),
    ...(process.env.BENCH_NODE_FLAGS ? [process.env.BENCH_NODE_FLAGS] : []),
  ];
  const profile = flags.length ? { NODE_OPTIONS: flags.join(' ') } : {};
  return spawnReady(name, CLI, ['start', '--data', dataDir], { env: { ...process.env, ...NODE_ENV, ...profile } });
}

// --- measurements ---------------------------------------------------------------------------------

/** Samples the RSS of the current nodes every 200 ms; keeps the maximum per node name and per window. */
class RssSampler {
  readonly overall: Record<string, number> = {};
  window: Record<string, number> = {};
  private readonly timer: NodeJS.Timeout;
  private readonly nodes: () => (RunningNode | undefined)[];
  constructor(nodes: () => (RunningNode | undefined)[]) {
    this.nodes = nodes;
    this.timer = setInterval(() => this.sample(), 200);
    this.timer.unref();
  }
  sample(): void {
    for (const n of this.nodes()) {
      if (!n) continue;
      const mb = rssMb(n.child.pid);
      if (!Number.isFinite(mb)) continue;
      this.overall[n.name] = Math.max(this.overall[n.name] ?? 0, mb);
      this.window[n.name] = Math.max(this.window[n.name] ?? 0, mb);
    }
  }
  resetWindow(): void { this.window = {}; this.sample(); }
  stop(): void { clearInterval(this.timer); }
}

/** Small write + fsync per iteration in `dir` (at most 300 or 3 s): the disk's durable-commit rate now. */
function fsyncRate(dir: string): number {
  const file = join(dir, 'fsync-probe');
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(4096, 1);
  const deadline = performance.now() + 3000;
  const t0 = performance.now();
  let n = 0;
  try {
    while (n < 300 && performance.now() < deadline) { writeSync(fd, block, 0, block.length, 0); fsyncSync(fd); n++; }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  return (n / (performance.now() - t0)) * 1000;
}

interface HopResult {
  transport: string; size: string; bytes: number; n: number; arrived: number;
  rate: number; submitRate: number; p50: number; p99: number; elapsedMs: number;
  rssA: number; rssB: number; cpuA: number; cpuB: number; cpuBench: number;
  /** KiB A and B wrote to storage per arrived message (WAL, checkpoints). */
  kibA: number; kibB: number;
  /** Messages per store commit at A and B (NaN for the floor's processes). */
  perCommitA: number; perCommitB: number;
  verified: number; sampled: number; errors: string[];
  /** Size of one message's envelope as the nodes store and relay it (the floor's rounds use it). */
  envelopeBytes: number;
  /** Hop rates of every round (the row shows the median round). */
  rounds?: number[];
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

interface Ctx { a: () => RunningNode; b: () => RunningNode; dataA: string; dataB: string; alice: MailboxProfile; bob: MailboxProfile; rss: RssSampler }

/**
 * Seals `count` messages (untimed), then submits them to A with CONCURRENCY in flight while bob's
 * subscriber at B records each arrival and acks it. Bounded by RUN_LIMIT_MS.
 */
async function hop(ctx: Ctx, transport: string, size: { label: string; bytes: number }, count: number): Promise<HopResult> {
  const { alice, bob } = ctx;
  const errors: string[] = [];
  const aliceClients: Clients = connect(alice, ctx.a().ready.grpc);
  const bobClients: Clients = connect(bob, ctx.b().ready.grpc);
  try {
    // Sealing is the app's work and happens before the clock starts; bob's DID is known to the app.
    const resolver = profileResolver(alice);
    const text = bodyFor(size.bytes, alice.address, bob.address);
    const knownDids = { [bob.address]: bob.did };
    const envelopes: Envelope[] = [];
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      const sealed = await sealFor(alice, aliceClients, resolver, { to: [bob.address], subject: 'bench', text, knownDids });
      envelopes.push(sealed.envelope);
      ids.push(hex(sealed.messageId));
    }
    const envelopeBytes = encodeEnvelope(envelopeFromWire(envelopes[0] as Envelope__Output)).length;
    const submittedAt = new Map<string, number>();
    const latencies: number[] = [];
    const samples: Delivery__Output[] = [];
    const sampleEvery = Math.max(1, Math.floor(count / SAMPLE_VERIFY));
    let arrived = 0;
    let lastArrival = 0;
    let toAck: number[] = [];
    let acked = 0;
    let confirmed = 0;

    // Bob's subscriber: records arrivals, acks in small batches, keeps a few frames to verify later.
    const call: grpc.ClientDuplexStream<any, Delivery__Output> = bobClients.mailbox.Subscribe(bobClients.metadata);
    let allArrived!: () => void;
    const arrivedAll = new Promise<void>((r) => { allArrived = r; });
    let allConfirmed!: () => void;
    const confirmedAll = new Promise<void>((r) => { allConfirmed = r; });
    let subscribeError: Error | undefined;
    const flushAcks = () => {
      if (toAck.length === 0) return;
      acked += toAck.length;
      call.write({ ack: { seqs: toAck } });
      toAck = [];
    };
    call.on('data', (frame: Delivery__Output) => {
      if (frame.confirmedAcks.length) {
        confirmed += frame.confirmedAcks.length;
        if (arrived >= count && confirmed >= acked) allConfirmed();
        return;
      }
      if (toAck.length === 0) setImmediate(flushAcks);
      toAck.push(frame.seq);
      const id = frame.envelope ? hex(frame.envelope.messageId) : '';
      const t0 = submittedAt.get(id);
      if (t0 === undefined) return; // an earlier run's leftover: acked, not counted
      submittedAt.delete(id);
      const now = performance.now();
      latencies.push(now - t0);
      lastArrival = now;
      if (arrived++ % sampleEvery === 0 && samples.length < SAMPLE_VERIFY) samples.push(frame);
      if (arrived >= count) allArrived();
    });
    call.on('error', (err) => { subscribeError = err; allArrived(); allConfirmed(); });
    call.write({ start: { fromCursor: 0, maxInFlight: 256 } });

    ctx.rss.resetWindow();
    // The counters first: the HTTPS reads are not the nodes' work for this run.
    const commits0 = await Promise.all([storeCommits(ctx.a()), storeCommits(ctx.b())]);
    const cpu0 = [cpuSeconds(ctx.a().child.pid), cpuSeconds(ctx.b().child.pid)];
    const written0 = [writtenBytes(ctx.a().child.pid), writtenBytes(ctx.b().child.pid)];
    const bench0 = process.cpuUsage();
    const deadline = Date.now() + RUN_LIMIT_MS;
    const start = performance.now();
    let lastReply = start;
    let next = 0;
    const onReply = (i: number, reply: { queuedRemote: string[] }) => {
      if (reply.queuedRemote[0] !== bob.address && errors.length < 5) errors.push(`submit ${i}: not queued for ${bob.address}`);
      lastReply = performance.now();
    };
    const onFailure = (i: number, message: string) => {
      submittedAt.delete(ids[i]!);
      if (errors.length < 5) errors.push(`submit ${i}: ${message}`);
      lastReply = performance.now();
    };
    const submitted = SUBMIT_MODE === 'unary'
      // CONCURRENCY unary Submit calls in flight over one channel.
      ? await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (next < count && Date.now() < deadline) {
          const i = next++;
          submittedAt.set(ids[i]!, performance.now());
          try { onReply(i, await submit(aliceClients, envelopes[i]!)); } catch (err) { onFailure(i, (err as Error).message); }
        }
      })).then(() => next)
      // One SubmitStream (the bulk sender's path) with at most CONCURRENCY messages unanswered.
      : await submitStream(aliceClients, envelopes, {
        concurrency: CONCURRENCY, deadline, onReply, onFailure,
        onSubmit: (i) => submittedAt.set(ids[i]!, performance.now()),
        onStreamError: (message) => { if (errors.length < 5) errors.push(`SubmitStream: ${message}`); },
      });
    const remaining = Math.max(0, deadline - Date.now());
    let limitTimer: NodeJS.Timeout | undefined;
    await Promise.race([arrivedAll, new Promise<void>((r) => { limitTimer = setTimeout(r, remaining); })]);
    clearTimeout(limitTimer);
    const end = lastArrival || performance.now();
    ctx.rss.sample();
    const cpuA = cpuSeconds(ctx.a().child.pid) - cpu0[0]!;
    const cpuB = cpuSeconds(ctx.b().child.pid) - cpu0[1]!;
    const [kibA, kibB] = [ctx.a().child.pid, ctx.b().child.pid].map((pid, i) => (writtenBytes(pid) - written0[i]!) / 1024 / Math.max(1, arrived));
    const [commitsA, commitsB] = (await Promise.all([storeCommits(ctx.a()), storeCommits(ctx.b())])).map((n, i) => Math.max(1, arrived) / (n - commits0[i]!));
    const benchCpu = ownCpuSeconds(bench0);
    if (subscribeError) errors.push(`subscribe: ${subscribeError.message}`);
    if (arrived < count) errors.push(`only ${arrived}/${count} arrived at bob within ${RUN_LIMIT_MS} ms (${submitted} submitted)`);

    // Wait (bounded) until B confirms the acks, so the next run starts with an empty mailbox.
    flushAcks();
    let ackTimer: NodeJS.Timeout | undefined;
    if (confirmed < acked) await Promise.race([confirmedAll, new Promise<void>((r) => { ackTimer = setTimeout(r, 15_000); })]);
    clearTimeout(ackTimer);
    call.cancel();

    // Bob verifies a sample (decrypt + signature check against alice's DID); untimed.
    let verified = 0;
    const bobResolver = profileResolver(bob);
    for (const frame of samples) {
      const m = await openDelivery(bob, bobResolver, frame);
      if (m.verified && m.from === alice.address && m.body && m.body.length === size.bytes) verified++;
      else if (errors.length < 5) errors.push(`message ${m.messageId} did not verify: ${m.reason ?? `body ${m.body?.length} B`}`);
    }

    latencies.sort((x, y) => x - y);
    const elapsedMs = end - start;
    return {
      transport, size: size.label, bytes: size.bytes, n: count, arrived,
      rate: (arrived / elapsedMs) * 1000, submitRate: (submitted / (lastReply - start)) * 1000,
      p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), elapsedMs,
      rssA: ctx.rss.window.a ?? NaN, rssB: ctx.rss.window.b ?? NaN,
      cpuA: cpuA / (elapsedMs / 1000), cpuB: cpuB / (elapsedMs / 1000),
      cpuBench: benchCpu / (elapsedMs / 1000), kibA: kibA!, kibB: kibB!, perCommitA: commitsA!, perCommitB: commitsB!,
      verified, sampled: samples.length, errors, envelopeBytes,
    };
  } finally {
    aliceClients.close();
    bobClients.close();
  }
}

/** A floor round as a row of the report (no sampled verification: the floor carries no envelopes). */
function floorResult(transport: string, size: { label: string; bytes: number }, f: FloorHop): HopResult {
  return {
    transport: `floor-${transport}`, size: size.label, bytes: size.bytes, n: f.n, arrived: f.arrived,
    rate: f.rate, submitRate: NaN, p50: f.p50, p99: f.p99, elapsedMs: f.elapsedMs,
    rssA: f.rssA, rssB: f.rssB, cpuA: f.cpuA, cpuB: f.cpuB, cpuBench: f.cpuBench, kibA: f.kibA, kibB: f.kibB, perCommitA: NaN, perCommitB: NaN,
    verified: 0, sampled: 0, errors: f.errors, envelopeBytes: NaN,
  };
}

// --- Postfix reference ---------------------------------------------------------------------------

interface PostfixFigures { rate: number; runs: number[]; note: string }

/**
 * The benchmark Postfix, started once and measured between the hop rounds (one `smtp-source` run per
 * size after each round), so both sides of a ratio see the same stretch of this machine's drifting
 * speed. The nodes are idle meanwhile (nothing in flight), and Postfix is idle during the hops.
 */
class PostfixReference {
  readonly status: string;
  readonly #runs = new Map<string, SourceRun[]>();
  readonly #files = new Map<string, string>();
  #source?: string;
  #instance?: PostfixInstance;

  private constructor(status: string) {
    this.status = status;
  }

  static async start(dir: string): Promise<PostfixReference> {
    if (process.env.BENCH_POSTFIX === '0') return new PostfixReference('Postfix reference skipped (BENCH_POSTFIX=0). AfterSMTP figures only.');
    const postfix = findExecutable('postfix');
    const source = findExecutable('smtp-source');
    if (!postfix || !source) {
      return new PostfixReference(`Postfix reference SKIPPED: ${[!postfix && 'postfix', !source && 'smtp-source'].filter(Boolean).join(' and ')} not found. Install it (Debian, as root) with:\n  ${INSTALL_HINT}\nthen run this bench again. AfterSMTP figures only.`);
    }
    let instance: PostfixInstance;
    try {
      instance = await startPostfix(postfix, dir);
    } catch (err) {
      return new PostfixReference(`Postfix reference SKIPPED: could not start the benchmark Postfix: ${(err as Error).message}`);
    }
    const ref = new PostfixReference(`Postfix reference: ${instance.where}, 127.0.0.1:2526, durable queue then discard, in_flow_delay as shipped (1s)`);
    ref.#instance = instance;
    ref.#source = source;
    for (const size of SIZES) {
      const file = join(dir, `postfix-${size.bytes}.eml`);
      writeFileSync(file, buildRfc5322('bob@example.net', ['alice@example.org'], 'bench', bodyFor(size.bytes, 'bob@example.net', 'alice@example.org'), new Uint8Array(16)));
      ref.#files.set(size.label, file);
      await smtpSource(source, file, Math.min(100, size.count), POSTFIX_SESSIONS, POSTFIX_LIMIT_MS); // warm-up
    }
    return ref;
  }

  get running(): boolean {
    return this.#instance !== undefined;
  }

  /** One timed `smtp-source` run of `size`, recorded under `key` (the transport whose rounds it sits between). */
  async measure(key: string, size: { label: string; count: number }): Promise<void> {
    if (!this.#instance || !this.#source) return;
    const r = await smtpSource(this.#source, this.#files.get(size.label)!, size.count, POSTFIX_SESSIONS, POSTFIX_LIMIT_MS);
    const k = `${key} ${size.label}`;
    if (!this.#runs.has(k)) this.#runs.set(k, []);
    this.#runs.get(k)!.push(r);
  }

  figures(key: string, sizeLabel: string): PostfixFigures | undefined {
    const runs = this.#runs.get(`${key} ${sizeLabel}`);
    if (!runs?.length) return undefined;
    const rates = runs.filter((r) => r.ok).map((r) => r.rate);
    return { rate: medianBy(rates, (x) => x) ?? NaN, runs: rates, note: runs.filter((r) => !r.ok).map((r) => r.note).join('; ') };
  }

  /** Synchronous (also used from the signal handler); idempotent. */
  stop(): void {
    this.#instance?.stop();
    this.#instance = undefined;
  }
}

// --- main ------------------------------------------------------------------------------------------

const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'asmtp-fedbench-'));
  let a: RunningNode | undefined;
  let b: RunningNode | undefined;
  let postfix: PostfixReference | undefined;
  const rss = new RssSampler(() => [a, b]);
  const emergency = (signal: NodeJS.Signals) => {
    postfix?.stop();
    killAll();
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`bench:federation interrupted (${signal}); nodes and Postfix stopped\n`);
    process.exit(130);
  };
  process.once('SIGINT', emergency);
  process.once('SIGTERM', emergency);
  const results: HopResult[] = [];
  const peerTransport: Record<string, string> = {};
  const t0 = Date.now();
  const fsyncs: number[] = [];
  try {
    fsyncs.push(fsyncRate(dir));
    const dataA = join(dir, 'a');
    const dataB = join(dir, 'b');
    const aDid = (await cli(['init', '--data', dataA, '--domain', 'a.test', '--grpc-port', '0'])).did as string;
    const bDid = (await cli(['init', '--data', dataB, '--domain', 'b.test', '--grpc-port', '0'])).did as string;
    await cli(['mailbox', 'add', 'alice@a.test', '--data', dataA, '--profile', join(dir, 'alice.json')]);
    await cli(['mailbox', 'add', 'bob@b.test', '--data', dataB, '--profile', join(dir, 'bob.json')]);
    const alice = readProfile(join(dir, 'alice.json'));
    const bob = readProfile(join(dir, 'bob.json'));
    postfix = await PostfixReference.start(dir);
    b = await startNode('b', dataB);
    const ctx: Ctx = { a: () => a!, b: () => b!, dataA, dataB, alice, bob, rss };

    for (const transport of TRANSPORTS) {
      // A picks its route when it connects: set the one endpoint, then (re)start A.
      await stopProcess(a);
      const endpoint = transport === 'quic' ? `quic://${b.ready.quic}` : `relay://${b.ready.relay}`;
      await cli(['route', 'add', 'b.test', '--did', bDid, '--endpoint', endpoint, '--data', dataA]);
      a = await startNode('a', dataA);
      // B checks that envelopes from a.test come from A's DID (its route for a.test).
      await cli(['route', 'add', 'a.test', '--did', aDid, '--endpoint', `quic://${a.ready.quic},relay://${a.ready.relay}`, '--data', dataB]);
      const warm = await hop(ctx, transport, SIZES[0]!, WARMUP); // connection set-up, JIT
      if (warm.arrived < warm.n) throw new Error(`warm-up over ${transport} failed: ${warm.errors.join('; ')}\nA: ${a.stderrTail()}\nB: ${b.stderrTail()}`);
      const peers = (await cli(['peers', '--data', dataA])) as { domain: string; transport: string }[];
      peerTransport[transport] = peers.find((p) => p.domain === 'b.test')?.transport ?? '?';
      // The floor for this transport (BENCH_FLOOR=0 skips it): its rounds follow the nodes' in each round.
      const floor = FLOOR ? await FloorPair.start(transport, dir, dataA, dataB) : undefined;
      try {
        if (floor) await floor.hop(warm.envelopeBytes, WARMUP, CONCURRENCY, RUN_LIMIT_MS);
        // Rounds alternate the sizes; each figure is the median round (this machine's speed drifts).
        const rounds = new Map<string, HopResult[]>(SIZES.map((size) => [size.label, []]));
        const floorRounds = new Map<string, HopResult[]>(SIZES.map((size) => [size.label, []]));
        for (let round = 0; round < ROUNDS; round++) {
          for (const size of SIZES) {
            const r = await hop(ctx, transport, size, size.count);
            rounds.get(size.label)!.push(r);
            process.stderr.write(`  ${transport} ${size.label} round ${round + 1}: ${f0(r.rate)} msgs/s (${r.arrived}/${r.n})\n`);
            if (postfix.running) {
              await new Promise((resolve) => setTimeout(resolve, 500)); // A's last delivered marks and B's acks settle
              await postfix.measure(transport, size);
            }
            if (floor) {
              // Messages the size of the node's envelopes in the round just run.
              const f = floorResult(transport, size, await floor.hop(r.envelopeBytes, size.count, CONCURRENCY, RUN_LIMIT_MS));
              floorRounds.get(size.label)!.push(f);
              process.stderr.write(`  floor ${transport} ${size.label} round ${round + 1}: ${f0(f.rate)} msgs/s (${f.arrived}/${f.n})\n`);
            }
          }
        }
        for (const byLabel of [rounds, ...(floor ? [floorRounds] : [])]) {
          for (const runs of byLabel.values()) {
            const median = medianBy(runs, (r) => r.rate)!;
            results.push({ ...median, rounds: runs.map((r) => r.rate), errors: runs.flatMap((r) => r.errors) });
          }
        }
      } finally {
        await floor?.stop();
      }
    }
    const idleRss = { a: rssMb(a?.child.pid), b: rssMb(b.child.pid) };
    await stopProcess(a);
    await stopProcess(b);
    a = undefined;
    b = undefined;
    rss.stop();

    postfix.stop();
    fsyncs.push(fsyncRate(dir));

    // --- report ---
    const cpus = (await import('node:os')).cpus().length;
    console.log(`\nbench:federation  alice@a.test -> bob@b.test, two node processes on 127.0.0.1, ${cpus} CPUs, ${SUBMIT_MODE === "stream" ? `one SubmitStream, ${CONCURRENCY} unanswered` : `${CONCURRENCY} Submit calls in flight`},`);
    console.log(`RFC 5322 messages of ${SIZES.map((s) => `${s.bytes} B`).join(' and ')} (same bytes for Postfix), sealed by the app before timing;`);
    console.log('hop msgs/s = N / (first submit -> last arrival at bob\'s subscriber): durable at A, relayed, durable at B, pushed to bob and acked');
    console.log(`each row: the median of ${ROUNDS} rounds (sizes alternate), its own latency, RSS and CPU figures`);
    console.log(`${'transport'.padEnd(12)}${'size'.padStart(6)}${'N'.padStart(6)}${'hop msgs/s'.padStart(12)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'submit/s'.padStart(10)}${'RSS A/B MB'.padStart(13)}${'CPU A/B/app'.padStart(16)}${'KiB/msg A/B'.padStart(14)}${'msg/commit A/B'.padStart(16)}  verified`);
    for (const r of results) {
      console.log(`${r.transport.padEnd(12)}${r.size.padStart(6)}${String(r.arrived === r.n ? r.n : `${r.arrived}/${r.n}`).padStart(6)}${f0(r.rate).padStart(12)}${f1(r.p50).padStart(9)}${f1(r.p99).padStart(9)}${f0(r.submitRate).padStart(10)}${`${f0(r.rssA)}/${f0(r.rssB)}`.padStart(13)}${`${f0(r.cpuA * 100)}/${f0(r.cpuB * 100)}/${f0(r.cpuBench * 100)}%`.padStart(16)}${`${f0(r.kibA)}/${f0(r.kibB)}`.padStart(14)}${`${f1(r.perCommitA)}/${f1(r.perCommitB)}`.padStart(16)}  ${r.verified}/${r.sampled}${r.rounds ? `  rounds ${r.rounds.map(f0).join(', ')}` : ''}`);
      for (const e of r.errors) console.log(`    ! ${e}`);
    }
    console.log(`transport used by A for b.test (aftersmtp peers): ${TRANSPORTS.map((t) => `${t} run -> ${peerTransport[t] ?? '?'}`).join(', ')}`);
    console.log(`\n${postfix.status}`);
    // A floor row compares with the Postfix runs between its transport's rounds.
    const reference = (transport: string, size: string) => postfix!.figures(transport.replace(/^floor-/, ''), size);
    for (const transport of TRANSPORTS) {
      for (const size of SIZES) {
        const p = reference(transport, size.label);
        if (!p) continue;
        console.log(`${'postfix'.padEnd(10)}${size.label.padStart(6)}${String(size.count).padStart(6)}${f0(p.rate).padStart(12)} msgs/s  smtp-source -s ${POSTFIX_SESSIONS} -m ${size.count}, between the ${transport} rounds, median of ${p.runs.length} (${p.runs.map(f0).join(', ')})${p.note ? `  ! ${p.note}` : ''}`);
      }
    }
    if (results.some((r) => reference(r.transport, r.size))) {
      console.log('\nratio  AfterSMTP hop rate / Postfix durable acceptance rate measured between the same rounds (target >= 2x)');
      for (const r of results) {
        const ratio = r.rate / (reference(r.transport, r.size)?.rate ?? NaN);
        console.log(`  ${r.transport.padEnd(12)} ${r.size.padStart(6)}  ${Number.isFinite(ratio) ? ratio.toFixed(2) : '-'}x  ${Number.isFinite(ratio) ? (ratio >= 2 ? 'target met' : 'below target') : ''}`);
      }
    }
    const floors = results.filter((r) => r.transport.startsWith('floor-'));
    if (floors.length) {
      console.log('\nthe floor: two processes doing only what the hop requires (Ed25519 check and durable store at both ends, the');
      console.log('node-to-node transport with the relay\'s window, delivered marks; bench/floors/federation-floor-node.ts), same app pattern');
      for (const f of floors) {
        const node = results.find((r) => r.transport === f.transport.slice('floor-'.length) && r.size === f.size);
        if (node) console.log(`  ${node.transport.padEnd(6)} ${f.size.padStart(6)}  the node reaches ${((node.rate / f.rate) * 100).toFixed(0)}% of the floor (${f0(node.rate)} / ${f0(f.rate)} msgs/s; floor messages of ${node.envelopeBytes} B, the nodes' envelope size)`);
      }
    }
    const maxA = rss.overall.a ?? NaN;
    const maxB = rss.overall.b ?? NaN;
    console.log(`\nnode RSS (VmRSS, sampled every 200 ms): max A ${f0(maxA)} MB, max B ${f0(maxB)} MB, at the end A ${f0(idleRss.a)} MB, B ${f0(idleRss.b)} MB; target <= ${RSS_TARGET_MB} MB each: ${Math.max(maxA, maxB) <= RSS_TARGET_MB ? 'met' : 'NOT met'}`);
    console.log(`disk: ${fsyncs.map(f0).join(' (at the start), ')} (at the end) 4 KB write+fsync/s in ${tmpdir()}; fsync rates swing between runs, compare ratios`);
    console.log(`total bench time ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  } finally {
    rss.stop();
    postfix?.stop();
    await stopProcess(a).catch(() => {});
    await stopProcess(b).catch(() => {});
    killAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
