// Preloaded into a node process (BENCH_NODE_FLAGS="--import ./bench/helpers/alloc-sampler.ts"), records what
// the process allocates, collected objects included, and writes a V8 sampling heap profile on exit to
// $ALLOC_PROFILE_DIR/<pid>.heapprofile (default: the working directory). Node's own --heap-prof keeps
// only what is still alive at exit, which hides the short-lived garbage that GC time is spent on.
// Read the result with bench/helpers/alloc-report.ts.
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const session = new Session();
session.connect();
session.post('HeapProfiler.enable');
session.post('HeapProfiler.startSampling', { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
process.on('exit', () => {
  // The main thread's inspector session answers synchronously, so this still runs inside 'exit'.
  session.post('HeapProfiler.stopSampling', (err, result) => {
    if (!err) writeFileSync(join(process.env.ALLOC_PROFILE_DIR ?? '.', `${process.pid}.heapprofile`), JSON.stringify(result.profile));
  });
});
