// The node as the benches run it: `aftersmtp` (bin/aftersmtp.js through its shebang, Node from node_modules, as
// `npx aftersmtp` runs it), with the log level kept at warn unless AFTERSMTP_LOG__LEVEL says otherwise.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { track } from './processes.ts';

export const ROOT = new URL('../..', import.meta.url).pathname;
export const NODE = join(ROOT, 'node_modules', '.bin', 'node');
export const CLI = join(ROOT, 'bin', 'aftersmtp.js');
export const NODE_ENV = { AFTERSMTP_LOG__LEVEL: process.env.AFTERSMTP_LOG__LEVEL ?? 'warn', PATH: `${join(ROOT, 'node_modules', '.bin')}:${process.env.PATH}` };

/** `aftersmtp ARGS --json`, killed after `timeoutMs`; returns the parsed JSON output. */
export function cli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<any> {
  return new Promise((resolve, reject) => {
    const child = track(spawn(NODE, [CLI, ...args, '--json'], { env: { ...process.env, ...NODE_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => { stdout += d; });
    child.stderr!.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) { reject(new Error(`aftersmtp ${args.join(' ')} -> ${code}\n${stderr}`)); return; }
      try { resolve(stdout.trim() ? JSON.parse(stdout) : undefined); } catch { reject(new Error(`aftersmtp ${args.join(' ')}: not JSON: ${stdout}`)); }
    });
  });
}
