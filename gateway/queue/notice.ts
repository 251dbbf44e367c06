// Delivery failure notices: when recipients fail for good (a permanent refusal, or expiry), the sender's
// mailbox gets one AfterSMTP message from the node's postmaster, shaped as an RFC 3464 delivery status
// notification so mail clients show it as a bounce.
import { createHash } from 'node:crypto';
import type { Envelope } from '../../identity/index.ts';
import { acceptEnvelope, sealAsNode, type AcceptDeps } from '../accept/index.ts';
import { buildDsn } from '../../bridge/index.ts';
import { smtpHostname } from '../core/index.ts';
import type { FailureReport } from './agent.ts';

export interface NoticeDeps extends AcceptDeps {
  nodeDid: string;
  nodeKeys: { signingKeyId: string; signingPrivateKey: Uint8Array };
  localDomains: string[];
}

/**
 * What a notice says for each code that ends a delivery (docs/PROTOCOL.md §4.1 item 4, and expiry).
 * Fixed text: the notice is signed by this node as postmaster, so its human part does not repeat a
 * peer's words (an SMTP server's reply goes in the Diagnostic-Code field, as RFC 3464 has it).
 */
const NOTICE_REASONS: Record<string, string> = {
  EXPIRED: 'the message expired before the recipient domain accepted it',
  UNKNOWN_RECIPIENT: "the recipient's node has no such mailbox",
  INVALID_ARGUMENT: "the recipient's node refused the message as malformed",
  TOO_LARGE: "the message is larger than the recipient's node accepts",
  ENCODING: "the recipient's node could not decode the message",
  SIGNATURE: "the recipient's node could not verify the message's signature",
  KEY_NOT_IN_DID: "the signing key is not in the sender's DID document",
  HASH_MISMATCH: "the message hash did not match the message",
  TIME_WINDOW: "the recipient's node refused the message's time window (clock skew or lifetime)",
  RECIPIENTS_DIGEST: "the recipient key digest did not match the recipients",
  PEER_REJECTED: "the recipient's node and this node did not accept each other's identity or domain",
  REPLAY: "the recipient's node already holds this message",
  LIMIT: "the message exceeds a limit of the recipient's node",
  SMTP_REFUSED: "the recipient's mail server refused the message",
  NULL_MX: 'the recipient domain accepts no mail (null MX)',
  NO_SUCH_DOMAIN: 'the recipient domain does not exist',
  REQUIRETLS: 'the message required TLS (REQUIRETLS) and no verified TLS path offering it was found',
  SENDER_MISMATCH: 'the message was not signed by the address it was sent from',
  PERMISSION_DENIED: "the recipient's node refused the message by its policy",
};

/** Diagnostics from elsewhere are one line, and bounded: a notice repeats no essay of a peer's. */
const MAX_DIAGNOSTIC = 200;

export interface FailedRecipient { address: string; code: string; report?: FailureReport }

/**
 * The message id of the notice (or the node's bounce) about these failed recipients of one message: the
 * same whenever it is made, so one made again after a crash is found already stored (the replay set knows
 * the id) instead of reaching the sender twice.
 */
export function failureNoticeId(original: Uint8Array, addresses: string[]): Uint8Array {
  const hash = createHash('sha256').update('aftersmtp-failure-notice\n').update(original);
  for (const address of [...addresses].sort()) hash.update(`\n${address}`);
  return new Uint8Array(hash.digest().subarray(0, 16));
}

export class FailureNotices {
  private readonly deps: NoticeDeps;

  constructor(deps: NoticeDeps) {
    this.deps = deps;
  }

  static reason(code: string): string | undefined {
    return NOTICE_REASONS[code];
  }

  /**
   * One notice for the failed recipients of one message, sealed to the sender's mailbox key: an RFC 3464
   * report, honouring what an SMTP client asked (NOTIFY=NEVER or without FAILURE: none; RET; ENVID; ORCPT).
   * `original` is the message as it was sent, when the node could read it (SMTP); relayed mail was sealed
   * to its recipients, so its notice returns nothing of it. Resolves once the notice is stored (or was
   * already), or none is due.
   */
  async send(sender: string, original: Envelope, failed: FailedRecipient[], returned?: Buffer): Promise<void> {
    const mailbox = this.deps.storage.mailboxes.byAddress(sender);
    if (!mailbox || failed.length === 0) return;
    const asked = this.deps.storage.dsn.forMessage(original.messageId);
    const wanted = failed.filter((f) => {
      const notify = asked?.recipients.find((r) => r.address === f.address)?.notify ?? [];
      return notify.length === 0 || notify.includes('FAILURE');
    });
    if (wanted.length === 0) return;
    const messageId = failureNoticeId(original.messageId, failed.map((f) => f.address));
    if (this.deps.storage.replay.logIndexesOfId(messageId).length) return;
    const { config } = this.deps;
    const now = Date.now();
    const domain = this.deps.localDomains[0]!;
    const hex = Buffer.from(messageId).toString('hex');
    const body = buildDsn({
      reportingMta: smtpHostname(config),
      arrivalDate: new Date(original.createdMs),
      ...(asked?.envid ? { originalEnvid: asked.envid } : {}),
      from: `postmaster@${domain}`,
      to: sender,
      recipients: wanted.map((f) => {
        const orcpt = asked?.recipients.find((r) => r.address === f.address)?.orcpt;
        const status = f.report?.status ?? (f.code === 'EXPIRED' ? '4.4.7' : '5.0.0');
        return {
          address: f.address,
          ...(orcpt ? { originalRecipient: orcpt } : {}),
          action: 'failed' as const,
          // Expiry is a final failure reported with the transient status that caused it (RFC 3463 4.4.7),
          // but Action: failed needs class 5 in its Status field (RFC 3464 §2.3.4).
          status: status.startsWith('4.') ? `5.${status.slice(2)}` : status,
          ...(f.report?.remoteMta ? { remoteMta: f.report.remoteMta } : {}),
          diagnostic: { type: 'smtp' as const, text: f.report?.diagnostic ? f.report.diagnostic.slice(0, MAX_DIAGNOSTIC) : `${f.code}: ${NOTICE_REASONS[f.code] ?? 'the recipient domain refused the message'}` },
        };
      }),
      ...(returned ? { original: returned } : {}),
      returnContent: asked?.ret === 'FULL' ? 'FULL' : 'HDRS',
      humanText: [
        `This is the mail system at ${smtpHostname(config)}.`,
        '',
        `Your message ${Buffer.from(original.messageId).toString('hex')} could not be delivered to ${wanted.map((f) => f.address).join(', ')}.`,
        ...[...new Set(wanted.map((f) => NOTICE_REASONS[f.code] ?? 'the recipient domain refused the message'))].map((r) => `Reason: ${r}`),
        '',
      ].join('\n'),
      messageId: `${hex}@${domain}`,
      date: new Date(now),
    });
    const envelope = sealAsNode(this.deps, {
      from: `postmaster@${domain}`, to: [{ did: mailbox.did, address: sender }],
      keys: [{ keyId: mailbox.agreementKeyId, publicKey: mailbox.agreementPublicKey }], body: new Uint8Array(body), lifetimeMs: config.limits.maxLifetimeMs,
      fixed: { messageId, createdMs: now, expiresMs: now + config.limits.maxLifetimeMs },
    });
    try {
      await acceptEnvelope({ ...this.deps, routeKind: undefined }, envelope, { senderAddress: `postmaster@${domain}`, senderDomain: domain, fromPeer: false });
    } catch (err) {
      if ((err as { code?: string }).code !== 'REPLAY') throw err; // stored meanwhile: done
    }
  }
}
