// Webhooks: deliveries POSTed to each mailbox's hook, signed per Standard Webhooks (docs/APPS.md "Webhooks").
export { WebhookSender, webhookPayload, webhookId, checkWebhookUrl, retryDelayMs, type WebhookPayload, type WebhookSenderDeps, type WebhookConfig } from './sender.ts';
