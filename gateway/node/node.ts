// The AfterSMTP node: wires storage, identity, the gRPC server and the did:web HTTPS server.
// Every service has start/stop; stop drains in-flight calls, flushes storage and closes listeners.
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getHeapSpaceStatistics } from 'node:v8';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { ReflectionService } from '@grpc/reflection';
import pino, { type Logger } from 'pino';
import { loadProto } from '../../proto/index.ts';
import { createDidResolver, decodeEnvelope, SignatureVerifierPool, buildDidWebDocument, type DidResolver, type SignatureCheck } from '../../identity/index.ts';
import { dataPath, dnsServersOf, fromB64u, smtpHostname, widenServerWindows, GatewayError, toGrpcError, Scheduler, type NodeConfig, type Clock } from '../core/index.ts';
import { DnsPacketResolver, hostAddresses } from '../dns/index.ts';
import { SmtpBridge, createSmtpSending, dkimSigners, hostedStsPolicy, nodeSrs, stsPolicyDomain, STS_POLICY_PATH, scheduleReports, ReportIntake, takeReportPost, forwardBouncer } from '../smtp/index.ts';
import { openNodeFiles, nodeHttpsOrigin, nodeTlsNames, secureNodeFiles, type NodeKeys, type ReadyInfo } from '../datadir/index.ts';
import { Store, utcDay, type OutboundTransport } from '../store/index.ts';
import { OutboundQueue, type DeliveryAgent } from '../queue/index.ts';
import { NodeLedger, NodeAnchoring } from '../provenance/index.ts';
import { MailboxService, authenticateMailbox, mailboxOfBearer, RequestGuard, provenanceHandlers, adminHandlers, checkAdmin, type CallPolicy } from '../services/index.ts';
import { Federation, createTransports } from '../federation/index.ts';
import { domainOf, mailboxFor, settleAskedHolds, storeRuleCopy } from '../accept/index.ts';
import { widenQuicReads } from '../transport/index.ts';
import { WebhookSender, isEnvelopePath, serveEnvelope, type EnvelopeFetchDeps } from '../webhooks/index.ts';
import { MemoryPolicy } from './memory.ts';
import { NodeMetrics } from './metrics.ts';
import { join } from 'node:path';

export const VERSION = '0.1.0';
/** Where the transparency log is served as C2SP tlog-tiles. */
export const LOG_PREFIX = '/aftersmtp/log/';
/** gRPC framing and metadata overhead allowed on top of the envelope size limit. */
const MESSAGE_OVERHEAD = 64 * 1024;
/** Largest request an anonymous caller can make the node decode (Provenance: proofs, checkpoints, bundles). */
const PUBLIC_MESSAGE_BYTES = 1024 * 1024;

/** The credential each app service needs (Identity.Resolve included: it would otherwise make the node dial for anyone). */
function callPolicy(path: string): CallPolicy {
  const service = path.slice(1, path.indexOf('/', 1));
  if (service === 'aftersmtp.v1.Mailbox' || service === 'aftersmtp.v1.Identity') return 'mailbox';
  if (service === 'aftersmtp.v1.Admin') return 'admin';
  return 'public';
}

export interface NodeOptions {
  dataDir: string;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** did:web host overrides ("example.test" -> "127.0.0.1:8443"), for tests and static setups. */
  didWebHosts?: Record<string, string>;
  /** Extra CA certificates trusted for did:web (PEM). */
  didWebCa?: string;
  /** Ed25519 verification to use instead of the node's verifier worker (e.g. a slow one, in tests). */
  verify?: SignatureCheck;
  /** The clock of the node's periodic work (checkpoints, anchoring, witnessing, pruning, memory); tests drive it. */
  clock?: Clock;
}

