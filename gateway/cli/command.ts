// What a command of the `aftersmtp` table is, and the small helpers its handlers share.
import { GatewayError, type ModeFix } from '../core/index.ts';

/** One flag as node:util parseArgs takes it, plus whether the command cannot run without it. */
export interface FlagSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  /** Checked before the handler runs: a missing one is a usage error (exit 2, with the usage). */
  required?: boolean;
}

export type FlagSpecs = Record<string, FlagSpec>;

export type Flags = Record<string, string | boolean | string[] | undefined>;

export interface Invocation {
  /** The positional arguments after the command's name, by the names in its `args`. */
  args: Record<string, string | undefined>;
  flags: Flags;
}

export interface Command {
  /** The words that select it: 'send', 'mailbox add'. */
  name: string;
  /** Its positional arguments, in order; '[NAME]' is optional. */
  args?: string[];
  /** Its own flags; --json and --help every command takes. */
  flags: FlagSpecs;
  /** Its synopsis (after "aftersmtp ", starting with the name), then any lines that explain it. */
  usage: string[];
  run(invocation: Invocation): Promise<number> | number;
}

/** The flags every command takes. */
export const COMMON_FLAGS: FlagSpecs = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

/**
 * A command invoked the wrong way (a missing flag or argument, a malformed one): exits 2, like any
 * INVALID_ARGUMENT, and the command's usage from the table follows the message.
 */
export class UsageError extends GatewayError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
    this.name = 'UsageError';
  }
}

/** The value of a string flag, or undefined. */
export function str(flags: Flags, name: string): string | undefined {
  const v = flags[name];
  return typeof v === 'string' ? v : undefined;
}

/** A string flag this use of the command cannot do without. */
export function need(flags: Flags, name: string): string {
  const v = str(flags, name);
  if (v === undefined || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

/** The values of a flag given any number of times. */
export function list(flags: Flags, name: string): string[] {
  const v = flags[name];
  return Array.isArray(v) ? v : [];
}

/** A count or a port: a non-negative integer, or undefined when not given. */
export function intFlag(flags: Flags, name: string): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new GatewayError('INVALID_ARGUMENT', `--${name} must be a non-negative integer`);
  return n;
}

/** Prints `value` as one JSON line with --json (or when there is no human form), else `human`. */
export function out(flags: Flags, value: unknown, human?: string): void {
  process.stdout.write(flags.json || human === undefined ? `${JSON.stringify(value)}\n` : `${human}\n`);
}

export function reportFixedModes(fixed: ModeFix[]): void {
  for (const f of fixed) process.stderr.write(`aftersmtp: ${f.path} was open to other users (mode ${f.from}); changed it to ${f.to}\n`);
}

export const DID_PATTERN = /^did:[a-z0-9]+:\S+$/;
export const MESSAGE_ID_PATTERN = /^[0-9a-f]{32}$/i;
