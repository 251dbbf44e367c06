// Bytes allocated per message, by the innermost function of ours (gateway/, identity/, ledger/, proto/)
// on each sample's stack, from a profile written by bench/helpers/alloc-sampler.ts.
//   node bench/helpers/alloc-report.ts FILE.heapprofile MESSAGES [ROWS]
import { readFileSync } from 'node:fs';

interface ProfileNode { callFrame: { functionName: string; url: string; lineNumber: number }; selfSize: number; children: ProfileNode[] }

const [file, messagesArg, rowsArg] = process.argv.slice(2);
if (!file || !messagesArg) {
  console.error('usage: node bench/helpers/alloc-report.ts FILE.heapprofile MESSAGES [ROWS]');
  process.exit(2);
}
const messages = Number(messagesArg);
const rows = Number(rowsArg ?? 30);
const profile = JSON.parse(readFileSync(file, 'utf8')) as { head: ProfileNode };
const ours = /\/(gateway|identity|ledger|proto)\/[^/]+/;
const name = (f: ProfileNode['callFrame']) =>
  `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/node_modules\//, '').replace(/^file:\/\/.*?\/(gateway|identity|ledger|proto|bench)\//, '$1/')}:${f.lineNumber + 1}`;

const bytes = new Map<string, number>();
let total = 0;
function walk(node: ProfileNode, stack: ProfileNode['callFrame'][]): void {
  stack.push(node.callFrame);
  if (node.selfSize) {
    let key = `(outside our code) ${name(node.callFrame)}`;
    for (let i = stack.length - 1; i >= 0; i--) if (ours.test(stack[i]!.url)) { key = name(stack[i]!); break; }
    bytes.set(key, (bytes.get(key) ?? 0) + node.selfSize);
    total += node.selfSize;
  }
  for (const child of node.children) walk(child, stack);
  stack.pop();
}
walk(profile.head, []);
console.log(`${(total / 1e6).toFixed(1)} MB allocated, ${Math.round(total / messages)} B per message over ${messages} messages (start-up included)`);
for (const [key, n] of [...bytes].sort((a, b) => b[1] - a[1]).slice(0, rows)) console.log(`${String(Math.round(n / messages)).padStart(7)} B/msg  ${key}`);
