// The same-run reference for bench/suites/federation.ts: Postfix's durable acceptance rate measured with
// `smtp-source -s 10 -m N` against a benchmark-only Postfix on 127.0.0.1:2526 that queues durably (the
// cleanup daemon fsyncs the queue file before its 250) and then discards everything. Its main.cf and
// master.cf are the project's Postfix reference configuration, kept outside this repository on the
// benchmark machines (BENCH_POSTFIX_REF, default /work/shared/reference/postfix-bench); the verbatim
// copies below are used when that directory is absent, so the bench runs from this repository alone. This module never installs anything: when `postfix` or
// `smtp-source` is missing it says how to install them and the caller prints AfterSMTP figures alone.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, copyFileSync, renameSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join, delimiter } from 'node:path';
import { runSmtpSource, type SourceRun } from '../helpers/smtp-source.ts';

export const POSTFIX_HOST = '127.0.0.1';
export const POSTFIX_PORT = 2526;
export const INSTALL_HINT = [
  'apt-get update',
  'echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections',
  'DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix   # also brings smtp-source',
].join(' && ');

const REF_DIR = process.env.BENCH_POSTFIX_REF ?? '/work/shared/reference/postfix-bench';

// Verbatim copy of the reference main.cf (used only when REF_DIR is not there).
const MAIN_CF = `# Benchmark-only Postfix: listens on 127.0.0.1:2526, never delivers anywhere (every transport = discard).
compatibility_level = 3.6
myhostname = perf.localdomain
mydomain = localdomain
myorigin = $myhostname
mydestination = $myhostname, localhost, example.org
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
default_transport = discard:benchmark
relay_transport = discard:benchmark
local_transport = discard:benchmark
virtual_transport = discard:benchmark
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
local_recipient_maps =
biff = no
maillog_file = /var/log/postfix-bench.log
`;

// Verbatim copy of the reference master.cf (used only when REF_DIR is not there).
const MASTER_CF = `127.0.0.1:2526 inet n    -       n       -       -       smtpd
pickup     unix  n       -       n       60      1       pickup
cleanup    unix  n       -       n       -       0       cleanup
qmgr       unix  n       -       n       300     1       qmgr
tlsmgr     unix  -       -       n       1000?   1       tlsmgr
rewrite    unix  -       -       n       -       -       trivial-rewrite
bounce     unix  -       -       n       -       0       bounce
defer      unix  -       -       n       -       0       bounce
trace      unix  -       -       n       -       0       bounce
verify     unix  -       -       n       -       1       verify
flush      unix  n       -       n       1000?   0       flush
proxymap   unix  -       -       n       -       -       proxymap
proxywrite unix  -       -       n       -       1       proxymap
smtp       unix  -       -       n       -       -       smtp
relay      unix  -       -       n       -       -       smtp -o syslog_name=postfix/$service_name
showq      unix  n       -       n       -       -       showq
error      unix  -       -       n       -       -       error
retry      unix  -       -       n       -       -       error
discard    unix  -       -       n       -       -       discard
local      unix  -       n       n       -       -       local
virtual    unix  -       n       n       -       -       virtual
lmtp       unix  -       -       n       -       -       lmtp
anvil      unix  -       -       n       -       1       anvil
scache     unix  -       -       n       -       1       scache
postlog    unix-dgram n  -       n       -       1       postlogd
`;

/** Finds an executable on PATH or in the sbin directories Debian installs Postfix into. */
export function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/bin', '/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

