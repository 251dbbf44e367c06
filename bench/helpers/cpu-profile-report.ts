// Where a V8 CPU profile (--cpu-prof, BENCH_PROFILE) spends its samples: self time by function, by file
// (node_modules by package), and the inclusive time of the project's own functions (the synchronous part of
// each call and what it calls; an async function's awaits are not in it), as shares of the whole profile
// (idle and GC included) and of its busy part.
//   node bench/helpers/cpu-profile-report.ts FILE.cpuprofile [ROWS]
import { readFileSync } from 'node:fs';

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

const [file, rowsArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench/helpers/cpu-profile-report.ts FILE.cpuprofile [ROWS]');
  process.exit(2);
}
const rows = Number(rowsArg ?? 30);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const ROOT = new URL('../..', import.meta.url).href;
const where = (n: ProfileNode) => {
  const url = n.callFrame.url.replace(ROOT, '').replace(/^.*node_modules\//, 'node_modules/');
  return url ? `${url}:${n.callFrame.lineNumber + 1}` : '';
};
const self = new Map<string, number>();
const files = new Map<string, number>();
let total = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  const n = byId.get(id)!;
  total += dt;
  const name = `${n.callFrame.functionName || '(anonymous)'} ${where(n)}`.trim();
  self.set(name, (self.get(name) ?? 0) + dt);
  const url = n.callFrame.url.replace(ROOT, '').replace(/^.*node_modules\/([^/]+(?:\/[^/]+)?).*$/, 'node_modules/$1');
  const group = url || n.callFrame.functionName;
  files.set(group, (files.get(group) ?? 0) + dt);
});
// Inclusive: a sample counts once for every distinct project function on its stack.
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const OWN = /^(gateway|bridge|identity|ledger|proto)\//;
const inclusive = new Map<string, number>();
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  const seen = new Set<string>();
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const n = byId.get(at)!;
    const w = where(n);
    if (!OWN.test(w)) continue;
    const name = `${n.callFrame.functionName || '(anonymous)'} ${w}`;
    if (seen.has(name)) continue;
    seen.add(name);
    inclusive.set(name, (inclusive.get(name) ?? 0) + dt);
  }
});
const idle = self.get('(idle)') ?? 0;
const pct = (x: number, name = '') => `${((100 * x) / total).toFixed(1).padStart(5)}% ${name === '(idle)' ? '     ' : `${((100 * x) / (total - idle)).toFixed(1).padStart(5)}%`}`;
console.log(`${(total / 1e6).toFixed(1)} s sampled, ${((100 * idle) / total).toFixed(1)}% idle; shares of all samples and of the busy ones; self time by function`);
for (const [name, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, rows)) console.log(`${pct(t, name)}  ${name}`);
console.log('\nby file (node_modules by package)');
for (const [name, t] of [...files].sort((a, b) => b[1] - a[1]).slice(0, rows)) console.log(`${pct(t, name)}  ${name}`);
console.log('\ninclusive time of the project\'s functions');
for (const [name, t] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, rows)) console.log(`${pct(t)}  ${name}`);
