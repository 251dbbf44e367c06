// Mail the node sends over SMTP as it is (a forward, a bounce returned to its original sender, a report
// of the node's own): a message signed by the node itself, sealed to its own bridge key and queued for
// the smtp agent like any other, with the envelope sender it leaves with recorded in the same commit (a
// bounce for a sender of the node's own domains goes into that sender's mailbox instead).
// It gets a log leaf like every message: the node's log says what it sent in its own name.
import { dkimSign, type DkimSigner } from '../../bridge/index.ts';
import { acceptEnvelope, domainOf, mailboxFor, sealAsNode, type AcceptDeps, type AcceptOptions } from '../accept/index.ts';
import { noDecision, type Decision } from '../rules/index.ts';
import type { SentAsIs } from '../store/index.ts';

export interface SendAsIsDeps extends AcceptDeps {
  nodeDid: string;
  nodeKeys: { signingKeyId: string; signingPrivateKey: Uint8Array };
  bridgeKey: { keyId: string; publicKey: Uint8Array };
}

/** How one copy sent as is goes: its envelope sender and kind, and what the rules decided on it. */
export interface SendAsIs extends SentAsIs {
  requireTls?: boolean;
  /** The id to send it under (default: a random one), for mail that must go once however often it is made (a bounce). */
  messageId?: Uint8Array;
  /**
   * A forward's: the decision the bridge took on the addresses forwarding (hold, redirect, journal, tag),
   * and the mailboxes a redirect or a journal copy needs it sealed to. Without it no rule applies: a
   * bounce or a report is the node's own, made by its protocols, not a user's mail.
   */
  rules?: NonNullable<AcceptOptions['rules']> & { decision: Decision };
  sealTo?: { keyId: string; publicKey: Uint8Array }[];
}

/**
 * Queues `data` for `targets` (addresses elsewhere, or a mailbox of the node's), durably; resolves with the
 * message id once stored.
 * With `sent.messageId`, the caller checks the replay set first.
 */
export async function queueAsIs(deps: SendAsIsDeps, data: Buffer, targets: string[], sent: SendAsIs): Promise<Uint8Array> {
  const { config, storage } = deps;
  const now = Date.now();
  const postmaster = `postmaster@${config.node.domains[0]!.toLowerCase()}`;
  const local = new Set(config.node.domains.map((d) => d.toLowerCase()));
  const to: { did: string; address: string }[] = [];
  const keys = [deps.bridgeKey, ...(sent.sealTo ?? [])];
  for (const address of targets) {
    // An address of this node (a bounce to a local sender of forwarded mail) is delivered to its mailbox,
    // sealed to its key: the node never sends itself mail over SMTP.
    const mailbox = local.has(domainOf(address)) ? mailboxFor(storage, address) : undefined;
    if (!mailbox) {
      to.push({ did: deps.nodeDid, address });
      continue;
    }
    to.push({ did: mailbox.did, address: mailbox.address });
    keys.push({ keyId: mailbox.agreementKeyId, publicKey: mailbox.agreementPublicKey });
  }
  const envelope = sealAsNode(deps, {
    from: postmaster, to, keys, body: new Uint8Array(data), lifetimeMs: config.limits.maxLifetimeMs,
    ...(sent.messageId ? { fixed: { messageId: sent.messageId, createdMs: now, expiresMs: now + config.limits.maxLifetimeMs } } : {}),
  });
  const { messageId } = envelope;
  const createdMs = envelope.createdMs;
  // Always over SMTP: the copy is sealed to this node's key, which no other node could open.
  const smtpOnly: AcceptDeps = { ...deps, routeKind: async () => 'smtp', bridgeKeyId: deps.bridgeKey.keyId };
  await Promise.all([
    acceptEnvelope(smtpOnly, envelope, {
      senderAddress: postmaster, senderDomain: domainOf(postmaster), fromPeer: false, ownMail: true,
      rules: sent.rules ?? { direction: 'local', from: '', size: data.length, decision: noDecision() },
    }),
    storage.forwards.recordSentAsIs(messageId, { mailFrom: sent.mailFrom, kind: sent.kind }, createdMs),
    sent.requireTls ? storage.requireTls.record(messageId, createdMs) : undefined,
  ]);
  return messageId;
}

/**
 * Queues a report of the node's own (TLS-RPT, DMARC): DKIM-signed by the node's domain, from its
 * postmaster, as it is; its delivery records no TLS outcome (it is never reported on itself).
 */
export async function queueReportMail(deps: SendAsIsDeps & { dkim: DkimSigner[] }, mail: Buffer, targets: string[], signedHeaders?: readonly string[]): Promise<void> {
  const signed = deps.dkim.length ? await dkimSign(mail, deps.dkim, signedHeaders ? { headers: signedHeaders } : {}) : mail;
  await queueAsIs(deps, signed, targets, { mailFrom: `postmaster@${deps.config.node.domains[0]!.toLowerCase()}`, kind: 'report' });
}
