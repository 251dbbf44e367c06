// Postfix's `smtp-source` as a load generator for any SMTP server: one bounded run, its wall time and rate.
// Without -F it writes each message itself (From, To, Date and a Message-Id unique to the run and the
// message, then `-l` bytes of body), so no two messages are copies and no server may take one as a duplicate.
import { spawn } from 'node:child_process';
import type { SourceRun } from '../reference/federation-postfix.ts';

export interface SmtpSourceLoad {
  /** The smtp-source binary. */
  bin: string;
  /** "host:port". */
  target: string;
  count: number;
  /** Sessions in parallel (-s). */
  sessions: number;
  /** Body bytes per message (-l; the headers come on top). */
  bodyBytes: number;
  /** -d: keep each connection for the next message instead of one connection per message. */
  reuse: boolean;
  from: string;
  to: string;
  /** HELO name (-M). */
  helo: string;
  /** The run is killed after this long (and counts as failed). */
  timeoutMs: number;
}

/** Runs smtp-source to completion; ok only when it exits 0 (it stops at the first reply it did not expect). */
export function runSmtpSource(load: SmtpSourceLoad): Promise<SourceRun> {
  const args = [
    '-s', String(load.sessions), '-m', String(load.count), '-l', String(load.bodyBytes), ...(load.reuse ? ['-d'] : []),
    '-f', load.from, '-t', load.to, '-M', load.helo, load.target,
  ];
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(load.bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => { if (stderr.length < 4096) stderr += d; });
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, load.timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); resolve({ ok: false, elapsedMs: 0, rate: NaN, note: err.message }); });
    child.on('close', (code) => {
      clearTimeout(timer);
      const elapsedMs = performance.now() - t0;
      const ok = code === 0 && !timedOut;
      const last = stderr.trim().split('\n').slice(-1)[0] ?? '';
      const note = timedOut ? `killed after ${load.timeoutMs} ms` : code !== 0 ? `exit ${code}: ${last}` : last;
      resolve({ ok, elapsedMs, rate: ok ? (load.count / elapsedMs) * 1000 : NaN, note });
    });
  });
}
