/**
 * The node's durable store (node.db): the only way into it from the rest of the gateway.
 *
 * - engine.ts: the one SQLite connection, the group commit (every write of one event-loop turn shares
 *   one transaction and one WAL fdatasync, off the event loop through wal-sync.ts), the room checks
 *   (STORAGE_FULL), and typed prepared statements for the repositories.
 * - migrations.ts: the layout of every table and its one upgrade path (versioned steps, user_version).
 * - one repository per concern, each preparing its statements once: mailboxes.ts, deliveries.ts (the
 *   inbox, with delivery_envelopes), outbound.ts (the relay queue), routes.ts, replay.ts (the replay
 *   set), witness.ts (witness state), dsn.ts and require-tls.ts (DSN parameters and REQUIRETLS of mail the
 *   SMTP bridge took), sts-policies.ts (MTA-STS policies), tls-outcomes.ts (TLS results per day, for TLS-RPT), forwards.ts
 *   (forwarding addresses, and mail sent on as received), dmarc-observations.ts (what the MX saw of DMARC
 *   domains' mail, per day, for their aggregate reports), received-reports.ts (TLS-RPT and DMARC reports
 *   others send about the node's domains), webhooks.ts (mailboxes' webhooks and what each must be told of).
 * - events.ts: typed events (a delivery stored, recipients queued, the node draining).
 * - store.ts: the `Store` facade holding them, and the writes that span several repositories in one
 *   commit (accepting a message, removing a mailbox, repairing log indexes after a crash).
 *
 * Adding a table (the SMTP bridge's queue, an MTA-STS policy cache, TLS-RPT results, DKIM keys) is a new
 * repository file and a migration step, nothing else:
 *
 *   // migrations.ts, at the end of MIGRATIONS:
 *   { version: 6, change: 'the SMTP bridge queue', up(db) { db.exec('CREATE TABLE IF NOT EXISTS smtp_queue (...) STRICT'); } },
 *
 *   // smtp-queue.ts:
 *   export class SmtpQueueRepository {
 *     private readonly engine: StoreEngine;
 *     private readonly add: Statement<[Uint8Array, string]>;
 *     constructor(engine: StoreEngine) {
 *       this.engine = engine;
 *       this.add = engine.prepare('INSERT INTO smtp_queue (envelope, recipient) VALUES (?, ?)');
 *     }
 *     enqueue(envelope: Uint8Array, to: string): Promise<void> { return this.engine.write(() => { this.add.run(envelope, to); }); }
 *   }
 *
 * then `readonly smtpQueue: SmtpQueueRepository` on Store, built beside the others in its constructor,
 * and the repository exported here.
 */
export { Store, databaseForTests, type LostLeaf } from './store.ts';
export { FULL_RECHECK_MS, type Statement, type StoreEngine } from './engine.ts';
export { STORE_VERSION } from './migrations.ts';
export { StoreEvents, type DeliveryListener, type OutboundListener, type ShutdownListener } from './events.ts';
export { MailboxRepository, MAILBOX_REREAD_MS, type MailboxRecord } from './mailboxes.ts';
export { DeliveryRepository, type StoredDelivery, type VouchedSender } from './deliveries.ts';
export { OutboundRepository, type OutboundItem, type OutboundState, type OutboundTransport, type QueuedRecipient, type HeldEnvelope } from './outbound.ts';
export { RouteRepository, ROUTE_REREAD_MS, type RouteRecord } from './routes.ts';
export { ReplayRepository } from './replay.ts';
export { RuleRepository, RULES_REREAD_MS, type HeldDelivery, type HeldState, type AuditRecord } from './rules.ts';
export { WitnessRepository, type WitnessedLog, type SplitView } from './witness.ts';
export { DsnRepository, type DsnRecipient, type DsnRequest } from './dsn.ts';
export { RequireTlsRepository } from './require-tls.ts';
export { StsPolicyRepository } from './sts-policies.ts';
export { DmarcObservationRepository, type DmarcDayCount, type DmarcSeen } from './dmarc-observations.ts';
export { ReceivedReportRepository, type ReceivedReport, type ReceivedReportKind, type ReportSummary } from './received-reports.ts';
export { ForwardRepository, type ForwardRecord, type SentAsIs, type SentAsIsKind } from './forwards.ts';
export { TlsOutcomeRepository, utcDay, type TlsOutcomeCount } from './tls-outcomes.ts';
export { WebhookRepository, WEBHOOK_PAYLOAD_FORMS, type WebhookPayloadForm, type WebhookRecord, type WebhookDelivery, type WebhookDeliveryState, type WebhookCounts } from './webhooks.ts';
export { WalSyncer, WalCheckpointer, FALLBACK_AUTOCHECKPOINT_PAGES } from './wal-sync.ts';
