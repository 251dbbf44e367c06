#!/usr/bin/env -S node --max-semi-space-size=8
// Entry point of the `aftersmtp` command. Node >= 24 runs the TypeScript sources directly; the
// on-disk compile cache spares every later invocation the type stripping and compiling.
// --max-semi-space-size=8: V8's young generation may otherwise grow to 64 MB, which under load kept a
// node ~50-80 MB above what it needs (DECISIONS 17). V8 reads it only at start, so it lives here.
import { enableCompileCache } from 'node:module';

enableCompileCache();
const { main } = await import('../gateway/cli/index.ts');
await main(process.argv.slice(2));
