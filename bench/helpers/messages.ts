// The messages the benches send: an app's plain-text mail of a given size, as gateway/client builds it, and
// the mail the node's SMTP bridge makes of it for a legacy recipient.
import { randomBytes } from 'node:crypto';
import { composeMessage, dkimSign, type DkimSigner, type OutboundMessage } from '../../bridge/index.ts';
import { buildRfc5322 } from '../../gateway/client/index.ts';

/** The RFC 5322 text body that makes buildRfc5322's output `bytes` long (76-char lines). */
export function bodyFor(bytes: number, from: string, to: string): string {
  const base = buildRfc5322(from, [to], 'bench', '', new Uint8Array(16)).length;
  let text = '';
  const line = 'x'.repeat(76);
  while (base + text.length + Math.floor(text.length / 77) < bytes - 78) text += `${line}\n`;
  const rest = bytes - (base + text.length + Math.floor(text.length / 77));
  return text + 'y'.repeat(Math.max(0, rest));
}

/** What the node's SMTP agent sends for an app's message to a legacy address (gateway/smtp/smtp-agent.ts). */
export interface LegacyMessageInput {
  from: string;
  to: string;
  /** Size of the app's RFC 5322 message (bodyFor). */
  bytes: number;
  /** The node's DKIM keys for the sender's domain (gateway/smtp dkimSigners). */
  signers: DkimSigner[];
  /** The node's log origin and the leaf the receipt field names. */
  logOrigin: string;
  leaf: number;
}

/**
 * The app's message as the node's SMTP agent turns it into mail: the app's RFC 5322 text (content type
 * message/rfc822, as sealFor sends it) completed by composeMessage with the receipt field, then DKIM-signed
 * with every key of the sender's domain. Each call makes a new Message-ID.
 */
export async function legacyMessage(input: LegacyMessageInput): Promise<OutboundMessage> {
  const id = randomBytes(16);
  const domain = input.from.split('@')[1]!;
  const composed = composeMessage({
    from: input.from,
    to: [input.to],
    date: new Date(),
    messageId: `${id.toString('hex')}@${domain}`,
    contentType: 'message/rfc822',
    body: buildRfc5322(input.from, [input.to], 'bench', bodyFor(input.bytes, input.from, input.to), id),
    receipt: { origin: input.logOrigin, leafIndex: input.leaf },
  });
  return {
    data: await dkimSign(composed.data, input.signers),
    envelope: { mailFrom: input.from, recipients: [{ address: input.to }], requireTls: false, smtputf8: composed.smtputf8, eightBit: composed.eightBit },
  };
}
