// Accepting an envelope into the node, whoever hands it over (an app, a peer node, the node itself):
// every check a node can make without the recipients' private keys, then the ledger leaf and the
// durable store. One code path, so the rules cannot drift between Submit and Relay.
import { checkEnvelope, encodeEnvelope, type DidResolver, type Envelope, type SignatureCheck } from '../../identity/index.ts';
import type { Receipt } from '../../proto/index.ts';
import type { MailboxRecord, OutboundTransport, QueuedRecipient, Store } from '../store/index.ts';
import type { NodeLedger } from '../provenance/index.ts';
import { GatewayError, type NodeConfig } from '../core/index.ts';
import type { Decision, Direction } from '../rules/index.ts';
import { actionsOf, decideFor, recordAudit, rejectionOf } from './compliance.ts';

export interface AcceptDeps {
  storage: Store;
  resolver: DidResolver;
  ledger: NodeLedger;
  config: NodeConfig;
  /**
   * The delivery agent for a remote domain a local sender addresses (an app submit, SMTP submission):
   * undefined (the function, or its answer) = not routable, local recipients only.
   */
  routeKind?: (domain: string) => Promise<OutboundTransport | undefined>;
  /**
   * The node's own key agreement key (`Identity.Resolve` gives its DID document with `legacy: true` for
   * an address without an AfterSMTP node): mail for SMTP recipients must be sealed to it, since the node
   * opens it to send it on.
   */
  bridgeKeyId?: string;
  /** Ed25519 verification (the node's SignatureVerifierPool, off the event loop); default: on this thread. */
  verify?: SignatureCheck;
}

export interface AcceptOptions {
  /**
   * The sender's mailbox address as this node authenticated it (a local mailbox's token, the node's
   * own postmaster) or the sending node vouched for it; '' if nobody vouched for a full address. Kept
   * with each delivery (the recipient's client binds the signed sender address to it) and with queued
   * mail (failure notices go to it).
   */
  senderAddress: string;
  /** The sender's mail domain, likewise authenticated or vouched for. */
  senderDomain: string;
  /** From a peer node: only this node's own recipients are delivered, the others are not ours. */
  fromPeer: boolean;
  /**
   * Mail the node sends in its own name (sent as is: a forward, a bounce, a report), signed by it as
   * `senderAddress`, its postmaster: a mailbox's copy (a rule's) is vouched for as such, and its queued
   * recipients have no sender to notify (a forward that fails is bounced to its original sender instead).
   */
  ownMail?: boolean;
  /**
   * What the compliance rules see of a message the node can read (the SMTP bridge): where it came from,
   * its sender, size and header, or the decision already taken on them (the bridge applies a redirect
   * and a journal copy before it seals). Without it: direction federation (fromPeer) or local, the
   * vouched sender, the envelope's size, and no header (end-to-end encrypted).
   */
  rules?: { direction: Direction; from: string; size: number; headers?: ReadonlyMap<string, readonly string[]>; decision?: Decision };
}

export interface Accepted {
  envelope: Envelope;
  /** The node's mailboxes the sender addressed, and the remote recipients it queued, as the sender named them. */
  deliveredLocal: string[];
  queuedRemote: string[];
  receipt: Receipt;
  /** True when a peer re-sent a message this node already holds (the original receipt is returned). */
  duplicate: boolean;
}

export function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).toLowerCase();
}

/**
 * The mailbox that takes mail for an address of the node: its own, else its domain's catch-all
 * (`aftersmtp mailbox catchall`), which Resolve answers with too, so a sender seals to the catch-all's key.
 */
export function mailboxFor(storage: Store, address: string): MailboxRecord | undefined {
  const own = storage.mailboxes.byAddress(address);
  if (own) return own;
  const catchall = storage.rules.catchallOf(domainOf(address));
  return catchall === undefined ? undefined : storage.mailboxes.byAddress(catchall);
}

