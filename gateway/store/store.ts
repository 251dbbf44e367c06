// The node's durable store: the commit engine, one repository per concern, and the operations that
// span several of them in one commit (accepting a message, removing a mailbox, repairing log indexes).
import type { DatabaseSync } from 'node:sqlite';
import { GatewayError } from '../core/index.ts';
import { StoreEngine, type EngineOptions } from './engine.ts';
import { StoreEvents } from './events.ts';
import { MailboxRepository } from './mailboxes.ts';
import { DeliveryRepository, type VouchedSender } from './deliveries.ts';
import { OutboundRepository, type OutboundItem, type OutboundTransport, type HeldEnvelope, type QueuedRecipient } from './outbound.ts';
import { DsnRepository } from './dsn.ts';
import { RequireTlsRepository } from './require-tls.ts';
import { StsPolicyRepository } from './sts-policies.ts';
import { TlsOutcomeRepository } from './tls-outcomes.ts';
import { ForwardRepository } from './forwards.ts';
import { DmarcObservationRepository } from './dmarc-observations.ts';
import { ReceivedReportRepository } from './received-reports.ts';
import { RouteRepository } from './routes.ts';
import { ReplayRepository } from './replay.ts';
import { WitnessRepository } from './witness.ts';
import { RuleRepository, type HeldDelivery } from './rules.ts';
import { WebhookRepository } from './webhooks.ts';

/**
 * An accepted message whose log leaf was lost in a crash (see messagesFromLogIndex). `messageHash` is
 * empty for one accepted before layout 4 (its replay-set row holds the id alone).
 */
export interface LostLeaf { logIndex: number; messageId: Uint8Array; messageHash: Uint8Array; envelope?: Uint8Array; deliveryRows: number[] }

/** SQLite's extended result code for a duplicate primary key. */
const SQLITE_CONSTRAINT_PRIMARYKEY = 1555;

/** Runs `insert`; a duplicate primary key (the message id, or id and hash, already taken) is a REPLAY. */
function refusingReplay(insert: () => void): void {
  try {
    insert();
  } catch (err) {
    if ((err as { errcode?: number }).errcode === SQLITE_CONSTRAINT_PRIMARYKEY) throw new GatewayError('REPLAY', 'message id already accepted (replay)');
    throw err;
  }
}

let engineOf: (store: Store) => StoreEngine;

export class Store {
  readonly #engine: StoreEngine;
  readonly events = new StoreEvents();
  readonly mailboxes: MailboxRepository;
  readonly deliveries: DeliveryRepository;
  readonly outbound: OutboundRepository;
  readonly routes: RouteRepository;
  readonly dsn: DsnRepository;
  readonly requireTls: RequireTlsRepository;
  readonly stsPolicies: StsPolicyRepository;
  readonly tlsOutcomes: TlsOutcomeRepository;
  readonly forwards: ForwardRepository;
  readonly dmarcObservations: DmarcObservationRepository;
  readonly receivedReports: ReceivedReportRepository;
  readonly replay: ReplayRepository;
  readonly witness: WitnessRepository;
  readonly rules: RuleRepository;
  readonly webhooks: WebhookRepository;

  constructor(file: string, opts: EngineOptions = {}) {
    const engine = new StoreEngine(file, opts);
    this.#engine = engine;
    this.mailboxes = new MailboxRepository(engine);
    this.webhooks = new WebhookRepository(engine);
    this.deliveries = new DeliveryRepository(engine, this.webhooks);
    this.outbound = new OutboundRepository(engine);
    this.routes = new RouteRepository(engine);
    this.dsn = new DsnRepository(engine);
    this.requireTls = new RequireTlsRepository(engine);
    this.stsPolicies = new StsPolicyRepository(engine);
    this.tlsOutcomes = new TlsOutcomeRepository(engine);
    this.forwards = new ForwardRepository(engine);
    this.dmarcObservations = new DmarcObservationRepository(engine);
    this.receivedReports = new ReceivedReportRepository(engine);
    this.replay = new ReplayRepository(engine);
    this.witness = new WitnessRepository(engine);
    this.rules = new RuleRepository(engine);
  }

  static {
    engineOf = (store) => store.#engine;
  }

  /** The worker thread's checkpoints (a 'deferred' store; undefined otherwise). */
  get checkpoints(): { readonly checkpoints: number; readonly lastError: string } | undefined {
    return this.#engine.checkpointer?.stats;
  }

