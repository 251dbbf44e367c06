// npm run bench:smtp-out (node_modules/.bin/node bench/suites/smtp-out.ts) — mail from an app to a domain
// without an AfterSMTP node: alice@a.test's app seals 2 KB and 50 KB messages to carol@legacy.test BEFORE
// timing (to the node's bridge key, as Identity.Resolve answers `legacy`), then submits them over one
// SubmitStream with 32 unanswered. The node stores each durably, queues it for its smtp agent, which opens
// it, composes the RFC 5322 mail, DKIM-signs it (RSA-2048 and Ed25519) and delivers it over the static route
// `legacy.test -> smtp://127.0.0.1:SINK --tls may` (STARTTLS, pooled connections, RSET between messages).
// The sink is a real MTA that discards: a private Postfix with STARTTLS whose every transport is `discard:`;
// a run ends when its log counts every message as taken (status=sent).
// Beside it, in the same run, rounds alternating node, floor, Postfix for each size:
// - Postfix (the reference): a private Postfix relaying the same mail (the node's composed, DKIM-signed bytes,
//   injected with `smtp-source -s 10`, one connection per message) to the same sink over STARTTLS
//   (smtp_tls_security_level = may), timed the same way: from the first message in to the sink's last;
// - the floor (bench/floors/smtp-out-floor.ts): the outbound bridge alone delivering the node's mail from
//   memory to the same sink, with the node's connection bound and as many deliveries at once as its queue.
// Each figure is the median of BENCH_ROUNDS rounds (default 3); CPU ms/msg is the node's (or the floor's)
// process CPU time over the run per message; the node's peak RSS over its runs. Counts: BENCH_COUNT_2K
// (2000), BENCH_COUNT_50K (500); each run is cut at BENCH_RUN_LIMIT_MS (60 s) and then counts as failed.
// Never fails because something is slow. All traffic on 127.0.0.1.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, profileResolver, readProfile, sealFor, type Clients, type MailboxProfile } from '../../gateway/client/index.ts';
import { loadConfig } from '../../gateway/core/index.ts';
import { dkimSigners } from '../../gateway/smtp/index.ts';
import type { Envelope } from '../../proto/index.ts';
import { selfSigned } from '../../test/bridge/dane-pki.ts';
import { INSTALL_HINT, findExecutable } from '../reference/federation-postfix.ts';
import type { SmtpOutFloorConfig } from '../floors/smtp-out-floor.ts';
import { bodyFor, legacyMessage } from '../helpers/messages.ts';
import { cli, CLI, NODE, NODE_ENV, ROOT } from '../helpers/node-cli.ts';
import { LogCounter, startPrivatePostfix, type PrivatePostfix } from '../helpers/private-postfix.ts';
import { cpuSeconds, PeakRss, reapedCpuSeconds, rssMb } from '../helpers/proc.ts';
import { killAll, spawnReady, stopProcess, type ReadyProcess } from '../helpers/processes.ts';
import { runSmtpSource } from '../helpers/smtp-source.ts';
import { medianBy } from '../helpers/stats.ts';
import { submitStream } from '../helpers/submit-stream.ts';

const num = (name: string, dflt: number) => { const v = Number(process.env[name]); return Number.isFinite(v) && v > 0 ? v : dflt; };

const SIZES = [
  { label: '2 KB', bytes: 2 * 1024, count: num('BENCH_COUNT_2K', 2000) },
  { label: '50 KB', bytes: 50 * 1024, count: num('BENCH_COUNT_50K', 500) },
];
const ROUNDS = num('BENCH_ROUNDS', 3);
/** BENCH_FLOOR=0 skips the floor's rounds. */
const FLOOR = process.env.BENCH_FLOOR !== '0';
const WARMUP = num('BENCH_WARMUP', 100);
const RUN_LIMIT_MS = num('BENCH_RUN_LIMIT_MS', 60_000);
const CONCURRENCY = 32;
const POSTFIX_SESSIONS = 10;
const RSS_TARGET_MB = 300;
const TARGET_RATIO = 1.5;
const DOMAIN = 'a.test';
const FROM = `alice@${DOMAIN}`;
const LEGACY = 'legacy.test';
const TO = `carol@${LEGACY}`;

