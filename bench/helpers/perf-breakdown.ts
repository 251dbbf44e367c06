/**
 * Where a machine's CPU goes, from a system-wide `perf` recording (a diagnostic, not a test).
 *
 *   perf record -a -g -F 499 -o perf.data -- sleep 40      # while a bench runs
 *   node bench/helpers/perf-breakdown.ts --data perf.data --timeline
 *   node bench/helpers/perf-breakdown.ts --data perf.data --from 35 --to 39 --pid 12836=NODE --pid 12812=CLIENT
 *
 * V8's CPU profiles (BENCH_PROFILE) see JavaScript on one thread; on two cores shared by several
 * processes the cost is also in SQLite, OpenSSL, the kernel, V8's GC helper threads and the QUIC
 * library's threads. Each sample is put in one bucket: its process (named by --pid, else its pid), its
 * thread, and the first frame from the leaf that belongs to a known part (kernel frames are followed
 * up to the user-space code that entered the kernel). Shares are of all samples in the window, idle
 * included, so they add up to the whole machine. `--timeline` prints samples per second per process to
 * find a bench phase's window (seconds from the first sample).
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    data: { type: 'string', default: 'perf.data' },
    from: { type: 'string', default: '0' },
    to: { type: 'string', default: 'Infinity' },
    pid: { type: 'string', multiple: true, default: [] },
    top: { type: 'string', default: '30' },
    timeline: { type: 'boolean', default: false },
  },
});

/** First match from the leaf decides; order matters where names overlap (SQLite before libc). */
const PARTS: [string, RegExp][] = [
  ['sqlite', /sqlite|walIndex|pager|[bB]tree|Vdbe|pcache|walChecksum|walWrite|walTry|unixSync|unixWrite|unixRead/],
  ['ed25519', /ed25519|ED25519|ossl_ed|x25519|fe51_|ge_|curve25519/],
  ['sha2', /sha256|SHA256|sha512|SHA512/],
  ['aead', /aes_gcm|aesni|gcm_|chacha|poly1305|ossl_aes/],
  ['openssl', /ssl3_|SSL_|tls1|BIO_|EVP_|OPENSSL|CRYPTO_/],
  ['gc', /Heap::|Scavenge|MarkCompact|GarbageCollect|Sweeper|Evacuat|MinorMS|ConcurrentMarking|MemoryAllocator/],
  ['http2', /nghttp2|Http2/],
  ['napi', /ThreadSafeFunction|napi_/],
  ['thread-handoff', /PostMessage|MessagePort|uv_async_send|pthread_cond/],
  ['malloc', /^(malloc|cfree|free|unlink_chunk|_int_malloc|_int_free|__libc_malloc)\b|memset|memmove|memcpy/],
  ['io', /LibuvStreamWrap|uv__|epoll|^__GI___libc_write$|^__libc_write$|writev|sendmsg|recvmsg|^read$/],
  ['js/v8', /^Builtins_|^\[unknown\]|v8::|^Runtime_|node::/],
];

interface Frame { kernel: boolean; name: string; object: string }
interface Sample { pid: string; thread: string; seconds: number; frames: Frame[] }

function* samples(file: string): Generator<Sample> {
  const out = spawnSync('perf', ['script', '-i', file, '-F', 'comm,pid,time,ip,sym,dso'], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (out.error || out.status !== 0) throw new Error(`perf script failed: ${out.error?.message ?? out.stderr.slice(0, 300)}`);
  let first: number | undefined;
  for (const block of out.stdout.split('\n\n')) {
    const lines = block.split('\n').filter((l) => l.trim() !== '');
    const head = /^\s*(.+?)\s+(\d+)\s+([\d.]+):/.exec(lines[0] ?? '');
    if (!head) continue;
    const time = Number(head[3]);
    first ??= time;
    const frames = lines.slice(1).map((line): Frame => {
      // "address symbol (object)"; native addons are stripped, so their object names them
      const m = /^\s*([0-9a-f]+)\s+(.*?)\s+\(([^)]*)\)\s*$/.exec(line);
      return m ? { kernel: m[1]!.startsWith('ffffffff'), name: m[2]!, object: m[3]! } : { kernel: false, name: line.trim(), object: '' };
    });
    yield { thread: head[1]!, pid: head[2]!, seconds: time - first, frames };
  }
}

function partOf(frames: Frame[]): string {
  let viaKernel = false;
  for (const frame of frames) {
    if (frame.kernel) { viaKernel = true; continue; }
    if (frame.object.endsWith('.node')) return `${viaKernel ? 'kernel<-' : ''}addon ${frame.object.split('/').pop()}`;
    const part = PARTS.find(([, pattern]) => pattern.test(frame.name));
    if (part) return viaKernel ? `kernel<-${part[0]}` : part[0];
  }
  return viaKernel ? 'kernel<-other' : 'other';
}

const HELPERS = new Set(['gc-helpers', 'libuv-pool', 'tokio']);

/** V8 names its helper threads V8Worker, libuv its pool libuv-worker, the QUIC library tokio-runtime-w. */
function threadKind(thread: string): string {
  if (thread === 'V8Worker') return 'gc-helpers';
  if (thread === 'libuv-worker') return 'libuv-pool';
  if (thread.startsWith('tokio')) return 'tokio';
  return thread;
}

const names = new Map(values.pid.map((p) => p.split('=') as [string, string]));
const from = Number(values.from);
const to = Number(values.to);
const buckets = new Map<string, number>();
const perSecond = new Map<number, Map<string, number>>();
let total = 0;
for (const s of samples(values.data)) {
  const owner = s.pid === '0' ? 'idle' : (names.get(s.pid) ?? s.pid);
  if (values.timeline) {
    const second = Math.floor(s.seconds);
    const row = perSecond.get(second) ?? new Map<string, number>();
    row.set(owner, (row.get(owner) ?? 0) + 1);
    perSecond.set(second, row);
    continue;
  }
  if (s.seconds < from || s.seconds >= to) continue;
  total++;
  const thread = threadKind(s.thread);
  // Helper threads are named for what they do; only the main and worker threads are split by frames.
  const key = s.pid === '0' ? 'idle' : HELPERS.has(thread) ? `${owner}/${thread}` : `${owner}/${thread}: ${partOf(s.frames)}`;
  buckets.set(key, (buckets.get(key) ?? 0) + 1);
}

if (values.timeline) {
  for (const [second, row] of [...perSecond].sort((a, b) => a[0] - b[0])) {
    console.log(`${String(second).padStart(4)}s  ${[...row].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([p, n]) => `${p}:${n}`).join('  ')}`);
  }
} else {
  console.log(`${total} samples from ${from}s to ${to}s; shares of the whole machine`);
  for (const [key, n] of [...buckets].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) {
    console.log(`${((100 * n) / total).toFixed(1).padStart(5)}%  ${key}`);
  }
}
