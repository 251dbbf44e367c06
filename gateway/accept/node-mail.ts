// A message the node writes in its own name (a failure notice, mail it bridged from SMTP, a forward, a
// report, a copy a rule makes): signed by the node's DID and sealed to the keys given, in one place, so every such message has
// the same shape (message/rfc822 body, the node's lifetime) whatever part of the node sends it.
import { createHash, randomBytes } from 'node:crypto';
import { sealEnvelope, signMessage, type Envelope } from '../../identity/index.ts';
import { GatewayError } from '../core/index.ts';
import { noDecision } from '../rules/index.ts';
import { acceptEnvelope, domainOf, type AcceptDeps } from './accept.ts';

export interface NodeSigner {
  nodeDid: string;
  nodeKeys: { signingKeyId: string; signingPrivateKey: Uint8Array };
}

export interface NodeMail {
  /** The address the message is from (the node's postmaster, or the sender it vouches for). */
  from: string;
  /** The recipients named in the message and its envelope. */
  to: { did: string; address: string }[];
  /** The keys the content key is wrapped for (each once): the recipients', and any copy not named (a journal). */
  keys: { keyId: string; publicKey: Uint8Array }[];
  /** An RFC 5322 message. */
  body: Uint8Array;
  lifetimeMs: number;
  /**
   * The message id and times; default: a random id, now, and now + lifetimeMs. A copy made again must be
   * the same signed message (same id and hash), which the replay set then refuses.
   */
  fixed?: { messageId: Uint8Array; createdMs: number; expiresMs: number };
}

export function sealAsNode(signer: NodeSigner, mail: NodeMail): Envelope {
  const messageId = mail.fixed?.messageId ?? new Uint8Array(randomBytes(16));
  const createdMs = mail.fixed?.createdMs ?? Date.now();
  const expiresMs = mail.fixed?.expiresMs ?? createdMs + mail.lifetimeMs;
  const { nodeDid, nodeKeys } = signer;
  const signed = signMessage({
    header: { messageId, from: { did: nodeDid, address: mail.from }, to: mail.to, createdMs, expiresMs, contentType: 'message/rfc822' },
    body: mail.body,
    keyId: nodeKeys.signingKeyId,
    privateKey: nodeKeys.signingPrivateKey,
  });
  return sealEnvelope({
    signedMessage: signed.signedMessage,
    messageId,
    messageHash: signed.messageHash,
    senderDid: nodeDid,
    senderKeyId: nodeKeys.signingKeyId,
    senderPrivateKey: nodeKeys.signingPrivateKey,
    recipientAddresses: mail.to.map((r) => r.address),
    recipients: [...new Map(mail.keys.map((k) => [k.keyId, { keyId: k.keyId, publicKey: k.publicKey }])).values()],
    createdMs,
    expiresMs,
  });
}

/**
 * A copy a rule makes of mail the node reads as it leaves (a `direction:smtp-out` journal, redirect or
 * divert): the message sealed by the node to the rule's mailbox, from the sender the node vouched for.
 * Its id is derived from the original's and the mailbox's (its times are the original's), so a retry, or
 * the message's batch for another domain, finds it made: the replay set knows the id. Two such calls must
 * not run at once for one copy (the caller makes them one after the other). Resolves true when this call
 * stored the copy.
 */
export async function storeRuleCopy(
  deps: AcceptDeps & NodeSigner, copy: { original: { messageId: Uint8Array; createdMs: number; expiresMs: number }; sender: string; mailbox: string; data: Uint8Array },
): Promise<boolean> {
  const mailbox = deps.storage.mailboxes.byAddress(copy.mailbox);
  if (!mailbox) throw new GatewayError('UNKNOWN_RECIPIENT', `a rule of this node names ${copy.mailbox}, which has no mailbox`);
  const { original } = copy;
  const messageId = new Uint8Array(createHash('sha256').update('aftersmtp-rule-copy\n').update(original.messageId).update(mailbox.address).digest().subarray(0, 16));
  // Known by id whatever its hash: the message as it left differs between attempts (DKIM's timestamp).
  if (deps.storage.replay.logIndexesOfId(messageId).length) return false;
  const envelope = sealAsNode(deps, {
    from: copy.sender, to: [{ did: mailbox.did, address: mailbox.address }],
    keys: [{ keyId: mailbox.agreementKeyId, publicKey: mailbox.agreementPublicKey }],
    body: copy.data, lifetimeMs: deps.config.limits.maxLifetimeMs, fixed: { messageId, createdMs: original.createdMs, expiresMs: original.expiresMs },
  });
  try {
    await acceptEnvelope(deps, envelope, { senderAddress: copy.sender, senderDomain: domainOf(copy.sender), fromPeer: false, rules: { direction: 'local', from: copy.sender, size: copy.data.length, decision: noDecision() } });
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === 'REPLAY') return false;
    throw err;
  }
}