export class AfterSmtpNode {
  readonly dataDir: string;
  readonly config: NodeConfig;
  readonly keys: NodeKeys;
  readonly log: Logger;
  readonly storage: Store;
  readonly resolver: DidResolver;
  readonly ledger: NodeLedger;
  readonly anchoring?: NodeAnchoring;
  /** The node's one DNS client (federation discovery, the SMTP bridge). */
  readonly dns: DnsPacketResolver;
  federation?: Federation;
  smtp?: SmtpBridge;
  /** The outbound queue (relay to peers, SMTP to legacy domains). */
  queue?: OutboundQueue;
  /** Reports others send about the node's domains (by mail to postmaster@, by POST to /.well-known/tlsrpt). */
  private readonly reportIntake: ReportIntake;
  /** The SMTP bridge's delivery agent, when bridge.smtp.outbound is enabled. */
  private smtpAgent?: DeliveryAgent;
  /** Posts deliveries to mailboxes' webhooks (webhooks.enabled). */
  private webhooks?: WebhookSender;
  private grpcServer?: grpc.Server;
  private httpsServer?: HttpsServer;
  /** Prometheus metrics, served on the metrics listener (metrics.ts). */
  readonly metrics: NodeMetrics;
  private metricsServer?: HttpServer;
  private metricsAddress: string | null = null;
  private health?: HealthImplementation;
  private startedAt = 0;
  private grpcAddress = '';
  private httpAddress: string | null = null;
  /** Runs every periodic job of the node; one start, one stop. */
  private readonly scheduler: Scheduler;
  /** Ed25519 verifications (envelopes, receipts) run on a worker thread, batched per event-loop turn. */
  private readonly verifier = new SignatureVerifierPool();
  /** Heap growth under load; memory given back after start-up and whenever the node turns idle. */
  readonly memory: MemoryPolicy;
  private readonly verify: SignatureCheck;

  constructor(opts: NodeOptions) {
    this.dataDir = opts.dataDir;
    this.verify = opts.verify ?? ((publicKey, data, signature) => this.verifier.verify(publicKey, data, signature));
    const { config, keys } = openNodeFiles(opts.dataDir, opts.env ?? process.env);
    this.config = config;
    this.keys = keys;
    this.memory = new MemoryPolicy(config.memory);
    this.log = (opts.logger ?? pino({ level: config.log.level }, pino.destination(2))).child({ node: keys.did.slice(-12) });
    this.scheduler = new Scheduler({ ...(opts.clock ? { clock: opts.clock } : {}), log: this.log.child({ component: 'scheduler' }) });
    // Before the databases open: their -wal/-shm files are created with the database's mode.
    const modes = secureNodeFiles(opts.dataDir, config);
    if (modes.fixed.length > 0) this.log.warn({ fixed: modes.fixed }, 'files of the node were open to other users: removed group and other permissions');
    if (modes.failed.length > 0) this.log.error({ failed: modes.failed }, 'files of the node are open to other users and their modes could not be changed');
    this.storage = new Store(dataPath(opts.dataDir, config.storage.file), { maxBatch: config.storage.maxBatch, durability: 'deferred', maxBytes: config.storage.maxBytes, minFreeBytes: config.storage.minFreeBytes });
    this.storage.rules.configure(config.rules);
    // Trusted for did:web: the system's roots and any configured CAs for every host; this node's own CA
    // only for the node's own names (its key sits in the data directory; a CA made before it carried
    // name constraints would otherwise vouch for any host).
    const ca = [...rootCertificates];
    for (const file of config.identity.caFiles) ca.push(readFileSync(dataPath(opts.dataDir, file), 'utf8'));
    if (opts.didWebCa) ca.push(opts.didWebCa);
    // A did:web is named by others (a peer's hello, a mailbox's Resolve): only hosts the operator mapped
    // in identity.didWebHosts may lead to a loopback or private address.
    const names = nodeTlsNames(config);
    this.dns = new DnsPacketResolver({ servers: dnsServersOf(config), timeoutMs: config.dns.timeoutMs });
    this.resolver = createDidResolver({
      resolveHost: hostAddresses(this.dns),
      ca,
      ownCa: { ca: readFileSync(dataPath(opts.dataDir, config.tls.caFile), 'utf8'), hosts: [...names.dnsNames, ...names.ipAddresses] },
      hostMap: { ...config.identity.didWebHosts, ...opts.didWebHosts },
      cacheTtlMs: config.identity.cacheTtlMs,
      failureTtlMs: config.identity.failureTtlMs, allowPrivateAddresses: false,
    });
    this.resolver.register(keys.document);
    this.ledger = new NodeLedger({
      file: dataPath(opts.dataDir, config.ledger.file),
      origin: config.ledger.origin ?? `${config.node.domains[0]}/aftersmtp`,
      signingKey: { privateKey: fromB64u(keys.signing.privateKey), publicKey: fromB64u(keys.signing.publicKey) },
      checkpointIntervalMs: config.ledger.checkpointIntervalMs,
      checkpointEvery: config.ledger.checkpointEvery,
      log: this.log,
    });
    if (config.ledger.anchor.endpoint) {
      this.anchoring = new NodeAnchoring({
        endpoint: config.ledger.anchor.endpoint,
        intervalMs: config.ledger.anchor.intervalMs,
        finality: config.ledger.anchor.finality,
        seed: fromB64u(keys.signing.privateKey),
        ledger: this.ledger,
        stateFile: join(opts.dataDir, 'anchor.json'),
        log: this.log,
        clock: this.scheduler.clock,
      });
    }
    this.metrics = this.createMetrics();
    this.reportIntake = new ReportIntake(this.storage, config.node.domains);
  }

