// What /proc says about a benchmark's processes (Linux): resident memory, CPU time (all threads) and bytes written.
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/PID/stat's times (USER_HZ, 100 on Linux). */
const CLK_TCK = 100;

/** VmRSS of a process in MB, or NaN when it is gone. */
export function rssMb(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch { return NaN; }
}

/** utime + stime of a process (all its threads) in seconds, or NaN when it is gone. */
export function cpuSeconds(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch { return NaN; }
}

/** CPU seconds of a process's children that have exited and been waited for (cutime + cstime), or NaN when it is gone. */
export function reapedCpuSeconds(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[13]) + Number(fields[14])) / CLK_TCK;
  } catch { return NaN; }
}

/**
 * Bytes a process has caused to be written to storage so far (write_bytes of /proc/PID/io: counted when
 * it dirties page-cache pages, so a WAL and its checkpoints count when written, not when flushed), or
 * NaN when it is gone.
 */
export function writtenBytes(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const m = /^write_bytes: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch { return NaN; }
}

/** CPU seconds of this process (all threads) since `since` (a process.cpuUsage() reading). */
export function ownCpuSeconds(since?: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
}

/** A process's peak RSS while it takes load: sampled every 100 ms between start() and stop(), kept over all of them. */
export class PeakRss {
  peak = 0;
  private timer?: NodeJS.Timeout;
  start(pid: number | undefined): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => { const mb = rssMb(pid); if (Number.isFinite(mb)) this.peak = Math.max(this.peak, mb); }, 100);
  }
  stop(): void { clearInterval(this.timer); }
}
