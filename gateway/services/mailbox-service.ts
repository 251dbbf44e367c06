// The Mailbox gRPC service (application API): Submit, SubmitStream, Subscribe, WhoAmI.
import { createHash, randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { MailboxHandlers, SubmitReply, Delivery, SubscribeRequest__Output, SubmitRequest__Output } from '../../proto/index.ts';
import { decodeEnvelope } from '../../identity/index.ts';
import { acceptEnvelope, domainOf, type AcceptDeps } from '../accept/index.ts';
import type { Store, MailboxRecord, StoredDelivery } from '../store/index.ts';
import { GatewayError, toGrpcError, envelopeFromWire, envelopeToWire } from '../core/index.ts';

export interface MailboxServiceDeps extends AcceptDeps {
  nodeDid: string;
  log: Logger;
  /** Told how long each submission took, from its arrival to its reply (metrics). */
  observeSubmit?: (method: 'Submit' | 'SubmitStream', outcome: 'ok' | 'error', seconds: number) => void;
}

export function tokenSha256(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/**
 * The mailbox whose token an `authorization` value (`Bearer <token>`) carries, or UNAUTHENTICATED: one
 * token hash and one (cached) lookup. The one token check of the node: gRPC calls and the HTTPS
 * envelope links (webhooks/fetch.ts) both use it.
 */
export function mailboxOfBearer(storage: Store, authorization: unknown): MailboxRecord {
  if (typeof authorization !== 'string' || !authorization.startsWith('Bearer ')) {
    throw new GatewayError('UNAUTHENTICATED', 'missing bearer token ("authorization: Bearer <token>")');
  }
  const mailbox = storage.mailboxes.byToken(tokenSha256(authorization.slice('Bearer '.length).trim()));
  if (!mailbox) throw new GatewayError('UNAUTHENTICATED', 'unknown or revoked token');
  return mailbox;
}

/**
 * The mailbox a call's metadata proved, kept for the call: the guard authenticates a call before its
 * request is read, and the handler then needs the same record (one token hash and lookup per call, not two).
 */
const proven = new WeakMap<grpc.Metadata, MailboxRecord>();

/** Resolves the bearer token in `authorization` metadata to its mailbox, or throws UNAUTHENTICATED. */
export function authenticateMailbox(storage: Store, metadata: grpc.Metadata): MailboxRecord {
  const known = proven.get(metadata);
  if (known) return known;
  const mailbox = mailboxOfBearer(storage, metadata.get('authorization')[0]);
  proven.set(metadata, mailbox);
  return mailbox;
}

export class MailboxService {
  private readonly deps: MailboxServiceDeps;
  /** Local mailbox DIDs whose documents the resolver already holds (the node never fetches its own). */
  private readonly registeredLocal = new Set<string>();

  constructor(deps: MailboxServiceDeps) {
    this.deps = deps;
  }

  /**
   * Validates and durably stores one submitted envelope. Every check a node can make without the
   * recipients' private keys happens here, before anything is written.
   */
  async accept(sender: MailboxRecord, request: SubmitRequest__Output, method: 'Submit' | 'SubmitStream'): Promise<SubmitReply> {
    const started = performance.now();
    try {
      const reply = await this.acceptOnce(sender, request);
      this.deps.observeSubmit?.(method, 'ok', (performance.now() - started) / 1000);
      return reply;
    } catch (err) {
      this.deps.observeSubmit?.(method, 'error', (performance.now() - started) / 1000);
      throw err;
    }
  }

  private async acceptOnce(sender: MailboxRecord, request: SubmitRequest__Output): Promise<SubmitReply> {
    const { resolver } = this.deps;
    const envelope = envelopeFromWire(request.envelope);
    if (!this.registeredLocal.has(sender.did)) {
      resolver.register(JSON.parse(sender.documentJson));
      this.registeredLocal.add(sender.did);
    }
    if (envelope.senderDid !== sender.did) {
      throw new GatewayError('PERMISSION_DENIED', `token belongs to ${sender.address}, but the envelope is sent by ${envelope.senderDid}`);
    }
    const accepted = await acceptEnvelope(this.deps, envelope, { senderAddress: sender.address, senderDomain: domainOf(sender.address), fromPeer: false });
    return {
      messageId: envelope.messageId,
      messageHash: envelope.messageHash,
      deliveredLocal: accepted.deliveredLocal,
      queuedRemote: accepted.queuedRemote,
      receipt: accepted.receipt,
      clientRef: request.clientRef,
    };
  }

  handlers(): MailboxHandlers {
    const { storage, log } = this.deps;
    return {
      Submit: (call, callback) => {
        const rlog = log.child({ rpc: 'Submit', call: randomUUID().slice(0, 8) });
        let sender: MailboxRecord;
        try {
          sender = authenticateMailbox(storage, call.metadata);
        } catch (err) {
          rlog.info({ err: (err as Error).message }, 'submit refused');
          callback(toGrpcError(err));
          return;
        }
        this.accept(sender, call.request, 'Submit').then(
          (reply) => callback(null, reply),
          (err) => {
            rlog.info({ code: (err as GatewayError).code, err: (err as Error).message }, 'submit refused');
            callback(toGrpcError(err));
          },
        );
      },

      SubmitStream: (call) => {
        const rlog = log.child({ rpc: 'SubmitStream', call: randomUUID().slice(0, 8) });
        let sender: MailboxRecord;
        try {
          sender = authenticateMailbox(storage, call.metadata);
        } catch (err) {
          call.emit('error', toGrpcError(err));
          return;
        }
        // Replies go out in request order, each only after its own message is durable.
        let chain: Promise<unknown> = Promise.resolve();
        let inputEnded = false;
        // A draining node answers what it already took, refuses the rest (not stored: the client sends
        // them again, here later or to another node) and ends the stream, so shutdown need not wait.
        let draining = false;
        let ended = false;
        let outstanding = 0;
        const maxOutstanding = this.deps.config.limits.maxInFlightSubmits;
        const finishIfDone = () => {
          if ((inputEnded || draining) && outstanding === 0 && !ended) {
            ended = true;
            stopListening();
            if (!call.cancelled) call.end();
          }
        };
        const stopListening = storage.events.onShutdown(() => { draining = true; finishIfDone(); });
        const refusal = (request: SubmitRequest__Output, err: unknown): SubmitReply => {
          const status = toGrpcError(err);
          return { clientRef: request.clientRef, error: { code: (err as GatewayError).code ?? 'INTERNAL', status: status.code, message: status.details } };
        };
        call.on('data', (request: SubmitRequest__Output) => {
          if (ended) return;
          if (++outstanding >= maxOutstanding) call.pause(); // resumed as replies go out
          const result = draining
            ? Promise.resolve(refusal(request, new GatewayError('SHUTTING_DOWN', 'the node is shutting down; this message was not stored, send it again')))
            : this.accept(sender, request, 'SubmitStream').then(
              (reply) => reply,
              (err) => {
                rlog.info({ code: (err as GatewayError).code, err: (err as Error).message }, 'message refused');
                return refusal(request, err);
              },
            );
          chain = chain.then(() => result).then((reply) => {
            if (!call.cancelled && !ended) call.write(reply);
            if (outstanding-- === maxOutstanding && !ended) call.resume();
            finishIfDone();
          });
        });
        call.on('end', () => { inputEnded = true; chain.then(finishIfDone); });
        call.on('close', stopListening);
        call.on('error', () => { /* client went away; nothing unacknowledged is lost: replies follow commits */ });
      },

      Subscribe: (call) => {
        const rlog = log.child({ rpc: 'Subscribe', call: randomUUID().slice(0, 8) });
        let mailbox: MailboxRecord;
        try {
          mailbox = authenticateMailbox(storage, call.metadata);
        } catch (err) {
          call.emit('error', toGrpcError(err));
          return;
        }
        const limit = this.deps.config.limits.maxInFlightDeliveries;
        let maxInFlight = limit;
        let started = false;
        let lastSent = 0;
        let closed = false;
        let pumping = false;
        const inFlight = new Set<number>();
        // True while the store holds nothing for this mailbox beyond lastSent: then a freed window slot
        // (an ack) needs no read of the store. Cleared by every delivery not handed over directly.
        let caughtUp = false;

        const send = (row: StoredDelivery) => {
          const envelope = decodeEnvelope(row.envelope);
          const delivery: Delivery = {
            seq: row.seq,
            envelope: envelopeToWire(envelope),
            receivedMs: row.receivedMs,
            authenticatedSender: row.authenticatedSender,
            senderDomain: row.senderDomain,
            ...(row.logIndex !== null ? { receipt: this.deps.ledger.receipt(row.logIndex, envelope.messageHash) } : {}),
            labels: storage.rules.labelsOf(row.messageId),
          };
          lastSent = row.seq;
          inFlight.add(row.seq);
          call.write(delivery);
        };
        const fail = (err: unknown) => {
          rlog.error({ err: (err as Error).message }, 'delivery failed');
          close();
          call.emit('error', toGrpcError(new GatewayError('STORAGE', 'reading the mailbox failed')));
        };
        const pump = () => {
          if (!started || closed || pumping || caughtUp) return;
          pumping = true;
          try {
            while (!closed && inFlight.size < maxInFlight) {
              const want = maxInFlight - inFlight.size;
              const rows = storage.deliveries.pending(mailbox.address, lastSent, want);
              for (const row of rows) send(row);
              if (rows.length < want) { // that was all there is
                caughtUp = true;
                break;
              }
            }
          } catch (err) {
            fail(err);
          } finally {
            pumping = false;
          }
        };
        // A subscriber that is caught up gets a new delivery as it was stored (no read back); otherwise,
        // stores in one commit emit one event each: read the mailbox once for all of them.
        let pumpScheduled = false;
        const onDelivery = (stored: StoredDelivery) => {
          if (stored.mailbox !== mailbox.address) return;
          if (started && !closed && !pumpScheduled && stored.seq === lastSent + 1 && inFlight.size < maxInFlight) {
            try { send(stored); } catch (err) { fail(err); }
            return;
          }
          caughtUp = false;
          if (pumpScheduled) return;
          pumpScheduled = true;
          queueMicrotask(() => { pumpScheduled = false; pump(); });
        };
        // A draining node ends subscriptions cleanly; clients resume from their cursor elsewhere or later.
        const stopDeliveries = storage.events.onDelivery(onDelivery);
        const stopShutdown = storage.events.onShutdown(() => { if (!closed) { close(); call.end(); } });
        const close = () => {
          closed = true;
          stopDeliveries();
          stopShutdown();
        };

        call.on('data', (request: SubscribeRequest__Output) => {
          if (request.kind === 'start' && request.start) {
            if (started) return;
            started = true;
            lastSent = request.start.fromCursor;
            if (request.start.maxInFlight > 0) maxInFlight = Math.min(request.start.maxInFlight, limit);
            rlog.debug({ cursor: lastSent, maxInFlight }, 'subscription started');
            pump();
          } else if (request.kind === 'ack' && request.ack) {
            const seqs = request.ack.seqs;
            if (seqs.length === 0) return;
            storage.deliveries.ack(mailbox.address, seqs).then(
              () => {
                for (const seq of seqs) inFlight.delete(seq);
                if (!closed) call.write({ seq: 0, confirmedAcks: seqs } satisfies Delivery);
                pump();
              },
              (err) => rlog.warn({ err: (err as Error).message }, 'ack not stored; deliveries will be repeated'),
            );
          }
        });
        call.on('end', () => { close(); call.end(); });
        call.on('cancelled', close);
        call.on('error', close);
        call.on('close', close);
      },

      WhoAmI: (call, callback) => {
        try {
          const mailbox = authenticateMailbox(storage, call.metadata);
          callback(null, { address: mailbox.address, did: mailbox.did, nodeDid: this.deps.nodeDid });
        } catch (err) {
          callback(toGrpcError(err));
        }
      },

      Release: (call, callback) => {
        Promise.resolve().then(() => {
          const reviewer = authenticateMailbox(storage, call.metadata);
          const messageId = new Uint8Array(call.request.messageId);
          const held = storage.rules.heldOf(messageId).filter((h) => h.state === 'held');
          // The same answer for a message that is not held and one held for someone else: a reviewer
          // learns nothing of mail that is not theirs to review.
          const rules = new Map(storage.rules.list().map((r) => [r.name, r]));
          const mine = held.length > 0 && held.every((h) => {
            const then = rules.get(h.rule)?.then;
            return then?.kind === 'divert' && then.address === reviewer.address;
          });
          if (!mine) throw new GatewayError('NOT_FOUND', 'no mail diverted to this mailbox for review under that id');
          return storage.rules.ask(messageId, 'release');
        }).then((released) => callback(null, { released }), (err) => callback(toGrpcError(err)));
      },
    };
  }
}
