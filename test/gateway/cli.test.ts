// The command table of `aftersmtp`: every command documents itself, and a wrong invocation answers
// with exit status 2 and the usage the table holds.
import { describe, it, expect } from 'vitest';
import { COMMANDS, commandUsage, fullUsage, COMMON_FLAGS } from '../../gateway/cli/index.ts';
import { runCli } from '../helpers.ts';

const send = COMMANDS.find((c) => c.name === 'send')!;

describe('the command table', () => {
  it('names every command once', () => {
    const names = COMMANDS.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
    // A group name (the first word of "mailbox add") is never also a command of its own.
    const groups = new Set(names.filter((n) => n.includes(' ')).map((n) => n.split(' ')[0]));
    expect(names.filter((n) => groups.has(n))).toEqual([]);
  });

  for (const command of COMMANDS) {
    it(`${command.name}: has a usage line naming it, its arguments and exactly its flags`, () => {
      expect(command.usage.length).toBeGreaterThan(0);
      const [synopsis] = command.usage;
      expect(synopsis!.startsWith(`${command.name} `) || synopsis === command.name).toBe(true);
      for (const arg of command.args ?? []) expect(synopsis).toContain(arg.replace(/^\[|\]$/g, ''));
      const text = command.usage.join('\n');
      const mentioned = new Set([...text.matchAll(/--([a-z][a-z-]*)/g)].map((m) => m[1]));
      expect([...mentioned].filter((f) => !(f in command.flags) && !(f in COMMON_FLAGS))).toEqual([]);
      expect(Object.keys(command.flags).filter((f) => !mentioned.has(f))).toEqual([]);
      expect(fullUsage()).toContain(synopsis);
    });
  }
});

describe('aftersmtp invoked the wrong way', () => {
  it('an unknown command exits 2 with the usage of every command', async () => {
    const r = await runCli(['nosuch']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command "nosuch"');
    expect(r.stderr).toContain(fullUsage());
  });

  it('send without --to exits 2 with the usage of send', async () => {
    const r = await runCli(['send', '--profile', 'p.json', '--subject', 's', '--body', 'b']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--to is required');
    expect(r.stderr).toContain(commandUsage([send]));
  });

  it('a flag the command does not take exits 2 with its usage', async () => {
    const r = await runCli(['send', '--profile', 'p.json', '--to', 'a@b.test', '--body', 'b', '--data', '/tmp']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--data is not an option of "aftersmtp send"');
    expect(r.stderr).toContain(commandUsage([send]));
  });

  it('a group without its subcommand exits 2 with the usage of the group', async () => {
    const r = await runCli(['mailbox']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(commandUsage(COMMANDS.filter((c) => c.name.startsWith('mailbox '))));
  });

  it('--help prints the usage from the table and exits 0', async () => {
    const all = await runCli(['--help']);
    expect(all).toMatchObject({ code: 0, stdout: fullUsage() });
    const one = await runCli(['send', '--help']);
    expect(one).toMatchObject({ code: 0, stdout: `${commandUsage([send])}\n` });
  });

  it('no command at all prints the usage and exits 2', async () => {
    expect(await runCli([])).toMatchObject({ code: 2, stdout: fullUsage() });
  });
});
