// A forward that fails for good is bounced by the node, which took responsibility for it (RFC 5321 §3.6,
// §6.1): an RFC 3464 report from its postmaster to the original sender (the SRS envelope sender reversed),
// sent with the null sender so nothing bounces about it, through the queue like any mail the node sends.
// A bounce or report of the node's own that fails is not bounced again. A bounce has the id of the failure
// it reports (failureNoticeId): made again after a crash, it is found already queued and not sent twice.
import { randomBytes } from 'node:crypto';
import { buildDsn, type Srs } from '../../bridge/index.ts';
import type { Envelope } from '../../identity/index.ts';
import { smtpHostname } from '../core/index.ts';
import { failureNoticeId, type FailedRecipient } from '../queue/index.ts';
import { queueAsIs, type SendAsIsDeps } from './send-as-is.ts';

export function forwardBouncer(deps: SendAsIsDeps & { srs: Srs }): (envelope: Envelope, failed: FailedRecipient[], returned?: Buffer) => Promise<void> {
  return async (envelope, failed, returned) => {
    const sent = deps.storage.forwards.sentAsIs(envelope.messageId);
    if (sent?.kind !== 'forward' || sent.mailFrom === '') return;
    const messageId = failureNoticeId(envelope.messageId, failed.map((f) => f.address));
    if (deps.storage.replay.logIndexesOfId(messageId).length) return;
    let original: string;
    try {
      original = deps.srs.reverse(sent.mailFrom);
    } catch {
      original = sent.mailFrom; // an address of the node's own domain, left as it was
    }
    const domain = deps.config.node.domains[0]!.toLowerCase();
    const dsn = buildDsn({
      reportingMta: smtpHostname(deps.config),
      arrivalDate: new Date(envelope.createdMs),
      from: `postmaster@${domain}`,
      to: original,
      recipients: failed.map((f) => {
        const status = f.report?.status ?? (f.code === 'EXPIRED' ? '4.4.7' : '5.0.0');
        return {
          address: f.address, action: 'failed' as const, status: status.startsWith('4.') ? `5.${status.slice(2)}` : status,
          ...(f.report?.remoteMta ? { remoteMta: f.report.remoteMta } : {}),
          ...(f.report?.diagnostic ? { diagnostic: { type: 'smtp' as const, text: f.report.diagnostic } } : {}),
        };
      }),
      ...(returned ? { original: returned } : {}),
      returnContent: 'HDRS',
      messageId: `${randomBytes(12).toString('hex')}@${smtpHostname(deps.config)}`,
      date: new Date(),
    });
    await queueAsIs(deps, dsn, [original], { mailFrom: '', kind: 'bounce', messageId });
  };
}
