// Postfix's `smtp-source` as a load generator for any SMTP server: one bounded run, its wall time and rate.
// With `bodyBytes` it writes each message itself (From, To, Date and a Message-Id unique to the run and
// the message, then that many bytes of body), so no two messages are copies and no server may take one
// as a duplicate; with `file` it sends that prepared message (-F) every time.
import { spawn } from 'node:child_process';

export interface SourceRun { ok: boolean; elapsedMs: number; rate: number; note: string }

export interface SmtpSourceLoad {
  /** The smtp-source binary. */
  bin: string;
  /** "host:port". */
  target: string;
  count: number;
  /** Sessions in parallel (-s). */
  sessions: number;
  /** What each message is: `bodyBytes` of body under headers smtp-source writes (-l), or a prepared file (-F). */
  message: { bodyBytes: number } | { file: string };
  /** -d: keep each connection for the next message instead of one connection per message. */
  reuse: boolean;
  from: string;
  to: string;
  /** HELO name (-M); smtp-source's own otherwise. */
  helo?: string;
  /** The run is killed after this long (and counts as failed). */
  timeoutMs: number;
}

/** Runs smtp-source to completion; ok only when it exits 0 (it stops at the first reply it did not expect). */
export function runSmtpSource(load: SmtpSourceLoad): Promise<SourceRun> {
  const args = [
    '-s', String(load.sessions), '-m', String(load.count),
    ...('file' in load.message ? ['-F', load.message.file] : ['-l', String(load.message.bodyBytes)]),
    ...(load.reuse ? ['-d'] : []), ...(load.helo ? ['-M', load.helo] : []),
    '-f', load.from, '-t', load.to, load.target,
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
