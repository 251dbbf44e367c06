// The SMTP bridge's delivery agent: the queue hands it a message sealed to this node's bridge key for
// recipients of a domain without an AfterSMTP node. It opens the envelope, checks that the signed message
// came from the address the node vouched for, writes the RFC 5322 message (with the receipt field that
// names the sender's log leaf), DKIM-signs it for the sender's domain and makes one SMTP attempt through
// bridge/outbound; each recipient's reply becomes its outcome in the queue.
import type { Logger } from 'pino';
import {
  authorOf, composeMessage, dkimSign, type DkimSigner, type OutboundMessage, type OutboundRecipient, type RecipientResult, type SmtpNextHop,
  type SmtpOutbound,
} from '../../bridge/index.ts';
import { openEnvelope, verifySignedMessage, type DidResolver } from '../../identity/index.ts';
import { domainOf, recordAudit } from '../accept/index.ts';
import { decide, readHeaders } from '../rules/index.ts';
import type { NodeLedger } from '../provenance/index.ts';
import { oneLine } from '../core/index.ts';
import type { DeliveryAgent, DeliveryBatch, RecipientOutcome } from '../queue/index.ts';
import type { Store } from '../store/index.ts';

export interface SmtpAgentOptions {
  storage: Store;
  /** The node's DID: mail it sends on as received (forwards, returned bounces) is signed by it. */
  nodeDid: string;
  outbound: SmtpOutbound;
  resolver: DidResolver;
  /** The node's key agreement key: what legacy recipients' copies are sealed to. */
  bridgeKey: { keyId: string; privateKey: Uint8Array };
  /** The node's transparency log origin, named in each message's receipt field. */
  logOrigin: string;
  /** The node's log, for the audit leaves of smtp-out rules (none without it). */
  ledger?: NodeLedger;
  /**
   * Stores a copy an smtp-out rule makes for one of the node's mailboxes (storeRuleCopy); resolves false
   * when that copy was made before.
   */
  keepRuleCopy: (copy: { original: { messageId: Uint8Array; createdMs: number; expiresMs: number }; sender: string; mailbox: string; data: Uint8Array }) => Promise<boolean>;
  /** The node's DKIM keys; a message is signed with every key of its sender's domain. */
  dkim: DkimSigner[];
  /** The operator's SMTP route for a domain (its own, else the "*" smarthost); undefined = MX. */
  nextHop: (domain: string) => SmtpNextHop | undefined;
  log: Logger;
}

/** RFC 8689 §5: a message whose sender asks that recipient-side TLS policies (DANE, MTA-STS) be ignored. */
const TLS_REQUIRED_NO = /^tls-required:[ \t]*no[ \t]*$/im;

export class SmtpAgent implements DeliveryAgent {
  readonly kind = 'smtp' as const;
  private readonly opts: SmtpAgentOptions;
  /** Rule copies being stored, by message and mailbox. */
  private readonly copying = new Map<string, Promise<boolean>>();

  constructor(opts: SmtpAgentOptions) {
    this.opts = opts;
  }

