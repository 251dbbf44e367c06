// The webhook sender: each delivery to a mailbox with a hook is POSTed to the hook's https URL, signed as
// the Standard Webhooks specification says (webhook-id, webhook-timestamp, webhook-signature), retried
// with backoff and dead-lettered after webhooks.maxAgeMs. A 2xx acknowledges the delivery as a
// subscriber's ack does; a subscriber's ack first settles the row unposted. The rows are written in the
// commit that stores the delivery, so the sender only reads them: a restart resumes where it stopped.
//
// Mail is sealed to the mailbox's key: the node posts what it knows (docs/DECISIONS.md 44), the sealed
// envelope with the metadata the node holds, which the app opens with its key. A hook set with the link
// form gets a link to the envelope instead (fetch.ts), fetched with the mailbox's token.
import { request, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { Webhook } from 'standardwebhooks';
import type { Logger } from 'pino';
import { decodeEnvelope } from '../../identity/index.ts';
import { GatewayError, type NodeConfig } from '../core/index.ts';
import type { Store, StoredDelivery, WebhookDelivery } from '../store/index.ts';
import { envelopeUrl } from './fetch.ts';

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** The most of a hook's answer read: its status is what counts. */
const MAX_ANSWER_BYTES = 64 * 1024;
export type WebhookConfig = NodeConfig['webhooks'];

export interface WebhookSenderDeps {
  storage: Store;
  /** The node's transparency log, named in each receipt. */
  logOrigin: string;
  /** The node's public HTTPS origin (nodeHttpsOrigin): the envelope links of link-form hooks name it. */
  httpsOrigin: string;
  config: WebhookConfig;
  /** Trust anchors for hook URLs (the system's plus webhooks.caFiles); undefined = the system's. */
  ca?: string[];
  log: Logger;
}

/**
 * The JSON body of one POST: what the node knows of a delivery (docs/APPS.md "Webhooks"), with the
 * sealed envelope inline or a link to it, as the hook's payload form says.
 */
export interface WebhookPayload {
  type: 'message.delivered';
  timestamp: string;
  data: WebhookDeliveryData & ({
    /** The sealed envelope (identity encoding, base64): the app opens it with the mailbox's key. */
    envelope: string;
  } | {
    /** Where the app GETs the sealed envelope (its identity encoding) with the mailbox's token (fetch.ts). */
    envelopeUrl: string;
  });
}

/** What every POST says of a delivery, whichever the payload form. */
export interface WebhookDeliveryData {
  mailbox: string;
  seq: number;
  messageId: string;
  senderDid: string;
  /** Who vouched for the sender: the address a node authenticated ('' if none) and its domain. */
  authenticatedSender: string;
  senderDomain: string;
  recipients: string[];
  receivedMs: number;
  size: number;
  /** The node's transparency-log receipt; null for a delivery without a leaf. */
  receipt: { logOrigin: string; leafIndex: number; messageHash: string } | null;
  /** Labels the node's compliance rules put on the message (`tag` rules), as Subscribe gives them. */
  labels: string[];
}

/** The POST's body; `link` given: the link form, the envelope's URL in place of the envelope. */
export function webhookPayload(d: StoredDelivery, logOrigin: string, nowMs: number, labels: string[], link?: string): WebhookPayload {
  const envelope = decodeEnvelope(d.envelope);
  return {
    type: 'message.delivered',
    timestamp: new Date(nowMs).toISOString(),
    data: {
      mailbox: d.mailbox, seq: d.seq, messageId: toHex(d.messageId), senderDid: envelope.senderDid,
      authenticatedSender: d.authenticatedSender, senderDomain: d.senderDomain, recipients: envelope.recipientAddresses,
      receivedMs: d.receivedMs, size: d.envelope.length,
      receipt: d.logIndex === null ? null : { logOrigin, leafIndex: d.logIndex, messageHash: toHex(envelope.messageHash) },
      labels,
      ...(link === undefined ? { envelope: Buffer.from(d.envelope).toString('base64') } : { envelopeUrl: link }),
    },
  };
}

/** The webhook-id of a delivery: the same on every attempt, so a hook can drop a repeat it already took. */
export function webhookId(d: { messageId: Uint8Array; seq: number }): string {
  return `msg_${toHex(d.messageId)}_${d.seq}`;
}

/** Refuses a hook URL the node will not dial: https only, no credentials in it. */
export function checkWebhookUrl(url: string): URL {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw new GatewayError('INVALID_ARGUMENT', `"${url.slice(0, 200)}" is not a URL`);
  }
  if (target.protocol !== 'https:') throw new GatewayError('INVALID_ARGUMENT', `a webhook URL must be https: (got ${target.protocol})`);
  if (target.username || target.password) throw new GatewayError('INVALID_ARGUMENT', 'a webhook URL carries no credentials (the signature authenticates the node)');
  return target;
}

