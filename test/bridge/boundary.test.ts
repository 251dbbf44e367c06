// The bridge knows SMTP and MIME only: it takes DNS as an injected resolver and never imports the node
// (gateway/, ledger/, identity/, proto/), and the rest of the node reaches it through bridge/index.ts.
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const ROOT = join(import.meta.dirname, '../..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : []);
}

function imports(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
}

describe('bridge boundary', () => {
  it('bridge/ imports nothing of the node outside bridge/', () => {
    const offending = sources(join(ROOT, 'bridge')).flatMap((file) =>
      imports(file).filter((spec) => spec.startsWith('.') && !join(file, '..', spec).startsWith(join(ROOT, 'bridge')))
        .map((spec) => `${relative(ROOT, file)} -> ${spec}`));
    expect(offending).toEqual([]);
  });

  it('node code outside bridge/ and test/ imports the bridge through bridge/index.ts only', () => {
    const offending = ['gateway', 'bin', 'ledger', 'identity'].flatMap((dir) => sources(join(ROOT, dir))).flatMap((file) =>
      imports(file).filter((spec) => /(^|\/)bridge\//.test(spec) && !spec.endsWith('bridge/index.ts'))
        .map((spec) => `${relative(ROOT, file)} -> ${spec}`));
    expect(offending).toEqual([]);
  });
});