export async function acceptEnvelope(deps: AcceptDeps, envelope: Envelope, opts: AcceptOptions): Promise<Accepted> {
  const { storage, resolver, config, ledger } = deps;
  if (envelope.recipientAddresses.length === 0) throw new GatewayError('INVALID_ARGUMENT', 'envelope has no recipient address');
  if (envelope.recipientAddresses.length > config.limits.maxRecipients) {
    throw new GatewayError('TOO_LARGE', `too many recipients (${envelope.recipientAddresses.length} > ${config.limits.maxRecipients})`);
  }
  const local = new Set(config.node.domains);
  const wrappedFor = new Set(envelope.recipients.map((r) => r.keyId));
  const mailboxes = new Set<string>();
  /** Each local recipient's mailbox (a catch-all's for an address without one of its own). */
  const mailboxOf = new Map<string, string>();
  let remote: QueuedRecipient[] = [];
  for (const raw of envelope.recipientAddresses) {
    const address = raw.toLowerCase();
    const domain = domainOf(address);
    if (!local.has(domain)) {
      if (opts.fromPeer) continue; // addressed to a third domain: the sending node relays it there itself
      const transport = deps.routeKind ? await deps.routeKind(domain) : undefined;
      if (!transport) throw new GatewayError('UNKNOWN_RECIPIENT', `no route to ${domain} for ${address}`);
      if (transport === 'smtp' && !(deps.bridgeKeyId && wrappedFor.has(deps.bridgeKeyId))) {
        throw new GatewayError('INVALID_ARGUMENT', `${domain} has no AfterSMTP node: seal ${address}'s copy to this node's bridge key (Identity.Resolve answers legacy: true with it)`);
      }
      remote.push({ address, domain, transport });
      continue;
    }
    const mailbox = mailboxFor(storage, address);
    if (!mailbox) throw new GatewayError('UNKNOWN_RECIPIENT', `no mailbox ${address} on this node`);
    if (!wrappedFor.has(mailbox.agreementKeyId)) {
      throw new GatewayError('INVALID_ARGUMENT', `the content key is not wrapped for ${address}'s key ${mailbox.agreementKeyId}`);
    }
    mailboxes.add(mailbox.address);
    mailboxOf.set(address, mailbox.address);
  }
  if (opts.fromPeer && mailboxes.size === 0) throw new GatewayError('UNKNOWN_RECIPIENT', `no recipient of this envelope is in ${config.node.domains.join(', ')}`);
  const encoded = encodeEnvelope(envelope);
  if (encoded.length > config.limits.maxEnvelopeBytes) {
    throw new GatewayError('TOO_LARGE', `envelope of ${encoded.length} bytes exceeds the limit of ${config.limits.maxEnvelopeBytes}`);
  }
  // Keyed on id and hash: another message under a known id (a co-recipient who sent its own first)
  // is a message of its own, and cannot make the genuine one a replay (docs/PROTOCOL.md §5).
  if (storage.replay.has(envelope.messageId, envelope.messageHash)) {
    // A peer that lost our ack re-sends: answer it with the original receipt, store nothing twice.
    const original = opts.fromPeer ? originalLeaf(deps, envelope) : undefined;
    if (original !== undefined) {
      return { envelope, deliveredLocal: [...mailboxes], queuedRemote: [], receipt: ledger.receipt(original, envelope.messageHash), duplicate: true };
    }
    throw new GatewayError('REPLAY', 'message id already accepted (replay)');
  }
  storage.assertRoom(); // a full store refuses before verifying and logging what it cannot keep
  await checkEnvelope(envelope, resolver, { now: Date.now(), maxLifetimeMs: config.limits.maxLifetimeMs, skewMs: config.limits.clockSkewMs, verify: deps.verify });
  // The rules apply to a message whose signature holds: nobody makes the node log actions on a forgery.
  const decision = opts.rules?.decision ?? decideFor(storage, {
    direction: opts.rules?.direction ?? (opts.fromPeer ? 'federation' : 'local'),
    from: opts.rules?.from ?? opts.senderAddress,
    to: envelope.recipientAddresses,
    size: opts.rules?.size ?? encoded.length,
    ...(opts.rules?.headers ? { headers: opts.rules.headers } : {}),
  });
  const rejection = rejectionOf(decision);
  if (rejection) {
    await recordAudit(deps, actionsOf(decision), envelope.messageHash);
    throw rejection;
  }
  const held: { mailbox: string; rule: string; transport?: OutboundTransport }[] = [];
  // The sender is answered about the recipients it addressed: what the rules did is not its to see
  // (a redirect, a journal copy and a hold are silent).
  const addressed = { local: [...mailboxes], remote: remote.map((r) => r.address) };
  if (decision.triggered.length) remote = applyDecision(deps, decision, wrappedFor, mailboxes, mailboxOf, remote, held);
  // Leaf and envelope commit one after the other and are synced together; the answer waits for both.
  // After a crash, a stored envelope whose leaf was lost (index >= log size) gets it back at start
  // (AfterSmtpNode.repairLedger); a leaf whose envelope was lost is an orphan, harmless: the sender
  // was not answered and retries.
  const { index: leafIndex, durable } = await ledger.appendMessage(envelope.messageHash);
  await Promise.all([
    decision.triggered.length ? recordAudit(deps, actionsOf(decision), envelope.messageHash) : undefined,
    storage.storeEnvelope({
      messageId: envelope.messageId,
      messageHash: envelope.messageHash,
      sender: { address: opts.senderAddress.toLowerCase(), domain: opts.senderDomain.toLowerCase() },
      expiresMs: envelope.expiresMs,
      envelope: encoded,
      mailboxes: [...mailboxes],
      logIndex: leafIndex,
      ...(held.length ? { held } : {}),
      ...(decision.tags.size ? { tags: [...decision.tags].map(([tag, rule]) => ({ tag, rule })) } : {}),
      // Also without recipients to queue now: a held one is queued on release, with this sender.
      remote: { recipients: remote, sender: opts.ownMail ? '' : opts.senderAddress, senderDomain: opts.ownMail ? '' : opts.senderDomain },
    }),
    durable,
  ]);
  return { envelope, deliveredLocal: addressed.local, queuedRemote: addressed.remote, receipt: ledger.receipt(leafIndex, envelope.messageHash), duplicate: false };
}

