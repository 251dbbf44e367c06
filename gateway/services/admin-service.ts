// The Admin gRPC service (operator API, admin bearer token): status, peers, the outbound queue.
import type * as grpc from '@grpc/grpc-js';
import type { AdminHandlers, StatusReply__Output } from '../../proto/index.ts';
import type { Store, OutboundItem } from '../store/index.ts';
import type { Federation } from '../federation/index.ts';
import { tokenSha256 } from './mailbox-service.ts';
import { GatewayError, oneLine, toGrpcError } from '../core/index.ts';

export interface AdminDeps {
  storage: Store;
  adminTokenSha256?: string;
  status: () => Omit<StatusReply__Output, never>;
  federation?: Federation;
  /** The outbound queue, woken after an action so a retry or release is attempted now. */
  queue?: { kick(): void };
}

/** Throws UNAUTHENTICATED unless `metadata` carries the admin token whose SHA-256 is `expected`. */
export function checkAdmin(metadata: grpc.Metadata, expected: string | undefined): void {
  const header = metadata.get('authorization')[0];
  if (typeof header !== 'string' || !header.startsWith('Bearer ') || !expected) {
    throw new GatewayError('UNAUTHENTICATED', 'admin calls need the admin bearer token');
  }
  if (tokenSha256(header.slice(7).trim()) !== expected) throw new GatewayError('UNAUTHENTICATED', 'wrong admin token');
}

/** A queue item as the operator sees it; its error as one line (it may quote a peer). */
function toWire(i: OutboundItem) {
  return { messageId: i.messageId, recipient: i.recipient, state: i.state, attempts: i.attempts, nextAttemptMs: i.nextAttemptMs, lastError: oneLine(i.lastError), transport: i.transport };
}

export function adminHandlers(deps: AdminDeps): AdminHandlers {
  const guarded = <Req, Res>(fn: (req: Req) => Res | Promise<Res>) =>
    (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => {
      Promise.resolve()
        .then(() => { checkAdmin(call.metadata, deps.adminTokenSha256); return fn(call.request); })
        .then((res) => callback(null, res), (err) => callback(toGrpcError(err)));
    };
  return {
    Status: guarded(() => deps.status()),
    Peers: guarded(() => ({
      peers: (deps.federation?.peers() ?? []).map((p) => ({ ...p, transport: p.transport, rttMs: p.rttMs })),
    })),
    QueueList: guarded((req: { state: string }) => ({ items: deps.storage.outbound.list(req.state).map(toWire) })),
    QueueAction: guarded(async (req: { action: string; messageId: Buffer; recipient: string; domain: string }) => {
      if (!['retry', 'hold', 'release', 'purge'].includes(req.action)) {
        throw new GatewayError('INVALID_ARGUMENT', `unknown queue action "${req.action}" (retry, hold, release, purge)`);
      }
      const byMessage = req.messageId.length > 0;
      if (byMessage === (req.domain !== '')) throw new GatewayError('INVALID_ARGUMENT', 'name either a message id or a domain ("*" for all)');
      const items = byMessage ? deps.storage.outbound.of(req.messageId, req.recipient) : deps.storage.outbound.waiting(req.domain);
      // One message that is not in the queue is a mistake; a domain with nothing waiting is an answer.
      if (byMessage && items.length === 0) throw new GatewayError('NOT_FOUND', 'no queued recipient matches');
      const now = Date.now();
      const changes: Promise<void>[] = [];
      for (const item of items) {
        switch (req.action) {
          case 'retry':
            // A held item waits for release (an operator's hold is not undone by a flush), as in Postfix.
            if (item.state === 'delivered' || item.state === 'held') continue;
            changes.push(deps.storage.outbound.update({ ...item, state: 'queued', nextAttemptMs: now }));
            break;
          case 'hold':
            if (item.state !== 'queued' && item.state !== 'deferred') continue;
            changes.push(deps.storage.outbound.update({ ...item, state: 'held' }));
            break;
          case 'release':
            if (item.state !== 'held') continue;
            changes.push(deps.storage.outbound.update({ ...item, state: 'queued', nextAttemptMs: now }));
            break;
          case 'purge':
            changes.push(deps.storage.outbound.purge(item.messageId, item.recipient));
            break;
        }
      }
      await Promise.all(changes); // issued together, so they share group commits
      deps.queue?.kick();
      return { affected: changes.length };
    }),
  };
}
