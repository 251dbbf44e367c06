// Shared test helpers: temporary directories and the CLI run as a real subprocess.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

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

export interface RunningNode { child: ChildProcess; ready: { did: string; grpc: string; http: string | null; quic: string | null; relay: string | null }; stderr: () => string; exited: Promise<number | null> }

/** Starts `aftersmtp start --data DIR` and resolves at its {"event":"ready"} line. */
export function startNodeProcess(dataDir: string, env: NodeJS.ProcessEnv = {}): Promise<RunningNode> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE_BIN, [CLI, 'start', '--data', dataDir], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => { stderr += d; });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`node did not start\n${stderr}`)); }, 20_000);
    exited.then((code) => { clearTimeout(timer); reject(new Error(`node exited with ${code} before ready\n${stderr}`)); });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const msg = JSON.parse(line);
        if (msg.event === 'ready') { clearTimeout(timer); resolve({ child, ready: msg, stderr: () => stderr, exited }); }
      } catch { /* not JSON */ }
    });
  });
}

export function jsonLines(text: string): any[] {
  return text.split('\n').filter((l) => l.trim().startsWith('{')).map((l) => JSON.parse(l));
}
