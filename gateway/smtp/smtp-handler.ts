// The node's side of the SMTP bridge (bridge/inbound's InboundHandler): which recipients are ours, which
// mailbox a submission client is, and how received mail becomes an AfterSMTP message. A bridged message is
// signed by the node's DID as the bridge, its body the RFC 5322 message with the bridge's Received and
// Authentication-Results on top (so the verdicts are under the node's signature), sealed to each
// recipient's key and accepted through the node's one acceptance path like any other: a ledger leaf and a
// receipt for each. The address the node vouches for is the authenticated mailbox on submission and, on
// MX, the header From only when DMARC passed (docs/PROTOCOL.md §4 "Sender binding").
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { extractKeys } from '../../identity/index.ts';
import {
  arcSeal, BridgeError, type BridgeErrorCode, type DkimSigner, type InboundHandler, type InboundMessage, type InboundObservation, type ListenerKind,
  type RecipientKind, type Srs,
} from '../../bridge/index.ts';
import { acceptEnvelope, actionsOf, decideFor, domainOf, mailboxFor, recordAudit, RuleRejection, sealAsNode, type AcceptDeps } from '../accept/index.ts';
import { readHeaders, retarget, type Decision } from '../rules/index.ts';
import { queueAsIs } from './send-as-is.ts';
import { dkimSigners, type IntakeResult, type ReportIntake } from './report-intake.ts';
import type { GatewayError, GatewayErrorCode } from '../core/index.ts';
import { tokenSha256 } from '../services/index.ts';
import type { Router } from '../federation/index.ts';
import type { DsnRequest } from '../store/index.ts';

export interface SmtpHandlerDeps extends AcceptDeps {
  nodeDid: string;
  nodeKeys: { signingKeyId: string; signingPrivateKey: Uint8Array };
  /** Federation, when enabled: routes to peer nodes and their mailboxes' keys (submission to peers). */
  federation?: {
    router: Pick<Router, 'configuredRoute'>;
    resolveRemoteAddress(address: string): Promise<{ did: string; documentJson: string }>;
  };
  /** The node's own key agreement key: submitted mail for SMTP recipients is sealed to it (the bridge key). */
  bridgeKey: { keyId: string; publicKey: Uint8Array };
  /** Takes in TLS-RPT and DMARC reports about the node's domains sent to its postmaster. */
  reports?: Pick<ReportIntake, 'fromMail'>;
  /** Forwarding: the envelope sender rewriting, and the keys that ARC-seal a forward (per domain). */
  forwarding?: { srs: Srs; sealKeys: DkimSigner[]; authservId: string };
  log: Logger;
}

/**
 * Every node error as the bridge's refusal: the one place where a GatewayError code becomes a
 * BridgeError code (a code added to GatewayErrorCode without one here does not type-check). Faults
 * of the node itself, and identity/'s checks failing on the envelope the node just made, are temporary
 * and say nothing of internals to the SMTP client.
 */
const BRIDGE_CODE: Record<GatewayErrorCode, BridgeErrorCode> = {
  CONFIG_INVALID: 'TEMPORARY',
  NODE_EXISTS: 'TEMPORARY',
  NODE_MISSING: 'TEMPORARY',
  UNAUTHENTICATED: 'REFUSED',
  PERMISSION_DENIED: 'SENDER_MISMATCH',
  DEFERRED: 'TEMPORARY',
  INVALID_ARGUMENT: 'REFUSED',
  TOO_LARGE: 'REFUSED',
  LIMIT: 'REFUSED',
  NOT_FOUND: 'UNKNOWN_RECIPIENT',
  UNKNOWN_RECIPIENT: 'UNKNOWN_RECIPIENT',
  REPLAY: 'REFUSED',
  MAILBOX_EXISTS: 'TEMPORARY',
  STORAGE: 'TEMPORARY',
  STORAGE_FULL: 'STORE_FULL',
  LISTEN_FAILED: 'TEMPORARY',
  SHUTTING_DOWN: 'SHUTTING_DOWN',
  DISCOVERY: 'TEMPORARY',
  PEER_UNAVAILABLE: 'TEMPORARY',
  PEER_ERROR: 'TEMPORARY',
  PEER_REJECTED: 'TEMPORARY',
  BAD_RECEIPT: 'TEMPORARY',
  CONFLICT: 'TEMPORARY',
  SPLIT_VIEW: 'TEMPORARY',
  BAD_SIGNATURE: 'TEMPORARY',
  INTERNAL: 'TEMPORARY',
  ENCODING: 'TEMPORARY',
  BODY_DIGEST: 'TEMPORARY',
  KEY_ID_MISMATCH: 'TEMPORARY',
  KEY_NOT_IN_DID: 'TEMPORARY',
  SIGNATURE: 'TEMPORARY',
  DECRYPT: 'TEMPORARY',
  HASH_MISMATCH: 'TEMPORARY',
  MESSAGE_ID_MISMATCH: 'TEMPORARY',
  RECIPIENTS_DIGEST: 'TEMPORARY',
  NOT_A_RECIPIENT: 'TEMPORARY',
  TIME_WINDOW: 'TEMPORARY',
  DID_RESOLUTION: 'TEMPORARY',
};

