// The compliance rules engine, pure: a rule's conditions and action as the operator writes them
// (`--when from:*@example.com --then hold`), parsed into values, and which rules a message triggers.
// Nothing here reads the store or the network: the acceptance path and the SMTP bridge hand it what they
// know of a message (its facts) and apply the decision themselves.
import { createHash } from 'node:crypto';

/** Where a message comes from, as the node takes it in (or, smtp-out, sends it on). */
export const DIRECTIONS = ['smtp-in', 'smtp-out', 'federation', 'local'] as const;
export type Direction = (typeof DIRECTIONS)[number];

export type Condition =
  | { kind: 'from' | 'to'; pattern: string }
  | { kind: 'direction'; direction: Direction }
  | { kind: 'size'; above: number }
  | { kind: 'header'; name: string; value: string };

export type Action =
  | { kind: 'journal' | 'redirect' | 'divert'; address: string }
  | { kind: 'hold' }
  | { kind: 'reject'; code: number; text: string }
  | { kind: 'tag'; text: string };

export type ActionKind = Action['kind'];

export interface Rule { name: string; when: Condition[]; then: Action }

/**
 * What the node knows of a message when it applies the rules. `headers` is undefined where the node
 * cannot read the message (end-to-end encrypted mail): a header condition never holds there.
 */
export interface MessageFacts {
  from: string;
  to: string[];
  direction: Direction;
  size: number;
  headers?: ReadonlyMap<string, readonly string[]>;
}

/** A rule's action as it applies to one message: the recipients it concerns (for hold and redirect). */
export interface Triggered { rule: Rule; recipients: string[] }

export interface Decision {
  triggered: Triggered[];
  /** The first rejecting rule: the message is refused whole. */
  reject?: Triggered;
  /** Recipients kept from delivery until released, with the rule that holds each (the first). */
  hold: Map<string, string>;
  /** Recipients delivered to another mailbox instead: recipient -> { rule, address }. */
  redirect: Map<string, { rule: string; address: string }>;
  /** Mailboxes that get a copy, each once whatever the number of recipients or rules: address -> rule. */
  journal: Map<string, string>;
  /** Labels kept with the message: text -> rule. */
  tags: Map<string, string>;
}

/** Invalid rule text: the CLI answers it as a usage error. */
export class RuleSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RuleSyntaxError';
  }
}

