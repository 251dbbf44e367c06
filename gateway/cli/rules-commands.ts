// Compliance rules, on the node's data directory (operator only: a running node reads them on every
// message): the rules themselves, what a message would trigger, held mail, the audit leaves of what
// rules did, and catch-all mailboxes.
import { readFileSync } from 'node:fs';
import { GatewayError } from '../core/index.ts';
import { domainOf } from '../accept/index.ts';
import {
  decide, DIRECTIONS, formatAction, formatCondition, parseAction, parseCondition, parseRuleName, printable, readHeaders,
  RuleSyntaxError, type Direction, type MessageFacts, type Rule,
} from '../rules/index.ts';
import { intFlag, list, need, out, str, UsageError, MESSAGE_ID_PATTERN, type Command, type Flags } from './command.ts';
import { DATA_FLAGS, withStore } from './reach.ts';
import { sinceMs } from './report-commands.ts';

/** Rule text the operator typed, parsed; a mistake is a usage error naming it. */
function parsed<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof RuleSyntaxError) throw new UsageError(err.message);
    throw err;
  }
}

function describe(rule: Rule): string {
  return `${rule.name}: when ${rule.when.map(formatCondition).join(' and ') || 'always'} then ${formatAction(rule.then)}`;
}

function ruleJson(rule: Rule) {
  return { name: rule.name, when: rule.when.map(formatCondition), then: formatAction(rule.then) };
}

/** The first address in a header field's value ("Name <a@b>" or a@b). */
function addressIn(value: string | undefined): string {
  if (!value) return '';
  const angle = /<([^<>\s]+@[^<>\s]+)>/.exec(value);
  return (angle?.[1] ?? /[^\s<>,;"]+@[^\s<>,;"]+/.exec(value)?.[0] ?? '').toLowerCase();
}

/** The message `rules test` looks at: an .eml file (as the MX would take it) or a sender and recipients. */
function testFacts(flags: Flags): MessageFacts {
  const direction = str(flags, 'direction');
  if (direction !== undefined && !(DIRECTIONS as readonly string[]).includes(direction)) throw new UsageError(`--direction is one of ${DIRECTIONS.join(', ')}`);
  const size = intFlag(flags, 'size');
  const eml = str(flags, 'eml');
  if (eml !== undefined) {
    let message: Buffer;
    try {
      message = readFileSync(eml);
    } catch (err) {
      throw new GatewayError('INVALID_ARGUMENT', `cannot read ${eml}: ${(err as Error).message}`);
    }
    const headers = readHeaders(message);
    const to = list(flags, 'to').length ? list(flags, 'to')
      : [...(headers.get('to') ?? []), ...(headers.get('cc') ?? [])].flatMap((v) => v.split(',')).map(addressIn).filter(Boolean);
    return { from: str(flags, 'from') ?? addressIn(headers.get('from')?.[0]), to, direction: (direction ?? 'smtp-in') as Direction, size: size ?? message.length, headers };
  }
  const to = list(flags, 'to');
  if (to.length === 0) throw new UsageError('give --eml FILE, or --from and --to');
  return { from: need(flags, 'from'), to, direction: (direction ?? 'local') as Direction, size: size ?? 0 };
}

function messageIdOf(text: string): Uint8Array {
  if (!MESSAGE_ID_PATTERN.test(text)) throw new UsageError('MESSAGE_ID must be 32 hex digits');
  return new Uint8Array(Buffer.from(text, 'hex'));
}

