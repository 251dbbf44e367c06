// Security issue #20, witnessing: the witness's state cannot be split by presenting one log key under
// two DIDs, nobody gets the witness's own origin cosigned, throwaway DIDs cannot crowd out configured
// peers, and anonymous GetCheckpoint calls cannot make a node sign. Two real nodes on loopback:
// A (did:key, a.test) is the witness; B (did:web:b.test, document served by B over HTTPS) is its peer.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { NodeLab, metricsOf, type LabNode } from '../e2e/lab.ts';
import { until } from '../helpers.ts';
import { openNodeFiles } from '../../gateway/datadir/index.ts';
import { connect, readProfile, unary } from '../../gateway/client/index.ts';
import { QuicTransport } from '../../gateway/transport/index.ts';
import { requestCosign } from '../../gateway/federation/index.ts';
import { ed25519NoteSigner, generateEd25519KeyPair, signCheckpointNote } from '../../ledger/index.ts';
import { didKeyFromEd25519 } from '../../identity/index.ts';
import type { LedgerStatusReply__Output } from '../../proto/index.ts';
import type { CosignReply__Output } from '../../proto/gen/aftersmtp/v1/CosignReply.ts';
import type { Checkpoint__Output } from '../../proto/gen/aftersmtp/v1/Checkpoint.ts';

const fromB64u = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));
type KeyPair = { privateKey: Uint8Array; publicKey: Uint8Array };

/** A checkpoint note of `size` with a random root, signed by `key` under `origin`. */
function checkpointNote(origin: string, size: number, key: KeyPair): string {
  return signCheckpointNote({ origin, size, root: randomBytes(32) }, ed25519NoteSigner(origin, key));
}

/** The number after a metric's name in a node's /metrics. */
function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`no metric ${name}`);
  return Number(m[1]);
}