  async deliver(batch: DeliveryBatch): Promise<RecipientOutcome[]> {
    const { items, held, envelope } = batch;
    const failAll = (code: string, error: string, status: string): RecipientOutcome[] =>
      items.map((i) => ({ recipient: i.recipient, state: 'failed', code, error, report: { status } }));

    // What the node can read of it: sealed to its bridge key, signed by the vouched sender.
    let signed: Uint8Array;
    try {
      signed = openEnvelope(envelope, { keyId: this.opts.bridgeKey.keyId, privateKey: this.opts.bridgeKey.privateKey });
    } catch (err) {
      return failAll('INVALID_ARGUMENT', `the message is not sealed to this node's bridge key: ${(err as Error).message}`, '5.6.0');
    }
    const verified = await verifySignedMessage(signed, this.opts.resolver, {});
    const header = verified.header;
    if (!verified.verified || !header || !verified.body) return failAll('SIGNATURE', verified.reason ?? 'the signed message does not verify', '5.7.7');
    if (Buffer.compare(Buffer.from(header.messageId), Buffer.from(envelope.messageId)) !== 0 || header.from.did !== envelope.senderDid) {
      return failAll('SIGNATURE', 'the inner message does not match its envelope', '5.7.7');
    }
    // Mail the node sends on as it received it (a forward, a returned bounce): signed by the node itself,
    // with the envelope sender recorded when it was taken; no new DKIM signature (a forward carries the
    // node's ARC seal) and no receipt field (its sender has no log leaf here).
    const asIs = this.opts.storage.forwards.sentAsIs(envelope.messageId);
    if (asIs) {
      if (header.from.did !== this.opts.nodeDid) return failAll('SENDER_MISMATCH', 'mail sent as it is must be signed by this node', '5.7.1');
      const forwardedFrom = asIs.mailFrom;
      const body = Buffer.from(verified.body);
      // A forward leaves under the smtp-out rules like any mail over SMTP (from: is its author, as at the
      // MX); its rule copies are the node's (it signed the forward). A bounce or a report is the node's own.
      const ruling = asIs.kind === 'forward' ? this.outboundRules(batch, authorOf(body), body) : undefined;
      if (ruling?.triggered) await this.carryOut(ruling, batch, header.from.address, ruling.data);
      const settled = ruling?.settled ?? [];
      if (settled.length === items.length) return settled;
      const data = ruling?.data ?? body;
      const eightBit = data.some((b) => b > 0x7f);
      const open = recipients(batch, this.opts.storage.dsn.forMessage(envelope.messageId)).filter((r) => !settled.some((o) => o.recipient === r.address));
      return [...settled, ...(await this.send(batch, {
        data,
        envelope: {
          mailFrom: forwardedFrom, recipients: open, requireTls: this.opts.storage.requireTls.has(envelope.messageId),
          smtputf8: eightBit && /[^\x00-\x7f]/.test(headerBlock(data) + forwardedFrom + open.map((r) => r.address).join('')),
          eightBit,
        },
      }, asIs.kind !== 'report'))];
    }
    // The node sends as the address it vouched for at submission, and as no other.
    const sender = header.from.address.toLowerCase();
    if (!held.sender || sender !== held.sender.toLowerCase()) {
      return failAll('SENDER_MISMATCH', `the message is signed as ${header.from.address}, sent by ${held.sender || 'an unauthenticated sender'}`, '5.7.1');
    }

    const id = Buffer.from(envelope.messageId).toString('hex');
    let message: OutboundMessage;
    let settledByRule: RecipientOutcome[] = [];
    try {
      const composed = composeMessage({
        from: sender,
        to: header.to.map((p) => p.address),
        date: new Date(header.createdMs),
        messageId: `${id}@${domainOf(sender)}`,
        contentType: header.contentType,
        body: verified.body,
        receipt: { origin: this.opts.logOrigin, leafIndex: held.logIndex ?? 0 },
      });
      const ruling = this.outboundRules(batch, sender, composed.data);
      const signers = this.opts.dkim.filter((k) => k.domain === domainOf(sender));
      const data = signers.length ? await dkimSign(ruling.data, signers) : ruling.data;
      if (ruling.triggered) await this.carryOut(ruling, batch, sender, data);
      settledByRule = ruling.settled;
      if (settledByRule.length === items.length) return settledByRule;
      const requireTls = this.opts.storage.requireTls.has(envelope.messageId);
      if (!signers.length) this.opts.log.warn({ domain: domainOf(sender) }, 'no DKIM key for the sender domain: sent unsigned');
      // What the sender asked of delivery status notifications (submitted over SMTP with DSN), read once.
      const asked = this.opts.storage.dsn.forMessage(envelope.messageId);
      message = {
        data,
        envelope: {
          mailFrom: sender,
          recipients: recipients(batch, asked).filter((r) => !settledByRule.some((o) => o.recipient === r.address)),
          ...dsnParams(asked),
          // RFC 8689 §5: with the REQUIRETLS parameter the TLS-Required field is ignored; without it, `No`
          // asks that the recipient's DANE and MTA-STS policies be ignored.
          requireTls,
          ignoreTlsPolicies: !requireTls && TLS_REQUIRED_NO.test(headerBlock(data)),
          smtputf8: composed.smtputf8,
          eightBit: composed.eightBit,
        },
      };
    } catch (err) {
      const code = (err as { code?: string }).code;
      return failAll(code === 'SENDER_MISMATCH' ? 'SENDER_MISMATCH' : 'INVALID_ARGUMENT', `the message cannot be sent over SMTP: ${(err as Error).message}`, '5.6.0');
    }

    return [...settledByRule, ...(await this.send(batch, message))];
  }

