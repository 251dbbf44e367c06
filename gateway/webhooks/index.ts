// Webhooks: deliveries POSTed to each mailbox's hook, signed per Standard Webhooks (docs/APPS.md "Webhooks"),
// and the links the link form names, served on the node's HTTPS listener.
export { WebhookSender, webhookPayload, webhookId, checkWebhookUrl, retryDelayMs, type WebhookPayload, type WebhookDeliveryData, type WebhookSenderDeps, type WebhookConfig } from './sender.ts';
export { envelopeUrl, isEnvelopePath, serveEnvelope, type EnvelopeFetchDeps } from './fetch.ts';