  /** Group commits made and the writes they carried, since open. */
  get commitStats(): { readonly commits: number; readonly writes: number } {
    return this.#engine.commitStats;
  }

  /** Throws STORAGE_FULL while new mail cannot be stored (see StoreEngine.assertRoom). */
  assertRoom(): void {
    this.#engine.assertRoom();
  }

  /** Bytes in use by the store (free pages excluded). */
  usage(): number {
    return this.#engine.usage();
  }

  /** Bytes free on the disk holding the store (0 when it cannot be read). */
  diskFree(): number {
    return this.#engine.diskFree();
  }

  /**
   * Durably stores one envelope for every local recipient mailbox, queues it for its remote recipients,
   * and records the message against replay, atomically; a mailbox with a webhook gets the delivery's
   * hook row in the same commit, so a crash before the POST loses no notification. Resolves with the seq per mailbox; then tells
   * events.onDelivery of each delivery and events.onOutbound of the queued items.
   */
  async storeEnvelope(args: {
    messageId: Uint8Array; expiresMs: number; envelope: Uint8Array; mailboxes: string[]; logIndex?: number;
    /** The replay set's key with the id; without it the id alone is recorded (blocking every hash). */
    messageHash?: Uint8Array;
    /** Who vouched for the sender, kept with each delivery; default: nobody. */
    sender?: VouchedSender;
    /**
     * Remote recipients, queued for their delivery agent in the same transaction, and the sender the queue
     * notifies of a failure (default: `sender`).
     */
    remote?: { recipients: QueuedRecipient[]; sender: string; senderDomain: string };
    /**
     * Mailboxes a rule keeps the message from until it is released (not delivered now), and the rule; with
     * `transport`, a remote recipient kept out of the queue (not among `remote`), queued on release with
     * `remote`'s sender.
     */
    held?: { mailbox: string; rule: string; transport?: OutboundTransport }[];
    /** Labels rules put on the message. */
    tags?: { tag: string; rule: string }[];
  }): Promise<Map<string, number>> {
    const seqs = new Map<string, number>();
    const receivedMs = Date.now();
    const logIndex = args.logIndex ?? null;
    const sender = args.sender ?? { address: '', domain: '' };
    const remote = args.remote?.recipients.length ? args.remote : undefined;
    const held: HeldEnvelope | undefined = remote && { envelope: args.envelope, sender: remote.sender, senderDomain: remote.senderDomain, logIndex };
    await this.#engine.write(() => {
      // The primary key is the replay check: no separate read of the id inside the commit. The outbound
      // queue names a message by its id: a second message under a queued id is refused as a replay too
      // (only a local sender queues, and it cannot learn an id before the message it belongs to).
      refusingReplay(() => this.replay.add(args.messageId, args.messageHash, args.expiresMs, logIndex));
      if (remote && held) {
        refusingReplay(() => this.outbound.holdEnvelope(args.messageId, held));
        this.outbound.addRecipients(args.messageId, remote.recipients, receivedMs, args.expiresMs);
      }
      for (const mailbox of args.mailboxes) {
        const seq = this.deliveries.insert(mailbox, args.messageId, args.envelope, receivedMs, logIndex, sender);
        seqs.set(mailbox, seq);
        this.webhooks.enqueueIfHooked(mailbox, seq, receivedMs);
      }
      const queueSender = args.remote ? { address: args.remote.sender, domain: args.remote.senderDomain } : sender;
      for (const h of args.held ?? []) {
        this.rules.hold({
          messageId: args.messageId, mailbox: h.mailbox, transport: h.transport ?? '', rule: h.rule, envelope: args.envelope,
          sender: h.transport ? queueSender : sender, logIndex,
          messageHash: args.messageHash ?? new Uint8Array(0),
        }, receivedMs);
      }
      for (const t of args.tags ?? []) this.rules.tag(args.messageId, t.tag, t.rule, receivedMs);
    }); // on failure, the engine has reset the seq counters
    // Listeners get the stored delivery itself, so a subscriber that is caught up need not read it back.
    for (const [mailbox, seq] of seqs) {
      this.events.delivered({
        mailbox, seq, messageId: args.messageId, envelope: args.envelope, receivedMs, logIndex,
        authenticatedSender: sender.address, senderDomain: sender.domain,
      });
    }
    if (remote && held) {
      // Listeners get the new queue items themselves, so the outbound loop need not scan for them.
      const items: OutboundItem[] = remote.recipients.map((r) => ({
        messageId: args.messageId, recipient: r.address, domain: r.domain, transport: r.transport, state: 'queued', attempts: 0,
        nextAttemptMs: receivedMs, expiresMs: args.expiresMs, lastError: '', receipt: '', updatedMs: receivedMs,
      }));
      this.events.queued(items, held);
    }
    return seqs;
  }

  /**
   * Moves queued recipients out of the queue into a rule's hold, in one commit (a rule acting as mail leaves:
   * `direction:smtp-out`): each keeps its agent, queued again on release. The message's queue envelope goes
   * when no recipient still needs it; each hold keeps its own copy.
   */
  async holdQueued(held: HeldEnvelope, messageHash: Uint8Array, entries: { item: OutboundItem; rule: string }[]): Promise<void> {
    const nowMs = Date.now();
    await this.#engine.write(() => {
      for (const { item, rule } of entries) {
        this.outbound.remove(item.messageId, item.recipient);
        this.rules.hold({
          messageId: item.messageId, mailbox: item.recipient, transport: item.transport, rule, envelope: held.envelope,
          sender: { address: held.sender.toLowerCase(), domain: held.senderDomain.toLowerCase() }, logIndex: held.logIndex, messageHash,
        }, nowMs);
      }
    });
  }

  /**
   * Carries out an asked-for release or expiry (dropped) of one held delivery, in one commit. A mailbox's
   * delivery is released into the mailbox as if delivered now (events.onDelivery); a queued recipient's
   * goes back to the queue until `expiresMs` (the message's own expiry; events.onOutbound), marked so that
   * no rule holds it again. Resolves with the seq of a mailbox's release.
   */
  async settleHeld(held: HeldDelivery, expiresMs: number): Promise<number | undefined> {
    const receivedMs = Date.now();
    let seq: number | undefined;
    const release = held.state === 'release';
    const queued: QueuedRecipient | undefined = held.transport && release
      ? { address: held.mailbox, domain: held.mailbox.slice(held.mailbox.lastIndexOf('@') + 1), transport: held.transport }
      : undefined;
    const envelope: HeldEnvelope = { envelope: held.envelope, sender: held.sender.address, senderDomain: held.sender.domain, logIndex: held.logIndex };
    await this.#engine.write(() => {
      if (queued) {
        this.rules.markReleased(held.messageId, held.mailbox);
        this.outbound.holdEnvelopeOnce(held.messageId, envelope); // other recipients may hold it already
        this.outbound.addRecipients(held.messageId, [queued], receivedMs, expiresMs);
        return;
      }
      this.rules.dropHeld(held.messageId, held.mailbox);
      if (release && !held.transport && this.mailboxes.exists(held.mailbox)) {
        seq = this.deliveries.insert(held.mailbox, held.messageId, held.envelope, receivedMs, held.logIndex, held.sender);
        this.webhooks.enqueueIfHooked(held.mailbox, seq, receivedMs);
      }
    });
    if (seq !== undefined) {
      this.events.delivered({
        mailbox: held.mailbox, seq, messageId: held.messageId, envelope: held.envelope, receivedMs, logIndex: held.logIndex,
        authenticatedSender: held.sender.address, senderDomain: held.sender.domain,
      });
    }
    if (queued) {
      this.events.queued([{
        messageId: held.messageId, recipient: queued.address, domain: queued.domain, transport: queued.transport, state: 'queued', attempts: 0,
        nextAttemptMs: receivedMs, expiresMs, lastError: '', receipt: '', updatedMs: receivedMs,
      }], envelope);
    }
    return seq;
  }

  /**
   * Removes a mailbox's record (new mail is refused, its token and DID document stop working within
   * MAILBOX_REREAD_MS on a running node); its mail goes with deliveries.deleteMailboxMail. Refused while
   * the mailbox holds unacknowledged mail, unless `force`. A record already gone with mail left behind
   * (a removal cut short) passes, so the removal can be finished. Returns how much mail was unacknowledged.
   */
  removeMailbox(address: string, opts: { force?: boolean } = {}): { unacknowledged: number } {
    const key = address.toLowerCase();
    const unacknowledged = this.#engine.transaction(() => {
      const n = this.deliveries.countUnacked(key);
      if (this.mailboxes.exists(key)) {
        if (n > 0 && !opts.force) {
          throw new GatewayError('CONFLICT', `${key} has ${n} message(s) its app has not acknowledged; they would be deleted with it (--force)`);
        }
        this.mailboxes.deleteRecord(key);
      } else if (this.deliveries.lastSeq(key) === 0) {
        throw new GatewayError('NOT_FOUND', `no mailbox ${key} on this node`);
      } // else a removal that was interrupted after the record went: its mail is deleted now
      this.webhooks.deleteOf(key); // its hook goes with the record (the mail: deleteMailboxMail)
      return n;
    });
    this.mailboxes.forget(key);
    this.deliveries.forget(key);
    return { unacknowledged };
  }

  /**
   * The log index of an accepted message, by its id: from the replay set, which holds the id until the
   * message expires; past that, for an id accepted before layout 3, or for an id that several messages
   * share (docs/PROTOCOL.md §5), from the delivery the mailbox `heldBy` holds (a scan of that mailbox's
   * rows: no index by message id). Undefined if neither knows it; null if the id names no single leaf
   * (accepted before layout 3, or several messages under it and `heldBy` holds none or several).
   */
  logIndexOf(messageId: Uint8Array, heldBy?: string): number | null | undefined {
    const seen = this.replay.logIndexesOfId(messageId);
    if (seen.length === 1 && seen[0] !== null) return seen[0];
    const held = heldBy === undefined ? [] : this.deliveries.heldLogIndexes(heldBy, messageId);
    if (held.length === 1) return held[0];
    return seen.length || held.length ? null : undefined;
  }

  /**
   * Accepted messages whose log index is at or past `size`: their leaves were lost in a crash. Oldest
   * index first, one entry per message, with its envelope if the store still holds it (for a mailbox or
   * queued for a peer). Read from the replay set's small rows, so a start with nothing lost (the common
   * case) reads no envelope.
   */
  messagesFromLogIndex(size: number): LostLeaf[] {
    const lost = new Map<number, LostLeaf>();
    for (const r of this.replay.fromLogIndex(size)) lost.set(r.logIndex, { ...r, deliveryRows: [] });
    if (lost.size === 0) return [];
    for (const r of this.deliveries.fromLogIndex(size)) {
      const message = lost.get(r.logIndex);
      if (!message) continue;
      message.envelope = r.envelope;
      message.deliveryRows.push(r.id);
    }
    for (const message of lost.values()) message.envelope ??= this.outbound.envelope(message.messageId)?.envelope;
    return [...lost.values()].sort((a, b) => a.logIndex - b.logIndex);
  }

  /**
   * Records the new leaves of messages from messagesFromLogIndex, in one commit; null for a message
   * whose leaf cannot be restored (no envelope left), so that its id no longer points at another's leaf.
   */
  setLogIndexes(moves: { message: LostLeaf; logIndex: number | null }[]): Promise<void> {
    return this.#engine.write(() => {
      for (const { message, logIndex } of moves) {
        for (const row of message.deliveryRows) this.deliveries.setLogIndex(row, logIndex);
        this.outbound.setLogIndex(message.messageId, logIndex);
        this.replay.setLogIndex(message.messageId, message.messageHash, logIndex);
      }
    });
  }

  /**
   * The hook answered 2xx for a delivery: it is acknowledged (a subscriber no longer gets it) and its
   * hook row settled, in one commit.
   */
  webhookDelivered(mailbox: string, seq: number, nowMs = Date.now()): Promise<void> {
    return this.#engine.write(() => {
      this.deliveries.ackInWrite(mailbox, seq, nowMs);
      this.webhooks.delivered(mailbox, seq, nowMs);
    });
  }

  /** Commits what is queued, waits for it to be durable, and closes the file. */
  close(): Promise<void> {
    return this.#engine.close();
  }
}

/**
 * The store's own connection, for tests and benches only: to inspect rows no repository reads, or to
 * inject a fault that lives on this connection (PRAGMA max_page_count plays a full disk). The gateway
 * never calls it; its modules reach the tables through the repositories.
 */
export function databaseForTests(store: Store): DatabaseSync {
  return engineOf(store).db;
}
