// Typed refusals of the inbound bridge and of its handler, each with one SMTP reply (RFC 5321 code and
// RFC 3463 enhanced status). The handler (the node) answers in these codes; this is the one place where a
// code becomes what the client reads.

export type BridgeErrorCode =
  /** The store cannot take the message (disk or quota full): try later. */
  | 'STORE_FULL'
  /** The node is shutting down: try later. */
  | 'SHUTTING_DOWN'
  /** A transient fault (storage, DNS temperror where policy needs an answer): try later. */
  | 'TEMPORARY'
  /** No such mailbox on one of the node's domains. */
  | 'UNKNOWN_RECIPIENT'
  /** A recipient outside the node's domains without AUTH (no open relay), or one submission may not reach yet. */
  | 'RELAY_DENIED'
  /** The envelope or header sender is not the authenticated mailbox. */
  | 'SENDER_MISMATCH'
  /** DMARC p=reject failed and no trusted ARC sealer vouches. */
  | 'DMARC_REJECT'
  /** The client IP is listed on a DNSBL zone. */
  | 'BLOCKLISTED'
  /** A submission rate limit of the mailbox is reached. */
  | 'RATE_LIMITED'
  /** The message (or something in it) is refused for a reason the message text gives. */
  | 'REFUSED';

export interface SmtpReply { code: number; enhanced: string; text: string }

const REPLIES: Record<BridgeErrorCode, Omit<SmtpReply, 'text'>> = {
  STORE_FULL: { code: 421, enhanced: '4.3.2' },
  SHUTTING_DOWN: { code: 421, enhanced: '4.3.2' },
  TEMPORARY: { code: 451, enhanced: '4.3.0' },
  UNKNOWN_RECIPIENT: { code: 550, enhanced: '5.1.1' },
  RELAY_DENIED: { code: 550, enhanced: '5.7.1' },
  SENDER_MISMATCH: { code: 553, enhanced: '5.7.1' },
  DMARC_REJECT: { code: 550, enhanced: '5.7.1' },
  BLOCKLISTED: { code: 554, enhanced: '5.7.1' },
  RATE_LIMITED: { code: 451, enhanced: '4.7.1' },
  REFUSED: { code: 550, enhanced: '5.7.1' },
};

export class BridgeError extends Error {
  readonly code: BridgeErrorCode;
  /** The reply code the operator chose for this refusal (a rule's reject), instead of the code's own. */
  readonly replyCode?: number;
  constructor(code: BridgeErrorCode, message: string, options?: { cause?: unknown; replyCode?: number }) {
    super(message, options);
    this.name = 'BridgeError';
    this.code = code;
    if (options?.replyCode !== undefined) this.replyCode = options.replyCode;
  }
}

/** The reply for any refusal: a BridgeError's own, anything else a 451 that says nothing of internals. */
export function smtpReplyFor(err: unknown): SmtpReply {
  if (err instanceof BridgeError) {
    const reply = { ...REPLIES[err.code], text: err.message.replace(/[\r\n]+/g, ' ') };
    // A chosen code keeps its class's enhanced status: 4.7.1 for a temporary refusal, 5.7.1 for a permanent one.
    return err.replyCode === undefined ? reply : { ...reply, code: err.replyCode, enhanced: err.replyCode < 500 ? '4.7.1' : '5.7.1' };
  }
  return { code: 451, enhanced: '4.3.0', text: 'temporary failure, try again later' };
}