  /**
   * The rules that say `direction:smtp-out`, decided on the message as it leaves (the node reads it here:
   * header conditions hold). A reject fails the recipients it names with the rule's text; a hold (or a
   * divert) takes them out of the queue until released, once: a released recipient is not held again; a
   * redirect counts them delivered and gives the rule's mailbox a copy instead; journal and divert copies go
   * to their mailboxes; a tag becomes an X-AfterSMTP-Tag field (added before DKIM signing), as does each
   * label a rule put on the message when it was accepted.
   */
  private outboundRules(batch: DeliveryBatch, sender: string, data: Buffer): OutboundRuling {
    // Labels rules put on the message when it was accepted leave with it as header fields too.
    const accepted = this.opts.storage.rules.labelsOf(batch.envelope.messageId);
    const none: OutboundRuling = { data: withTags(data, accepted), triggered: false, settled: [], copies: [], audit: [] };
    const rules = this.opts.storage.rules.list().filter((r) => r.when.some((c) => c.kind === 'direction' && c.direction === 'smtp-out'));
    if (rules.length === 0) return none;
    const decision = decide(rules, { from: sender, to: batch.items.map((i) => i.recipient), direction: 'smtp-out', size: data.length, headers: readHeaders(data) });
    if (decision.triggered.length === 0) return none;
    const kindOf = new Map(decision.triggered.map((t) => [t.rule.name, t.rule.then.kind]));
    const settled: RecipientOutcome[] = [];
    const audit: { rule: string; action: string }[] = [];
    const reject = decision.reject;
    const then = reject?.rule.then;
    if (reject && then?.kind === 'reject') {
      const error = `refused by rule ${reject.rule.name}: ${then.code} ${then.text}`;
      for (const recipient of reject.recipients) {
        // A 4xx rule defers (retried until it no longer refuses, or the message expires); a 5xx one fails.
        settled.push(then.code < 500
          ? { recipient, state: 'deferred', code: 'DEFERRED', error }
          : { recipient, state: 'failed', code: 'PERMISSION_DENIED', error, report: { status: '5.7.1' } });
      }
      audit.push({ rule: reject.rule.name, action: 'reject' });
    }
    const open = (recipient: string) => !settled.some((o) => o.recipient === recipient);
    for (const [recipient, rule] of decision.hold) {
      if (!open(recipient) || this.opts.storage.rules.everHeld(batch.envelope.messageId, recipient)) continue;
      settled.push({ recipient, state: 'held', rule });
      audit.push({ rule, action: kindOf.get(rule)! });
    }
    const copies: OutboundRuling['copies'] = [];
    for (const [recipient, { rule, address }] of decision.redirect) {
      if (!open(recipient)) continue;
      settled.push({ recipient, state: 'delivered', receipt: `redirected to a mailbox of this node by rule ${rule}` });
      copies.push({ mailbox: address, rule, action: 'redirect' });
    }
    for (const [mailbox, rule] of decision.journal) copies.push({ mailbox, rule, action: kindOf.get(rule)! });
    // A tag acts on every attempt (the field goes out with the message), audited on the first only.
    if (batch.items.some((i) => i.attempts === 0)) for (const [, rule] of decision.tags) audit.push({ rule, action: 'tag' });
    return { data: withTags(data, [...new Set([...accepted, ...decision.tags.keys()])]), triggered: true, settled, copies, audit };
  }

  /**
   * Stores the copies a ruling makes (the message as it leaves, DKIM signature included), then appends
   * the audit leaves of what it did this time: a copy made on an earlier attempt, or for the message's
   * recipients in another domain, is not made or audited again.
   */
  private async carryOut(ruling: OutboundRuling, batch: DeliveryBatch, sender: string, data: Buffer): Promise<void> {
    const audit = [...ruling.audit];
    for (const { mailbox, rule, action } of ruling.copies) {
      // The message's batches for other domains run beside this one: one copy is made at a time.
      const key = `${Buffer.from(batch.envelope.messageId).toString('hex')}\n${mailbox}`;
      const earlier = this.copying.get(key);
      if (earlier) await earlier.catch(() => undefined);
      const making = this.opts.keepRuleCopy({ original: batch.envelope, sender, mailbox, data });
      this.copying.set(key, making);
      try {
        if (await making) audit.push({ rule, action });
      } finally {
        if (this.copying.get(key) === making) this.copying.delete(key);
      }
    }
    const once = [...new Map(audit.map((a) => [`${a.rule}\n${a.action}`, a])).values()];
    if (this.opts.ledger && once.length) await recordAudit({ ledger: this.opts.ledger, storage: this.opts.storage }, once, batch.envelope.messageHash);
  }