function portOpen(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port });
    const done = (open: boolean) => { socket.destroy(); resolve(open); };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function run(bin: string, args: string[], timeoutMs: number): { code: number | null; output: string } {
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' });
  return { code: r.error ? null : r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}`.trim() };
}

export interface PostfixInstance {
  /** Human description of where the configuration lives. */
  where: string;
  /** Stops Postfix (idempotent, synchronous so it also works from a signal handler). */
  stop(): void;
}

/**
 * Starts the benchmark Postfix. Prefers a private configuration directory (`postfix -c DIR start`);
 * if Postfix refuses that, falls back to /etc/postfix (the reference README's way), keeping any
 * existing main.cf/master.cf aside and putting them back on stop.
 */
export async function startPostfix(postfix: string, workDir: string): Promise<PostfixInstance> {
  if (await portOpen(POSTFIX_HOST, POSTFIX_PORT)) {
    throw new Error(`${POSTFIX_HOST}:${POSTFIX_PORT} is already in use (a Postfix left running? try: postfix stop)`);
  }
  const mainCf = existsSync(join(REF_DIR, 'main.cf')) ? readFileSync(join(REF_DIR, 'main.cf'), 'utf8') : MAIN_CF;
  const masterCf = existsSync(join(REF_DIR, 'master.cf')) ? readFileSync(join(REF_DIR, 'master.cf'), 'utf8') : MASTER_CF;
  const attempts: string[] = [];

  // 1. A private configuration directory.
  const confDir = join(workDir, 'postfix-conf');
  mkdirSync(confDir, { recursive: true });
  writeFileSync(join(confDir, 'main.cf'), mainCf);
  writeFileSync(join(confDir, 'master.cf'), masterCf);
  let r = run(postfix, ['-c', confDir, 'start'], 60_000);
  if (r.code === 0 && await waitListening(15_000)) {
    return { where: `postfix -c ${confDir}`, stop: once(() => { run(postfix, ['-c', confDir, 'stop'], 30_000); }) };
  }
  attempts.push(`postfix -c DIR start: ${r.output.split('\n').slice(-2).join(' | ') || `exit ${r.code}`}`);
  run(postfix, ['-c', confDir, 'stop'], 30_000);

  // 2. /etc/postfix, as in the reference README; the originals are restored on stop.
  const etc = '/etc/postfix';
  const saved: string[] = [];
  const restore = () => {
    for (const f of saved) renameSync(join(etc, `${f}.aftersmtp-bench-saved`), join(etc, f));
    saved.length = 0;
  };
  try {
    mkdirSync(etc, { recursive: true });
    for (const [name, text] of [['main.cf', mainCf], ['master.cf', masterCf]] as const) {
      if (existsSync(join(etc, name))) {
        copyFileSync(join(etc, name), join(etc, `${name}.aftersmtp-bench-saved`));
        saved.push(name);
      }
      writeFileSync(join(etc, name), text);
    }
  } catch (err) {
    restore();
    throw new Error(`${attempts.join('; ')}; cannot write ${etc}: ${(err as Error).message}`);
  }
  r = run(postfix, ['start'], 60_000);
  const stop = once(() => { run(postfix, ['stop'], 30_000); restore(); });
  if (r.code === 0 && await waitListening(15_000)) return { where: `${etc} (reference config copied in; originals restored on stop)`, stop };
  stop();
  attempts.push(`postfix start (${etc}): ${r.output.split('\n').slice(-2).join(' | ') || `exit ${r.code}`}`);
  throw new Error(attempts.join('; '));
}

async function waitListening(timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await portOpen(POSTFIX_HOST, POSTFIX_PORT)) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

function once(fn: () => void): () => void {
  let done = false;
  return () => { if (!done) { done = true; fn(); } };
}

export type { SourceRun } from '../helpers/smtp-source.ts';

/** One bounded `smtp-source` run of a prepared message against the reference Postfix, one connection per message. */
export function smtpSource(bin: string, file: string, count: number, sessions: number, timeoutMs: number): Promise<SourceRun> {
  return runSmtpSource({
    bin, target: `${POSTFIX_HOST}:${POSTFIX_PORT}`, count, sessions, message: { file }, reuse: false,
    from: 'bob@example.net', to: 'alice@example.org', timeoutMs,
  });
}