export const rulesCommands: Command[] = [
  {
    name: 'rules add',
    args: ['NAME'],
    flags: { ...DATA_FLAGS, when: { type: 'string', multiple: true }, then: { type: 'string', required: true } },
    usage: [
      'rules add NAME [--when COND ...] --then ACTION --data DIR',
      '(COND: from:ADDR|*@DOMAIN, to:ADDR|*@DOMAIN, direction:smtp-in|smtp-out|federation|local, size>BYTES,',
      ' header:NAME=VALUE (never holds for end-to-end encrypted mail); every COND must hold.',
      ' ACTION: journal ADDR, hold, redirect ADDR, divert ADDR, reject CODE TEXT, tag TEXT; a rule of the same NAME is replaced;',
      ' the rules of config.yaml apply first and are changed there only)',
    ],
    run: ({ args, flags }) => withStore(flags, async ({ config, storage }) => {
      const rule: Rule = parsed(() => ({
        name: parseRuleName(args.NAME!),
        when: list(flags, 'when').map(parseCondition),
        then: parseAction(need(flags, 'then')),
      }));
      if (storage.rules.isConfigured(rule.name)) throw new GatewayError('CONFLICT', `rule ${rule.name} is set in config.yaml (rules): change it there`);
      const target = rule.then.kind === 'journal' || rule.then.kind === 'redirect' || rule.then.kind === 'divert' ? rule.then.address : undefined;
      if (target !== undefined && !config.node.domains.includes(domainOf(target))) {
        throw new UsageError(`${rule.then.kind} needs a mailbox of this node (${config.node.domains.join(', ')}), not ${target}`);
      }
      if (target !== undefined && !storage.mailboxes.byAddress(target)) throw new GatewayError('NOT_FOUND', `no mailbox ${target} on this node`);
      await storage.rules.set(rule);
      out(flags, { event: 'rule-set', ...ruleJson(rule) }, `rule ${describe(rule)}`);
      return 0;
    }),
  },
  {
    name: 'rules list',
    flags: DATA_FLAGS,
    usage: ['rules list --data DIR', '(in the order they apply: those of config.yaml first)'],
    run: ({ flags }) => withStore(flags, async ({ storage }) => {
      const rules = storage.rules.list().map((r) => ({ rule: r, source: storage.rules.isConfigured(r.name) ? 'config' : 'store' }));
      out(flags, rules.map(({ rule, source }) => ({ ...ruleJson(rule), source })),
        rules.map(({ rule, source }) => `${describe(rule)}${source === 'config' ? ' (config.yaml)' : ''}`).join('\n') || '(no rules)');
      return 0;
    }),
  },
  {
    name: 'rules remove',
    args: ['NAME'],
    flags: DATA_FLAGS,
    usage: ['rules remove NAME --data DIR'],
    run: ({ args, flags }) => withStore(flags, async ({ storage }) => {
      if (storage.rules.isConfigured(args.NAME!)) throw new GatewayError('CONFLICT', `rule ${args.NAME} is set in config.yaml (rules): remove it there`);
      if (!(await storage.rules.remove(args.NAME!))) throw new GatewayError('NOT_FOUND', `no rule ${printable(args.NAME!)}`);
      out(flags, { event: 'rule-removed', name: args.NAME }, `rule ${args.NAME} removed`);
      return 0;
    }),
  },
  {
    name: 'rules test',
    flags: { ...DATA_FLAGS, eml: { type: 'string' }, from: { type: 'string' }, to: { type: 'string', multiple: true }, direction: { type: 'string' }, size: { type: 'string' } },
    usage: [
      'rules test (--eml FILE | --from ADDR --to ADDR ...) [--direction D] [--size BYTES] --data DIR',
      '(which rules the message would trigger, and what they would do; --eml: as SMTP in, with its header)',
    ],
    run: ({ flags }) => withStore(flags, async ({ storage }) => {
      const facts = testFacts(flags);
      const decision = decide(storage.rules.list(), facts);
      const triggered = decision.triggered.map((t) => ({ ...ruleJson(t.rule), recipients: t.recipients }));
      // What the message says is shown escaped: a header value cannot start a line of its own.
      const human = [
        `message from ${printable(facts.from) || '(none)'} to ${facts.to.map(printable).join(', ')} (${facts.direction}, ${facts.size} bytes)`,
        ...(triggered.length ? decision.triggered.map((t) => `  ${describe(t.rule)} [${t.recipients.map(printable).join(', ')}]`) : ['  no rule triggers']),
        ...(decision.reject ? [`result: refused by rule ${decision.reject.rule.name}`] : []),
      ].join('\n');
      out(flags, { from: facts.from, to: facts.to, direction: facts.direction, size: facts.size, triggered, rejected: decision.reject?.rule.name ?? null }, human);
      return 0;
    }),
  },
  {
    name: 'hold list',
    flags: DATA_FLAGS,
    usage: ['hold list --data DIR', '(mail a hold rule keeps from its recipients)'],
    run: ({ flags }) => withStore(flags, async ({ storage }) => {
      const held = storage.rules.held().map((h) => ({
        messageId: Buffer.from(h.messageId).toString('hex'), mailbox: h.mailbox, transport: h.transport || 'mailbox', rule: h.rule,
        held: new Date(h.heldMs).toISOString(), state: h.state,
      }));
      // A remote recipient is held out of the queue: shown with the agent it goes to when released.
      const line = (h: (typeof held)[number]) => `${h.messageId} for ${h.mailbox}${h.transport === 'mailbox' ? '' : ` (${h.transport})`} held by ${h.rule} since ${h.held}${h.state === 'held' ? '' : ` (${h.state} asked)`}`;
      out(flags, held, held.map(line).join('\n') || '(nothing held)');
      return 0;
    }),
  },
  ...(['release', 'expire'] as const).map((action): Command => ({
    name: `hold ${action}`,
    args: ['MESSAGE_ID'],
    flags: DATA_FLAGS,
    usage: [`hold ${action} MESSAGE_ID --data DIR`, action === 'release'
      ? '(delivers it to the mailboxes it was kept from, and queues it for remote recipients: at once on a running node, else when it starts)'
      : '(drops it: the recipients it was kept from never get it, and nobody is told)'],
    run: ({ args, flags }) => withStore(flags, async ({ storage }) => {
      const n = await storage.rules.ask(messageIdOf(args.MESSAGE_ID!), action);
      if (n === 0) throw new GatewayError('NOT_FOUND', `no held message ${args.MESSAGE_ID}`);
      out(flags, { event: `hold-${action}`, messageId: args.MESSAGE_ID, deliveries: n },
        `${args.MESSAGE_ID}: ${action} of ${n} held deliver${n === 1 ? 'y' : 'ies'} asked; the node carries it out within a second`);
      return 0;
    }),
  })),
  {
    name: 'audit list',
    flags: { ...DATA_FLAGS, since: { type: 'string' } },
    usage: ['audit list [--since YYYY-MM-DD|ISO] --data DIR [--json]', '(the audit leaves of what rules did: leaf index, rule, action, message hash)'],
    run: ({ flags }) => withStore(flags, async ({ storage }) => {
      const audits = storage.rules.audits(sinceMs(str(flags, 'since'))).map((a) => ({
        leafIndex: a.logIndex, rule: a.rule, action: a.action, messageHash: Buffer.from(a.messageHash).toString('hex'),
        leafHash: Buffer.from(a.leafHash).toString('hex'), at: new Date(a.atMs).toISOString(),
      }));
      out(flags, audits, audits.map((a) => `#${a.leafIndex} ${a.at} ${a.rule} ${a.action} ${a.messageHash}`).join('\n') || '(no audit leaves)');
      return 0;
    }),
  },
  {
    name: 'mailbox catchall',
    args: ['DOMAIN'],
    flags: { ...DATA_FLAGS, to: { type: 'string', multiple: true }, remove: { type: 'boolean' } },
    usage: [
      'mailbox catchall DOMAIN --to MAILBOX --data DIR',
      'mailbox catchall DOMAIN --remove --data DIR',
      '(mail over SMTP for an address of DOMAIN without a mailbox of its own goes to MAILBOX)',
    ],
    run: ({ args, flags }) => withStore(flags, async ({ config, storage }) => {
      const domain = args.DOMAIN!.toLowerCase();
      if (!config.node.domains.includes(domain)) throw new UsageError(`${printable(domain)} is not one of this node's domains (${config.node.domains.join(', ')})`);
      if (flags.remove) {
        if (!(await storage.rules.removeCatchall(domain))) throw new GatewayError('NOT_FOUND', `${domain} has no catch-all`);
        out(flags, { event: 'catchall-removed', domain }, `${domain} has no catch-all now`);
        return 0;
      }
      const targets = list(flags, 'to');
      if (targets.length !== 1) throw new UsageError('give one --to mailbox');
      const mailbox = targets[0]!.toLowerCase();
      if (!storage.mailboxes.byAddress(mailbox)) throw new GatewayError('NOT_FOUND', `no mailbox ${printable(mailbox)} on this node`);
      await storage.rules.setCatchall(domain, mailbox);
      out(flags, { event: 'catchall-set', domain, to: mailbox }, `mail for addresses of ${domain} without a mailbox goes to ${mailbox}`);
      return 0;
    }),
  },
];
