// What the outbound SMTP end-to-end tests share: a node process whose every lookup goes to a DNS lab (nsd +
// validating unbound) that publishes the node's own DKIM keys and DMARC policy, an app that sends through
// it with the gRPC client, and readers for the queue (the CLI), the sender's mailbox (notices) and the
// node's store after it stopped.
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { connect, profileResolver, readProfile, sealFor, submit, type ReceivedMessage } from '../../gateway/client/index.ts';
import { startDnsLab, type DnsLab, type LabZone } from '../dns-lab.ts';
import { initNodeWithMailboxes, receiveMail, runCli, startNodeProcess, tempDir, until, type RunningNode } from '../helpers.ts';

export const NODE_DOMAIN = 'a.test';

export interface QueueRow { messageId: string; recipient: string; transport: string; state: string; attempts: number; lastError: string }

/** The node's DKIM records as zone-file lines of its domain's zone (TXT strings split at 255 octets). */
export async function dkimZoneLines(data: string): Promise<string[]> {
  const shown = await runCli(['dkim', 'show', '--data', data, '--json']);
  if (shown.code !== 0) throw new Error(`dkim show failed: ${shown.stderr}`);
  const records = JSON.parse(shown.stdout) as { name: string; value: string }[];
  return records.map((r) => `${r.name}. IN TXT ${(r.value.match(/.{1,255}/g) ?? []).map((part) => `"${part}"`).join(' ')}`);
}

export class OutboundLab {
  readonly dir = tempDir('aftersmtp-outlab-');
  data = '';
  dns!: DnsLab;
  node?: RunningNode;
  /** AFTERSMTP_* settings of every start (DNS servers, port map, retry policy, ...). */
  env: NodeJS.ProcessEnv = {};

  profile(name: string): string {
    return join(this.dir.path, `${name}.json`);
  }

  /**
   * `aftersmtp init` for a.test with mailboxes alice and bob, then the DNS lab: a.test signed, with the
   * node's DKIM records and a p=reject DMARC record, beside the zones the test needs.
   */
  async init(zones: LabZone[], env: NodeJS.ProcessEnv = {}): Promise<void> {
    this.data = (await initNodeWithMailboxes(this.dir.path, NODE_DOMAIN)).data;
    const own: LabZone = { name: NODE_DOMAIN, signed: true, records: [...await dkimZoneLines(this.data), '_dmarc IN TXT "v=DMARC1; p=reject; adkim=s"'] };
    this.dns = await startDnsLab([own, ...zones]);
    this.env = { AFTERSMTP_DNS__SERVERS: JSON.stringify([this.dns.resolver]), AFTERSMTP_LOG__LEVEL: 'warn', ...env };
  }

  async start(): Promise<RunningNode> {
    this.node = await startNodeProcess(this.data, this.env);
    return this.node;
  }

  async stop(): Promise<void> {
    const node = this.node;
    this.node = undefined;
    if (!node || node.child.exitCode !== null || node.child.signalCode !== null) return;
    node.child.kill('SIGTERM');
    await node.exited;
  }

  get grpc(): string {
    return this.node!.ready.grpc;
  }

  /** The app of mailbox `from` seals and submits a plain-text message; returns its id (hex) and who is legacy. */
  async send(from: string, to: string[], subject: string, opts: { text?: string; eml?: string; lifetimeMs?: number } = {}): Promise<{ id: string; legacy: string[] }> {
    const sender = readProfile(this.profile(from));
    const clients = connect(sender, this.grpc);
    try {
      const sealed = await sealFor(sender, clients, profileResolver(sender), {
        to, subject, text: opts.text ?? subject, ...(opts.eml ? { eml: new TextEncoder().encode(opts.eml) } : {}), ...(opts.lifetimeMs ? { lifetimeMs: opts.lifetimeMs } : {}),
      });
      const reply = await submit(clients, sealed.envelope);
      return { id: Buffer.from(reply.messageId).toString('hex'), legacy: sealed.legacy };
    } finally {
      clients.close();
    }
  }

  async queue(): Promise<QueueRow[]> {
    const r = await runCli(['queue', 'list', '--data', this.data, '--json']);
    if (r.code !== 0) throw new Error(`queue list failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as QueueRow[];
  }

  /** Waits until the queue holds `recipient` of message `id` in one of `states`. */
  queueRow(id: string, recipient: string, states: string[], timeoutMs = 30_000): Promise<QueueRow> {
    return until(`${recipient} ${states.join('|')} in the queue`, async () => {
      const row = (await this.queue()).find((r) => r.messageId === id && r.recipient === recipient);
      return row && states.includes(row.state) ? row : undefined;
    }, timeoutMs);
  }

  /** Takes (and acknowledges) the next `count` messages of mailbox `name`, with their RFC 5322 bodies. */
  async receive(name: string, count: number, timeoutMs = 30_000): Promise<ReceivedMessage[]> {
    const got = await receiveMail(this.profile(name), this.grpc, count, timeoutMs);
    if (got.length < count) throw new Error(`${name} received ${got.length} of ${count} messages`);
    return got;
  }

  /** Reads the node's store (node.db) read-only: for after the node stopped, or beside it (WAL readers). */
  readStore<T>(read: (db: DatabaseSync) => T): T {
    const db = new DatabaseSync(join(this.data, 'node.db'), { readOnly: true });
    try {
      return read(db);
    } finally {
      db.close();
    }
  }

  async close(): Promise<void> {
    await this.stop();
    await this.dns?.close();
    this.dir.cleanup();
  }
}

/** The text of a notice's message/delivery-status part (the per-recipient fields). */
export function deliveryStatus(notice: ReceivedMessage): string {
  const text = Buffer.from(notice.body ?? new Uint8Array()).toString('utf8');
  const at = text.indexOf('Content-Type: message/delivery-status');
  if (at < 0) throw new Error(`not a delivery status notification:\n${text}`);
  return text.slice(at);
}
