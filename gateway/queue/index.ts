// The outbound queue and its delivery-agent seam: the queue owns recipients' states, retries, expiry and
// failure notices; agents (relay: gateway/federation, smtp: gateway/smtp) make the attempts.
export { OutboundQueue, type OutboundQueueOptions, type RetryPolicy } from './queue.ts';
export { FailureNotices, failureNoticeId, type FailedRecipient, type NoticeDeps } from './notice.ts';
export type { DeliveryAgent, DeliveryBatch, FailureReport, RecipientOutcome } from './agent.ts';
