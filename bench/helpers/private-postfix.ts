// A private Postfix instance (Debian's postfix package): its own configuration, queue and data under one
// directory, SMTP listeners on 127.0.0.1 ports picked here, nothing chrooted (a private queue has no chroot
// tree), beside any other instance on the machine. The caller's main.cf lines say what it is (a receiving
// MTA, a relay, a discarding sink). With `maillog`, it logs to a file of its own through postlogd, which
// LogCounter reads to count what it did. Never installs anything; `postfix` must be on PATH or in /usr/sbin.
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect as connectTcp, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PrivatePostfixOptions {
  /** Prefix of its directory under the system temporary directory (or under `parent`, which user postfix must be able to enter). */
  name: string;
  parent?: string;
  /**
   * Writes what the instance needs under its directory (certificates, mail directories) and returns its main.cf
   * lines, which follow the common ones (queue and data directories, loopback only, no DNS, no aliases).
   */
  configure: (dir: string) => string[];
  /** How many smtpd listeners on 127.0.0.1 (ports picked free). */
  listeners: number;
  /** Log to DIR/maillog through postlogd (read it with LogCounter). */
  maillog?: boolean;
}

export interface PrivatePostfix {
  dir: string;
  conf: string;
  ports: number[];
  /** DIR/maillog when `maillog`. */
  maillog?: string;
  /** The pids of its master and the services it runs now (for CPU accounting). */
  pids(): number[];
  /** Stops it and removes its directory; synchronous (usable from a signal handler), idempotent. */
  stop(): void;
}

function postfixBin(): string {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/bin']) {
    if (dir && existsSync(join(dir, 'postfix'))) return join(dir, 'postfix');
  }
  throw new Error('postfix not found (Debian: apt-get install postfix, "No configuration")');
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function idOf(name: string, flag: '-u' | '-g'): number {
  return Number(spawnSync('id', [flag, name], { encoding: 'utf8' }).stdout.trim());
}

function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connectTcp({ host: '127.0.0.1', port });
    const done = (ok: boolean) => { socket.destroy(); resolve(ok); };
    socket.setTimeout(1000, () => done(false));
    socket.once('data', (d: Buffer) => done(d.toString().startsWith('220')));
    socket.once('error', () => done(false));
  });
}

export async function startPrivatePostfix(opts: PrivatePostfixOptions): Promise<PrivatePostfix> {
  const postfix = postfixBin();
  const dir = mkdtempSync(join(opts.parent ?? tmpdir(), `${opts.name}-`));
  chmodSync(dir, 0o755);
  for (const d of ['conf', 'queue', 'data']) mkdirSync(join(dir, d));
  chownSync(join(dir, 'data'), idOf('postfix', '-u'), 0);
  const conf = join(dir, 'conf');
  const ports: number[] = [];
  for (let i = 0; i < opts.listeners; i++) ports.push(await freePort());
  const maillog = opts.maillog ? join(dir, 'maillog') : undefined;
  writeFileSync(join(conf, 'main.cf'), [
    'compatibility_level = 3.6',
    `queue_directory = ${dir}/queue`,
    `data_directory = ${dir}/data`,
    'inet_interfaces = loopback-only',
    'inet_protocols = ipv4',
    'mynetworks = 127.0.0.0/8',
    'smtp_dns_support_level = disabled',
    'disable_dns_lookups = yes',
    'smtpd_peername_lookup = no',
    'alias_maps =',
    'alias_database =',
    'biff = no',
    'master_service_disable =',
    // Postfix writes a log file only under maillog_file_prefixes (/var by default).
    ...(maillog ? [`maillog_file = ${maillog}`, `maillog_file_prefixes = ${dir}`] : []),
    ...opts.configure(dir),
    '',
  ].join('\n'));
  // Debian's master.cf without chroot and with the loopback listeners instead of port 25.
  const master = readFileSync('/etc/postfix/master.cf', 'utf8').split('\n')
    .filter((l) => !/^smtp\s+inet\s/.test(l))
    .map((l) => {
      const f = l.split(/\s+/);
      if (/^[a-z0-9]/.test(l) && f.length >= 8 && f[4] === 'y') { f[4] = 'n'; return f.join('  '); }
      return l;
    });
  for (const port of ports) master.push(`127.0.0.1:${port} inet n - n - - smtpd`);
  writeFileSync(join(conf, 'master.cf'), `${master.join('\n')}\n`);

  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    spawnSync(postfix, ['-c', conf, 'stop'], { timeout: 30_000, killSignal: 'SIGKILL' });
    rmSync(dir, { recursive: true, force: true });
  };
  const run = (args: string[]) => {
    const r = spawnSync(postfix, ['-c', conf, ...args], { encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' });
    if (r.status !== 0) throw new Error(`postfix -c ${conf} ${args.join(' ')}: ${`${r.stdout ?? ''}${r.stderr ?? ''}`.trim() || r.error?.message || `exit ${r.status}`}`);
  };
  try {
    run(['check']);
    run(['start']);
    const deadline = Date.now() + 20_000;
    for (const port of ports) {
      while (!(await greets(port))) {
        if (Date.now() > deadline) throw new Error(`private Postfix in ${dir} not greeting on 127.0.0.1:${port} within 20 s`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (err) {
    stop();
    throw err;
  }
  const pids = () => {
    let master: number;
    try { master = Number(readFileSync(join(dir, 'queue', 'pid', 'master.pid'), 'utf8').trim()); } catch { return []; }
    const children = spawnSync('pgrep', ['-P', String(master)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
    return [master, ...children];
  };
  return { dir, conf, ports, ...(maillog ? { maillog } : {}), pids, stop };
}

/** Counts the lines of a growing log file that match `pattern`, reading only what was added since the last call. */
export class LogCounter {
  readonly #file: string;
  readonly #pattern: RegExp;
  #offset = 0;
  #partial = '';
  #count = 0;

  constructor(file: string, pattern: RegExp) {
    this.#file = file;
    this.#pattern = pattern;
  }

  count(): number {
    let size: number;
    try { size = statSync(this.#file).size; } catch { return this.#count; }
    if (size <= this.#offset) return this.#count;
    const fd = openSync(this.#file, 'r');
    try {
      const buf = Buffer.allocUnsafe(size - this.#offset);
      const n = readSync(fd, buf, 0, buf.length, this.#offset);
      this.#offset += n;
      const lines = (this.#partial + buf.toString('latin1', 0, n)).split('\n');
      this.#partial = lines.pop() ?? '';
      for (const line of lines) if (this.#pattern.test(line)) this.#count++;
    } finally {
      closeSync(fd);
    }
    return this.#count;
  }

  /** Resolves with performance.now() once the count reaches `target` (polled every `everyMs`), or with undefined at `deadline` (Date.now()). */
  async reach(target: number, deadline: number, everyMs = 10): Promise<number | undefined> {
    for (;;) {
      if (this.count() >= target) return performance.now();
      if (Date.now() >= deadline) return undefined;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}
