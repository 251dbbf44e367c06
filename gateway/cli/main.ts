// The `aftersmtp` command line: finds the command in the table and runs it. Every command prints JSON
// with --json; errors go to stderr with a code and a non-zero exit status, 2 for a wrong invocation.
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { GatewayError } from '../core/index.ts';
import { COMMON_FLAGS, UsageError, type Command, type Flags } from './command.ts';
import { nodeCommands } from './node-commands.ts';
import { mailboxCommands } from './mailbox-commands.ts';
import { sendCommands } from './send-commands.ts';
import { provenanceCommands } from './provenance-commands.ts';
import { federationCommands } from './federation-commands.ts';
import { bridgeCommands } from './bridge-commands.ts';
import { dnsCommands } from './dns-commands.ts';
import { reportCommands } from './report-commands.ts';
import { rulesCommands } from './rules-commands.ts';
import { webhookCommands } from './webhook-commands.ts';

/** Every command, in the order `aftersmtp --help` lists them. */
export const COMMANDS: readonly Command[] = [...nodeCommands, ...mailboxCommands, ...sendCommands, ...provenanceCommands, ...federationCommands, ...bridgeCommands, ...dnsCommands, ...reportCommands, ...rulesCommands, ...webhookCommands];

/** `aftersmtp --help`: every command's usage. */
export function fullUsage(): string {
  const lines = COMMANDS.flatMap((c) => [`  ${c.usage[0]}`, ...c.usage.slice(1).map((l) => `      ${l}`)]);
  return `usage: aftersmtp <command> [options]\n\n${lines.join('\n')}\n\n  --json   print machine-readable JSON\n`;
}

/** The usage of some commands (one, or the commands of a group such as `mailbox`). */
export function commandUsage(commands: readonly Command[]): string {
  return commands.map((c, i) => [`${i === 0 ? 'usage: ' : '       '}aftersmtp ${c.usage[0]}`, ...c.usage.slice(1).map((l) => `           ${l}`)].join('\n')).join('\n');
}

/** The flags of every command, for the first parse: a flag's value is known before the command is. */
function allFlags(): ParseArgsOptionsConfig {
  const options: ParseArgsOptionsConfig = {};
  for (const [name, spec] of [...Object.entries(COMMON_FLAGS), ...COMMANDS.flatMap((c) => Object.entries(c.flags))]) {
    const known = options[name];
    if (known && (known.type !== spec.type || Boolean(known.multiple) !== Boolean(spec.multiple))) throw new Error(`--${name} is declared differently by two commands`);
    options[name] = { type: spec.type, ...(spec.multiple ? { multiple: true } : {}), ...(spec.short ? { short: spec.short } : {}) };
  }
  return options;
}

function isOptional(arg: string): boolean {
  return arg.startsWith('[');
}

function argName(arg: string): string {
  return arg.replace(/^\[|\]$/g, '');
}

/** Checks an invocation against the command's declaration: its arguments and flags, present and known. */
function bind(command: Command, rest: string[], flags: Flags): Record<string, string | undefined> {
  const declared = command.args ?? [];
  const missing = declared.find((arg, i) => !isOptional(arg) && rest[i] === undefined);
  if (missing) throw new UsageError(`${missing} is missing`);
  if (rest.length > declared.length) throw new UsageError(`unexpected argument "${rest[declared.length]}"`);
  for (const name of Object.keys(flags)) {
    if (!(name in command.flags) && !(name in COMMON_FLAGS)) throw new UsageError(`--${name} is not an option of "aftersmtp ${command.name}"`);
  }
  for (const [name, spec] of Object.entries(command.flags)) {
    const v = flags[name];
    if (spec.required && (v === undefined || v === '' || (Array.isArray(v) && v.length === 0))) throw new UsageError(`--${name} is required`);
  }
  return Object.fromEntries(declared.map((arg, i) => [argName(arg), rest[i]]));
}

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: allFlags() });
  const flags = values as Flags;
  const [first, second] = positionals;
  const command = COMMANDS.find((c) => c.name === `${first} ${second}`) ?? COMMANDS.find((c) => c.name === first);
  if (!command) {
    if (!first) {
      process.stdout.write(fullUsage());
      return flags.help ? 0 : 2;
    }
    const group = COMMANDS.filter((c) => c.name.startsWith(`${first} `));
    if (group.length === 0) throw new GatewayError('INVALID_ARGUMENT', `unknown command "${first}"\n${fullUsage()}`);
    if (flags.help) {
      process.stdout.write(`${commandUsage(group)}\n`);
      return 0;
    }
    const reason = second === undefined ? `"${first}" needs one of: ${group.map((c) => c.name.slice(first.length + 1)).join(', ')}` : `unknown command "${first} ${second}"`;
    throw new GatewayError('INVALID_ARGUMENT', `${reason}\n${commandUsage(group)}`);
  }
  if (flags.help) {
    process.stdout.write(`${commandUsage([command])}\n`);
    return 0;
  }
  try {
    const args = bind(command, positionals.slice(command.name.split(' ').length), flags);
    return await command.run({ args, flags });
  } catch (err) {
    if (err instanceof UsageError) throw new GatewayError('INVALID_ARGUMENT', `${err.message}\n${commandUsage([command])}`);
    throw err;
  }
}

export async function main(argv: string[]): Promise<void> {
  try {
    process.exitCode = await run(argv);
  } catch (err) {
    // A GatewayError's code, a gRPC status number, or a Node error code (the argument parser's).
    const code = (err as { code?: unknown }).code ?? 'ERROR';
    const message = (err as Error).message ?? String(err);
    if (argv.includes('--json')) process.stderr.write(`${JSON.stringify({ error: code, message })}\n`);
    else process.stderr.write(`aftersmtp: ${message}${code && code !== 'ERROR' ? ` [${code}]` : ''}\n`);
    process.exitCode = typeof code === 'number' ? 1 : code === 'INVALID_ARGUMENT' || code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? 2 : 1;
    // The error is reported: a handle a library failed to release must not keep the command alive.
    setTimeout(() => process.exit(), 1000).unref();
  }
}

if (import.meta.main) await main(process.argv.slice(2));
