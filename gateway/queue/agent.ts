// The seam between the outbound queue and whatever carries mail on: the queue owns the recipients'
// states, retries, expiry and failure notices; a delivery agent makes one attempt for one message to
// one domain and says what became of each recipient. One agent per route kind (OutboundTransport):
// `relay` (a peer AfterSMTP node, gateway/federation) and `smtp` (the SMTP bridge, gateway/smtp).
import type { Envelope } from '../../identity/index.ts';
import type { HeldEnvelope, OutboundItem, OutboundTransport } from '../store/index.ts';

/** One message for the recipients of one domain that share a delivery agent. */
export interface DeliveryBatch {
  domain: string;
  items: OutboundItem[];
  held: HeldEnvelope;
  envelope: Envelope;
}

/** Why a recipient failed for good, in the terms of an RFC 3464 delivery status notification. */
export interface FailureReport {
  /** RFC 3463 status, e.g. "5.1.1". */
  status: string;
  /** The server that refused, as `dns; host` names it ('' when the failure was local). */
  remoteMta?: string;
  /** The remote server's reply (`smtp; 550 5.1.1 ...`), one line; '' when there was none. */
  diagnostic?: string;
}

export type RecipientOutcome =
  | { recipient: string; state: 'delivered'; receipt: string }
  | { recipient: string; state: 'deferred'; code: string; error: string }
  /** `returned`: the message as it was sent, when the agent could read it (an SMTP notice returns it). */
  | { recipient: string; state: 'failed'; code: string; error: string; report?: FailureReport; returned?: Buffer }
  /** Kept back by a compliance rule as the mail left: out of the queue until `hold release`. */
  | { recipient: string; state: 'held'; rule: string };

export interface DeliveryAgent {
  readonly kind: OutboundTransport;
  /**
   * One attempt. Resolves with an outcome per recipient it attempted; a recipient left out was not sent
   * (purged or held meanwhile) and keeps its state. Rejects only for a fault of its own, which the queue
   * treats as a temporary failure of the whole batch.
   */
  deliver(batch: DeliveryBatch): Promise<RecipientOutcome[]>;
  /** Ends what is on the wire (pending attempts fail fast and are retried after a restart). */
  interrupt?(): Promise<void>;
  /** Releases connections once the queue has no attempt running. */
  stop(): Promise<void>;
}