/** Codes whose message is about what the client sent (an address, a size), so it may read it. */
const TELLS_CLIENT = new Set<BridgeErrorCode>(['UNKNOWN_RECIPIENT', 'REFUSED', 'SENDER_MISMATCH', 'STORE_FULL', 'SHUTTING_DOWN']);

export function bridgeErrorFor(err: unknown): BridgeError {
  if (err instanceof BridgeError) return err;
  // The operator's own reply: the rule's code and text, nothing else.
  if (err instanceof RuleRejection) return new BridgeError('REFUSED', err.replyText, { cause: err, replyCode: err.replyCode });
  // GatewayError and identity/'s IdentityError both carry a code of the list.
  const thrown = (err as { code?: unknown })?.code;
  const code = typeof thrown === 'string' && Object.hasOwn(BRIDGE_CODE, thrown) ? BRIDGE_CODE[thrown as GatewayErrorCode] : 'TEMPORARY';
  const text = TELLS_CLIENT.has(code) ? (err as Error).message : 'temporary failure of the receiving node, try again later';
  return new BridgeError(code, text, { cause: err });
}

/** A SHA-256 that matches no token: unknown mailboxes cost the same comparison as known ones. */
const NO_TOKEN = createHash('sha256').update('no mailbox').digest();

export class SmtpHandler implements InboundHandler {
  private readonly deps: SmtpHandlerDeps;
  private readonly localDomains: Set<string>;
  private draining = false;

  constructor(deps: SmtpHandlerDeps) {
    this.deps = deps;
    this.localDomains = new Set(deps.config.node.domains.map((d) => d.toLowerCase()));
  }

  /** From now on every message is refused as SHUTTING_DOWN (the listeners are closing). */
  drain(): void {
    this.draining = true;
  }

  async recipient(address: string, context: { listener: ListenerKind; authenticated?: string }): Promise<RecipientKind> {
    const domain = domainOf(address);
    if (this.localDomains.has(domain)) {
      // postmaster@ is always taken (RFC 5321 §4.5.1): reports about the domain arrive there.
      const ours = this.isPostmaster(address) || mailboxFor(this.deps.storage, address) || this.forwardOf(address) || this.returnPath(address);
      return ours ? 'local' : 'unknown';
    }
    // An anonymous (MX) client cannot make the node look anything up, and may not relay anyway.
    if (!context.authenticated) return this.deps.federation?.router.configuredRoute(domain) ? 'peer' : 'legacy';
    try {
      const kind = await this.deps.routeKind?.(domain);
      return kind === 'relay' ? 'peer' : kind === 'smtp' ? 'legacy' : 'unroutable';
    } catch (err) {
      throw bridgeErrorFor(err);
    }
  }

