// The outbound queue: per-recipient state in SQLite (survives restarts), handed to the delivery agent of
// each recipient's route kind, retried with exponential backoff, and a failure notice in the sender's
// mailbox on a permanent error or expiry. The agents carry the mail; this loop decides when, and records
// what became of it. A failure is recorded with its notice owed, and marked noticed once the notice is
// stored: a notice a crash left unsent is sent at the next start.
import type { Logger } from 'pino';
import { decodeEnvelope, type Envelope } from '../../identity/index.ts';
import type { HeldEnvelope, OutboundItem, OutboundTransport } from '../store/index.ts';
import { oneLine } from '../core/index.ts';
import type { DeliveryAgent, RecipientOutcome } from './agent.ts';
import { FailureNotices, type FailedRecipient, type NoticeDeps } from './notice.ts';

export interface RetryPolicy { initialMs: number; maxMs: number }

/** Messages read per scan when looking for failure notices owed since before a crash. */
const OWED_NOTICES_PAGE = 100;

/**
 * A test fault, read once when the queue is made and never set in production: the process exits with
 * code 137 (as if killed) right after a recipient's failure is recorded (`failed-recorded`), or right after
 * its notice is stored and before it is marked so (`notice-stored`). The crash tests need both points.
 */
type NoticeFault = 'failed-recorded' | 'notice-stored';
const NOTICE_FAULT_ENV = 'TEST_FAULT_QUEUE_NOTICE'; // not AFTERSMTP_*: those are configuration

export interface OutboundQueueOptions extends NoticeDeps {
  agents: Partial<Record<OutboundTransport, DeliveryAgent>>;
  retry: RetryPolicy;
  /** Deliveries (message x domain) run at once; beyond that, items wait in the store. */
  capacity: number;
  /**
   * Failures of mail no local sender sent (the node's own: forwards, reports): the SMTP bridge bounces a
   * forward to its original sender; anything else ends with the log line.
   */
  bounceOwnMail?: (envelope: Envelope, failed: FailedRecipient[], returned?: Buffer) => Promise<void>;
  /** Even with nothing due, the queue is re-read this often (items whose delivery ended abnormally). */
  queueScanMs: number;
  log: Logger;
}

export class OutboundQueue {
  private readonly opts: OutboundQueueOptions;
  private readonly notices: FailureNotices;
  private readonly sending = new Set<string>();
  private readonly deliveries = new Set<Promise<void>>();
  /** Items just queued by the store (handed over by its onOutbound event), not yet dispatched. */
  private fresh: OutboundItem[] = [];
  /** The envelopes of fresh items, as the store's event handed them over (spares reading them back). */
  private freshEnvelopes = new Map<string, HeldEnvelope>();
  /** The queue must be read from the store (start, kick, due retries, items left for lack of room). */
  private needScan = true;
  /** Due items were left in the store for lack of room: read them once room frees up. */
  private backlog = false;
  /** When the next deferred item falls due may have changed (a scan, a deferral): ask the store again. */
  private dueChanged = true;
  private timer?: NodeJS.Timeout;
  private running = false;
  private wake?: () => void;
  private loop?: Promise<void>;
  private stopListening?: () => void;
  /** Where the search for owed notices goes on (message id order); undefined once it reached the end. */
  private owedNoticesAfter: Uint8Array | undefined = new Uint8Array(0);
  private sendingOwed?: Promise<void>;
  private readonly fault: string;

  constructor(opts: OutboundQueueOptions) {
    this.opts = opts;
    this.notices = new FailureNotices(opts);
    this.fault = process.env[NOTICE_FAULT_ENV] ?? '';
  }

  start(): void {
    this.running = true;
    this.stopListening = this.opts.storage.events.onOutbound(this.onOutbound);
    this.loop = this.run();
  }

  private readonly onOutbound = (items?: OutboundItem[], held?: HeldEnvelope) => {
    if (items?.length) {
      this.fresh.push(...items);
      if (held) this.freshEnvelopes.set(hex(items[0]!.messageId), held);
    } else {
      this.needScan = true;
    }
    this.wake?.();
  };

  /** Wakes the loop now and re-reads the queue (after `queue retry`, a new route, tests). */
  kick(): void {
    this.needScan = true;
    this.wake?.();
  }