type Side = 'node' | 'floor' | 'floor+dkim' | 'postfix';
interface Run {
  ok: boolean; rate: number; cpuMs: number; note: string;
  /** Connections the sink took during the run, and how many of them were STARTTLS-upgraded. */
  connections?: number; tls?: number;
  /** The floor's CPU per message for composing and signing its mail, before its clock. */
  prepareCpuMs?: number;
}

const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-');

/** The sink: a private Postfix taking mail for legacy.test over STARTTLS and discarding it, logging each. */
async function startSink(dir: string): Promise<PrivatePostfix> {
  const cert = await selfSigned(`mta.${LEGACY}`, { names: [`mta.${LEGACY}`] });
  return startPrivatePostfix({
    name: 'sink', parent: dir, listeners: 1, maillog: true, configure: (sinkDir) => [
      ...tlsFiles(sinkDir, cert),
      `myhostname = mta.${LEGACY}`,
      `mydestination = ${LEGACY}`,
      'local_recipient_maps =',
      ...['default', 'local', 'relay', 'virtual'].map((t) => `${t}_transport = discard:sink`),
      'smtpd_tls_security_level = may',
      'smtpd_tls_loglevel = 1', // one log line per handshake: the bench counts them
    ],
  });
}

/** The certificate and key written into the instance's conf directory, and the main.cf lines naming them. */
function tlsFiles(instanceDir: string, cert: { pem: string; keyPem: string }): string[] {
  writeFileSync(join(instanceDir, 'conf', 'cert.pem'), cert.pem);
  writeFileSync(join(instanceDir, 'conf', 'key.pem'), cert.keyPem, { mode: 0o600 });
  return [`smtpd_tls_cert_file = ${instanceDir}/conf/cert.pem`, `smtpd_tls_key_file = ${instanceDir}/conf/key.pem`];
}

/** The reference: a private Postfix relaying everything from 127.0.0.1 to the sink, STARTTLS when offered. */
function startRelay(dir: string, sinkPort: number): Promise<PrivatePostfix> {
  return startPrivatePostfix({
    name: 'relay', parent: dir, listeners: 1, configure: () => [
      'myhostname = relay.a.test',
      'mydestination =',
      `relayhost = [127.0.0.1]:${sinkPort}`,
      'smtp_tls_security_level = may',
      'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
    ],
  });
}

/**
 * CPU seconds a Postfix instance spends from now until the returned function is called: its master's
 * services running then (those started meanwhile count in full) and those that exited meanwhile (smtpd
 * processes end after 100 sessions), which the master has reaped.
 */
