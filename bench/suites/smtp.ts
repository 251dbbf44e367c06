// npm run bench:smtp (node_modules/.bin/node bench/suites/smtp.ts) — mail from another MTA into the node's MX
// listener: Postfix's `smtp-source -s 10` sends 2 KB and 50 KB messages from bench@sender.test to
// bob@node.test, one message per connection and, with -d, several messages per connection. The node verifies
// each (SPF, DKIM, DMARC, ARC: sender.test publishes SPF and DMARC p=reject in a DNSSEC-signed zone, asked
// through a local validating resolver, test/dns-lab.ts) and answers 250 only once the bridged message is
// durable. Beside it, from the same run: Postfix's durable acceptance (bench/reference/federation-postfix.ts:
// the cleanup daemon fsyncs the queue file before its 250, then discards) and the floor
// (bench/floors/smtp-floor.ts: a bare smtp-server that makes each message durable with the node's
// group-commit store mechanism). Rounds alternate node, floor, Postfix for each size and connection mode;
// each figure is the median of BENCH_ROUNDS rounds (default 3). Also: the node's peak RSS during its runs.
// Counts: BENCH_COUNT_2K (default 2000), BENCH_COUNT_50K (default 1000); each smtp-source run is killed after
// BENCH_RUN_LIMIT_MS (default 90 s). Never fails because something is slow. All traffic on 127.0.0.1.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDnsLab, type DnsLab } from '../../test/dns-lab.ts';
import { findExecutable, INSTALL_HINT, POSTFIX_HOST, POSTFIX_PORT, startPostfix, type PostfixInstance, type SourceRun } from '../reference/federation-postfix.ts';
import { runSmtpSource } from '../helpers/smtp-source.ts';
import { cli, CLI, NODE, NODE_ENV, ROOT } from '../helpers/node-cli.ts';
import { cpuSeconds, PeakRss, rssMb } from '../helpers/proc.ts';
import { killAll, spawnReady, stopProcess, track, type ReadyProcess } from '../helpers/processes.ts';
import { medianBy } from '../helpers/stats.ts';

const num = (name: string, dflt: number) => { const v = Number(process.env[name]); return Number.isFinite(v) && v > 0 ? v : dflt; };

const SIZES = [
  { label: '2 KB', bytes: 2 * 1024, count: num('BENCH_COUNT_2K', 2000) },
  { label: '50 KB', bytes: 50 * 1024, count: num('BENCH_COUNT_50K', 1000) },
];
const MODES = [
  { label: 'conn/msg', reuse: false },
  { label: '-d reuse', reuse: true },
] as const;
const ROUNDS = num('BENCH_ROUNDS', 3);
const SESSIONS = 10;
const RUN_LIMIT_MS = num('BENCH_RUN_LIMIT_MS', 90_000);
const WARMUP = 100;
const RSS_TARGET_MB = 300;
const TARGET_RATIO = 1.5;
const DOMAIN = 'node.test';
const SENDER = 'sender.test';

type Server = 'node' | 'floor' | 'postfix';