  /**
   * The queue lives in the store; this loop hands due items to deliveries. New items arrive with the
   * store's event (no query per message); the store is read at start, on kick, when a deferred item
   * falls due, when room frees up after items were left there, and every few seconds as a safety net.
   * At most `capacity` deliveries run at once; each agent bounds what is on the wire.
   */
  private async run(): Promise<void> {
    const capacity = this.opts.capacity;
    let safetyScanAt = 0;
    let dueAt: number | undefined;
    while (this.running) {
      const now = Date.now();
      if (now >= safetyScanAt || (dueAt !== undefined && now >= dueAt)) this.needScan = true;
      if (this.backlog && this.deliveries.size <= capacity / 2) this.needScan = true;
      if (this.needScan) {
        this.needScan = false;
        this.dueChanged = true;
        this.backlog = false;
        this.fresh = []; // committed before their event: the scan sees them
        this.freshEnvelopes.clear();
        safetyScanAt = now + this.opts.queueScanMs;
        if (this.owedNoticesAfter && !this.sendingOwed) {
          this.sendingOwed = this.sendOwedNotices()
            .catch((err: Error) => this.opts.log.error({ err: err.message }, 'owed failure notices not sent'))
            .finally(() => { this.sendingOwed = undefined; });
        }
        const room = capacity - this.deliveries.size;
        if (room > 0) {
          const limit = room + this.sending.size;
          const rows = this.opts.storage.outbound.due(now, limit);
          const due = rows.filter((i) => !this.sending.has(key(i)));
          // A full page means more may be due behind it: read again as soon as room frees up, not at
          // the next safety scan (that wait stalled a backlog for seconds).
          if (this.dispatch(due) < due.length || rows.length >= limit) this.backlog = true;
        } else {
          this.backlog = true;
        }
      }
      if (this.fresh.length) {
        const fresh = this.fresh;
        this.fresh = [];
        if (this.dispatch(fresh.filter((i) => !this.sending.has(key(i))), this.freshEnvelopes) < fresh.length) this.backlog = true;
        this.freshEnvelopes.clear();
      }
      // Most turns only hand fresh items over: the next due time changes with scans and deferrals only.
      if (this.dueChanged || (dueAt !== undefined && dueAt <= Date.now())) {
        this.dueChanged = false;
        dueAt = this.opts.storage.outbound.nextDueAfter(Date.now());
      }
      const wakeAt = Math.min(safetyScanAt, dueAt ?? Infinity);
      const wait = Math.max(10, Math.min(60_000, wakeAt - Date.now()));
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, wait);
      });
      clearTimeout(this.timer);
      this.wake = undefined;
    }
  }

  /**
   * Starts one delivery per (message, domain, agent) while there is room: a peer node stores the envelope
   * for all its recipients at once, an SMTP server takes them in one transaction. Returns how many items
   * were taken; the rest stay queued in the store.
   */
  private dispatch(items: OutboundItem[], envelopes?: Map<string, HeldEnvelope>): number {
    const groups = new Map<string, OutboundItem[]>();
    for (const item of items) {
      const k = `${hex(item.messageId)}|${item.domain}|${item.transport}`;
      const list = groups.get(k);
      if (list) list.push(item);
      else groups.set(k, [item]);
    }
    let taken = 0;
    for (const group of groups.values()) {
      if (this.deliveries.size >= this.opts.capacity) break;
      taken += group.length;
      for (const i of group) this.sending.add(key(i));
      const delivery: Promise<void> = this.deliver(group, envelopes?.get(hex(group[0]!.messageId)))
        .catch((err: Error) => this.opts.log.error({ err: err.message }, 'outbound delivery failed'))
        .finally(() => {
          for (const i of group) this.sending.delete(key(i));
          this.deliveries.delete(delivery);
          this.wake?.();
        });
      this.deliveries.add(delivery);
    }
    return taken;
  }

  private async deliver(items: OutboundItem[], held?: HeldEnvelope): Promise<void> {
    const first = items[0]!;
    const stored = held ?? this.opts.storage.outbound.envelope(first.messageId);
    if (!stored) {
      for (const item of items) await this.opts.storage.outbound.purge(item.messageId, item.recipient);
      return;
    }
    const envelope = decodeEnvelope(stored.envelope);
    if (Date.now() > first.expiresMs) {
      await this.apply(items, stored, items.map((i) => ({ recipient: i.recipient, state: 'failed', code: 'EXPIRED', error: 'the message expired before the recipient domain accepted it', report: { status: '4.4.7' } })));
      return;
    }
    const agent = this.opts.agents[first.transport];
    let outcomes: RecipientOutcome[];
    if (!agent) {
      outcomes = items.map((i) => ({ recipient: i.recipient, state: 'deferred', code: 'PEER_UNAVAILABLE', error: `no ${first.transport} delivery on this node (federation or bridge.smtp disabled)` }));
    } else {
      outcomes = await agent.deliver({ domain: first.domain, items, held: stored, envelope }).catch((err: Error) => {
        const code = (err as { code?: string }).code ?? 'INTERNAL';
        return items.map((i): RecipientOutcome => ({ recipient: i.recipient, state: 'deferred', code, error: err.message }));
      });
    }
    await this.apply(items, stored, outcomes);
  }

  /** Records each outcome durably (in one write), then sends one failure notice for those that failed. */
  private async apply(items: OutboundItem[], stored: HeldEnvelope, outcomes: RecipientOutcome[]): Promise<void> {
    const byRecipient = new Map(items.map((i) => [i.recipient, i]));
    const updates: OutboundItem[] = [];
    const failed: FailedRecipient[] = [];
    const held: { item: OutboundItem; rule: string }[] = [];
    let returned: Buffer | undefined;
    const now = Date.now();
    for (const outcome of outcomes) {
      const item = byRecipient.get(outcome.recipient);
      if (!item) continue;
      const attempts = item.attempts + 1;
      if (outcome.state === 'held') {
        held.push({ item, rule: outcome.rule });
      } else if (outcome.state === 'delivered') {
        updates.push({ ...item, state: 'delivered', attempts, lastError: '', receipt: outcome.receipt });
      } else if (outcome.state === 'deferred') {
        const delay = Math.min(this.opts.retry.maxMs, this.opts.retry.initialMs * 2 ** (attempts - 1));
        // A retry due after the message expires would only fail it then: it falls due just past its expiry
        // instead, so the recipient fails and the sender hears of it when the lifetime ends.
        const nextAttemptMs = Math.min(now + delay, item.expiresMs + 1);
        updates.push({ ...item, state: 'deferred', attempts, nextAttemptMs, lastError: oneLine(`${outcome.code}: ${outcome.error}`) });
      } else {
        updates.push({ ...item, state: 'failed', attempts, lastError: oneLine(`${outcome.code}: ${outcome.error}`) });
        failed.push({ address: item.recipient, code: outcome.code, ...(outcome.report ? { report: outcome.report } : {}) });
        returned ??= outcome.returned;
      }
    }
    if (held.length) await this.opts.storage.holdQueued(stored, decodeEnvelope(stored.envelope).messageHash, held);
    if (updates.length === 0) return;
    await this.opts.storage.outbound.updateMany(updates);
    if (updates.some((u) => u.state === 'deferred')) this.dueChanged = true;
    const first = items[0]!;
    const counts = { delivered: 0, deferred: 0, failed: 0 };
    for (const u of updates) counts[u.state as keyof typeof counts]++;
    this.opts.log.info({ domain: first.domain, transport: first.transport, ...counts }, 'outbound attempt');
    if (failed.length === 0) return;
    this.crashAt('failed-recorded');
    await this.notify(first.messageId, stored, failed, returned);
  }

  /**
   * Stores the one notice about recipients of one message that failed for good, then marks them noticed
   * (also when none is due: NOTIFY=NEVER, a sender without a mailbox, own mail nothing bounces). A notice
   * that could not be stored leaves them owed, and is tried again at the next start.
   */
  private async notify(messageId: Uint8Array, stored: HeldEnvelope, failed: FailedRecipient[], returned?: Buffer): Promise<void> {
    const envelope = decodeEnvelope(stored.envelope);
    try {
      // A local sender gets its notice in its mailbox; mail the node sent in its own name (a forward) is
      // bounced by the part that sent it, to whoever it came from.
      await (stored.sender
        ? this.notices.send(stored.sender, envelope, failed, returned)
        : this.opts.bounceOwnMail?.(envelope, failed, returned));
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'delivery failure notice not stored (tried again at the next start)');
      return;
    }
    this.crashAt('notice-stored');
    await this.opts.storage.outbound.markNoticed(messageId, failed.map((f) => f.address));
  }

  /**
   * Sends the notices a crash left owed (failed recipients not marked noticed), a page of messages per
   * scan from start: one per message and (domain, agent), the group apply made, so the notice gets the id
   * it had then and one stored before the crash is found, not stored twice. A row keeps its code (its
   * last_error is "CODE: text"), not the remote server's report or the message as sent: such a notice
   * may lack the server's status and diagnostic, and returns no headers.
   */
  private async sendOwedNotices(): Promise<void> {
    const { outbound } = this.opts.storage;
    const ids = outbound.unnoticedMessages(this.owedNoticesAfter!, OWED_NOTICES_PAGE);
    this.owedNoticesAfter = ids.length < OWED_NOTICES_PAGE ? undefined : ids[ids.length - 1];
    for (const messageId of ids) {
      if (!this.running) return;
      // A recipient failing right now is noticed by its own delivery.
      const rows = outbound.unnoticed(messageId).filter((i) => !this.sending.has(key(i)));
      const stored = outbound.envelope(messageId);
      if (!stored) { // kept while a notice is owed: only a store changed by hand lacks it
        await outbound.markNoticed(messageId, rows.map((r) => r.recipient));
        continue;
      }
      const groups = new Map<string, FailedRecipient[]>();
      for (const row of rows) {
        const k = `${row.domain}|${row.transport}`;
        const failed = { address: row.recipient, code: /^([A-Z][A-Z0-9_]*):/.exec(row.lastError)?.[1] ?? 'INTERNAL' };
        groups.set(k, [...groups.get(k) ?? [], failed]);
      }
      for (const failed of groups.values()) await this.notify(messageId, stored, failed);
    }
  }

  private crashAt(point: NoticeFault): void {
    if (this.fault === point) process.exit(137);
  }

  async stop(): Promise<void> {
    this.running = false;
    this.stopListening?.();
    this.wake?.();
    await this.loop;
    await this.sendingOwed;
    const agents = Object.values(this.opts.agents).filter((a): a is DeliveryAgent => !!a);
    // Pending attempts fail fast once their connections are cut; their items stay queued for next start.
    await Promise.all(agents.map((a) => a.interrupt?.()));
    await Promise.allSettled([...this.deliveries]);
    await Promise.all(agents.map((a) => a.stop()));
  }
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

function key(i: OutboundItem): string {
  return `${hex(i.messageId)}|${i.recipient}`;
}