  /**
   * Counts an MX message of a domain that publishes DMARC, for that domain's aggregate report (only what
   * the report carries: the source address, the domains, the verdicts, the disposition).
   */
  observe(o: InboundObservation): void {
    const dmarc = o.verdicts.dmarc;
    if (!dmarc.record) return; // no DMARC record: nobody to report to
    const policyDomain = (dmarc.policyDomain ?? dmarc.domain).toLowerCase();
    this.deps.storage.dmarcObservations.record(policyDomain, {
      at: Math.floor(o.atMs / 1000),
      sourceIp: o.sourceIp,
      headerFrom: domainOf(o.headerFrom || dmarc.domain),
      envelopeFrom: o.mailFrom ? domainOf(o.mailFrom) : '',
      verdicts: {
        dmarc: {
          result: dmarc.result, policy: dmarc.policy, domain: dmarc.domain, policyDomain, alignment: dmarc.alignment,
          ...(dmarc.testMode ? { testMode: true } : {}), record: dmarc.record,
        },
        spf: { result: o.verdicts.spf.result, domain: o.verdicts.spf.domain },
        dkim: o.verdicts.dkim.map((d) => ({ result: d.result, domain: d.domain, selector: d.selector })),
      },
      ...(o.disposition !== 'none' ? { disposition: o.disposition } : {}),
      ...(o.override ? { reasons: [{ type: o.override }] } : {}),
    }).catch((err: Error) => this.deps.log.warn({ err: err.message }, 'DMARC observation not stored'));
  }

  async authenticate(username: string, password: string): Promise<{ address: string } | null> {
    const address = username.trim().toLowerCase();
    const mailbox = this.localDomains.has(domainOf(address)) ? this.deps.storage.mailboxes.byAddress(address) : undefined;
    const stored = mailbox ? Buffer.from(mailbox.tokenSha256, 'hex') : NO_TOKEN;
    const given = Buffer.from(tokenSha256(password), 'hex');
    const equal = stored.length === given.length && timingSafeEqual(stored, given);
    return mailbox && equal ? { address: mailbox.address } : null;
  }

  async accept(message: InboundMessage, signal: AbortSignal): Promise<{ messageId: string }> {
    try {
      return await this.bridge(message, signal);
    } catch (err) {
      const refusal = bridgeErrorFor(err);
      this.deps.log.info({ session: message.sessionId, listener: message.listener, code: refusal.code, err: (err as Error).message }, 'bridged message refused');
      throw refusal;
    }
  }