  /** One attempt; `recordTls` false for a TLS report (RFC 8460 §3: its delivery is not reported on). */
  private async send(batch: DeliveryBatch, message: OutboundMessage, recordTls = true): Promise<RecipientOutcome[]> {
    const nextHop = this.opts.nextHop(batch.domain);
    const results = await this.opts.outbound.deliver(batch.domain, message, { ...(nextHop ? { nextHop } : {}), recordTls });
    return results.map((r) => outcomeOf(r, message.data));
  }

  /**
   * Ends the attempts on the wire (they come back deferred, retried after a restart): without it a stop
   * waits for each server's reply, up to the data timeout (ten minutes) for a server that holds it.
   */
  async interrupt(): Promise<void> {
    await this.opts.outbound.close();
  }

  async stop(): Promise<void> {
    await this.opts.outbound.close();
  }
}

/** The message with an X-AfterSMTP-Tag field per label, first (before DKIM signs it). */
function withTags(data: Buffer, tags: readonly string[]): Buffer {
  return tags.length ? Buffer.concat([Buffer.from(tags.map((t) => `X-AfterSMTP-Tag: ${t}\r\n`).join(''), 'utf8'), data]) : data;
}

/** What the smtp-out rules make of one attempt. */
interface OutboundRuling {
  /** The message with its tag fields. */
  data: Buffer;
  triggered: boolean;
  /** The recipients the rules settled (refused, held, redirected): not sent. */
  settled: RecipientOutcome[];
  /** Mailboxes that get a copy (journal, divert's reviewer, a redirect's target), with the rule and its action. */
  copies: { mailbox: string; rule: string; action: string }[];
  /** Actions taken whatever the copies: audited once the copies are stored. */
  audit: { rule: string; action: string }[];
}

type DsnAsked = ReturnType<Store['dsn']['forMessage']>;

function recipients(batch: DeliveryBatch, asked: DsnAsked): OutboundRecipient[] {
  return batch.items.map((item) => {
    const dsn = asked?.recipients.find((r) => r.address === item.recipient);
    return {
      address: item.recipient,
      ...(dsn?.notify.length ? { notify: dsn.notify as OutboundRecipient['notify'] } : {}),
      ...(dsn?.orcpt ? { orcpt: dsn.orcpt } : {}),
    };
  });
}

function dsnParams(asked: DsnAsked): { dsn?: { ret?: 'FULL' | 'HDRS'; envid?: string } } {
  if (!asked || (!asked.ret && !asked.envid)) return {};
  return { dsn: { ...(asked.ret ? { ret: asked.ret } : {}), ...(asked.envid ? { envid: asked.envid } : {}) } };
}

/** The header block of a message (up to the first empty line), for a field check. */
function headerBlock(data: Buffer): string {
  const end = data.indexOf('\r\n\r\n');
  return data.subarray(0, end < 0 ? data.length : end).toString('latin1');
}

/** What the queue records: the server's reply, and for a delivered one where and how it went. */
function outcomeOf(r: RecipientResult, sent: Buffer): RecipientOutcome {
  const reply = oneLine(`${r.reply.code}${r.reply.enhanced ? ` ${r.reply.enhanced}` : ''} ${r.reply.text}`);
  if (r.status === 'delivered') {
    return { recipient: r.address, state: 'delivered', receipt: JSON.stringify({ via: 'smtp', mx: r.mx, reply, ...(r.tls ? { tls: r.tls } : {}) }) };
  }
  if (r.status === 'deferred') return { recipient: r.address, state: 'deferred', code: 'SMTP_DEFERRED', error: `${r.mx || 'no MX reached'}: ${reply}` };
  return {
    recipient: r.address,
    state: 'failed',
    code: failureCode(r),
    error: `${r.mx || 'no MX reached'}: ${reply}`,
    report: { status: r.reply.enhanced ?? `${String(r.reply.code)[0] === '4' ? '4' : '5'}.0.0`, ...(r.mx ? { remoteMta: r.mx, diagnostic: reply } : {}) },
    returned: sent,
  };
}

/** The notice's reason for a permanent failure, from the enhanced status the bridge or the server gave. */
function failureCode(r: RecipientResult): string {
  if (r.reply.enhanced === '5.1.10') return 'NULL_MX';
  if (r.reply.enhanced === '5.7.30') return 'REQUIRETLS';
  if (r.reply.enhanced === '5.1.2' && !r.mx) return 'NO_SUCH_DOMAIN';
  return 'SMTP_REFUSED';
}