/**
 * What the rules decided, applied to the recipients: a redirected recipient's copy goes to the rule's
 * mailbox instead, a journal mailbox gets a copy (once), a held recipient's mailbox keeps it back
 * (`held`), and so does the queue for a held remote recipient. The node cannot re-seal what it cannot read: a mailbox a rule adds must be one the content
 * key is wrapped for, or the message is refused naming it (the sender seals to it and sends again; the
 * SMTP bridge does so itself). Returns the remote recipients left.
 */
function applyDecision(
  deps: AcceptDeps, decision: Decision, wrappedFor: Set<string>, mailboxes: Set<string>, mailboxOf: Map<string, string>,
  remote: QueuedRecipient[], held: { mailbox: string; rule: string; transport?: OutboundTransport }[],
): QueuedRecipient[] {
  const added = (address: string, rule: string, action: string): string => {
    const mailbox = deps.storage.mailboxes.byAddress(address);
    if (!mailbox) throw new GatewayError('UNKNOWN_RECIPIENT', `rule ${rule} ${action}s to ${address}, which has no mailbox on this node`);
    if (!wrappedFor.has(mailbox.agreementKeyId)) {
      throw new GatewayError('INVALID_ARGUMENT', `rule ${rule} of this node ${action}s this mail to ${address}: seal a copy to ${address}'s key ${mailbox.agreementKeyId} too`);
    }
    return mailbox.address;
  };
  for (const [recipient, { rule, address }] of decision.redirect) {
    const target = added(address, rule, 'redirect');
    const own = mailboxOf.get(recipient);
    if (own !== undefined && ![...mailboxOf].some(([r, m]) => m === own && !decision.redirect.has(r))) mailboxes.delete(own);
    remote = remote.filter((r) => r.address !== recipient);
    mailboxes.add(target);
    mailboxOf.set(recipient, target);
  }
  for (const [recipient, rule] of decision.hold) {
    const queued = remote.find((r) => r.address === recipient);
    if (queued) {
      // Kept out of the queue: released, it is queued for its agent then.
      remote = remote.filter((r) => r !== queued);
      held.push({ mailbox: recipient, rule, transport: queued.transport });
      continue;
    }
    const mailbox = mailboxOf.get(recipient);
    if (mailbox === undefined || !mailboxes.delete(mailbox)) continue;
    held.push({ mailbox, rule });
  }
  for (const [address, rule] of decision.journal) {
    const journal = added(address, rule, 'journal');
    if (!held.some((h) => h.mailbox === journal)) mailboxes.add(journal);
  }
  return remote;
}

/**
 * The log index of a message this node already accepted under the envelope's id and hash: the replay
 * set keeps each message's leaf until it expires (messages accepted before it did: found by hash; an
 * id recorded alone, before layout 4: its leaf's hash must be the envelope's).
 */
function originalLeaf(deps: AcceptDeps, envelope: Envelope): number | undefined {
  const index = deps.storage.replay.logIndexOf(envelope.messageId, envelope.messageHash);
  if (index === null) return deps.ledger.log.leafIndexOf(envelope.messageHash);
  if (index === undefined) return undefined;
  const hash = deps.ledger.messageHashAt(index);
  return hash !== undefined && Buffer.compare(hash, envelope.messageHash) === 0 ? index : undefined;
}