function postfixCpu(postfix: PrivatePostfix): () => number {
  const [master, ...services] = postfix.pids();
  const before = new Map(services.map((pid) => [pid, cpuSeconds(pid)]));
  const reaped0 = reapedCpuSeconds(master);
  const master0 = cpuSeconds(master);
  return () => {
    const [, ...now] = postfix.pids();
    const live = now.reduce((sum, pid) => sum + ((cpuSeconds(pid) || 0) - (before.get(pid) || 0)), 0);
    return live + (reapedCpuSeconds(master) - reaped0) + (cpuSeconds(master) - master0);
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'asmtp-smtpoutbench-'));
  chmodSync(dir, 0o755); // Postfix's processes (user postfix) reach their queues below it
  let node: ReadyProcess<{ grpc: string }> | undefined;
  let floor: ReadyProcess<{ concurrency: number; maxConnectionsPerHost: number }> | undefined;
  let sink: PrivatePostfix | undefined;
  let relay: PrivatePostfix | undefined;
  let clients: Clients | undefined;
  const rss = new PeakRss();
  const emergency = (signal: NodeJS.Signals) => {
    relay?.stop();
    sink?.stop();
    killAll();
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`bench:smtp-out interrupted (${signal}); node, floor and both Postfix instances stopped\n`);
    process.exit(130);
  };
  process.once('SIGINT', emergency);
  process.once('SIGTERM', emergency);
  const t0 = Date.now();
  try {
    const source = findExecutable('smtp-source');
    if (!findExecutable('postfix') || !source) {
      console.log(`bench:smtp-out needs Postfix (the sink and the reference) and its smtp-source. Install them (Debian, as root) with:\n  ${INSTALL_HINT}`);
      return;
    }
    sink = await startSink(dir);
    const sinkPort = sink.ports[0]!;
    const counter = new LogCounter(sink.maillog!, /status=sent/);
    const connects = new LogCounter(sink.maillog!, /postfix\/smtpd\[\d+\]: connect from /);
    const handshakes = new LogCounter(sink.maillog!, /postfix\/smtpd\[\d+\]: \w+ TLS connection established from /);
    const postfixOn = process.env.BENCH_POSTFIX !== '0';
    relay = postfixOn ? await startRelay(dir, sinkPort) : undefined;

    const data = join(dir, 'node');
    await cli(['init', '--data', data, '--domain', DOMAIN, '--grpc-port', '0', '--smtp-port', '0', '--submission-port', '0']);
    await cli(['mailbox', 'add', FROM, '--data', data, '--profile', join(dir, 'alice.json')]);
    await cli(['route', 'add', LEGACY, '--endpoint', `smtp://127.0.0.1:${sinkPort}`, '--tls', 'may', '--data', data]);
    const flags = [
      ...(process.env.BENCH_PROFILE ? [`--cpu-prof --cpu-prof-dir=${process.env.BENCH_PROFILE} --cpu-prof-name=smtp-out-node-${Date.now()}.cpuprofile`] : []),
      ...(process.env.BENCH_NODE_FLAGS ? [process.env.BENCH_NODE_FLAGS] : []),
    ];
    node = await spawnReady('node', CLI, ['start', '--data', data], { env: { ...process.env, ...NODE_ENV, ...(flags.length ? { NODE_OPTIONS: flags.join(' ') } : {}) } });
    const floorConfig: SmtpOutFloorConfig = { data, from: FROM, to: TO, nextHop: { host: '127.0.0.1', port: sinkPort, tls: 'may' } };
    floor = await spawnReady('floor', NODE, [join(ROOT, 'bench', 'floors', 'smtp-out-floor.ts'), JSON.stringify(floorConfig)], { echoStderr: true, stdin: true });

    const alice: MailboxProfile = readProfile(join(dir, 'alice.json'));
    clients = connect(alice, node.ready.grpc);
    const resolver = profileResolver(alice);

    // The reference's messages: the node's mail for each size, composed and signed with its keys (one file each;
    // Postfix takes the same bytes again and again).
    const config = loadConfig(data);
    const signers = dkimSigners(config, data);
    const files = new Map<string, { file: string; wireBytes: number }>();
    for (const size of SIZES) {
      const message = await legacyMessage({ from: FROM, to: TO, bytes: size.bytes, signers, logOrigin: `${DOMAIN}/aftersmtp`, leaf: 1 });
      const file = join(dir, `legacy-${size.bytes}.eml`);
      writeFileSync(file, message.data);
      files.set(size.label, { file, wireBytes: message.data.length });
    }

    /** Waits until the sink has logged `target` messages or the deadline passes. */
    const sinkDone = async (target: number, deadline: number) => counter.reach(target, deadline);

    const nodeRun = async (size: (typeof SIZES)[number], count: number): Promise<Run> => {
      // Sealing is the app's work and happens before the clock starts.
      const envelopes: Envelope[] = [];
      const text = bodyFor(size.bytes, FROM, TO);
      for (let i = 0; i < count; i++) envelopes.push((await sealFor(alice, clients!, resolver, { to: [TO], subject: 'bench', text })).envelope);
      const errors: string[] = [];
      const target = counter.count() + count;
      const pid = node!.child.pid;
      rss.start(pid);
      const cpu0 = cpuSeconds(pid);
      const start = performance.now();
      const deadline = Date.now() + RUN_LIMIT_MS;
      await submitStream(clients!, envelopes, {
        concurrency: CONCURRENCY, deadline,
        onReply: (i, reply) => { if (!reply.queuedRemote.includes(TO) && errors.length < 3) errors.push(`submit ${i}: not queued for ${TO}`); },
        onFailure: (i, message) => { if (errors.length < 3) errors.push(`submit ${i}: ${message}`); },
        onStreamError: (message) => { if (errors.length < 3) errors.push(`SubmitStream: ${message}`); },
      });
      const end = await sinkDone(target, deadline);
      rss.stop();
      const cpuMs = ((cpuSeconds(pid) - cpu0) * 1000) / count;
      if (end === undefined) errors.push(`the sink had ${count - (target - counter.count())}/${count} after ${RUN_LIMIT_MS} ms`);
      return { ok: end !== undefined && errors.length === 0, rate: end === undefined ? NaN : (count / (end - start)) * 1000, cpuMs, note: errors.join('; ') };
    };

    const floorRun = (signing: boolean) => async (size: (typeof SIZES)[number], count: number): Promise<Run> => {
      floor!.send({ cmd: 'prepare', bytes: size.bytes, count, signing });
      const prepared = await floor!.event<{ cpuMsPerMsg: number }>('prepared', 300_000);
      const target = counter.count() + count;
      const pid = floor!.child.pid;
      const cpu0 = cpuSeconds(pid);
      const start = performance.now();
      const deadline = Date.now() + RUN_LIMIT_MS;
      floor!.send({ cmd: 'go' });
      const end = await sinkDone(target, deadline);
      const done = await floor!.event<{ delivered: number; notes: string[] }>('delivered', Math.max(1000, deadline - Date.now()) + 5000).catch((err: Error) => ({ delivered: NaN, notes: [err.message] }));
      const cpuMs = ((cpuSeconds(pid) - cpu0) * 1000) / count;
      const notes = [...done.notes, ...(end === undefined ? [`the sink had ${count - (target - counter.count())}/${count} after ${RUN_LIMIT_MS} ms`] : [])];
      return { ok: end !== undefined && notes.length === 0, rate: end === undefined ? NaN : (count / (end - start)) * 1000, cpuMs, note: notes.join('; '), prepareCpuMs: prepared.cpuMsPerMsg };
    };

    const postfixRun = async (size: (typeof SIZES)[number], count: number): Promise<Run> => {
      const target = counter.count() + count;
      const cpu = postfixCpu(relay!);
      const start = performance.now();
      const deadline = Date.now() + RUN_LIMIT_MS;
      const injected = await runSmtpSource({
        bin: source, target: `127.0.0.1:${relay!.ports[0]}`, count, sessions: POSTFIX_SESSIONS, message: { file: files.get(size.label)!.file }, reuse: false,
        from: FROM, to: TO, timeoutMs: RUN_LIMIT_MS,
      });
      const end = injected.ok ? await sinkDone(target, deadline) : undefined;
      const cpuMs = (cpu() * 1000) / count;
      const note = !injected.ok ? `smtp-source: ${injected.note}` : end === undefined ? `the sink had ${count - (target - counter.count())}/${count} after ${RUN_LIMIT_MS} ms` : '';
      return { ok: end !== undefined, rate: end === undefined ? NaN : (count / (end - start)) * 1000, cpuMs, note };
    };

    const sides: Side[] = ['node', ...(FLOOR ? ['floor' as const, 'floor+dkim' as const] : []), ...(relay ? ['postfix' as const] : [])];
    const runOf = (side: Side) => async (size: (typeof SIZES)[number], count: number): Promise<Run> => {
      const [c0, t0] = [connects.count(), handshakes.count()];
      const run = await (side === 'node' ? nodeRun : side === 'floor' ? floorRun(false) : side === 'floor+dkim' ? floorRun(true) : postfixRun)(size, count);
      return { ...run, connections: connects.count() - c0, tls: handshakes.count() - t0 };
    };

    // Warm-up (JIT, the pooled connections, Postfix's processes), untimed.
    for (const side of sides) {
      for (const size of SIZES) {
        const w = await runOf(side)(size, Math.min(WARMUP, size.count));
        if (!w.ok) process.stderr.write(`  warm-up ${side} ${size.label}: ${w.note}\n`);
      }
    }

    const runs = new Map<string, Run[]>();
    const key = (side: Side, size: string) => `${side} ${size}`;
    for (let round = 0; round < ROUNDS; round++) {
      for (const size of SIZES) {
        for (const side of sides) {
          const r = await runOf(side)(size, size.count);
          runs.set(key(side, size.label), [...(runs.get(key(side, size.label)) ?? []), r]);
          process.stderr.write(`  round ${round + 1} ${size.label} ${side}: ${r.ok ? `${f0(r.rate)} msgs/s, ${f2(r.cpuMs)} CPU ms/msg, ${r.connections} connections (${r.tls} TLS) at the sink` : `failed (${r.note})`}\n`);
        }
      }
    }

    // What the node's queue says of the messages that did not go (the list answers at most 1000 per state).
    const left: string[] = [];
    for (const state of ['queued', 'deferred', 'failed']) {
      const items = (await cli(['queue', 'list', '--state', state, '--data', data, '--node', node.ready.grpc])) as { lastError: string }[];
      left.push(`${items.length} ${state}${items[0] ? ` (${items[0].lastError})` : ''}`);
    }
    const idleRss = rssMb(node.child.pid);
    const floorLimits = `${floor.ready.concurrency} deliveries at once (the node's queue capacity), at most ${floor.ready.maxConnectionsPerHost} connections to the sink (the node's bridge.smtp.outbound.maxConnectionsPerHost)`;
    clients.close();
    clients = undefined;
    await stopProcess(node);
    await stopProcess(floor);
    node = undefined;
    floor = undefined;

    // --- report ---
    const median = (k: string, pick: (r: Run) => number) => medianBy((runs.get(k) ?? []).filter((r) => r.ok).map(pick), (x) => x) ?? NaN;
    const failures = (k: string) => (runs.get(k) ?? []).filter((r) => !r.ok).map((r) => r.note);
    console.log(`\nbench:smtp-out  app -> node (SubmitStream, ${CONCURRENCY} unanswered, sealed before timing) -> ${TO} over SMTP with STARTTLS -> a discarding Postfix; 127.0.0.1, ${cpus().length} CPUs`);
    console.log(`mail: the app's RFC 5322 message of ${SIZES.map((s) => `${s.bytes} B`).join(' / ')}, as the node sends it (receipt field, DKIM RSA-2048 + Ed25519): ${SIZES.map((s) => `${files.get(s.label)!.wireBytes} B`).join(' / ')} on the wire`);
    console.log(`msgs/s = N / (first message in -> the sink has logged all N); each figure is the median of ${ROUNDS} rounds (node, floor, Postfix alternate)`);
    console.log(`CPU ms/msg: the process's CPU time (all threads) per message; Postfix: its relay instance's processes (master and services running then)`);
    console.log(`${'size'.padEnd(7)}${'N'.padStart(6)}${'node'.padStart(7)}${'postfix'.padStart(9)}${'node/pf'.padStart(9)}${'floor'.padStart(7)}${'floor/pf'.padStart(10)}${'floor+dkim'.padStart(12)}${'+dkim/pf'.padStart(10)}${'node/floor'.padStart(12)}${'node/+dkim'.padStart(12)}${'CPU ms/msg node/floor/+dkim/pf'.padStart(33)}  rounds node | floor | floor+dkim | postfix`);
    const rows: { size: string; ratio: number; floorRatio: number; dkimRatio: number; share: number; dkimShare: number }[] = [];
    const ALL: Side[] = ['node', 'floor', 'floor+dkim', 'postfix'];
    for (const size of SIZES) {
      const [n, f, d, p] = ALL.map((s) => median(key(s, size.label), (r) => r.rate)) as [number, number, number, number];
      const cpu = ALL.map((s) => f2(median(key(s, size.label), (r) => r.cpuMs))).join('/');
      const row = { size: size.label, ratio: n / p, floorRatio: f / p, dkimRatio: d / p, share: n / f, dkimShare: n / d };
      rows.push(row);
      const each = (s: Side) => (runs.get(key(s, size.label)) ?? []).map((r) => f0(r.rate)).join(', ');
      console.log(`${size.label.padEnd(7)}${String(size.count).padStart(6)}${f0(n).padStart(7)}${f0(p).padStart(9)}${`${f2(row.ratio)}x`.padStart(9)}${f0(f).padStart(7)}${`${f2(row.floorRatio)}x`.padStart(10)}${f0(d).padStart(12)}${`${f2(row.dkimRatio)}x`.padStart(10)}${`${f0(row.share * 100)}%`.padStart(12)}${`${f0(row.dkimShare * 100)}%`.padStart(12)}${cpu.padStart(33)}  ${ALL.map(each).join(' | ')}`);
      for (const s of sides) for (const note of failures(key(s, size.label))) console.log(`    ! ${s}: ${note}`);
    }
    const conns = (side: Side) => SIZES.map((size) => {
      const rs = runs.get(key(side, size.label)) ?? [];
      return `${size.label} ${f0(medianBy(rs.map((r) => r.connections ?? NaN), (x) => x) ?? NaN)} (${f0(medianBy(rs.map((r) => r.tls ?? NaN), (x) => x) ?? NaN)} TLS)`;
    }).join(', ');
    console.log(`connections the sink took per run (median): ${sides.map((side) => `${side} ${conns(side)}`).join('; ')}`);
    console.log(`\nsink: private Postfix ${sink.conf}, STARTTLS (smtpd_tls_security_level = may), every transport discard:, in_flow_delay as shipped`);
    console.log(relay
      ? `Postfix reference: private Postfix, smtp-source -s ${POSTFIX_SESSIONS} (one connection per message) in, relayhost [127.0.0.1]:${sinkPort} with smtp_tls_security_level = may out; durable queue; destination concurrency and connection cache as shipped`
      : 'Postfix reference skipped (BENCH_POSTFIX=0).');
    console.log(`floor: bench/floors/smtp-out-floor.ts, createSmtpOutbound alone delivering the node's mail from memory, ${floorLimits}; composing and DKIM-signing it (before its clock) took ${SIZES.map((s) => `${f2(median(key('floor', s.label), (r) => r.prepareCpuMs ?? NaN))} ms`).join(' / ')} of CPU per message`);
    console.log(`floor+dkim: the same, each message composed and DKIM-signed on the clock (one per event-loop turn) just before it is handed over, as the node must`);
    console.log(`node's queue after the runs: ${left.join(', ')}; the sink logged ${counter.count()} messages taken in all`);
    console.log(`target: node >= ${TARGET_RATIO}x Postfix's relay rate at both sizes`);
    for (const r of rows) {
      const verdict = !Number.isFinite(r.ratio) ? '-' : r.ratio >= TARGET_RATIO ? 'met'
        : r.dkimRatio < TARGET_RATIO ? `NOT met; out of reach on this machine: the floor with DKIM signing is ${f2(r.dkimRatio)}x (delivery alone ${f2(r.floorRatio)}x)`
        : `NOT met (the floor reaches it: ${f2(r.dkimRatio)}x with DKIM signing, ${f2(r.floorRatio)}x delivery alone)`;
      console.log(`  ${r.size.padEnd(6)} ${f2(r.ratio)}x  ${verdict}; the node is ${f0(r.dkimShare * 100)}% of the floor with signing, ${f0(r.share * 100)}% of delivery alone`);
    }
    console.log(`node RSS (VmRSS, sampled every 100 ms during its runs): peak ${f0(rss.peak)} MB, at the end ${f0(idleRss)} MB; target <= ${RSS_TARGET_MB} MB: ${rss.peak <= RSS_TARGET_MB ? 'met' : 'NOT met'}`);
    console.log(`total bench time ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  } finally {
    rss.stop();
    clients?.close();
    await stopProcess(node).catch(() => {});
    await stopProcess(floor).catch(() => {});
    relay?.stop();
    sink?.stop();
    killAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
