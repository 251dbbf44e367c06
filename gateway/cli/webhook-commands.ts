// Mailboxes' webhooks (docs/APPS.md "Webhooks"): set one (a new signing secret, shown once), remove it,
// list each hook's deliveries by state, and queue dead-lettered ones again. A running node reads the
// hooks on every delivery, so changes made beside it apply at once.
import { randomBytes } from 'node:crypto';
import { GatewayError } from '../core/index.ts';
import { WEBHOOK_PAYLOAD_FORMS, type WebhookPayloadForm } from '../store/index.ts';
import { checkWebhookUrl } from '../webhooks/index.ts';
import { need, out, str, UsageError, type Command, type Flags } from './command.ts';
import { DATA_FLAGS, withStore } from './reach.ts';

/** Standard Webhooks secrets: `whsec_` and base64 of 24 to 64 random bytes. */
function newSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** --payload inline|link, or undefined when not given. */
function payloadFlag(flags: Flags): WebhookPayloadForm | undefined {
  const form = str(flags, 'payload');
  if (form === undefined) return undefined;
  if (!(WEBHOOK_PAYLOAD_FORMS as readonly string[]).includes(form)) throw new UsageError(`--payload is ${WEBHOOK_PAYLOAD_FORMS.join(' or ')} (got "${form.slice(0, 50)}")`);
  return form as WebhookPayloadForm;
}

export const webhookCommands: Command[] = [
  {
    name: 'webhooks set',
    args: ['ADDRESS'],
    flags: { ...DATA_FLAGS, url: { type: 'string', required: true }, payload: { type: 'string' } },
    usage: [
      'webhooks set ADDRESS --url https://... [--payload inline|link] --data DIR',
      '(each delivery to ADDRESS is POSTed there, signed with a new secret, shown once; with the sealed envelope',
      ' inline (the default for a new hook), or a link the app fetches it from with the mailbox\'s token; set again',
      ' without --payload, a hook keeps its form)',
    ],
    run: ({ args, flags }) => withStore(flags, async ({ storage, config }) => {
      const address = args.ADDRESS!.toLowerCase();
      const url = checkWebhookUrl(need(flags, 'url')).href;
      const form = payloadFlag(flags);
      // The link names the node's HTTPS listener: without it an app could never fetch the envelope.
      if (form === 'link' && !config.http.enabled) throw new GatewayError('INVALID_ARGUMENT', 'the link form needs the node\'s HTTPS listener, which is off (http.enabled)');
      if (!storage.mailboxes.exists(address)) throw new GatewayError('NOT_FOUND', `no mailbox ${address} on this node`);
      const secret = newSecret();
      await storage.webhooks.set(address, url, secret, form);
      const payload = storage.webhooks.of(address)!.payload;
      out(flags, { event: 'webhook-set', mailbox: address, url, payload, secret },
        `webhook of ${address}: ${url} (envelope ${payload === 'link' ? 'as a link' : 'inline'})\n  signing secret (shown once; verify with a Standard Webhooks library): ${secret}`);
      return 0;
    }),
  },
  {
    name: 'webhooks remove',
    args: ['ADDRESS'],
    flags: DATA_FLAGS,
    usage: ['webhooks remove ADDRESS --data DIR', '(mail not yet acknowledged stays in the mailbox for its subscribers)'],
    run: ({ args, flags }) => withStore(flags, async ({ storage }) => {
      const address = args.ADDRESS!.toLowerCase();
      if (!(await storage.webhooks.remove(address))) throw new GatewayError('NOT_FOUND', `${address} has no webhook`);
      out(flags, { event: 'webhook-removed', mailbox: address }, `webhook of ${address} removed`);
      return 0;
    }),
  },
  {
    name: 'webhooks list',
    flags: { ...DATA_FLAGS, dead: { type: 'boolean' } },
    usage: ['webhooks list [--dead] --data DIR [--json]', '(per hook: its payload form, deliveries pending, delivered, acknowledged by a subscriber, dead-lettered; --dead: each dead one with its last error)'],
    run: ({ flags }) => withStore(flags, async ({ storage }) => {
      const hooks = storage.webhooks.list().map((h) => ({
        mailbox: h.mailbox, url: h.url, payload: h.payload, ...storage.webhooks.counts(h.mailbox),
        ...(flags.dead ? {
          deadLettered: storage.webhooks.ofState(h.mailbox, 'dead').map((d) => ({
            seq: d.seq, attempts: d.attempts, lastError: d.lastError, since: new Date(d.sinceMs).toISOString(), lastAttempt: new Date(d.updatedMs).toISOString(),
          })),
        } : {}),
      }));
      const lines = hooks.flatMap((h) => [
        `${h.mailbox} -> ${h.url} (${h.payload}): ${h.queued} pending, ${h.delivered} delivered, ${h.acked} taken by a subscriber, ${h.dead} dead-lettered`,
        ...(h.deadLettered ?? []).map((d) => `  seq ${d.seq}: ${d.attempts} attempts since ${d.since}, last: ${d.lastError}`),
      ]);
      out(flags, hooks, lines.join('\n') || '(no webhooks)');
      return 0;
    }),
  },
  {
    name: 'webhooks retry',
    args: ['[ADDRESS]'],
    flags: { ...DATA_FLAGS, all: { type: 'boolean' } },
    usage: ['webhooks retry ADDRESS|--all --data DIR', '(dead-lettered deliveries are queued again, due now, with a fresh webhooks.maxAgeMs)'],
    run: ({ args, flags }) => withStore(flags, async ({ storage }) => {
      const address = args.ADDRESS?.toLowerCase();
      if ((address === undefined) === !flags.all) throw new UsageError('name one ADDRESS or give --all');
      if (address !== undefined && !storage.webhooks.of(address)) throw new GatewayError('NOT_FOUND', `${address} has no webhook`);
      const requeued = await storage.webhooks.retryDead(address);
      out(flags, { event: 'webhooks-retried', mailbox: address ?? null, requeued }, `${requeued} dead-lettered deliveries queued again`);
      return 0;
    }),
  },
];
