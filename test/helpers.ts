// Shared test helpers: temporary directories and the CLI run as a real subprocess.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { initNode, addMailbox } from '../gateway/datadir/index.ts';
import { connect, profileResolver, readProfile, subscribe, type MailboxProfile, type ReceivedMessage } from '../gateway/client/index.ts';

export const ROOT = new URL('..', import.meta.url).pathname;
export const NODE_BIN = join(ROOT, 'node_modules', '.bin', 'node');
export const CLI = join(ROOT, 'bin', 'aftersmtp.js');

export function tempDir(prefix = 'aftersmtp-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

export interface CliResult { code: number | null; stdout: string; stderr: string }

/** Runs `aftersmtp ARGS` to completion. */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE_BIN, [CLI, ...args], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`aftersmtp ${args.join(' ')} timed out\n${stderr}`)); }, opts.timeoutMs ?? 30_000);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

export interface RunningNode { child: ChildProcess; ready: { did: string; grpc: string; http: string | null; metrics: string | null; quic: string | null; relay: string | null }; stdout: () => string; stderr: () => string; exited: Promise<number | NodeJS.Signals | null> }

/** Stops a node process started here (SIGTERM: a clean stop; SIGKILL: a crash) and waits until it has exited. */
export async function stopNode(node: RunningNode | undefined, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
  node?.child.kill(signal);
  await node?.exited;
}

/**
 * Starts `aftersmtp start --data DIR` as `npx aftersmtp` runs it (the command file through its shebang,
 * node from node_modules/.bin) and resolves at its {"event":"ready"} line.
 */
export function startNodeProcess(dataDir: string, env: NodeJS.ProcessEnv = {}): Promise<RunningNode> {
  return startNodeWith(['start', '--data', dataDir], { env });
}

/** Runs `aftersmtp ARGS` (a command that serves, e.g. `start`) from `cwd` and resolves at its ready line. */
export function startNodeWith(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<RunningNode> {
  return new Promise((resolve, reject) => {
    const path = `${join(ROOT, 'node_modules', '.bin')}:${process.env.PATH ?? ''}`;
    const child = spawn(CLI, args, { cwd: opts.cwd, env: { ...process.env, PATH: path, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr!.on('data', (d) => { stderr += d; });
    // A process killed by a signal resolves to the signal's name, so a test says which.
    const exited = new Promise<number | NodeJS.Signals | null>((r) => child.on('exit', (code, signal) => r(code ?? signal)));
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`node did not start\n${stderr}`)); }, 20_000);
    exited.then((code) => { clearTimeout(timer); reject(new Error(`node exited with ${code} before ready\n${stderr}`)); });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      stdout += `${line}\n`;
      try {
        const msg = JSON.parse(line);
        if (msg.event === 'ready') { clearTimeout(timer); resolve({ child, ready: msg, stdout: () => stdout, stderr: () => stderr, exited }); }
      } catch { /* not JSON */ }
    });
  });
}

export function jsonLines(text: string): any[] {
  return text.split('\n').filter((l) => l.trim().startsWith('{')).map((l) => JSON.parse(l));
}

/** Polls `fn` until it returns something other than undefined (errors count as "not yet"), or times out naming `what`. */
export async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A free UDP port (QUIC) and a free TCP port (HTTP/2 relay) on 127.0.0.1, found by binding port 0. */
export async function freePorts(): Promise<{ quic: number; relay: number }> {
  const { createSocket } = await import('node:dgram');
  const { createServer } = await import('node:net');
  const udp = createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  const quic = udp.address().port;
  udp.close();
  const tcp = createServer();
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
  const relay = (tcp.address() as import('node:net').AddressInfo).port;
  await new Promise((r) => tcp.close(r));
  return { quic, relay };
}

/**
 * A new node in `dir`/node for `domain` (gRPC on port 0), with mailboxes alice and bob whose profiles
 * are `dir`/alice.json and `dir`/bob.json: what in-process node tests start from.
 */
export async function initNodeWithMailboxes(dir: string, domain: string): Promise<{ data: string; alice: MailboxProfile; bob: MailboxProfile }> {
  const data = join(dir, 'node');
  await initNode({ dataDir: data, domain, grpcPort: 0 });
  const mailbox = (name: string) => addMailbox({ dataDir: data, address: `${name}@${domain}`, profileFile: join(dir, `${name}.json`) });
  return { data, alice: mailbox('alice'), bob: mailbox('bob') };
}

/**
 * A node process that anchors its checkpoints on `chain` (its key funded there, an anchor a second,
 * checkpoints every 200 ms), with mailboxes alice@ and bob@ `domain` whose profiles go into `profilesDir`.
 */
export async function startAnchoringNode(opts: { data: string; domain: string; profilesDir: string; chain: { endpoint: string; fund(publicKey: Uint8Array): Promise<void> }; env?: NodeJS.ProcessEnv }): Promise<{ node: RunningNode; did: string; signing: { privateKey: string; publicKey: string; keyId: string } }> {
  const init = await runCli(['init', '--data', opts.data, '--domain', opts.domain, '--grpc-port', '0', '--json']);
  if (init.code !== 0) throw new Error(`init failed: ${init.stderr}`);
  const { signing } = JSON.parse(readFileSync(join(opts.data, 'keys/node.json'), 'utf8')) as { signing: { privateKey: string; publicKey: string; keyId: string } };
  await opts.chain.fund(new Uint8Array(Buffer.from(signing.publicKey, 'base64url')));
  const node = await startNodeProcess(opts.data, {
    AFTERSMTP_LEDGER__ANCHOR__ENDPOINT: opts.chain.endpoint,
    AFTERSMTP_LEDGER__ANCHOR__INTERVAL_MS: '1000',
    AFTERSMTP_LEDGER__CHECKPOINT_INTERVAL_MS: '200',
    ...opts.env,
  });
  for (const name of ['alice', 'bob']) {
    const r = await runCli(['mailbox', 'add', `${name}@${opts.domain}`, '--data', opts.data, '--profile', join(opts.profilesDir, `${name}.json`)]);
    if (r.code !== 0) throw new Error(`mailbox add ${name} failed: ${r.stderr}`);
  }
  return { node, did: JSON.parse(init.stdout).did as string, signing };
}

/** Receives (and acknowledges) up to `count` messages of the mailbox whose profile is `profileFile`, waiting at most timeoutMs. */
export async function receiveMail(profileFile: string, grpc: string, count: number, timeoutMs: number): Promise<ReceivedMessage[]> {
  const p = readProfile(profileFile);
  const clients = connect(p, grpc);
  const got: ReceivedMessage[] = [];
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    await subscribe(p, clients, profileResolver(p), { count, signal: controller.signal, onMessage: (m) => { got.push(m); } });
  } finally {
    clearTimeout(timer);
    clients.close();
  }
  return got;
}
