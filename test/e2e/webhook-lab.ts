// What the webhook tests share: a real HTTPS hook (hooks.test, its own CA) that verifies every request
// with the standardwebhooks library's own verifier and takes each webhook-id once, as a Standard
// Webhooks consumer does; a lab node configured to post to it; and an app opening a posted envelope.
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Webhook } from 'standardwebhooks';
import { selfSigned, signedBy } from '../bridge/dane-pki.ts';
import type { LabNode, NodeLab } from './lab.ts';
import { openDelivery, profileResolver, readProfile, type ReceivedMessage } from '../../gateway/client/index.ts';
import { decodeEnvelope } from '../../identity/index.ts';
import { envelopeToWire } from '../../gateway/core/index.ts';
import type { Delivery__Output } from '../../proto/index.ts';
import type { WebhookDeliveryData, WebhookPayload } from '../../gateway/webhooks/index.ts';

export type HookMode = 'fail' | 'ok' | 'slow' | 'redirect' | 'flood';

export interface Seen { id: string; status: number }

/** The hook's server: answers as `mode` says, verifies every request, takes each webhook-id once. */
export class Hook {
  mode: HookMode = 'ok';
  secret = '';
  /** Webhook-ids answered 500 whatever the mode. */
  readonly failing = new Set<string>();
  readonly seen: Seen[] = [];
  /** Taken payloads by webhook-id (the first verified arrival of each). */
  readonly taken = new Map<string, WebhookPayload>();
  readonly badSignatures: string[] = [];
  private held: ServerResponse | undefined;
  server!: Server;

  async start(key: string, cert: string): Promise<number> {
    this.server = createServer({ key, cert }, (req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      const id = String(req.headers['webhook-id']);
      let payload: WebhookPayload;
      try {
        payload = new Webhook(this.secret).verify(body, req.headers as Record<string, string>) as WebhookPayload;
      } catch (err) {
        this.badSignatures.push(`${id}: ${(err as Error).message}`);
        res.writeHead(400).end();
        return;
      }
      const answer = (status: number, headers: Record<string, string> = {}) => {
        this.seen.push({ id, status });
        res.writeHead(status, headers).end();
      };
      if (this.mode === 'fail' || this.failing.has(id)) return answer(500);
      if (this.mode === 'redirect') return answer(302, { location: 'http://hooks.test/plain' });
      const first = !this.taken.has(id);
      if (first) this.taken.set(id, payload);
      if (this.mode === 'slow' && first) {
        // Taken, but answered only once the node has given up on this request and sent it again.
        this.held = res;
        this.seen.push({ id, status: 0 });
        return;
      }
      if (this.mode === 'flood') {
        // A 2xx followed by an answer far larger than anyone reads (20 MiB): the node must stop reading.
        this.seen.push({ id, status: 200 });
        res.on('error', () => {});
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        let sent = 0;
        const more = () => {
          while (sent < 320 && !res.destroyed && res.write(chunk)) sent++;
          if (sent >= 320 || res.destroyed) res.end();
          else res.once('drain', () => { sent++; more(); });
        };
        more();
        return;
      }
      this.held?.writeHead(200).end();
      this.held = undefined;
      answer(200);
    });
  }

  attempts(id: string): Seen[] {
    return this.seen.filter((s) => s.id === id);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A node's hook rows as its store holds them (read beside the running node, as the CLI does). */
export function hookRows(node: LabNode): { seq: number; state: string; attempts: number; last_error: string }[] {
  const db = new DatabaseSync(join(node.data, 'node.db'), { readOnly: true });
  try {
    return db.prepare('SELECT mailbox, seq, state, attempts, last_error FROM webhook_deliveries ORDER BY seq').all() as { seq: number; state: string; attempts: number; last_error: string }[];
  } finally {
    db.close();
  }
}

export const idOf = (messageHex: string, seq: number) => `msg_${messageHex}_${seq}`;

/**
 * Starts `hook` as https://hooks.test (a CA of its own) and makes node `name` of `lab` post to it
 * (webhooks.caFiles, webhooks.hostMap), with quick scans and retries; the node is not started.
 */
export async function makeHookedNode(lab: NodeLab, hook: Hook, name: string, domain: string, opts: { method?: 'key' | 'web'; env?: NodeJS.ProcessEnv } = {}): Promise<LabNode> {
  const ca = await selfSigned('Hooks CA', { ca: true });
  const cert = await signedBy(ca, 'hooks.test');
  const port = await hook.start(cert.keyPem, cert.pem + ca.pem);
  const caFile = join(lab.dir.path, 'hooks-ca.pem');
  writeFileSync(caFile, ca.pem);
  return lab.makeNode(name, domain, {
    ...(opts.method ? { method: opts.method } : {}),
    env: {
      AFTERSMTP_WEBHOOKS__CA_FILES: JSON.stringify([caFile]),
      AFTERSMTP_WEBHOOKS__HOST_MAP: JSON.stringify({ 'hooks.test': `127.0.0.1:${port}` }),
      AFTERSMTP_WEBHOOKS__SCAN_MS: '200',
      AFTERSMTP_WEBHOOKS__TIMEOUT_MS: '4000',
      AFTERSMTP_WEBHOOKS__RETRY__INITIAL_MS: '50',
      AFTERSMTP_WEBHOOKS__RETRY__MAX_MS: '400',
      AFTERSMTP_BRIDGE__SMTP__ENABLED: 'false',
      ...opts.env,
    },
  });
}

/** What the app of mailbox `profile` does with a posted delivery's sealed envelope: opens it with its key. */
export async function openPosted(lab: NodeLab, profile: string, data: WebhookDeliveryData, envelope: Uint8Array): Promise<ReceivedMessage> {
  const own = readProfile(lab.profile(profile));
  const wire = envelopeToWire(decodeEnvelope(envelope));
  return openDelivery(own, profileResolver(own), { seq: data.seq, envelope: wire, receivedMs: data.receivedMs, authenticatedSender: data.authenticatedSender, senderDomain: data.senderDomain } as Delivery__Output);
}
