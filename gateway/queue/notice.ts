// Delivery failure notices: when recipients fail for good (a permanent refusal, or expiry), the sender's
// mailbox gets one AfterSMTP message from the node's postmaster, shaped as an RFC 3464 delivery status
// notification so mail clients show it as a bounce.
import { randomBytes } from 'node:crypto';
import { sealEnvelope, signMessage, type Envelope } from '../../identity/index.ts';
import { acceptEnvelope, type AcceptDeps } from '../accept/index.ts';
import { oneLine } from '../core/index.ts';
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
};

/** Diagnostics from elsewhere are one line, and bounded: a notice repeats no essay of a peer's. */
const MAX_DIAGNOSTIC = 200;

export interface FailedRecipient { address: string; code: string; report?: FailureReport }

export class FailureNotices {
  private readonly deps: NoticeDeps;

  constructor(deps: NoticeDeps) {
    this.deps = deps;
  }

  static reason(code: string): string | undefined {
    return NOTICE_REASONS[code];
  }

  /** One notice for the failed recipients of one message, sealed to the sender's mailbox key. */
  async send(sender: string, original: Envelope, failed: FailedRecipient[]): Promise<void> {
    const mailbox = this.deps.storage.mailboxes.byAddress(sender);
    if (!mailbox || failed.length === 0) return;
    const { nodeDid, nodeKeys, config } = this.deps;
    const messageId = new Uint8Array(randomBytes(16));
    const now = Date.now();
    const domain = this.deps.localDomains[0]!;
    const boundary = `dsn-${Buffer.from(messageId).toString('hex')}`;
    const reasons = [...new Set(failed.map((f) => NOTICE_REASONS[f.code] ?? 'the recipient domain refused the message'))];
    const body = [
      `From: Mail Delivery System <postmaster@${domain}>`,
      `To: <${sender}>`,
      'Subject: Delivery Status Notification (Failure)',
      `Date: ${new Date(now).toUTCString()}`,
      `Message-ID: <${Buffer.from(messageId).toString('hex')}@${domain}>`,
      'MIME-Version: 1.0',
      `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
      '',
      `--${boundary}`,
      'Content-Type: text/plain; charset=utf-8',
      '',
      `Your message ${Buffer.from(original.messageId).toString('hex')} could not be delivered to ${failed.map((f) => f.address).join(', ')}.`,
      ...reasons.map((r) => `Reason: ${r}`),
      '',
      `--${boundary}`,
      'Content-Type: message/delivery-status',
      '',
      `Reporting-MTA: dns; ${domain}`,
      `Arrival-Date: ${new Date(original.createdMs).toUTCString()}`,
      '',
      ...failed.flatMap((f) => [
        `Final-Recipient: rfc822; ${f.address}`,
        'Action: failed',
        `Status: ${f.report?.status ?? (f.code === 'EXPIRED' ? '4.4.7' : '5.0.0')}`,
        ...(f.report?.remoteMta ? [`Remote-MTA: dns; ${oneLine(f.report.remoteMta).slice(0, MAX_DIAGNOSTIC)}`] : []),
        f.report?.diagnostic
          ? `Diagnostic-Code: smtp; ${oneLine(f.report.diagnostic).slice(0, MAX_DIAGNOSTIC)}`
          : `Diagnostic-Code: x-aftersmtp; ${oneLine(f.code)}`,
        '',
      ]),
      `--${boundary}--`,
      '',
    ].join('\r\n');
    const signed = signMessage({
      header: { messageId, from: { did: nodeDid, address: `postmaster@${domain}` }, to: [{ did: mailbox.did, address: sender }], createdMs: now, expiresMs: now + config.limits.maxLifetimeMs, contentType: 'message/rfc822' },
      body: new TextEncoder().encode(body),
      keyId: nodeKeys.signingKeyId,
      privateKey: nodeKeys.signingPrivateKey,
    });
    const envelope = sealEnvelope({
      signedMessage: signed.signedMessage,
      messageId,
      messageHash: signed.messageHash,
      senderDid: nodeDid,
      senderKeyId: nodeKeys.signingKeyId,
      senderPrivateKey: nodeKeys.signingPrivateKey,
      recipientAddresses: [sender],
      recipients: [{ keyId: mailbox.agreementKeyId, publicKey: mailbox.agreementPublicKey }],
      createdMs: now,
      expiresMs: now + config.limits.maxLifetimeMs,
    });
    await acceptEnvelope({ ...this.deps, routeKind: undefined }, envelope, { senderAddress: `postmaster@${domain}`, senderDomain: domain, fromPeer: false });
  }
}
