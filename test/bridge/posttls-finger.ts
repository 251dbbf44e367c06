// Postfix's posttls-finger as an independent DANE oracle against the test's own DNS lab and SMTP servers.
// posttls-finger takes neither a resolver nor a TLSA port: libc reads /etc/resolv.conf (port 53 only), and
// Postfix looks up `_PORT._tcp` for the port it connects to. So it runs in a private network and mount
// namespace (posttls-netns.ts) where /etc/resolv.conf names the lab resolver's address and each MX address
// answers on port 25; both are mirrored over Unix sockets to the resolver's and the servers' real ports.
// The libc resolver speaks TCP there (`options use-vc`), so only streams cross the namespace boundary.
// Needs root or unprivileged user namespaces (`unshare`), `ip`, `mount`, and Debian's postfix package.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** What the oracle says an MTA at `smtp_tls_security_level = dane` does with a destination. */
export type DaneOutcome = 'authenticated' | 'refused' | 'deferred' | 'opportunistic';

export interface FingerRun { code: number | string; output: string }

export interface PosttlsFinger {
  /**
   * Runs `posttls-finger -v -l dane DESTINATION` (a domain: MX lookup, port 25). `-v` makes it log its DNS
   * answers and its fallbacks ("no TLSA records found"), without which some cases cannot be told apart.
   */
  probe(destination: string): Promise<FingerRun>;
  close(): Promise<void>;
}

interface Mirror {
  /** The address posttls-finger connects to, as published in DNS. */
  address: string;
  /** 25 for an MX, 53 for the resolver. */
  port: number;
  /** Where the connection really goes. */
  to: { host: string; port: number };
}

const MAX_RUNNING = 4;

/** Where Debian puts Postfix's and iproute2's programs, often missing from a non-root PATH. */
const SBIN = ['/usr/sbin', '/sbin'];
const searchPath = () => [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...SBIN];

/** The path of posttls-finger, or a message saying how to get it. */
export function findPosttlsFinger(): { path: string } | { missing: string } {
  for (const dir of searchPath()) {
    const path = join(dir, 'posttls-finger');
    try {
      accessSync(path, constants.X_OK);
      return { path };
    } catch { /* not here */ }
  }
  return { missing: 'posttls-finger is not installed: it comes with Debian\'s postfix package (apt-get install postfix; .ci/run installs it)' };
}

/**
 * Starts the namespace that runs `posttlsFinger` (its path). `resolver` is the lab's `host:port`; `mxes` are the
 * MX hosts' addresses and their servers' real ports, each mirrored there from port 25 in the namespace.
 */