/** Backoff after `attempts` failed attempts: initialMs doubled each time, capped at maxMs. */
export function retryDelayMs(attempts: number, retry: WebhookConfig['retry']): number {
  return Math.min(retry.maxMs, retry.initialMs * 2 ** Math.min(Math.max(attempts - 1, 0), 30));
}

export class WebhookSender {
  private readonly deps: WebhookSenderDeps;
  /** `mailbox seq` of each row being posted. */
  private readonly inFlight = new Set<string>();
  private readonly perHook = new Map<string, number>();
  private readonly running = new Set<Promise<void>>();
  private readonly stopping = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private stopListening: (() => void) | undefined;
  /** Hooks to look at on the next pump ('all': every hook with rows due, on start and on the timer). */
  private toPump: Set<string> | 'all' = new Set();
  private pumpQueued = false;
  /**
   * Hooks whose last attempt failed, and until when each is left alone (that row's retry): a hook that
   * is down costs one attempt per backoff step, not one per queued delivery. Its next 2xx makes every
   * delivery waiting out a backoff due at once. In memory: a restart tries at once.
   */
  private readonly heldUntil = new Map<string, number>();

  constructor(deps: WebhookSenderDeps) {
    this.deps = deps;
  }

  /** Starts posting: what is due now (rows left by a previous run too), then each new delivery. */
  start(): void {
    this.stopListening = this.deps.storage.events.onDelivery((d) => this.kick(d.mailbox));
    this.kick('all');
  }

  async stop(): Promise<void> {
    this.stopListening?.();
    clearTimeout(this.timer);
    this.stopping.abort();
    await Promise.allSettled([...this.running]);
  }

  private kick(mailbox: string | 'all'): void {
    if (this.stopping.signal.aborted) return;
    if (mailbox === 'all') this.toPump = 'all';
    else if (this.toPump !== 'all') this.toPump.add(mailbox);
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    queueMicrotask(() => { this.pumpQueued = false; this.pump(); });
  }

  private pump(): void {
    if (this.stopping.signal.aborted) return;
    const { storage, config, log } = this.deps;
    const now = Date.now();
    const which = this.toPump;
    this.toPump = new Set();
    try {
      for (const mailbox of which === 'all' ? storage.webhooks.mailboxesDue(now) : which) {
        const busy = this.perHook.get(mailbox) ?? 0;
        if (busy >= config.concurrency) continue;
        // A held hook gets only what the operator asked to try at once (due at 0: WebhookRepository.set, retryDead).
        const dueBy = (this.heldUntil.get(mailbox) ?? 0) > now ? 0 : now;
        // Enough rows to fill the free slots past the ones being posted (which are still queued).
        for (const row of storage.webhooks.dueOf(mailbox, dueBy, config.concurrency + busy)) {
          if ((this.perHook.get(mailbox) ?? 0) >= config.concurrency) break;
          if (!this.inFlight.has(`${row.mailbox} ${row.seq}`)) this.launch(row);
        }
      }
    } catch (err) {
      log.error({ err: (err as Error).message }, 'reading webhook deliveries failed');
    }
    // Next look: when a retry or a held hook comes due, and every scanMs regardless (hooks set or retried
    // by the CLI). Rows due now were looked at: each is being posted (its end kicks) or its hook is held.
    clearTimeout(this.timer);
    const after = Date.now();
    let wait = config.scanMs;
    const next = storage.webhooks.nextDueMs();
    if (next !== undefined && next > after) wait = Math.min(wait, next - after);
    for (const until of this.heldUntil.values()) if (until > after) wait = Math.min(wait, until - after);
    this.timer = setTimeout(() => this.kick('all'), Math.max(wait, 10)).unref();
  }

  /** One attempt at `row`, counted against its hook's concurrency until it is recorded. */
  private launch(row: WebhookDelivery): void {
    const key = `${row.mailbox} ${row.seq}`;
    this.inFlight.add(key);
    this.perHook.set(row.mailbox, (this.perHook.get(row.mailbox) ?? 0) + 1);
    const attempt: Promise<void> = this.attempt(row)
      .catch((err: Error) => this.deps.log.warn({ mailbox: row.mailbox, seq: row.seq, err: err.message }, 'webhook attempt not recorded'))
      .finally(() => {
        this.inFlight.delete(key);
        this.perHook.set(row.mailbox, this.perHook.get(row.mailbox)! - 1);
        this.running.delete(attempt);
        this.kick(row.mailbox);
      });
    this.running.add(attempt);
  }

