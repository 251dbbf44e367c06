// The `aftersmtp` command (bin/aftersmtp.js runs main).
export { COMMON_FLAGS } from './command.ts';
export { COMMANDS, commandUsage, fullUsage, main } from './main.ts';