export async function startPosttlsFinger(
  posttlsFinger: string, resolver: string, mxes: { address: string; port: number }[],
): Promise<PosttlsFinger> {
  const [resolverHost, resolverPort] = resolver.split(':') as [string, string];
  const dir = mkdtempSync(join(tmpdir(), 'aftersmtp-posttls-'));
  // The lab's trust anchor is in unbound; `trust-ad` makes glibc keep the AD bit Postfix reads as "secure".
  writeFileSync(join(dir, 'resolv.conf'), `nameserver ${resolverHost}\noptions use-vc edns0 trust-ad attempts:1 timeout:5\n`);
  writeFileSync(join(dir, 'main.cf'), [
    'compatibility_level = 3.6',
    'smtp_dns_support_level = dnssec',
    'smtp_tls_security_level = dane',
    'smtp_host_lookup = dns',
    'maillog_file =',
    // Postfix checks that DNSSEC works by asking for the root's NS; the lab has no root, only its signed parent.
    'dnssec_probe = ns:test',
    '',
  ].join('\n'));

  const mirrors: Mirror[] = [
    { address: resolverHost, port: 53, to: { host: resolverHost, port: Number(resolverPort) } },
    ...mxes.map((mx) => ({ address: mx.address, port: 25, to: { host: mx.address, port: mx.port } })),
  ];
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  let child: ChildProcess | undefined;
  const close = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => { child!.once('exit', () => resolve()); child!.kill('SIGTERM'); });
    }
    // A relayed connection the namespace's end left half open must not hold the servers open.
    for (const socket of sockets) socket.destroy();
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    for (const m of mirrors) {
      const server = createServer((inner) => {
        const outer = connect(m.to.port, m.to.host);
        for (const socket of [inner, outer]) {
          sockets.add(socket);
          socket.once('close', () => sockets.delete(socket));
        }
        inner.on('error', () => outer.destroy());
        outer.on('error', () => inner.destroy());
        inner.pipe(outer).pipe(inner);
      });
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(join(dir, `${m.address}-${m.port}.sock`), () => resolve());
      });
    }

    const unshare = ['--net', '--mount', '--propagation', 'private'];
    if (process.getuid?.() !== 0) unshare.unshift('--map-root-user');
    child = spawn('unshare', [...unshare, process.execPath, join(import.meta.dirname, 'posttls-netns.ts'), dir, posttlsFinger], {
      stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PATH: searchPath().join(delimiter) },
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const pending = new Map<number, (run: FingerRun) => void>();
    const lines = createInterface({ input: child.stdout! });
    await new Promise<void>((resolve, reject) => {
      child!.once('exit', (code, signal) => reject(new Error(`the posttls-finger namespace exited (${code ?? signal}): ${stderr.trim()}`)));
      lines.on('line', (line) => {
        let message: { ready?: true; id?: number; code?: number | string; output?: string };
        try {
          message = JSON.parse(line) as typeof message;
        } catch {
          return;
        }
        if (message.ready) return resolve();
        pending.get(message.id!)?.({ code: message.code!, output: message.output! });
        pending.delete(message.id!);
      });
    });
    // A namespace that dies answers every probe still waiting, so a test fails with its reason instead of hanging.
    child.once('exit', (code, signal) => {
      for (const answer of pending.values()) answer({ code: `namespace exited (${code ?? signal})`, output: stderr });
      pending.clear();
    });

    let nextId = 0;
    let running = 0;
    const queued: (() => void)[] = [];
    const run = (destination: string) => new Promise<FingerRun>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      child!.stdin!.write(`${JSON.stringify({ id, args: ['-v', '-l', 'dane', '-t', '15', '-T', '15', destination] })}\n`);
    });
    return {
      async probe(destination) {
        // A few at a time: each run's resolver holds a TCP connection, and unbound serves 10 per thread
        // (incoming-num-tcp); more at once and some lookups fail, which reads as a deferral.
        if (running >= MAX_RUNNING) await new Promise<void>((start) => queued.push(start));
        running++;
        try {
          return await run(destination);
        } finally {
          running--;
          queued.shift()?.();
        }
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * What an MTA at the `dane` level (Postfix's smtp(8)) does with the destination, read from posttls-finger's
 * verbose log. posttls-finger itself falls back to the `secure` level where an MTA falls back to `may` (no
 * secure TLSA records: the zone is unsigned, or DNSSEC denies them), so its "Untrusted" means opportunistic
 * there; when every record is unusable an MTA requires TLS without authenticating it (`encrypt`). Undefined
 * when the log shows none of the cases (the test then fails with the log).
 */
export function fingerOutcome(output: string): DaneOutcome | undefined {
  const tls = /(Untrusted|Anonymous|Trusted|Verified) TLS connection established/.exec(output)?.[1];
  // A temporary DNS failure (SERVFAIL: bogus, or no answer) of the MX, address or TLSA lookup: an MTA tries later.
  if (/TLSA lookup error|lookup failed: .*try again/.test(output)) return 'deferred';
  // "Trusted" rather than "Verified" when the MX answer was insecure but the host's TLSA records were secure and
  // matched (smtp_tls_dane_insecure_mx_policy = dane): the host is authenticated, the MX name is not.
  if (tls === 'Verified' || (tls === 'Trusted' && /Matched DANE (EE|TA) certificate/.test(output))) return 'authenticated';
  if (/no TLSA records found, resorting to/.test(output)) return tls ? 'opportunistic' : undefined;
  if (/all TLSA records unusable/.test(output)) return tls ? 'opportunistic' : 'refused';
  // Secure, usable TLSA records were found: anything short of a verified TLS connection is a refusal.
  if (/dns_get_answer: type TLSA for /.test(output)) return 'refused';
  return undefined;
}

/** The lines of posttls-finger's verbose log that bear on the verdict (for a failure message). */
export function fingerEvidence(output: string): string {
  return output.split('\n')
    .filter((line) => /TLSA|DNSSEC|dns_query|TLS connection|verification|Matched|Connected|resorting|unusable|warning|Failed|error|STARTTLS/
      .test(line))
    .join('\n');
}
