// A node whose store is full: at its storage.maxBytes, or with no room left on its disk. New mail is
// refused as transient (UNAVAILABLE, code STORAGE_FULL) before it is verified or logged, and is not
// recorded against replay, so the sender sends it again later; what was accepted is all delivered;
// acks and housekeeping go on, and once they make room the node accepts mail again without a restart.
// The full disk is an injected fault: SQLite's page limit makes the same SQLITE_FULL a full disk gives.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import pino from 'pino';
import * as grpc from '@grpc/grpc-js';
import { tempDir, initNodeWithMailboxes } from '../helpers.ts';
import { AfterSmtpNode } from '../../gateway/node/index.ts';
import { FULL_RECHECK_MS, databaseForTests } from '../../gateway/store/index.ts';
import { connect, profileResolver, sealFor, submit, subscribe, unary, type Clients, type MailboxProfile } from '../../gateway/client/index.ts';
import { verifySignature } from '../../identity/index.ts';
import type { Envelope } from '../../proto/index.ts';

// A new store takes about 0.9 MiB (a 16 KiB page per table and index): the cap leaves room for some mail.
const MAX_BYTES = 2 * 1024 * 1024;
const RETENTION_MS = 60_000;

describe('a full store', () => {
  const dir = tempDir();
  let node: AfterSmtpNode;
  let alice: MailboxProfile;
  let bob: MailboxProfile;
  let clients: Clients;
  let verifications = 0;
  let subject = 0;
  let address = '';

  const seal = async (): Promise<Envelope> => (await sealFor(alice, clients, profileResolver(alice), {
    to: ['bob@example.test'], subject: `m${subject++}`, text: 'x'.repeat(10_000), knownDids: { 'bob@example.test': bob.did },
  })).envelope;
  const refusal = (envelope: Envelope) => submit(clients, envelope).then(() => undefined, (err: grpc.ServiceError) => err);
  /** Receives and acknowledges everything waiting for bob; returns the subjects that verified. */
  const drainBob = async () => {
    const count = node.storage.deliveries.pending('bob@example.test', 0, 100_000).length;
    const bobClients = connect(bob, address);
    try {
      const seen: string[] = [];
      await subscribe(bob, bobClients, profileResolver(bob), { count, onMessage: (m) => { if (m.verified) seen.push(m.subject ?? ''); } });
      return seen;
    } finally {
      bobClients.close();
    }
  };

  beforeAll(async () => {
    const made = await initNodeWithMailboxes(dir.path, 'example.test');
    ({ alice, bob } = made);
    node = new AfterSmtpNode({
      dataDir: made.data,
      env: { AFTERSMTP_STORAGE__MAX_BYTES: String(MAX_BYTES), AFTERSMTP_STORAGE__ACKED_RETENTION_MS: String(RETENTION_MS) },
      logger: pino({ level: 'silent' }),
      verify: (publicKey, message, signature) => { verifications++; return verifySignature(publicKey, message, signature); },
    });
    address = (await node.start()).grpc;
    clients = connect(alice, address);
  });

  afterAll(async () => {
    clients?.close();
    await node?.stop(500);
    dir.cleanup();
  });

  it('with its disk full: refuses as transient, then at once for a second without verifying; accepts again once there is room', async () => {
    // Injected fault: no page beyond those the store has now, as on a full disk.
    const pages = (databaseForTests(node.storage).prepare('PRAGMA page_count').get() as { page_count: number }).page_count;
    databaseForTests(node.storage).exec(`PRAGMA max_page_count=${pages}`);
    try {
      let refused: grpc.ServiceError | undefined;
      for (let i = 0; i < 200 && !refused; i++) refused = await refusal(await seal());
      expect(refused, 'the store never ran out of pages').toBeDefined();
      expect(refused!.code).toBe(grpc.status.UNAVAILABLE);
      expect(refused!.metadata.get('aftersmtp-error')).toEqual(['STORAGE_FULL']);
      expect(refused!.details).toMatch(/the disk holding the node's storage is full; nothing was stored, send again later/);

      const kept = await seal();
      const verifiedBefore = verifications;
      expect((await refusal(kept))?.code).toBe(grpc.status.UNAVAILABLE);
      expect(verifications).toBe(verifiedBefore); // refused before verification

      // The disk gets room again: within FULL_RECHECK_MS the node stores mail again, the refused one too.
      databaseForTests(node.storage).exec('PRAGMA max_page_count=1073741823');
      await new Promise((r) => setTimeout(r, FULL_RECHECK_MS + 100));
      expect(await refusal(kept)).toBeUndefined();
    } finally {
      databaseForTests(node.storage).exec('PRAGMA max_page_count=1073741823');
    }
  });

  it('at storage.maxBytes: refuses new mail as transient, unverified and unlogged; acks and housekeeping make room again', async () => {
    await drainBob(); // what the test before left
    const acceptedSubjects: string[] = [];
    let firstAccepted: Envelope | undefined;
    let refused: grpc.ServiceError | undefined;
    const logSizeBefore = node.ledger.log.size;
    for (let i = 0; i < 400; i++) {
      const envelope = await seal();
      refused = await refusal(envelope);
      if (refused) break;
      acceptedSubjects.push(`m${subject - 1}`);
      firstAccepted ??= envelope;
    }
    const accepted = acceptedSubjects.length;
    expect(refused, 'the store never filled up').toBeDefined();
    expect(refused!.code).toBe(grpc.status.UNAVAILABLE);
    expect(refused!.metadata.get('aftersmtp-error')).toEqual(['STORAGE_FULL']);
    expect(refused!.details).toMatch(new RegExp(`storage\\.maxBytes is ${MAX_BYTES}; nothing was stored, send again later`));
    expect(accepted).toBeGreaterThan(10);
    // What the operator sees: `aftersmtp status` and /metrics show the store at its cap.
    expect(node.status()).toMatchObject({ storeMaxBytes: MAX_BYTES });
    expect(node.status().storeBytes).toBeGreaterThanOrEqual(MAX_BYTES);
    expect(await node.metrics.text()).toMatch(new RegExp(`^aftersmtp_store_max_bytes ${MAX_BYTES}$`, 'm'));
    const text = await node.metrics.text();
    const counter = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
    expect(counter('aftersmtp_store_writes_total')).toBeGreaterThanOrEqual(accepted);
    expect(counter('aftersmtp_store_commits_total')).toBeGreaterThan(0);
    expect(counter('aftersmtp_store_commits_total')).toBeLessThanOrEqual(counter('aftersmtp_store_writes_total'));

    // Refused before the signature check and the log: the log holds exactly the accepted messages.
    const kept = await seal();
    const verifiedBefore = verifications;
    expect((await refusal(kept))?.code).toBe(grpc.status.UNAVAILABLE);
    expect(verifications).toBe(verifiedBefore);
    expect(node.ledger.log.size - logSizeBefore).toBe(accepted);

    // Everything accepted is delivered (and acknowledged: acks need no new room).
    expect((await drainBob()).sort()).toEqual(acceptedSubjects.sort());

    // Acknowledged mail stays for storage.ackedRetentionMs: housekeeping before then frees nothing.
    await node.prune(Date.now());
    expect((await refusal(kept))?.code).toBe(grpc.status.UNAVAILABLE);
    // After it, housekeeping deletes it, and the refused message goes through when sent again.
    await node.prune(Date.now() + RETENTION_MS + 1000);
    expect(node.status().storeBytes).toBeLessThan(MAX_BYTES);
    // A deleted message's proof: by id until the message expires (the replay set keeps its leaf), by hash
    // for as long as the log lives; an id the node never accepted is not found, with the reason.
    const proof = (request: object) => unary(clients.provenance.GetProof.bind(clients.provenance), request, clients.metadata) as Promise<{ json: string }>;
    const byHash = JSON.parse((await proof({ messageHash: firstAccepted!.messageHash })).json);
    expect(byHash).toMatchObject({ leafIndex: expect.any(Number) });
    expect(JSON.parse((await proof({ messageId: firstAccepted!.messageId })).json)).toMatchObject({ leafIndex: byHash.leafIndex });
    await expect(proof({ messageId: new Uint8Array(16).fill(9) })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND, details: expect.stringMatching(/an id is known until its message expires, or while your mailbox holds it: ask by its message hash/) });
    expect(await refusal(kept)).toBeUndefined();
    expect(await drainBob()).toHaveLength(1);
  });
});