const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-');

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'asmtp-smtpbench-'));
  let node: ReadyProcess<{ smtp: string; grpc: string }> | undefined;
  let floor: ReadyProcess<{ smtp: string }> | undefined;
  let postfix: PostfixInstance | undefined;
  let dns: DnsLab | undefined;
  const rss = new PeakRss();
  const emergency = (signal: NodeJS.Signals) => {
    postfix?.stop();
    killAll();
    void dns?.close();
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`bench:smtp interrupted (${signal}); node, floor, DNS lab and Postfix stopped\n`);
    process.exit(130);
  };
  process.once('SIGINT', emergency);
  process.once('SIGTERM', emergency);
  const t0 = Date.now();
  try {
    const source = findExecutable('smtp-source');
    if (!source) {
      console.log(`bench:smtp needs Postfix's smtp-source (the load generator). Install it (Debian, as root) with:\n  ${INSTALL_HINT}`);
      return;
    }
    // sender.test: SPF allows the loopback client, DMARC p=reject, signed (the resolver validates it).
    dns = await startDnsLab([{ name: SENDER, signed: true, records: ['@ IN TXT "v=spf1 ip4:127.0.0.0/8 -all"', '_dmarc IN TXT "v=DMARC1; p=reject"'] }]);
    const data = join(dir, 'node');
    await cli(['init', '--data', data, '--domain', DOMAIN, '--grpc-port', '0', '--smtp-port', '0', '--submission-port', '0']);
    await cli(['mailbox', 'add', `bob@${DOMAIN}`, '--data', data, '--profile', join(dir, 'bob.json')]);
    node = await spawnReady('node', CLI, ['start', '--data', data], {
      env: {
        ...process.env, ...NODE_ENV,
        AFTERSMTP_DNS__SERVERS: JSON.stringify([dns.resolver]),
        // smtp-source opens the next connection as soon as it has sent QUIT, before the node has seen the
        // previous one close: more than 10 sessions from 127.0.0.1 may be open for a moment.
        AFTERSMTP_BRIDGE__SMTP__LIMITS__MAX_SESSIONS_PER_IP: '100',
      },
    });
    floor = await spawnReady('floor', NODE, [join(ROOT, 'bench', 'floors', 'smtp-floor.ts'), dir], { echoStderr: true });

    let postfixStatus: string;
    const postfixBin = process.env.BENCH_POSTFIX === '0' ? undefined : findExecutable('postfix');
    if (process.env.BENCH_POSTFIX === '0') postfixStatus = 'Postfix reference skipped (BENCH_POSTFIX=0).';
    else if (!postfixBin) postfixStatus = `Postfix reference SKIPPED: postfix not found. Install it with:\n  ${INSTALL_HINT}`;
    else {
      try {
        postfix = await startPostfix(postfixBin, dir);
        postfixStatus = `Postfix reference: ${postfix.where}, ${POSTFIX_HOST}:${POSTFIX_PORT}, durable queue then discard, in_flow_delay as shipped (1s)`;
      } catch (err) {
        postfixStatus = `Postfix reference SKIPPED: could not start the benchmark Postfix: ${(err as Error).message}`;
      }
    }
    const targets: Record<Server, { target: string; to: string } | undefined> = {
      node: { target: node.ready.smtp, to: `bob@${DOMAIN}` },
      floor: { target: floor.ready.smtp, to: `bob@${DOMAIN}` },
      postfix: postfix ? { target: `${POSTFIX_HOST}:${POSTFIX_PORT}`, to: 'alice@example.org' } : undefined,
    };
    const load = (server: Server, size: { bytes: number }, count: number, reuse: boolean): Promise<SourceRun> => runSmtpSource({
      bin: source, target: targets[server]!.target, to: targets[server]!.to, count, sessions: SESSIONS, message: { bodyBytes: size.bytes }, reuse,
      from: `bench@${SENDER}`, helo: `mta.${SENDER}`, timeoutMs: RUN_LIMIT_MS,
    });

    // Warm-up (JIT, the DNS cache, Postfix's processes), untimed.
    for (const server of ['node', 'floor', 'postfix'] as const) {
      if (!targets[server]) continue;
      for (const size of SIZES) {
        const w = await load(server, size, Math.min(WARMUP, size.count), false);
        if (!w.ok) process.stderr.write(`  warm-up ${server} ${size.label}: ${w.note}\n`);
      }
    }

    const runs = new Map<string, SourceRun[]>();
    /** CPU milliseconds per message of the node's and the floor's process (all threads) in each run. */
    const cpuMs = new Map<string, number[]>();
    const key = (server: Server, size: string, mode: string) => `${server} ${size} ${mode}`;
    for (let round = 0; round < ROUNDS; round++) {
      for (const size of SIZES) {
        for (const mode of MODES) {
          for (const server of ['node', 'floor', 'postfix'] as const) {
            if (!targets[server]) continue;
            if (server === 'node') rss.start(node.child.pid);
            const pid = server === 'node' ? node.child.pid : server === 'floor' ? floor.child.pid : undefined;
            const cpu0 = cpuSeconds(pid);
            const r = await load(server, size, size.count, mode.reuse);
            if (server === 'node') rss.stop();
            const k = key(server, size.label, mode.label);
            runs.set(k, [...(runs.get(k) ?? []), r]);
            cpuMs.set(k, [...(cpuMs.get(k) ?? []), ((cpuSeconds(pid) - cpu0) * 1000) / size.count]);
            process.stderr.write(`  round ${round + 1} ${size.label} ${mode.label} ${server}: ${r.ok ? `${f0(r.rate)} msgs/s` : `failed (${r.note})`}\n`);
          }
        }
      }
    }

    // What bob's app sees of the node's mail: verified from bench@sender.test by DMARC.
    const sample = await new Promise<string>((resolve) => {
      const child = track(spawn(NODE, [CLI, 'subscribe', '--profile', join(dir, 'bob.json'), '--node', node!.ready.grpc, '--count', '1', '--json'], { env: { ...process.env, ...NODE_ENV }, stdio: ['ignore', 'pipe', 'pipe'] }));
      let out = '';
      child.stdout!.on('data', (d) => { out += d; });
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('close', () => {
        clearTimeout(timer);
        try {
          const m = JSON.parse(out.trim().split('\n')[0]!);
          resolve(`via ${m.via}, from ${m.from}, verified ${m.verified}, spf ${m.auth?.spf}, dkim ${m.auth?.dkim}, dmarc ${m.auth?.dmarc}`);
        } catch { resolve(`unreadable (${out.slice(0, 200)})`); }
      });
    });
    const idleRss = rssMb(node.child.pid);
    await stopProcess(node);
    await stopProcess(floor);
    node = undefined;
    floor = undefined;
    postfix?.stop();

    // --- report ---
    const median = (k: string) => {
      const ok = (runs.get(k) ?? []).filter((r) => r.ok).map((r) => r.rate);
      return medianBy(ok, (x) => x) ?? NaN;
    };
    const medianCpu = (k: string) => medianBy(cpuMs.get(k) ?? [], (x) => x) ?? NaN;
    const failures = (k: string) => (runs.get(k) ?? []).filter((r) => !r.ok).map((r) => r.note);
    console.log(`\nbench:smtp  smtp-source -s ${SESSIONS} -> the node's MX listener (bob@${DOMAIN}), 127.0.0.1, ${cpus().length} CPUs`);
    console.log(`messages of smtp-source -l ${SIZES.map((s) => s.bytes).join(' / ')} (body bytes; ~170 B of headers on top), each with its own Message-Id; from bench@${SENDER}`);
    console.log('node: SPF, DKIM, DMARC and ARC checked (DNSSEC-validated answers from a local unbound), signed, sealed to bob, a ledger leaf and a receipt, 250 once durable');
    console.log(`msgs/s = N / smtp-source wall time; each figure is the median of ${ROUNDS} rounds (node, floor, Postfix alternate); CPU ms/msg: the process's own CPU time (all threads) per message`);
    console.log(`${'size'.padEnd(7)}${'mode'.padEnd(10)}${'N'.padStart(6)}${'node'.padStart(8)}${'floor'.padStart(8)}${'postfix'.padStart(9)}${'node/postfix'.padStart(14)}${'floor/postfix'.padStart(15)}${'node/floor'.padStart(12)}${'CPU ms/msg node/floor'.padStart(23)}  rounds node | floor | postfix`);
    const rows: { size: string; mode: string; ratio: number; share: number; floorRatio: number }[] = [];
    for (const size of SIZES) {
      for (const mode of MODES) {
        const [n, f, p] = (['node', 'floor', 'postfix'] as const).map((s) => median(key(s, size.label, mode.label)));
        const row = { size: size.label, mode: mode.label, ratio: n! / p!, share: n! / f!, floorRatio: f! / p! };
        rows.push(row);
        const each = (s: Server) => (runs.get(key(s, size.label, mode.label)) ?? []).map((r) => f0(r.rate)).join(', ');
        console.log(`${size.label.padEnd(7)}${mode.label.padEnd(10)}${String(size.count).padStart(6)}${f0(n!).padStart(8)}${f0(f!).padStart(8)}${f0(p!).padStart(9)}${`${f2(row.ratio)}x`.padStart(14)}${`${f2(row.floorRatio)}x`.padStart(15)}${`${f0(row.share * 100)}%`.padStart(12)}${`${f2(medianCpu(key('node', size.label, mode.label)))}/${f2(medianCpu(key('floor', size.label, mode.label)))}`.padStart(23)}  ${each('node')} | ${each('floor')} | ${each('postfix')}`);
        for (const s of ['node', 'floor', 'postfix'] as const) for (const note of failures(key(s, size.label, mode.label))) console.log(`    ! ${s}: ${note}`);
      }
    }
    console.log(`\n${postfixStatus}`);
    console.log(`target: node >= ${TARGET_RATIO}x Postfix at both sizes`);
    for (const r of rows) {
      const verdict = !Number.isFinite(r.ratio) ? '-' : r.ratio >= TARGET_RATIO ? 'met' : r.floorRatio < TARGET_RATIO ? `NOT met; out of reach on this machine: the floor itself is ${f2(r.floorRatio)}x` : 'NOT met (the floor reaches it)';
      console.log(`  ${r.size.padEnd(6)} ${r.mode.padEnd(9)} ${f2(r.ratio)}x  ${verdict}; the node is ${f0(r.share * 100)}% of the floor`);
    }
    console.log(`\nsample delivery to bob: ${sample}`);
    console.log(`node RSS (VmRSS, sampled every 100 ms during its runs): peak ${f0(rss.peak)} MB, at the end ${f0(idleRss)} MB; target <= ${RSS_TARGET_MB} MB: ${rss.peak <= RSS_TARGET_MB ? 'met' : 'NOT met'}`);
    console.log(`total bench time ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  } finally {
    rss.stop();
    postfix?.stop();
    await stopProcess(node).catch(() => {});
    await stopProcess(floor).catch(() => {});
    killAll();
    await dns?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