  private async bridge(message: InboundMessage, signal: AbortSignal): Promise<{ messageId: string }> {
    const { storage, nodeDid } = this.deps;
    if (this.draining) throw new BridgeError('SHUTTING_DOWN', 'the node is shutting down; try again later');
    const submitted = message.listener !== 'mx';
    if (submitted && !message.authenticated) throw new BridgeError('RELAY_DENIED', 'submission needs AUTH');
    // Submission: the authenticated mailbox. MX: the header From, vouched for only when DMARC passed.
    const fromAddress = submitted ? message.authenticated!.toLowerCase() : message.headerFrom.toLowerCase();
    const vouched = submitted || message.verdicts?.dmarc.result === 'pass' ? fromAddress : '';

    const recipients: { did: string; address: string; keyId: string; publicKey: Uint8Array }[] = [];
    /** Addresses elsewhere that forwards of the recipients send on to, and senders whose bounces came back. */
    const forwardTo = new Set<string>();
    const returnTo = new Set<string>();
    /** The node's addresses whose mail goes on elsewhere, each with its forward's target (the rules' to:). */
    const forwarded = new Map<string, string>();
    /** A postmaster address without a mailbox: the node takes reports there, and nothing else. */
    let postmasterOnly = false;
    // A client may name a recipient twice (RCPT TO repeated, or in other case): one copy each.
    for (const address of new Set(message.recipients.map((r) => r.address.toLowerCase()))) {
      const domain = domainOf(address);
      if (this.localDomains.has(domain)) {
        const forward = this.forwardOf(address);
        // An address without a mailbox, forward or other use goes to its domain's catch-all mailbox, if any.
        const taken = forward || this.isPostmaster(address) || this.returnPath(address);
        const mailbox = taken ? storage.mailboxes.byAddress(address) : mailboxFor(storage, address);
        if (forward) {
          forwardTo.add(forward.target);
          forwarded.set(address, forward.target);
        }
        if (mailbox && (!forward || forward.keep)) {
          recipients.push({ did: mailbox.did, address: mailbox.address, keyId: mailbox.agreementKeyId, publicKey: mailbox.agreementPublicKey });
        }
        if (mailbox || forward) continue;
        if (this.isPostmaster(address)) {
          postmasterOnly = true;
          continue;
        }
        const original = this.returnPath(address);
        if (!original) throw new BridgeError('UNKNOWN_RECIPIENT', `no mailbox ${address} on this node`);
        returnTo.add(original);
        continue;
      }
      if (!submitted) throw new BridgeError('RELAY_DENIED', `${domain} is not a domain of this node`);
      const kind = await this.recipient(address, { listener: message.listener, authenticated: fromAddress });
      if (kind === 'legacy') {
        // Sent on over SMTP by this node, DKIM-signed for the sender's domain: only as the mailbox that
        // authenticated, in the header too (what the far end's DMARC reads).
        if (message.headerFrom.toLowerCase() !== fromAddress) {
          throw new BridgeError('SENDER_MISMATCH', `the From field must be ${fromAddress} for mail this node sends over SMTP`);
        }
        // Sealed to the node's own key, which the outbound bridge opens.
        recipients.push({ did: nodeDid, address, keyId: this.deps.bridgeKey.keyId, publicKey: this.deps.bridgeKey.publicKey });
        continue;
      }
      if (kind !== 'peer' || !this.deps.federation) throw new BridgeError('RELAY_DENIED', `this node does not send to ${domain}`);
      // A peer's recipient: its key as its node answers for it, checked against its DID (as an app does).
      const found = await this.deps.federation.resolveRemoteAddress(address);
      const keys = extractKeys(found.did, JSON.parse(found.documentJson));
      const [keyId, publicKey] = [...keys.keyAgreement.entries()][0] ?? [];
      if (!keyId || !publicKey) throw new BridgeError('REFUSED', `${address} has no key agreement key`);
      recipients.push({ did: found.did, address, keyId, publicKey });
    }
    // A report about the node's domains (TLS-RPT, DMARC) sent to its postmaster is taken in whoever else gets it.
    let report: IntakeResult = { kind: 'none' };
    if (this.deps.reports && message.recipients.some((r) => this.isPostmaster(r.address))) {
      report = await this.deps.reports.fromMail(message.message, dkimSigners(message.verdicts));
      this.deps.log.info({ session: message.sessionId, report: report.kind, ...(report.kind === 'refused' ? { reason: report.reason } : {}) }, 'report intake');
    }
    if (postmasterOnly && recipients.length + forwardTo.size + returnTo.size === 0) {
      if (report.kind === 'refused') throw new BridgeError('REFUSED', `report refused: ${report.reason}`);
      if (report.kind === 'none') throw new BridgeError('UNKNOWN_RECIPIENT', 'postmaster takes TLS and DMARC reports only on this node (it has no mailbox)');
      return { messageId: `report-${report.kind}` };
    }
    if (recipients.length + forwardTo.size + returnTo.size === 0) throw new BridgeError('REFUSED', 'no recipients');
    const rules = recipients.length || forwarded.size ? await this.applyRules(message, submitted, fromAddress, recipients, forwarded) : undefined;
    if (signal.aborted) throw new BridgeError('TEMPORARY', 'the session ended before the message was stored');
    // Every copy is made durable before the one reply: the mailboxes' copy, the forwards, the returned bounce.
    const copies: Promise<{ messageId: string }>[] = [];
    if (recipients.length) copies.push(this.store(message, submitted, vouched, rules!));
    if (forwardTo.size) copies.push(this.sendOn(message, this.forwardCopy(message), [...forwardTo], this.deps.forwarding!.srs.forward(message.mailFrom), rules));
    // A bounce goes back with the null sender, as it came (RFC 5321 §4.5.5: nothing bounces about a bounce).
    if (returnTo.size) copies.push(this.sendOn(message, message.message, [...returnTo], ''));
    const [first] = await Promise.all(copies);
    return first!;
  }

