#!/usr/bin/env node
// Entry point of the `aftersmtp` command. Node >= 24 runs the TypeScript sources directly.
import { main } from '../gateway/cli/main.ts';

await main(process.argv.slice(2));
