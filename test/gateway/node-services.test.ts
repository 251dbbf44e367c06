// The node's ledger wiring and standard services: receipts on submit and delivery, proofs through
// gRPC, repair of log leaves lost in a crash, and the gRPC health and reflection services.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import pino from 'pino';
import { tempDir, initNodeWithMailboxes } from '../helpers.ts';
import { AfterSmtpNode } from '../../gateway/node/index.ts';
import { connect, profileResolver, sealFor, submit, subscribe, unary, type MailboxProfile } from '../../gateway/client/index.ts';
import { verifyProofBundle } from '../../gateway/provenance/index.ts';
import { createDidResolver } from '../../identity/index.ts';

const require = (await import('node:module')).createRequire(import.meta.url);

describe('node services', () => {
  const dir = tempDir();
  const data = join(dir.path, 'node');
  let node: AfterSmtpNode;
  let alice: MailboxProfile;
  let bob: MailboxProfile;
  let address: string;
  let httpAddress: string;
  let metricsAddress: string;
  const start = async () => {
    node = new AfterSmtpNode({ dataDir: data, logger: pino({ level: 'silent' }), env: { AFTERSMTP_LEDGER__CHECKPOINT_INTERVAL_MS: '200' } });
    const ready = await node.start();
    address = ready.grpc;
    httpAddress = ready.http!;
    metricsAddress = ready.metrics!;
  };
  const httpsGet = async (path: string): Promise<{ status: number; body: Buffer; type: string }> => {
    const { request } = await import('node:https');
    const ca = (await import('node:fs')).readFileSync(join(data, 'tls/ca.crt'));
    const [host, port] = httpAddress.split(':');
    return new Promise((resolve, reject) => {
      request({ host, port: Number(port), path, ca, servername: 'localhost' }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks), type: String(res.headers['content-type']) }));
      }).on('error', reject).end();
    });
  };

  beforeAll(async () => {
    ({ alice, bob } = await initNodeWithMailboxes(dir.path, 'svc.test'));
    await start();
  });
  afterAll(async () => { await node?.stop(500); dir.cleanup(); });

  it('answers submits and deliveries with receipts whose proofs verify', async () => {
    const clients = connect(alice, address);
    const hashes: string[] = [];
    for (let i = 0; i < 3; i++) {
      const sealed = await sealFor(alice, clients, profileResolver(alice), { to: ['bob@svc.test'], subject: `r${i}`, text: 'receipt' });
      const reply = await submit(clients, sealed.envelope);
      expect(reply.receipt?.logOrigin).toBe('svc.test/aftersmtp');
      expect(reply.receipt?.leafIndex).toBe(i);
      expect(Buffer.from(reply.receipt!.messageHash).equals(Buffer.from(sealed.messageHash))).toBe(true);
      hashes.push(Buffer.from(sealed.messageHash).toString('hex'));
    }
    const bobClients = connect(bob, address);
    const seen: { seq: number; hash: string }[] = [];
    await subscribe(bob, bobClients, profileResolver(bob), { count: 3, onMessage: (m) => { seen.push({ seq: m.seq, hash: m.messageHash }); } });
    expect(seen.map((s) => s.hash)).toEqual(hashes);

    const proof = await unary(clients.provenance.GetProof.bind(clients.provenance), { messageHash: Buffer.from(hashes[2]!, 'hex') }, clients.metadata) as { json: string };
    const bundle = JSON.parse(proof.json);
    expect(bundle.leafIndex).toBe(2);
    const report = await verifyProofBundle(bundle, { resolver: createDidResolver({}), logDid: node.keys.did, witnesses: [] });
    expect(report.result).toBe('valid-unanchored');
    // Without a trusted log DID the bundle's own key proves nothing.
    expect((await verifyProofBundle(bundle, { resolver: createDidResolver({}) })).result).toBe('unverified');
    // Server-side verification says the same; a tampered bundle fails there too.
    const server = await unary(clients.provenance.Verify.bind(clients.provenance), { bundleJson: proof.json }, clients.metadata) as { ok: boolean };
    expect(server.ok).toBe(true);
    bundle.leafIndex = 1;
    const bad = await unary(clients.provenance.Verify.bind(clients.provenance), { bundleJson: JSON.stringify(bundle) }, clients.metadata) as { ok: boolean; steps: { name: string; status: string }[] };
    expect(bad.ok).toBe(false);
    expect(bad.steps.find((s) => s.name === 'inclusion')?.status).toBe('failed');
    clients.close();
    bobClients.close();
  });

  it('restores log leaves lost in a crash, so every stored message stays provable', async () => {
    await node.stop(500);
    // The log lost everything (worst case of a tail lost before its sync); the envelopes survived.
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(data, `ledger.db${suffix}`), { force: true });
    await start();
    expect(node.ledger.log.size).toBe(3);
    const clients = connect(alice, address);
    const status = await unary(clients.provenance.LedgerStatus.bind(clients.provenance), {}, clients.metadata) as { treeSize: number; anchoring: string };
    expect(status.treeSize).toBe(3);
    expect(status.anchoring).toBe('off');
    const sealed = await sealFor(alice, clients, profileResolver(alice), { to: ['bob@svc.test'], subject: 'after', text: 'repair' });
    const reply = await submit(clients, sealed.envelope);
    expect(reply.receipt?.leafIndex).toBe(3);
    clients.close();
  });

  it('serves its log as tlog-tiles and its gauges as Prometheus metrics over HTTPS', async () => {
    await node.ledger.checkpointIfGrown();
    const cp = node.ledger.latestCheckpoint()!;
    const checkpoint = await httpsGet('/aftersmtp/log/checkpoint');
    expect(checkpoint.status).toBe(200);
    expect(checkpoint.body.toString()).toBe(cp.note);
    const tile = await httpsGet(`/aftersmtp/log/tile/0/000.p/${cp.size}`);
    expect(tile.status).toBe(200);
    expect(tile.body.length).toBe(32 * cp.size);
    for (let i = 0; i < cp.size; i++) expect(tile.body.subarray(32 * i, 32 * i + 32).equals(Buffer.from(node.ledger.log.leafHash(i)))).toBe(true);
    // Beyond the published checkpoint: not served.
    expect((await httpsGet(`/aftersmtp/log/tile/0/000.p/${cp.size + 1}`)).status).toBe(404);
    expect((await httpsGet('/aftersmtp/log/tile/0/x001/000')).status).toBe(404);
    // Metrics are on their own loopback listener, not on the public HTTPS one.
    expect((await httpsGet('/metrics')).status).toBe(404);
    const metrics = await new Promise<{ body: Buffer }>((resolve, reject) => {
      const [host, port] = metricsAddress.split(':');
      httpGet({ host, port: Number(port), path: '/metrics' }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ body: Buffer.concat(chunks) }));
      }).on('error', reject);
    });
    expect(metrics.body.toString()).toMatch(new RegExp(`^aftersmtp_ledger_checkpoint_size ${cp.size}$`, 'm'));
    expect(metrics.body.toString()).toMatch(/^aftersmtp_anchor_enabled 0$/m);
    // This node runs in the test process: its memory gauges are this process's.
    const gauge = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(metrics.body.toString())?.[1]);
    expect(gauge('aftersmtp_resident_memory_bytes')).toBeGreaterThan(20 * 2 ** 20);
    expect(gauge('aftersmtp_resident_memory_bytes')).toBeLessThan(2 * process.memoryUsage.rss());
    expect(gauge('aftersmtp_heap_used_bytes')).toBeGreaterThan(1 * 2 ** 20);
    expect(gauge('aftersmtp_young_generation_bytes')).toBeGreaterThan(0);
    // The standard process metrics, and the latency of the submissions the earlier test made.
    expect(metrics.body.toString()).toMatch(/^process_cpu_seconds_total \d/m);
    expect(metrics.body.toString()).toMatch(/^nodejs_eventloop_lag_seconds \d/m);
    const submitted = /^aftersmtp_submit_seconds_count\{method="Submit",outcome="ok"\} (\d+)$/m.exec(metrics.body.toString());
    expect(Number(submitted?.[1])).toBeGreaterThan(0);
    expect(metrics.body.toString()).toMatch(/^aftersmtp_submit_seconds_bucket\{le="0.005",method="Submit",outcome="ok"\} \d+$/m);
  });

  it('serves the standard gRPC health and reflection services', async () => {
    const ca = (await import('node:fs')).readFileSync(join(data, 'tls/ca.crt'));
    const creds = grpc.credentials.createSsl(ca);
    const opts = { 'grpc.ssl_target_name_override': 'localhost' };
    const { service: healthService } = require('grpc-health-check');
    const HealthClient = grpc.makeGenericClientConstructor(healthService, 'Health');
    const health = new HealthClient(address, creds, opts) as any;
    const status = await new Promise<any>((res, rej) => health.check({ service: '' }, (e: Error | null, r: unknown) => (e ? rej(e) : res(r))));
    expect(status.status).toBe('SERVING');
    health.close();

    const reflectionProto = require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1alpha/reflection.proto');
    const def = protoLoader.loadSync(reflectionProto, {});
    const pkg = grpc.loadPackageDefinition(def) as any;
    const client = new pkg.grpc.reflection.v1alpha.ServerReflection(address, creds, opts);
    const call = client.ServerReflectionInfo();
    const names = await new Promise<string[]>((res, rej) => {
      call.on('data', (r: any) => { res(r.listServicesResponse.service.map((s: any) => s.name)); call.end(); });
      call.on('error', rej);
      call.write({ listServices: '*' });
    });
    expect(names).toEqual(expect.arrayContaining(['aftersmtp.v1.Mailbox', 'aftersmtp.v1.Provenance', 'aftersmtp.v1.Identity', 'aftersmtp.v1.Admin']));
    client.close();
  });
});