  /**
   * The compliance rules on a message the bridge turns into AfterSMTP mail (it can read it: header
   * conditions apply). A reject refuses it with the rule's reply; a redirect replaces the recipient's
   * copy by the rule's mailbox and a journal mailbox gets a copy sealed to its own key (not named in the
   * message's recipients); hold and tag are applied by the acceptance path. An address that forwards
   * elsewhere is a recipient like a mailbox: what the rules decide on it applies to the forward's copy
   * (`forward`), so a hold keeps the forward from leaving and a redirect replaces it.
   */
  private async applyRules(
    message: InboundMessage, submitted: boolean, fromAddress: string, recipients: SealFor[], forwarded: ReadonlyMap<string, string>,
  ): Promise<BridgedRules> {
    const facts = {
      direction: submitted ? 'local' as const : 'smtp-in' as const,
      from: fromAddress,
      size: message.message.length,
      headers: readHeaders(message.message),
    };
    const decide = (to: Iterable<string>) => decideFor(this.deps.storage, { ...facts, to: [...new Set(to)] });
    const whole = decide([...recipients.map((r) => r.address), ...forwarded.keys()]);
    if (whole.reject) {
      // Nothing was sealed: the audit leaf names the message by the SHA-256 of what the client sent.
      await recordAudit(this.deps, actionsOf(whole), new Uint8Array(createHash('sha256').update(message.message).digest()));
      const then = whole.reject.rule.then;
      if (then.kind === 'reject') throw new RuleRejection(whole.reject.rule.name, then.code, then.text);
    }
    // Without forwards the whole message's decision is the mailboxes' copy's.
    const decision = forwarded.size ? decide(recipients.map((r) => r.address)) : whole;
    const mailboxKey = (address: string): SealFor => {
      const mailbox = this.deps.storage.mailboxes.byAddress(address);
      if (!mailbox) throw new BridgeError('TEMPORARY', `a rule of this node names ${address}, which has no mailbox`);
      return { did: mailbox.did, address: mailbox.address, keyId: mailbox.agreementKeyId, publicKey: mailbox.agreementPublicKey };
    };
    const sealFor = new Map<string, SealFor>();
    for (const r of recipients) {
      const redirect = decision.redirect.get(r.address);
      const target = redirect ? mailboxKey(redirect.address) : r;
      sealFor.set(target.address, target);
    }
    const journal = [...decision.journal.keys()].map(mailboxKey);
    let forward: BridgedRules['forward'];
    if (forwarded.size) {
      // The journal copies the mailboxes' copy makes are not made twice.
      const onForward = retarget(decide(forwarded.keys()), forwarded, recipients.length ? decision.journal : undefined);
      const sealTo = new Map([...onForward.redirect.values()].map((r) => [r.address, mailboxKey(r.address)]));
      for (const address of onForward.journal.keys()) sealTo.set(address, mailboxKey(address));
      forward = { decision: onForward, sealTo: [...sealTo.values()] };
    }
    return { facts, decision, recipients: [...sealFor.values()], journal, ...(forward ? { forward } : {}) };
  }

  private isPostmaster(address: string): boolean {
    return address.toLowerCase().startsWith('postmaster@') && this.localDomains.has(domainOf(address));
  }

  /** The forward of a local address; none while the node does not send SMTP (bridge.smtp.outbound off). */
  private forwardOf(address: string) {
    return this.deps.forwarding ? this.deps.storage.forwards.of(address) : undefined;
  }

  /**
   * The original sender behind an SRS address of the node (a bounce of forwarded mail coming back), or
   * undefined when the address is not one this node made (or its time ran out).
   */
  private returnPath(address: string): string | undefined {
    const srs = this.deps.forwarding?.srs;
    if (!srs || !/^srs[01][=+-]/i.test(address)) return undefined;
    try {
      return srs.reverse(address).toLowerCase();
    } catch {
      return undefined;
    }
  }

  /**
   * A forward as it leaves: ARC-sealed by the node (RFC 8617, instance n+1) with its verdicts on the
   * message, so the far end can trust what the node saw before its forwarding broke SPF (and perhaps DKIM).
   * Mail without verdicts (submission) or without a sealing key for the domain goes as received.
   */
  private forwardCopy(message: InboundMessage): Buffer {
    const forwarding = this.deps.forwarding!;
    const recipientDomains = message.recipients.map((r) => domainOf(r.address));
    const key = forwarding.sealKeys.find((k) => recipientDomains.includes(k.domain) && k.algorithm === 'rsa')
      ?? forwarding.sealKeys.find((k) => k.algorithm === 'rsa');
    if (!message.verdicts || !key) return message.message;
    const set = arcSeal({
      message: message.message, domain: key.domain, selector: key.selector, privateKey: key.privateKeyPem,
      authservId: forwarding.authservId, authResults: message.verdicts.results, chainValidation: message.verdicts.arc.result,
    });
    return set ? Buffer.concat([set.headers, message.message]) : message.message;
  }

