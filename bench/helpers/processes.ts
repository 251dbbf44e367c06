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
  /** The next JSON line with `event` after the ready line (lines are kept until asked for); rejects at the timeout or on exit. */
  event: <E = Record<string, unknown>>(event: string, timeoutMs: number) => Promise<E>;
  /** Writes one JSON line to its stdin (started with `stdin: true`). */
  send: (message: unknown) => void;
}

export interface SpawnReadyOptions {
  env?: NodeJS.ProcessEnv;
  /** Default 30 s; the process is killed if it is not ready by then. */
  timeoutMs?: number;
  /** Copy its stderr to ours, each chunk prefixed with its name. */
  echoStderr?: boolean;
  /** Give it a stdin pipe, for commands as JSON lines (`send`). */
  stdin?: boolean;
}

/** Starts `command ARGS` and resolves once it prints a JSON line with event "ready". */
export function spawnReady<R>(name: string, command: string, args: string[], opts: SpawnReadyOptions = {}): Promise<ReadyProcess<R>> {
  return new Promise((resolve, reject) => {
    const child = track(spawn(command, args, { env: opts.env ?? process.env, stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] }));
    let tail = '';
    child.stderr!.on('data', (d) => {
      tail = (tail + d).slice(-4000);
      if (opts.echoStderr) process.stderr.write(`  ${name}: ${d}`);
    });
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${name} not ready within ${(opts.timeoutMs ?? 30_000) / 1000} s\n${tail}`)); }, opts.timeoutMs ?? 30_000);
    void exited.then(() => { clearTimeout(timer); reject(new Error(`${name} exited before ready\n${tail}`)); });
    const later: Record<string, unknown>[] = [];
    let wake: (() => void) | undefined;
    let ready = false;
    const event = async <E>(wanted: string, timeoutMs: number): Promise<E> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const at = later.findIndex((m) => m.event === wanted);
        if (at >= 0) return later.splice(at, 1)[0] as E;
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited before "${wanted}"\n${tail}`);
        if (Date.now() >= deadline) throw new Error(`${name}: no "${wanted}" within ${timeoutMs / 1000} s\n${tail}`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, Math.min(1000, Math.max(0, deadline - Date.now())));
          wake = () => { clearTimeout(t); r(); };
        });
      }
    };
    const send = (message: unknown) => { child.stdin!.write(`${JSON.stringify(message)}\n`); };
    void exited.then(() => wake?.());
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let m: Record<string, unknown>;
      try { m = JSON.parse(line); } catch { return; /* not JSON: a log line */ }
      if (!ready && m.event === 'ready') {
        ready = true;
        clearTimeout(timer);
        resolve({ name, child, ready: m as R, exited, stderrTail: () => tail, event, send });
      } else if (ready && typeof m.event === 'string') {
        later.push(m);
        if (later.length > 1000) later.shift(); // a process whose events nobody asks for
        wake?.();
      }
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
