// The processes a benchmark starts (nodes, reference and floor servers, CLI runs): started until they
// print their JSON `ready` line, stopped with SIGTERM (SIGKILL after a grace period), and all killed
// when the bench is interrupted or fails, so no run leaves a server behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

const running = new Set<ChildProcess>();

/** Registers a child so killAll() reaches it until it exits. */
export function track(child: ChildProcess): ChildProcess {
  running.add(child);
  child.on('exit', () => running.delete(child));
  return child;
}

/** SIGKILLs every tracked process still running (interrupts, failures). */
export function killAll(): void {
  for (const child of running) child.kill('SIGKILL');
}

export interface ReadyProcess<R> {
  name: string;
  child: ChildProcess;
  /** The parsed `{"event":"ready",...}` line. */
  ready: R;
  exited: Promise<void>;
  /** The last ~4000 characters the process wrote to stderr. */
  stderrTail: () => string;
}

export interface SpawnReadyOptions {
  env?: NodeJS.ProcessEnv;
  /** Default 30 s; the process is killed if it is not ready by then. */
  timeoutMs?: number;
  /** Copy its stderr to ours, each chunk prefixed with its name. */
  echoStderr?: boolean;
}

/** Starts `command ARGS` and resolves once it prints a JSON line with event "ready". */
export function spawnReady<R>(name: string, command: string, args: string[], opts: SpawnReadyOptions = {}): Promise<ReadyProcess<R>> {
  return new Promise((resolve, reject) => {
    const child = track(spawn(command, args, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] }));
    let tail = '';
    child.stderr!.on('data', (d) => {
      tail = (tail + d).slice(-4000);
      if (opts.echoStderr) process.stderr.write(`  ${name}: ${d}`);
    });
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${name} not ready within ${(opts.timeoutMs ?? 30_000) / 1000} s\n${tail}`)); }, opts.timeoutMs ?? 30_000);
    void exited.then(() => { clearTimeout(timer); reject(new Error(`${name} exited before ready\n${tail}`)); });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const m = JSON.parse(line);
        if (m.event === 'ready') { clearTimeout(timer); resolve({ name, child, ready: m as R, exited, stderrTail: () => tail }); }
      } catch { /* not JSON: a log line */ }
    });
  });
}

/** SIGTERM, then SIGKILL if it has not exited within `graceMs`; resolves once it is gone. */
export async function stopProcess(p: ReadyProcess<unknown> | undefined, graceMs = 10_000): Promise<void> {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => {
    process.stderr.write(`  ${p.name} did not stop within ${graceMs / 1000} s of SIGTERM; killed\n`);
    p.child.kill('SIGKILL');
  }, graceMs);
  await p.exited;
  clearTimeout(timer);
}