  /**
   * A copy the node sends on over SMTP as it is (a forward, a returned bounce), durable before the reply.
   * A forward's copy carries what the rules decided on the addresses forwarding (BridgedRules.forward).
   */
  private async sendOn(message: InboundMessage, data: Buffer, targets: string[], mailFrom: string, rules?: BridgedRules): Promise<{ messageId: string }> {
    const kind = mailFrom === '' && !message.recipients.some((r) => this.forwardOf(r.address)) ? 'bounce' : 'forward';
    const forward = rules?.forward;
    const messageId = await queueAsIs(this.deps, data, targets, {
      mailFrom, kind, requireTls: message.requireTls,
      ...(forward ? { rules: { ...rules.facts, size: data.length, decision: forward.decision }, sealTo: forward.sealTo } : {}),
    });
    const id = Buffer.from(messageId).toString('hex');
    this.deps.log.info({ session: message.sessionId, messageId: id, targets: targets.length, kind }, 'sent on over SMTP');
    return { messageId: id };
  }

  /** The copy for the node's own mailboxes and for peer and legacy recipients of a submission. */
  private async store(message: InboundMessage, submitted: boolean, vouched: string, rules: BridgedRules): Promise<{ messageId: string }> {
    const { storage, config } = this.deps;
    const { recipients } = rules;
    const fromAddress = rules.facts.from;

    // Several SMTP recipients share the bridge key: it is wrapped once. A journal mailbox's key is wrapped
    // too, without naming it among the recipients.
    const envelope = sealAsNode(this.deps, {
      from: fromAddress, to: recipients.map((r) => ({ did: r.did, address: r.address })), keys: [...recipients, ...rules.journal],
      body: new Uint8Array(message.message), lifetimeMs: config.limits.maxLifetimeMs,
    });
    const { messageId, createdMs } = envelope;
    // MX mail is for local mailboxes only; submitted mail goes on to peers through the outbound queue.
    const deps: AcceptDeps = submitted ? this.deps : { ...this.deps, routeKind: undefined };
    // DSN parameters go into the same group commit as the message (both written in this turn), and the
    // 250 waits for both.
    const dsn = dsnRequest(message);
    await Promise.all([
      acceptEnvelope(deps, envelope, {
        senderAddress: vouched,
        senderDomain: vouched ? domainOf(vouched) : '',
        fromPeer: false,
        rules: { ...rules.facts, decision: rules.decision },
      }),
      dsn ? storage.dsn.record(messageId, dsn, createdMs) : undefined,
      message.requireTls ? storage.requireTls.record(messageId, createdMs) : undefined,
    ]);
    const id = Buffer.from(messageId).toString('hex');
    this.deps.log.info({ session: message.sessionId, listener: message.listener, messageId: id, recipients: recipients.length, vouched: vouched !== '' }, 'bridged message accepted');
    return { messageId: id };
  }
}

/** A recipient the bridge seals a message to: its DID, address and key agreement key. */
interface SealFor { did: string; address: string; keyId: string; publicKey: Uint8Array }

/** What the rules decided on a bridged message, and the keys the bridge seals it to accordingly. */
interface BridgedRules {
  facts: { direction: 'local' | 'smtp-in'; from: string; size: number; headers: Map<string, string[]> };
  decision: Decision;
  recipients: SealFor[];
  journal: SealFor[];
  /** What the rules decided on the addresses that forward, for the forward's copy, and the mailboxes it is sealed to. */
  forward?: { decision: Decision; sealTo: SealFor[] };
}

/** The client's RFC 3461 parameters, or undefined when it gave none (no rows kept). */
function dsnRequest(message: InboundMessage): DsnRequest | undefined {
  const given = message.dsn.ret !== undefined || message.dsn.envid !== undefined || message.recipients.some((r) => r.notify || r.orcpt);
  if (!given) return undefined;
  return {
    ret: message.dsn.ret ?? '',
    envid: message.dsn.envid ?? '',
    recipients: message.recipients.map((r) => ({ address: r.address, notify: r.notify ?? [], orcpt: r.orcpt ?? '' })),
  };
}
