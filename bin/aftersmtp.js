#!/usr/bin/env -S node --max-semi-space-size=1
// Entry point of the `aftersmtp` command. Node >= 24 runs the TypeScript sources directly; the
// on-disk compile cache spares every later invocation the type stripping and compiling.
// --max-semi-space-size=1 (MiB): a small young generation keeps an idle node near 105 MB instead of
// 130-160 MB, at no measured cost in throughput (docs/DECISIONS.md 14; `npm run bench:mailbox`).
import { enableCompileCache } from 'node:module';

enableCompileCache();
const { main } = await import('../gateway/cli/main.ts');
await main(process.argv.slice(2));