const RULE_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/i;
/** A plain addr-spec, or *@domain: what an address pattern may be. */
const ADDRESS_PATTERN = /^(?:\*|[^\s\x00-\x1f\x7f@<>()[\],;:"\\*]+)@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$/i;
const ADDRESS = /^[^\s\x00-\x1f\x7f@<>()[\],;:"\\*]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$/i;
const HEADER_NAME = /^[!-9;-~]{1,76}$/; // RFC 5322 field name: printable, no colon
/** Printable text without controls: what a tag, a reject text or a header value may hold. */
const TEXT = /^[^\x00-\x1f\x7f]{1,200}$/;

export function parseRuleName(name: string): string {
  if (!RULE_NAME.test(name)) throw new RuleSyntaxError(`rule name "${printable(name)}" must be 1-64 letters, digits, ".", "_" or "-"`);
  return name;
}

export function parseCondition(text: string): Condition {
  const size = /^size>([0-9]{1,15})$/.exec(text);
  if (size) return { kind: 'size', above: Number(size[1]) };
  const colon = text.indexOf(':');
  const [key, value] = colon < 0 ? [text, ''] : [text.slice(0, colon), text.slice(colon + 1)];
  switch (key) {
    case 'from':
    case 'to':
      if (!ADDRESS_PATTERN.test(value)) throw new RuleSyntaxError(`${key}: needs an address or *@domain, not "${printable(value)}"`);
      return { kind: key, pattern: value.toLowerCase() };
    case 'direction':
      if (!(DIRECTIONS as readonly string[]).includes(value)) throw new RuleSyntaxError(`direction: is one of ${DIRECTIONS.join(', ')}`);
      return { kind: 'direction', direction: value as Direction };
    case 'header': {
      const eq = value.indexOf('=');
      const name = value.slice(0, eq);
      const expected = value.slice(eq + 1);
      if (eq < 1 || !HEADER_NAME.test(name) || !TEXT.test(expected)) throw new RuleSyntaxError('header: is NAME=VALUE (a field name, then printable text)');
      return { kind: 'header', name: name.toLowerCase(), value: expected };
    }
    default:
      throw new RuleSyntaxError(`unknown condition "${printable(text)}" (from:, to:, direction:, size>, header:)`);
  }
}

/**
 * An action from its words: `hold`, `tag TEXT`, `reject 550 TEXT`, `journal ADDR`, `redirect ADDR`,
 * `divert ADDR` (held from its recipients, a copy to the reviewer ADDR, who may release it).
 */
export function parseAction(text: string): Action {
  const [word = '', ...rest] = text.trim().split(/\s+/);
  const arg = text.trim().slice(word.length).trim();
  switch (word) {
    case 'hold':
      if (arg) throw new RuleSyntaxError('hold takes no argument');
      return { kind: 'hold' };
    case 'journal':
    case 'redirect':
    case 'divert':
      if (rest.length !== 1 || !ADDRESS.test(arg)) throw new RuleSyntaxError(`${word} needs one mailbox address`);
      return { kind: word, address: arg.toLowerCase() };
    case 'tag':
      if (!TEXT.test(arg)) throw new RuleSyntaxError('tag needs printable text (at most 200 characters)');
      return { kind: 'tag', text: arg };
    case 'reject': {
      const m = /^([45][0-9][0-9])\s+(.+)$/.exec(arg);
      if (!m || !TEXT.test(m[2]!)) throw new RuleSyntaxError('reject needs an SMTP code (4xx or 5xx) and printable text');
      return { kind: 'reject', code: Number(m[1]), text: m[2]! };
    }
    default:
      throw new RuleSyntaxError(`unknown action "${printable(word)}" (journal, hold, redirect, divert, reject, tag)`);
  }
}

export function formatCondition(c: Condition): string {
  switch (c.kind) {
    case 'from': case 'to': return `${c.kind}:${c.pattern}`;
    case 'direction': return `direction:${c.direction}`;
    case 'size': return `size>${c.above}`;
    case 'header': return `header:${c.name}=${c.value}`;
  }
}

export function formatAction(a: Action): string {
  switch (a.kind) {
    case 'hold': return 'hold';
    case 'journal': case 'redirect': case 'divert': return `${a.kind} ${a.address}`;
    case 'tag': return `tag ${a.text}`;
    case 'reject': return `reject ${a.code} ${a.text}`;
  }
}

function addressMatches(pattern: string, address: string): boolean {
  const a = address.toLowerCase();
  return pattern.startsWith('*@') ? a.endsWith(pattern.slice(1)) : a === pattern;
}

/**
 * The recipients a rule concerns if it matches the message, else undefined. Every condition must hold;
 * `to:` conditions choose the recipients (all of them when the rule has none).
 */
export function match(rule: Rule, facts: MessageFacts): string[] | undefined {
  let recipients = facts.to.map((t) => t.toLowerCase());
  for (const c of rule.when) {
    switch (c.kind) {
      case 'from':
        if (!addressMatches(c.pattern, facts.from)) return undefined;
        break;
      case 'to':
        recipients = recipients.filter((r) => addressMatches(c.pattern, r));
        break;
      case 'direction':
        if (facts.direction !== c.direction) return undefined;
        break;
      case 'size':
        if (!(facts.size > c.above)) return undefined;
        break;
      case 'header': {
        const values = facts.headers?.get(c.name);
        if (!values?.some((v) => v.trim() === c.value)) return undefined;
        break;
      }
    }
  }
  return recipients.length ? recipients : undefined;
}

/** The decision of no rule: nothing changes. */
export function noDecision(): Decision {
  return { triggered: [], hold: new Map(), redirect: new Map(), journal: new Map(), tags: new Map() };
}

/** Every rule the message triggers, in the given order, and what they decide together. */
export function decide(rules: readonly Rule[], facts: MessageFacts): Decision {
  const decision = noDecision();
  for (const rule of rules) {
    const recipients = match(rule, facts);
    if (!recipients) continue;
    const triggered = { rule, recipients };
    decision.triggered.push(triggered);
    const a = rule.then;
    switch (a.kind) {
      case 'reject':
        decision.reject ??= triggered;
        break;
      case 'hold':
        for (const r of recipients) if (!decision.hold.has(r)) decision.hold.set(r, rule.name);
        break;
      case 'redirect':
        for (const r of recipients) if (!decision.redirect.has(r)) decision.redirect.set(r, { rule: rule.name, address: a.address });
        break;
      case 'journal':
        if (!decision.journal.has(a.address)) decision.journal.set(a.address, rule.name);
        break;
      case 'divert':
        // Held from its recipients until the reviewer (or the operator) releases it; the reviewer's copy
        // goes like a journal copy, once.
        for (const r of recipients) if (!decision.hold.has(r)) decision.hold.set(r, rule.name);
        if (!decision.journal.has(a.address)) decision.journal.set(a.address, rule.name);
        break;
      case 'tag':
        if (!decision.tags.has(a.text)) decision.tags.set(a.text, rule.name);
        break;
    }
  }
  return decision;
}

/**
 * A decision taken on addresses of the node that forward elsewhere, carried over to the forward's copy
 * (`targetOf`: each address's forward target). A target is held when any address forwarding to it is
 * (a legal hold wins), redirected only when every one is, with the first's rule and mailbox. `journaled`:
 * the journal copies another copy of the same message already makes: dropped here, so a journal gets one
 * copy, except a divert's reviewer copy when this copy holds something of the divert (the reviewer
 * releases a copy by its own id). Labels stay.
 */
export function retarget(decision: Decision, targetOf: ReadonlyMap<string, string>, journaled: ReadonlyMap<string, string> = new Map()): Decision {
  const target = (address: string) => targetOf.get(address) ?? address;
  const sources = (t: string) => [...targetOf].filter(([, to]) => to === t).map(([from]) => from);
  const hold = new Map<string, string>();
  for (const [address, rule] of decision.hold) if (!hold.has(target(address))) hold.set(target(address), rule);
  const redirect = new Map<string, { rule: string; address: string }>();
  for (const [address, to] of decision.redirect) {
    const t = target(address);
    if (!redirect.has(t) && sources(t).every((from) => decision.redirect.has(from))) redirect.set(t, to);
  }
  const holding = new Set(hold.values());
  const journal = new Map([...decision.journal].filter(([address, rule]) => !journaled.has(address) || holding.has(rule)));
  const triggered = decision.triggered
    .map((t) => ({ rule: t.rule, recipients: [...new Set(t.recipients.map(target))] }))
    // Only what this copy does is audited on it.
    .filter((t) => t.rule.then.kind === 'journal' ? journal.get(t.rule.then.address) === t.rule.name
      : t.rule.then.kind === 'redirect' ? t.recipients.some((r) => redirect.get(r)?.rule === t.rule.name) : true);
  return { triggered, ...(decision.reject ? { reject: decision.reject } : {}), hold, redirect, journal, tags: new Map(decision.tags) };
}

/** True when the decision changes nothing (no rule triggered). */
export function isEmpty(decision: Decision): boolean {
  return decision.triggered.length === 0;
}

/**
 * The header fields of an RFC 5322 message (names lower-cased, folded lines joined), read up to the
 * first empty line and at most `limit` bytes: what a header condition looks at.
 */
export function readHeaders(message: Uint8Array, limit = 256 * 1024): Map<string, string[]> {
  const text = Buffer.from(message.subarray(0, limit)).toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  const head = end < 0 ? text : text.slice(0, end);
  const headers = new Map<string, string[]>();
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon < 1) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
  }
  return headers;
}

/**
 * An audit leaf's hash (docs/LEDGER.md §2, type 0x02): SHA-256 over a domain-separated encoding of the
 * rule, the action and the message hash, so the log commits to what the node did without naming anyone.
 * Each field is length-prefixed: no two (rule, action) pairs encode alike.
 */
export function auditHash(rule: string, action: string, messageHash: Uint8Array): Uint8Array {
  const field = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(b.length);
    return Buffer.concat([len, b]);
  };
  return new Uint8Array(createHash('sha256').update('aftersmtp-audit-v1\n').update(field(rule)).update(field(action)).update(messageHash).digest());
}

/** Text safe to show on one terminal line: controls and non-ASCII escaped. */
export function printable(s: string): string {
  return JSON.stringify(s).slice(1, -1);
}