  private async attempt(row: WebhookDelivery): Promise<void> {
    const { storage, config, log } = this.deps;
    const hook = storage.webhooks.of(row.mailbox);
    const held = storage.deliveries.get(row.mailbox, row.seq);
    if (!hook) return; // removed: its rows went with it
    if (!held || held.acked) {
      // The app took it through Subscribe (or it is gone): nothing to tell the hook.
      await storage.deliveries.ack(row.mailbox, [row.seq]);
      return;
    }
    const now = Date.now();
    const link = hook.payload === 'link' ? envelopeUrl(this.deps.httpsOrigin, row.mailbox, row.seq) : undefined;
    const body = JSON.stringify(webhookPayload(held.delivery, this.deps.logOrigin, now, storage.rules.labelsOf(held.delivery.messageId), link));
    const id = webhookId(held.delivery);
    let failure: string | undefined;
    try {
      await this.post(hook.url, body, {
        'webhook-id': id,
        'webhook-timestamp': String(Math.floor(now / 1000)),
        'webhook-signature': new Webhook(hook.secret).sign(id, new Date(now), body),
      });
    } catch (err) {
      failure = (err as Error).message;
    }
    if (this.stopping.signal.aborted && failure !== undefined) return; // cut short by the node stopping: not an attempt
    if (failure === undefined) {
      const wasFailing = this.heldUntil.delete(row.mailbox);
      await storage.webhookDelivered(row.mailbox, row.seq);
      if (wasFailing) await storage.webhooks.resume(row.mailbox, Date.now());
      log.debug({ mailbox: row.mailbox, seq: row.seq, id }, 'webhook delivered');
      return;
    }
    const attempts = row.attempts + 1;
    const done = Date.now();
    const dead = done - row.sinceMs >= config.maxAgeMs;
    const retryAt = done + retryDelayMs(attempts, config.retry);
    this.heldUntil.set(row.mailbox, retryAt);
    await storage.webhooks.failed(row.mailbox, row.seq, failure.slice(0, 500), dead ? { deadSinceMs: done - config.maxAgeMs } : retryAt, done);
    log.info({ mailbox: row.mailbox, seq: row.seq, attempts, err: failure, dead }, dead ? 'webhook dead-lettered' : 'webhook attempt failed; retried later');
  }

  /** One POST; resolves on 2xx. A redirect is not followed: it fails like any other status. */
  private async post(url: string, body: string, headers: Record<string, string>): Promise<void> {
    const { config } = this.deps;
    const target = checkWebhookUrl(url);
    const name = target.hostname.replace(/^\[|\]$/g, '');
    const mapped = config.hostMap[name];
    const colon = mapped?.lastIndexOf(':') ?? -1;
    const host = mapped ? mapped.slice(0, colon) : name;
    const port = mapped ? Number(mapped.slice(colon + 1)) : Number(target.port || 443);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error(`no answer within ${config.timeoutMs} ms`)), config.timeoutMs);
    const onStop = () => controller.abort(new Error('the node is stopping'));
    this.stopping.signal.addEventListener('abort', onStop);
    const payload = Buffer.from(body);
    const options: RequestOptions = {
      host, port, servername: name, path: `${target.pathname}${target.search}`, method: 'POST',
      headers: { host: target.host, 'content-type': 'application/json', 'content-length': payload.length, 'user-agent': 'AfterSMTP-webhooks', ...headers },
      ...(this.deps.ca ? { ca: this.deps.ca } : {}), rejectUnauthorized: true, agent: false, signal: controller.signal,
    };
    try {
      await new Promise<void>((resolve, reject) => {
        const fail = (err: unknown) => reject(controller.signal.aborted ? controller.signal.reason : err);
        const req = request(options, (res: IncomingMessage) => {
          const status = res.statusCode ?? 0;
          // The answer's body says nothing that matters: a bounded amount is read so the connection ends cleanly.
          // Settled before the answer is cut off: destroying it emits 'aborted' at once.
          let size = 0;
          const settle = () => (status >= 200 && status <= 299 ? resolve() : reject(new Error(`HTTP ${status}${res.headers.location ? ' (redirect not followed)' : ''}`)));
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_ANSWER_BYTES) { settle(); res.destroy(); }
          });
          res.on('end', settle);
          res.on('error', fail);
          res.on('aborted', () => fail(new Error('answer cut short')));
        });
        req.on('error', fail);
        req.end(payload);
      });
    } finally {
      clearTimeout(timer);
      this.stopping.signal.removeEventListener('abort', onStop);
    }
  }
}