describe('security #20: witnessing', { timeout: 180_000 }, () => {
  const lab = new NodeLab({ AFTERSMTP_LOG__LEVEL: 'warn', AFTERSMTP_FEDERATION__WITNESS__ENABLED: 'false' });
  let a: LabNode;
  let b: LabNode;
  let bKey: KeyPair;
  /** Anonymous gRPC calls to A's public port (no token: the profile only provides A's CA). */
  let anonymous: ReturnType<typeof connect>;

  beforeAll(async () => {
    b = await lab.makeNode('b', 'b.test', { method: 'web', env: { AFTERSMTP_LEDGER__CHECKPOINT_INTERVAL_MS: '200' } });
    await lab.start(b);
    a = await lab.makeNode('a', 'a.test', {
      env: {
        AFTERSMTP_IDENTITY__DID_WEB_HOSTS: JSON.stringify({ 'b.test': b.proc!.ready.http }),
        AFTERSMTP_IDENTITY__CA_FILES: JSON.stringify([join(b.data, 'tls/ca.crt')]),
        // Fewer than the throwaway DIDs below, so that filling it would show.
        AFTERSMTP_FEDERATION__WITNESS__MAX_LOGS: '100',
        // A signs no checkpoint on its own during the test: every signature counted is on demand.
        AFTERSMTP_LEDGER__CHECKPOINT_INTERVAL_MS: '3600000',
        AFTERSMTP_LEDGER__CHECKPOINT_EVERY: '1000000',
      },
    });
    await lab.start(a);
    expect(b.did).toBe('did:web:b.test');
    // A knows b.test's node as configured (`aftersmtp route add`): B is a real, configured peer.
    await lab.route(a, b);
    await lab.addMailbox('alice@a.test', a, 'alice');
    await lab.addMailbox('bob@a.test', a, 'bob');
    await lab.addMailbox('carol@b.test', b, 'carol');
    const { keys } = openNodeFiles(b.data);
    bKey = { privateKey: fromB64u(keys.signing.privateKey), publicKey: fromB64u(keys.signing.publicKey) };
    anonymous = connect(readProfile(lab.profile('alice')), a.proc!.ready.grpc);
  });

  afterAll(async () => {
    anonymous?.close();
    await lab.close();
  });

  const publicCosign = (req: { note: string; oldSize: number; logDid: string }) =>
    unary<object, CosignReply__Output>(anonymous.provenance.Cosign.bind(anonymous.provenance), { ...req, consistency: [] }, new grpc.Metadata());
  const grpcCode = (p: Promise<unknown>) => p.then(() => 'OK', (err: grpc.ServiceError) => grpc.status[err.code]);

  it('20.3i one key presented as did:web and as did:key cannot get two roots of one size cosigned; the split view is recorded', async () => {
    const origin = 'b.test/witness-split';
    const transport = new QuicTransport(bKey);
    const [host, port] = a.proc!.ready.quic!.split(':');
    const conn = await transport.dial({ host: host!, port: Number(port) });
    try {
      const first = await requestCosign(conn, { note: checkpointNote(origin, 5, bKey), oldSize: 0, consistency: [], logDid: b.did });
      expect(first.errorCode, first.errorMessage).toBe('');
      expect(first.cosignatureLine).toMatch(/^— did:key:/);
      // The same key, now as its did:key, with another tree of the same size: a fresh "log" before.
      const asDidKey = didKeyFromEd25519(bKey.publicKey);
      const second = await requestCosign(conn, { note: checkpointNote(origin, 5, bKey), oldSize: 0, consistency: [], logDid: asDidKey });
      expect(['SPLIT_VIEW', 'PEER_REJECTED']).toContain(second.errorCode);
      expect(second.cosignatureLine).toBe('');
      expect(metric(await metricsOf(a), 'aftersmtp_witness_split_views')).toBe(1);
      // Anonymously on the public port too: the key A holds for the origin shows the fork.
      expect(await grpcCode(publicCosign({ note: checkpointNote(origin, 5, bKey), oldSize: 0, logDid: asDidKey }))).toBe('FAILED_PRECONDITION');
      expect(metric(await metricsOf(a), 'aftersmtp_witness_split_views')).toBe(2);
    } finally {
      await transport.close();
    }
  });

  it('20.3ii an anonymous public Cosign of a checkpoint under the witness node\'s own origin is refused', async () => {
    const stranger = generateEd25519KeyPair();
    const note = checkpointNote('a.test/aftersmtp', 3, stranger);
    expect(await grpcCode(publicCosign({ note, oldSize: 0, logDid: didKeyFromEd25519(stranger.publicKey) }))).toBe('PERMISSION_DENIED');
    // Nor under another origin of A's domain.
    const other = checkpointNote('a.test/other-log', 3, stranger);
    expect(await grpcCode(publicCosign({ note: other, oldSize: 0, logDid: didKeyFromEd25519(stranger.publicKey) }))).toBe('PERMISSION_DENIED');
  });

  it('20.3iii 1,000 throwaway DIDs on the public port leave no state, and the configured peer is still cosigned', async () => {
    const codes = new Map<string, number>();
    for (let batch = 0; batch < 20; batch++) {
      await Promise.all(Array.from({ length: 50 }, async (_, i) => {
        const key = generateEd25519KeyPair();
        const note = checkpointNote(`throwaway-${batch}-${i}.test/aftersmtp`, 1, key);
        const code = await grpcCode(publicCosign({ note, oldSize: 0, logDid: didKeyFromEd25519(key.publicKey) }));
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }));
    }
    // B's real log: one message makes it grow, B signs a checkpoint, A cosigns it.
    await lab.send('carol', b, { address: 'carol@b.test', mailbox: 'carol' }, 'grow the log');
    const bClients = connect(readProfile(lab.profile('carol')), b.proc!.ready.grpc);
    try {
      const status = await until('a checkpoint of B\'s log', async () => {
        const s = await unary<object, LedgerStatusReply__Output>(bClients.provenance.LedgerStatus.bind(bClients.provenance), {}, new grpc.Metadata());
        return s.latestCheckpoint ? s : undefined;
      });
      const reply = await publicCosign({ note: status.latestCheckpoint!.note, oldSize: 0, logDid: b.did });
      expect(reply.cosignatureLine).toMatch(/^— did:key:/);
    } finally {
      bClients.close();
    }
    // Throwaway DIDs have no configured route: refused before any lookup, and nothing is kept of them.
    expect(Object.fromEntries(codes)).toEqual({ PERMISSION_DENIED: 1000 });
    const metrics = await metricsOf(a);
    // B's two origins (this test's and the split test's); nothing of the throwaway DIDs.
    expect(metric(metrics, 'aftersmtp_witnessed_logs')).toBeLessThanOrEqual(2);
    expect(metrics).not.toMatch(/code="cosign\.LIMIT"/);
  });

  it('20.9 a burst of 1,000 anonymous GetCheckpoint calls while the log grows makes the node sign no checkpoint', async () => {
    const before = metric(await metricsOf(a), 'aftersmtp_checkpoints_signed_total');
    const codes = new Map<string, number>();
    for (let round = 0; round < 20; round++) {
      // The log grows between bursts, and each call asks for a checkpoint larger than any signed yet.
      await lab.send('alice', a, { address: 'bob@a.test', mailbox: 'bob' }, `leaf ${round}`);
      await Promise.all(Array.from({ length: 50 }, async () => {
        const code = await grpcCode(unary<object, Checkpoint__Output>(anonymous.provenance.GetCheckpoint.bind(anonymous.provenance), { minSize: 1_000_000 }, new grpc.Metadata()));
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }));
    }
    expect(metric(await metricsOf(a), 'aftersmtp_checkpoints_signed_total') - before).toBe(0);
    // Anonymous callers get the latest published checkpoint, never one larger signed for them.
    expect(Object.fromEntries(codes)).toEqual({ NOT_FOUND: 1000 });
  });
});
