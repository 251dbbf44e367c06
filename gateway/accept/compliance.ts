// The node's side of the compliance rules: what the acceptance path and the SMTP bridge share to apply a
// decision of gateway/rules (the refusal a reject rule makes, the audit leaves of every action taken).
import { decodeEnvelope } from '../../identity/index.ts';
import { GatewayError } from '../core/index.ts';
import { auditHash, decide, type Decision, type MessageFacts } from '../rules/index.ts';
import type { Store } from '../store/index.ts';
import type { NodeLedger } from '../provenance/index.ts';

/**
 * A message a reject rule refuses: PERMISSION_DENIED to an app or a peer (DEFERRED, which they retry,
 * for a 4xx reply), the rule's own reply over SMTP.
 */
export class RuleRejection extends GatewayError {
  readonly rule: string;
  readonly replyCode: number;
  readonly replyText: string;
  constructor(rule: string, replyCode: number, replyText: string) {
    super(replyCode < 500 ? 'DEFERRED' : 'PERMISSION_DENIED', `refused by rule ${rule}: ${replyCode} ${replyText}`);
    this.name = 'RuleRejection';
    this.rule = rule;
    this.replyCode = replyCode;
    this.replyText = replyText;
  }
}

/** The decision of the node's rules (read from the store: the CLI changes them beside a running node). */
export function decideFor(storage: Store, facts: MessageFacts): Decision {
  return decide(storage.rules.list(), facts);
}

/**
 * Appends one audit leaf per action taken (rule, action, message hash: no address, no content) and
 * keeps its index for `aftersmtp audit list`; resolves once the leaves are durable.
 */
export async function recordAudit(deps: { ledger: NodeLedger; storage: Store }, actions: { rule: string; action: string }[], messageHash: Uint8Array): Promise<void> {
  await Promise.all(actions.map(async ({ rule, action }) => {
    const leafHash = auditHash(rule, action, messageHash);
    const { index, durable } = await deps.ledger.appendAudit(leafHash);
    await Promise.all([durable, deps.storage.rules.recordAudit({ logIndex: index, rule, action, messageHash, leafHash, atMs: Date.now() })]);
  }));
}

/** The actions a decision takes, one audit leaf each. */
export function actionsOf(decision: Decision): { rule: string; action: string }[] {
  if (decision.reject) return [{ rule: decision.reject.rule.name, action: 'reject' }];
  return decision.triggered.map((t) => ({ rule: t.rule.name, action: t.rule.then.kind }));
}

/** A rejection for a decision that has one. */
export function rejectionOf(decision: Decision): RuleRejection | undefined {
  const r = decision.reject;
  return r && r.rule.then.kind === 'reject' ? new RuleRejection(r.rule.name, r.rule.then.code, r.rule.then.text) : undefined;
}

/**
 * Carries out the releases and expiries of held mail asked for (`aftersmtp hold release|expire`, which
 * only marks them: the node numbers its mailboxes' deliveries itself), each with its audit leaf.
 * Returns how many were settled.
 */
export async function settleAskedHolds(deps: { ledger: NodeLedger; storage: Store }): Promise<number> {
  const asked = deps.storage.rules.asked();
  for (const held of asked) {
    await deps.storage.settleHeld(held, decodeEnvelope(held.envelope).expiresMs);
    await recordAudit(deps, [{ rule: held.rule, action: held.state }], held.messageHash);
  }
  return asked.length;
}
