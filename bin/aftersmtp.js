#!/usr/bin/env node
// Entry point of the `aftersmtp` command. Node >= 24 runs the TypeScript sources directly; the
// on-disk compile cache spares every later invocation the type stripping and compiling.
import { enableCompileCache } from 'node:module';

enableCompileCache();
const { main } = await import('../gateway/cli/main.ts');
await main(process.argv.slice(2));