  /**
   * After a crash the envelope store may hold messages whose leaves did not reach the disk (both are
   * synced together). Those leaves are exactly a suffix of the log: append them again, in order.
   */
  private async repairLedger(): Promise<void> {
    const lost = this.storage.messagesFromLogIndex(this.ledger.log.size);
    if (lost.length === 0) return;
    // A message whose envelope is gone (relayed and delivered since) cannot get its leaf back: its id
    // then names no leaf rather than the one the next message will take.
    const restorable = lost.filter((m) => m.envelope !== undefined);
    let next = restorable.length ? await this.ledger.appendNow(restorable.map((m) => decodeEnvelope(m.envelope!).messageHash)) : 0;
    await this.storage.setLogIndexes(lost.map((message) => ({ message, logIndex: message.envelope ? next++ : null })));
    this.log.warn({ count: restorable.length, unrestorable: lost.length - restorable.length }, 'restored transparency log leaves lost in a crash');
  }

  async start(): Promise<ReadyInfo> {
    try {
      return await this.startServices();
    } catch (err) {
      // A node that could not start (a port taken, a damaged file) releases what it already opened,
      // listeners and worker threads included, so its process exits with the error instead of hanging.
      await this.stop().catch(() => {});
      throw err;
    }
  }

  private async startServices(): Promise<ReadyInfo> {
    const { config } = this;
    this.checkConfiguredRules();
    await this.repairLedger();
    this.verifier.start();
    const { proto, packageDefinition } = loadProto();
    const tlsCert = readFileSync(dataPath(this.dataDir, config.tls.certFile));
    const tlsKey = readFileSync(dataPath(this.dataDir, config.tls.keyFile));

    const guard = new RequestGuard({
      policy: callPolicy,
      authenticate: (policy, metadata) => {
        if (policy === 'admin') checkAdmin(metadata, config.admin.tokenSha256);
        else authenticateMailbox(this.storage, metadata);
      },
      publicMessageBytes: PUBLIC_MESSAGE_BYTES,
    });
    const server = new grpc.Server({
      'grpc.max_receive_message_length': config.limits.maxEnvelopeBytes + MESSAGE_OVERHEAD,
      'grpc.max_send_message_length': config.limits.maxEnvelopeBytes + MESSAGE_OVERHEAD,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.max_concurrent_streams': config.grpc.maxConcurrentStreams,
      interceptors: [guard.interceptor()],
    });
    this.ledger.start(this.scheduler);
    if (config.federation.enabled) {
      this.federation = new Federation({
        config,
        storage: this.storage,
        ledger: this.ledger,
        resolver: this.resolver,
        verify: this.verify,
        dns: this.dns,
        log: this.log,
        nodeDid: this.keys.did,
        nodeKeys: {
          signingKeyId: this.keys.signing.keyId,
          signingPrivateKey: fromB64u(this.keys.signing.privateKey),
          signingPublicKey: fromB64u(this.keys.signing.publicKey),
        },
        scheduler: this.scheduler,
        observeRelay: (outcome, seconds) => this.metrics.relaySeconds.observe({ outcome }, seconds),
        transports: createTransports(config, {
          privateKey: fromB64u(this.keys.signing.privateKey),
          publicKey: fromB64u(this.keys.signing.publicKey),
          certPem: tlsCert.toString(),
          keyPem: tlsKey.toString(),
        }),
      });
      await this.federation.start();
      if (config.federation.quic.enabled && !(await widenQuicReads())) {
        this.log.warn('this @chainsafe/libp2p-quic version gives no access to its native stream reads: QUIC reads 4 KiB at a time (DECISIONS 31)');
      }
    }
    const mailbox = new MailboxService({
      storage: this.storage, resolver: this.resolver, ledger: this.ledger, config, nodeDid: this.keys.did, log: this.log, verify: this.verify,
      observeSubmit: (method, outcome, seconds) => this.metrics.submitSeconds.observe({ method, outcome }, seconds),
      routeKind: (domain: string) => this.routeKind(domain),
      bridgeKeyId: this.keys.agreement.keyId,
    });
    server.addService(guard.service(proto.aftersmtp.v1.Mailbox.service), mailbox.handlers());
    server.addService(guard.service(proto.aftersmtp.v1.Identity.service), this.identityHandlers());
    server.addService(guard.service(proto.aftersmtp.v1.Admin.service), adminHandlers({
      storage: this.storage, adminTokenSha256: config.admin.tokenSha256, status: () => this.status(), federation: this.federation,
      queue: { kick: () => this.queue?.kick() },
    }));
    server.addService(guard.service(proto.aftersmtp.v1.Provenance.service), provenanceHandlers({
      storage: this.storage, ledger: this.ledger, resolver: this.resolver, nodeDid: this.keys.did, nodeKeyId: this.keys.signing.keyId,
      ...(this.anchoring ? { anchor: () => this.anchoring!.status() } : {}),
      ...(this.federation ? {
        witnessing: {
          cosigned: (minSize: number) => this.federation!.witnessStore.cosignedCheckpoint(minSize),
          cosign: (req) => this.federation!.witness.cosign(req),
          witnesses: () => this.federation!.witnessDids(),
        },
      } : {}),
    }));
    this.anchoring?.start();
    this.health = new HealthImplementation({ '': 'SERVING', 'aftersmtp.v1.Mailbox': 'SERVING' });
    this.health.addToServer(server);
    new ReflectionService(packageDefinition).addToServer(server);

    const credentials = grpc.ServerCredentials.createSsl(null, [{ cert_chain: tlsCert, private_key: tlsKey }], false);
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${config.grpc.host}:${config.grpc.port}`, credentials, (err, p) => (err
        ? reject(new GatewayError('LISTEN_FAILED', `cannot listen for gRPC on ${config.grpc.host}:${config.grpc.port} (config grpc.host, grpc.port): ${err.message}`, { cause: err }))
        : resolve(p)));
    });
    if (!widenServerWindows(server, config.grpc)) {
      this.log.warn('this grpc-js version gives no access to its HTTP/2 sessions: app connections keep 64 KiB flow-control windows');
    }
    this.grpcServer = server;
    this.grpcAddress = `${config.grpc.host}:${port}`;

    if (config.http.enabled) {
      const envelopes: EnvelopeFetchDeps = {
        storage: this.storage, mailboxOf: (authorization) => mailboxOfBearer(this.storage, authorization), log: this.log.child({ component: 'webhooks' }),
      };
      this.httpsServer = createHttpsServer({ cert: tlsCert, key: tlsKey }, (req, res) => {
        if (isEnvelopePath(req.url)) serveEnvelope(envelopes, req, res);
        else if (req.method === 'POST') takeReportPost(this.reportIntake, req, res, this.log);
        else this.serveHttps(req.url ?? '/', req.headers.host, res);
      });
      await new Promise<void>((resolve, reject) => {
        this.httpsServer!.once('error', (err) => reject(new GatewayError('LISTEN_FAILED', `cannot listen for HTTPS on ${config.http.host}:${config.http.port} (config http.host, http.port): ${err.message}`, { cause: err })));
        this.httpsServer!.listen(config.http.port, config.http.host, () => resolve());
      });
      const addr = this.httpsServer.address() as AddressInfo;
      this.httpAddress = `${config.http.host}:${addr.port}`;
    }
    if (config.http.metrics.enabled) {
      const { host, port: metricsPort } = config.http.metrics;
      this.metricsServer = createHttpServer((req, res) => {
        if ((req.url ?? '/').split('?')[0] !== '/metrics') return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        this.metrics.text().then(
          (text) => res.writeHead(200, { 'content-type': this.metrics.contentType }).end(text),
          (err: unknown) => {
            this.log.error({ err: (err as Error).message }, 'collecting metrics failed');
            res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
          },
        );
      });
      await new Promise<void>((resolve, reject) => {
        this.metricsServer!.once('error', (err) => reject(new GatewayError('LISTEN_FAILED', `cannot listen for metrics on ${host}:${metricsPort} (config http.metrics.host, http.metrics.port): ${err.message}`, { cause: err })));
        this.metricsServer!.listen(metricsPort, host, () => resolve());
      });
      this.metricsAddress = `${host}:${(this.metricsServer.address() as AddressInfo).port}`;
    }
    if (config.bridge.smtp.enabled) await this.startSmtp();
    if (this.smtpOutboundEnabled()) {
      const sending = createSmtpSending({
        config, nodeDid: this.keys.did, dataDir: this.dataDir, storage: this.storage, dns: this.dns, resolver: this.resolver, logOrigin: this.ledger.origin, ledger: this.ledger,
        bridgeKey: { keyId: this.keys.agreement.keyId, privateKey: fromB64u(this.keys.agreement.privateKey) },
        keepRuleCopy: (copy) => storeRuleCopy(this.sendAsIsDeps(), copy),
        log: this.log.child({ component: 'smtp-out' }),
      });
      this.smtpAgent = sending.agent;
      this.scheduler.every('sts-refresh', { intervalMs: 3600_000, firstRunAfterMs: 120_000 }, () => sending.refreshStsPolicies(this.scheduler.clock.now()));
      scheduleReports({ ...this.sendAsIsDeps(), dns: this.dns, dkim: dkimSigners(config, this.dataDir), ...this.outboundCa(), log: this.log }, this.scheduler);
    }
    this.startQueue();
    if (config.webhooks.enabled) {
      const files = config.webhooks.caFiles;
      if (!config.http.enabled && this.storage.webhooks.list().some((h) => h.payload === 'link')) {
        this.log.warn('webhooks of the link form name envelope links on the HTTPS listener, which is off (http.enabled): their apps cannot fetch the envelopes');
      }
      this.webhooks = new WebhookSender({
        storage: this.storage, logOrigin: this.ledger.origin, httpsOrigin: nodeHttpsOrigin(this.keys.did, config), config: config.webhooks, log: this.log.child({ component: 'webhooks' }),
        ...(files.length ? { ca: [...rootCertificates, ...files.map((f) => readFileSync(dataPath(this.dataDir, f), 'utf8'))] } : {}),
      });
      this.webhooks.start();
    }
    // Housekeeping a minute after start (a node restarted more often than hourly still prunes), then hourly.
    this.scheduler.every('prune', { intervalMs: 3600_000, firstRunAfterMs: 60_000 }, () => this.prune(this.scheduler.clock.now()));
    // Held mail the operator released or expired (the CLI marks it beside the running node), each second.
    this.scheduler.every('held-mail', { intervalMs: 1000, firstRunAfterMs: 0 }, () => settleAskedHolds({ ledger: this.ledger, storage: this.storage }));
    this.startedAt = Date.now();
    this.publishOwnDocument();
    const ready: ReadyInfo = {
      event: 'ready', did: this.keys.did, grpc: this.grpcAddress, http: this.httpAddress, metrics: this.metricsAddress,
      quic: this.federation?.addresses.quic ?? null, relay: this.federation?.addresses.relay ?? null,
      ...this.smtp?.addresses(),
      domains: config.node.domains, version: VERSION,
    };
    this.memory.start(this.scheduler);
    this.scheduler.start();
    this.log.info(ready, 'node ready');
    return ready;
  }

  /** The SMTP bridge: the node's handler behind the listeners of bridge.smtp. */
  private async startSmtp(): Promise<void> {
    const log = this.log.child({ component: 'smtp' });
    const bridge = new SmtpBridge({
      ...this.sendAsIsDeps(),
      log,
      routeKind: (domain: string) => this.routeKind(domain),
      bridgeKeyId: this.keys.agreement.keyId,
      reports: this.reportIntake,
      ...(this.smtpOutboundEnabled() ? {
        forwarding: { srs: nodeSrs(this.config, this.dataDir), sealKeys: dkimSigners(this.config, this.dataDir), authservId: smtpHostname(this.config) },
      } : {}),
      ...(this.federation ? { federation: this.federation } : {}),
    });
    this.smtp = bridge;
    await bridge.start({ config: this.config, dataDir: this.dataDir, dns: this.dns, log });
  }

  /**
   * Which delivery agent takes mail for a remote domain: a peer node (relay) or the SMTP bridge, when
   * each is enabled; undefined = not routable from here.
   */
  async routeKind(domain: string): Promise<OutboundTransport | undefined> {
    const kind = this.federation ? await this.federation.routeKind(domain) : 'smtp';
    return kind === 'smtp' && !this.smtpOutboundEnabled() ? undefined : kind;
  }

  /** What sending mail in the node's own name takes (forwards, bounces, reports): acceptance, keys, bridge key. */
  private sendAsIsDeps() {
    return {
      storage: this.storage, resolver: this.resolver, ledger: this.ledger, config: this.config, verify: this.verify,
      nodeDid: this.keys.did,
      nodeKeys: { signingKeyId: this.keys.signing.keyId, signingPrivateKey: fromB64u(this.keys.signing.privateKey) },
      bridgeKey: { keyId: this.keys.agreement.keyId, publicKey: fromB64u(this.keys.agreement.publicKey) },
    };
  }

  /** Extra trust anchors of bridge.smtp.outbound.caFiles (with the system's), when any are configured. */
  private outboundCa(): { ca?: string[] } {
    const files = this.config.bridge.smtp.outbound.caFiles;
    return files.length ? { ca: [...rootCertificates, ...files.map((f) => readFileSync(dataPath(this.dataDir, f), 'utf8'))] } : {};
  }

  private smtpOutboundEnabled(): boolean {
    return this.config.bridge.smtp.enabled && this.config.bridge.smtp.outbound.enabled;
  }

  /** The outbound queue, with a delivery agent per enabled route kind. */
  private startQueue(): void {
    const { config } = this;
    this.queue = new OutboundQueue({
      ...this.sendAsIsDeps(),
      localDomains: config.node.domains,
      agents: {
        ...(this.federation ? { relay: this.federation.relay } : {}),
        ...(this.smtpAgent ? { smtp: this.smtpAgent } : {}),
      },
      retry: config.federation.retry,
      ...(this.smtpAgent ? {
        bounceOwnMail: forwardBouncer({ ...this.sendAsIsDeps(), srs: nodeSrs(config, this.dataDir) }),
      } : {}),
      capacity: Math.max(256, 4 * config.federation.maxInFlightPerPeer),
      queueScanMs: config.federation.queueScanMs,
      log: this.log.child({ component: 'outbound' }),
    });
    this.queue.start();
  }

  /**
   * A did:web node publishes where it listens (ports may be chosen at start): its document is rebuilt
   * with the AfterSMTP service endpoints and the domains it serves. did:key documents carry no
   * services; peers reach such nodes through static routes.
   */
  private publishOwnDocument(): void {
    if (!this.keys.did.startsWith('did:web:')) return;
    this.keys.document = buildDidWebDocument({
      did: this.keys.did,
      signingPublicKey: fromB64u(this.keys.signing.publicKey),
      agreementPublicKey: fromB64u(this.keys.agreement.publicKey),
      service: {
        grpc: this.grpcAddress,
        ...(this.federation?.addresses.quic ? { quic: this.federation.addresses.quic } : {}),
        ...(this.federation?.addresses.relay ? { relay: this.federation.addresses.relay } : {}),
        domains: this.config.node.domains,
      },
    });
    this.resolver.register(this.keys.document);
  }

  /**
   * A rule of config.yaml that copies or sends mail to a mailbox needs that mailbox on this node: without
   * it every message the rule matches would be refused, so the node does not start.
   */
  private checkConfiguredRules(): void {
    for (const rule of this.config.rules) {
      const then = rule.then;
      if ((then.kind === 'journal' || then.kind === 'redirect' || then.kind === 'divert') && !this.storage.mailboxes.byAddress(then.address)) {
        throw new GatewayError('CONFIG_INVALID', `rule ${rule.name} of config.yaml (rules) ${then.kind}s mail to ${then.address}, which has no mailbox on this node (aftersmtp mailbox add)`);
      }
    }
  }

  /**
   * The node's HTTPS server: did:web documents at the standard paths, the transparency log as C2SP
   * tlog-tiles under /aftersmtp/log/. All read-only and public; metrics have a listener of their own.
   * (Webhooks' envelope links, which need a mailbox's token, are answered before: webhooks/fetch.ts.)
   */
  private serveHttps(url: string, host: string | undefined, res: import('node:http').ServerResponse): void {
    const path = url.split('?')[0]!;
    // The MTA-STS policy of the node's domains, for whoever asks by the policy host's name (RFC 8461 §3.3).
    if (path === STS_POLICY_PATH && stsPolicyDomain(this.config, host)) {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-cache' }).end(hostedStsPolicy(this.config).text);
      return;
    }
    if (path.startsWith(LOG_PREFIX)) {
      const resource = this.ledger.resource(path.slice(LOG_PREFIX.length));
      if (!resource) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      const cache = resource.immutable ? 'public, max-age=31536000, immutable' : 'no-cache';
      res.writeHead(200, { 'content-type': resource.contentType, 'cache-control': cache }).end(resource.body);
      return;
    }
    let document: string | undefined;
    if (path === '/.well-known/did.json' && this.keys.did.startsWith('did:web:')) {
      document = JSON.stringify(this.keys.document);
    } else {
      const m = /^\/users\/([^/]+)\/did\.json$/.exec(path);
      if (m) {
        const did = `${this.keys.did}:users:${m[1]}`;
        document = this.storage.mailboxes.byDid(did)?.documentJson;
      }
    }
    if (!document) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/did+json', 'cache-control': 'max-age=300' }).end(document);
  }

  /** Prometheus text exposition of the node's gauges. */
  /** The node's metrics; each value is read from the part that keeps it when scraped. */
  private createMetrics(): NodeMetrics {
    const metric = (help: string, value: () => number) => ({ help, value });
    return new NodeMetrics({
      gauges: {
        aftersmtp_mailboxes: metric('Mailboxes hosted by this node', () => this.storage.mailboxes.count()),
        aftersmtp_stored_envelopes: metric('Envelopes stored for local mailboxes', () => this.storage.deliveries.count()),
        aftersmtp_ledger_tree_size: metric('Leaves in the transparency log', () => this.ledger.log.size),
        aftersmtp_ledger_checkpoint_size: metric('Tree size of the latest published checkpoint', () => this.ledger.latestCheckpoint()?.size ?? 0),
        aftersmtp_anchor_enabled: metric('1 when checkpoints are anchored on a chain', () => (this.anchoring ? 1 : 0)),
        aftersmtp_anchor_lag_entries: metric('Log entries not yet covered by a chain anchor', () => this.anchoring?.status().lagEntries ?? 0),
        aftersmtp_anchor_lag_seconds: metric('Age of the oldest checkpoint not yet anchored', () => (this.anchoring?.status().lagMs ?? 0) / 1000),
        aftersmtp_anchored_size: metric('Tree size of the latest anchored checkpoint', () => this.anchoring?.status().state?.size ?? 0),
        aftersmtp_witness_split_views: metric('Split views detected by this node as a witness of peer logs', () => this.federation?.witness.splitViewCount ?? 0),
        aftersmtp_witnessed_logs: metric('Peer logs (origins) this node follows as a witness', () => this.federation?.witness.witnessedLogCount ?? 0),
        aftersmtp_cosigned_checkpoints: metric('Checkpoints of this log cosigned by at least one peer', () => this.federation?.witnessStore.countCosignedCheckpoints() ?? 0),
        aftersmtp_store_bytes: metric('Bytes of mail the store holds (its pages in use)', () => this.storage.usage()),
        aftersmtp_disk_free_bytes: metric('Free space on the disk holding the store', () => this.storage.diskFree()),
        aftersmtp_store_max_bytes: metric('The store\'s cap (storage.maxBytes); beyond it new mail is refused; 0 = none', () => this.config.storage.maxBytes),
        aftersmtp_resident_memory_bytes: metric('Resident set size of the node process', () => process.memoryUsage.rss()),
        aftersmtp_heap_used_bytes: metric('JavaScript heap in use', () => process.memoryUsage().heapUsed),
        aftersmtp_young_generation_bytes: metric('Size of the JavaScript young generation (capped by the launcher, DECISIONS 17)',
          () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0),
      },
      counters: {
        aftersmtp_checkpoints_signed_total: metric('Checkpoints of this log signed since start', () => this.ledger.checkpointsSigned),
        aftersmtp_store_commits_total: metric('Group commits of the store since start (each writes its pages to the WAL once)', () => this.storage.commitStats.commits),
        aftersmtp_store_writes_total: metric('Writes (a stored message, an ack, a queue update, ...) those commits carried', () => this.storage.commitStats.writes),
        aftersmtp_relay_receipts_signed_total: metric('Relay receipts this node signed for peers since start', () => this.federation?.receiptStats().receipts ?? 0),
        aftersmtp_relay_receipt_signatures_total: metric('Ed25519 signatures those receipts took (a batch shares one; DECISIONS 18)', () => this.federation?.receiptStats().signatures ?? 0),
      },
      refusals: () => this.federation?.refusals() ?? {},
      outbound: () => this.storage.outbound.counts(),
      webhooks: () => this.storage.webhooks.totals(),
    });
  }

  private identityHandlers(): import('../../proto/index.ts').IdentityHandlers {
    // The caller holds a mailbox token (grpc-guard). Failures are answered alike, whatever the cause
    // (no such DID, refused, timed out, a private address): the node is no probe of what listens where.
    const notFound = (what: string) => (err: unknown) => {
      this.log.debug({ what, err: (err as Error).message }, 'resolve failed');
      const code = (err as GatewayError).code === 'UNKNOWN_RECIPIENT' ? 'UNKNOWN_RECIPIENT' : 'DID_RESOLUTION';
      return toGrpcError(new GatewayError(code, `cannot resolve ${what}`));
    };
    return {
      Resolve: (call, callback) => {
        const { did, address } = call.request;
        if (address && !this.config.node.domains.includes(domainOf(address))) {
          // A domain without an AfterSMTP node gets this node's own document, its key the bridge key.
          this.routeKind(domainOf(address)).then(async (kind) => {
            if (kind === 'smtp') return { did: this.keys.did, documentJson: JSON.stringify(this.keys.document), legacy: true };
            if (kind === 'relay' && this.federation) return { ...(await this.federation.resolveRemoteAddress(address)), legacy: false };
            throw new GatewayError('UNKNOWN_RECIPIENT', `no route to ${domainOf(address)}`);
          }).then(
            (found) => callback(null, found),
            (err) => callback(notFound(address)(err)),
          );
          return;
        }
        if (address) {
          const mailbox = mailboxFor(this.storage, address);
          if (!mailbox) return callback(toGrpcError(new GatewayError('UNKNOWN_RECIPIENT', `no mailbox ${address} on this node`)));
          return callback(null, { did: mailbox.did, documentJson: mailbox.documentJson });
        }
        this.resolver.resolveKeys(did).then(
          (resolved) => callback(null, { did, documentJson: JSON.stringify(resolved.document) }),
          (err) => callback(notFound(did)(err)),
        );
      },
      Publish: (_call, callback) => callback({ code: grpc.status.UNIMPLEMENTED, details: 'Publish is not implemented in this version' }),
    };
  }

  /**
   * Hourly housekeeping: expired replay ids, messages acknowledged longer ago than
   * storage.ackedRetentionMs, and queue records of recipients finished long ago.
   */
  async prune(nowMs = Date.now()): Promise<void> {
    try {
      await this.storage.replay.prune(nowMs);
      const ackedBefore = nowMs - this.config.storage.ackedRetentionMs;
      while ((await this.storage.deliveries.pruneAcked(ackedBefore)) > 0) { /* the next chunk */ }
      const before = nowMs - this.config.federation.finishedRetentionMs;
      while ((await this.storage.outbound.pruneFinished(before)) > 0) { /* the next chunk */ }
      // DSN requests outlive any notice they govern once the longest message lifetime has passed.
      await this.storage.dsn.prune(nowMs - this.config.limits.maxLifetimeMs);
      await this.storage.requireTls.prune(nowMs - this.config.limits.maxLifetimeMs);
      await this.storage.forwards.pruneForwarded(nowMs - this.config.limits.maxLifetimeMs);
      // Labels of messages no mailbox, hold or queue has any more; marks of released recipients that left the queue.
      while ((await this.storage.rules.prune(nowMs - this.config.limits.maxLifetimeMs)) >= 1000) { /* the next chunk */ }
      // A settled hook row is kept as long as an acknowledged delivery: `webhooks list` counts it meanwhile.
      await this.storage.webhooks.pruneSettled(ackedBefore);
      // TLS outcomes are kept a month: time for a day's TLS-RPT report to be made and sent.
      await this.storage.tlsOutcomes.prune(utcDay(nowMs - 31 * 24 * 3600_000));
      await this.storage.dmarcObservations.prune(utcDay(nowMs - 31 * 24 * 3600_000));
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'pruning failed; retried in an hour');
    }
  }

  status() {
    return {
      did: this.keys.did,
      version: VERSION,
      domains: this.config.node.domains,
      mailboxes: this.storage.mailboxes.count(),
      storedEnvelopes: this.storage.deliveries.count(),
      storeBytes: this.storage.usage(),
      storeMaxBytes: this.config.storage.maxBytes,
      diskFreeBytes: this.storage.diskFree(),
      minFreeBytes: this.config.storage.minFreeBytes,
      uptimeMs: this.startedAt ? Date.now() - this.startedAt : 0,
      grpc: this.grpcAddress,
      quic: this.federation?.addresses.quic ?? '',
      smtp: this.smtp?.addresses() ?? {},
      refused: this.federation?.refusals() ?? {},
      splitViews: this.federation?.witness.splitViewCount ?? 0,
      cosignedCheckpoints: this.federation?.witnessStore.countCosignedCheckpoints() ?? 0,
      outbound: this.storage.outbound.counts(),
    };
  }

  /** Drains: stop taking calls, let in-flight ones finish (bounded), flush storage, close. */
  async stop(graceMs = 5000): Promise<void> {
    await this.scheduler.stop();
    this.health?.setStatus('', 'NOT_SERVING');
    const server = this.grpcServer;
    // SMTP first: its sessions finish (or get 421) while the store still takes what they hand over.
    await this.smtp?.stop().catch((err: Error) => this.log.warn({ err: err.message }, 'closing the SMTP listeners failed'));
    this.storage.events.shutdown();
    await this.queue?.stop();
    await this.webhooks?.stop();
    await this.federation?.stop();
    if (server) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => { server.forceShutdown(); resolve(); }, graceMs);
        server.tryShutdown(() => { clearTimeout(timer); resolve(); });
      });
    }
    for (const httpServer of [this.httpsServer, this.metricsServer]) {
      if (!httpServer) continue;
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    }
    await this.anchoring?.stop();
    await this.storage.close();
    await this.ledger.stop();
    await this.verifier.stop();
    this.log.info('node stopped');
  }
}
