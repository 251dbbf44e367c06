// Federation wiring: listeners on every transport, inbound relay streams, routing, the relay agent of the outbound queue.
import { dnsServersOf, GatewayError, type Scheduler, type NodeConfig } from '../core/index.ts';
import type { Logger } from 'pino';
import type { DidResolver, SignatureCheck } from '../../identity/index.ts';
import type { PeerTransport, PeerConnection } from '../transport/index.ts';
import type { OutboundTransport, Store, WitnessRepository } from '../store/index.ts';
import type { NodeLedger } from '../provenance/index.ts';
import { Router, isSmtpEndpoint } from './routing.ts';
import { DnsPacketResolver, type DnsResolver } from '../dns/index.ts';
import { RelayAgent, type PeerStatus } from './relay-agent.ts';
import { ReceiptBatcher } from './receipt.ts';
import { RELAY_METHOD, RESOLVE_METHOD, serveRelayStream, serveResolve, resolveAtPeer } from './relay.ts';
import { domainOf, mailboxFor } from '../accept/index.ts';
import { COSIGN_METHOD, CosignCollector, Witness, serveCosign } from './witness.ts';
import { PeerBudgets } from './peer-budget.ts';

export interface FederationOptions {
  config: NodeConfig;
  storage: Store;
  ledger: NodeLedger;
  resolver: DidResolver;
  log: Logger;
  nodeDid: string;
  nodeKeys: { signingKeyId: string; signingPrivateKey: Uint8Array; signingPublicKey: Uint8Array };
  transports: PeerTransport[];
  /** Ed25519 verification off the event loop (the node's SignatureVerifierPool). */
  verify?: SignatureCheck;
  /** The node's one DNS client; default: one of its own from dns.servers. */
  dns?: DnsResolver;
  /** Told how long each relayed envelope waited for its acknowledgement (metrics). */
  observeRelay?: (outcome: 'ok' | 'error', seconds: number) => void;
  /** Runs the witness rounds. */
  scheduler: Scheduler;
}

export interface FederationCounters { accepted: number; refused: Record<string, number>; peersRefused: number }

export class Federation {
  readonly router: Router;
  /** Carries queued mail to peer nodes (the outbound queue's relay agent). */
  readonly relay: RelayAgent;
  readonly witnessStore: WitnessRepository;
  /** Our role as a witness of peers' logs. */
  readonly witness: Witness;
  /** Our role as a log: collecting peers' cosignatures of our checkpoints. */
  readonly cosignatures: CosignCollector;
  readonly counters: FederationCounters = { accepted: 0, refused: {}, peersRefused: 0 };
  private readonly opts: FederationOptions;
  private readonly connections = new Set<PeerConnection>();
  /** Each connected peer's share of this node's work (federation.peerBudget). */
  readonly peerBudgets: PeerBudgets;
  /** Signs the receipts of relayed envelopes, those made durable together under one signature. */
  private readonly receipts: ReceiptBatcher;
  addresses: { quic?: string; relay?: string } = {};

  constructor(opts: FederationOptions) {
    this.opts = opts;
    const { config } = opts;
    this.router = new Router({
      storage: opts.storage,
      resolver: opts.resolver,
      configRoutes: config.federation.routes,
      dns: opts.dns ?? new DnsPacketResolver({ servers: dnsServersOf(config), timeoutMs: config.dns.timeoutMs }),
      localDomains: config.node.domains,
    });
    this.receipts = new ReceiptBatcher(opts.nodeKeys.signingPrivateKey);
    this.peerBudgets = new PeerBudgets(config.federation.peerBudget);
    this.relay = new RelayAgent({
      storage: opts.storage,
      resolver: opts.resolver,
      verify: opts.verify,
      router: this.router,
      transports: opts.transports,
      nodeDid: opts.nodeDid,
      localDomains: config.node.domains,
      maxInFlightPerPeer: config.federation.maxInFlightPerPeer,
      ackTimeoutMs: config.federation.ackTimeoutMs,
      dialTimeoutMs: config.federation.dialTimeoutMs,
      log: opts.log.child({ component: 'outbound' }),
      ...(opts.observeRelay ? { observeRelay: opts.observeRelay } : {}),
    });
    const witnessing = config.federation.witness;
    const signingKey = { privateKey: opts.nodeKeys.signingPrivateKey, publicKey: opts.nodeKeys.signingPublicKey };
    this.witnessStore = opts.storage.witness;
    this.witness = new Witness({
      store: this.witnessStore, resolver: opts.resolver, nodeDid: opts.nodeDid, signingKey, maxLogs: witnessing.maxLogs,
      ownOrigin: opts.ledger.origin, localDomains: config.node.domains,
      routeOf: async (domain, { discover }) => {
        const configured = this.router.configuredRoute(domain);
        if (configured || !discover) return configured && { did: configured.record.did, configured: true };
        try {
          return { did: (await this.router.route(domain)).did, configured: false };
        } catch {
          return undefined;
        }
      },
      log: opts.log.child({ component: 'witness' }),
    });
    this.cosignatures = new CosignCollector({
      store: this.witnessStore, ledger: opts.ledger, resolver: opts.resolver, nodeDid: opts.nodeDid, intervalMs: witnessing.intervalMs,
      witnesses: () => this.witnessDomains(),
      connect: async (domain) => {
        const channel = await this.relay.channelFor(domain);
        return { conn: channel.conn, peerDid: channel.peerDid };
      },
      log: opts.log.child({ component: 'cosign' }),
    });
  }

  /** The peers asked to cosign: configured ones, else every peer with a route or a relay channel. */
  witnessDomains(): string[] {
    const { config, storage } = this.opts;
    const configured = config.federation.witness.peers;
    if (configured.length) return configured.map((d) => d.toLowerCase());
    const domains = new Set<string>([
      // Routes to SMTP servers lead to no node that could cosign.
      ...[...config.federation.routes, ...storage.routes.list()].filter((r) => !isSmtpEndpoint(r.endpoint)).map((r) => r.domain.toLowerCase()),
      ...this.relay.peerStatus().map((p) => p.domain.toLowerCase()),
    ]);
    for (const local of config.node.domains) domains.delete(local.toLowerCase());
    return [...domains].sort();
  }

  /**
   * The DIDs of witnessDomains() known without a lookup: from a route, or from the authenticated
   * connection that obtained its cosignature or carried mail. A domain not yet reached has none yet.
   */
  witnessDids(): string[] {
    const { config, storage } = this.opts;
    const connected = new Map(this.relay.peerStatus().map((p) => [p.domain.toLowerCase(), p.did]));
    const dids = new Set<string>();
    for (const domain of this.witnessDomains()) {
      const did = config.federation.routes.find((r) => r.domain.toLowerCase() === domain)?.did
        ?? storage.routes.for(domain)?.did ?? (this.cosignatures.status(domain)?.did || connected.get(domain));
      if (did) dids.add(did);
    }
    return [...dids];
  }

  /** Refusals since start by reason: relayed envelopes, peers, and cosign requests ("cosign.CODE"). */
  /** Relay receipts this node signed for peers, and the signatures that took (batches share one). */
  receiptStats(): { receipts: number; signatures: number } {
    return { ...this.receipts.stats };
  }

  refusals(): Record<string, number> {
    const out: Record<string, number> = { ...this.counters.refused };
    if (this.counters.peersRefused) out.PEER_REJECTED = (out.PEER_REJECTED ?? 0) + this.counters.peersRefused;
    for (const [code, n] of Object.entries(this.witness.refused)) out[`cosign.${code}`] = n;
    return out;
  }

  /**
   * Which delivery agent takes mail for `domain`: `relay` when a route or discovery names an AfterSMTP
   * node, `smtp` when the operator routed it to an SMTP server or it has no AfterSMTP node (the bridge
   * sends it, if enabled), undefined when it cannot be routed. A discovery that fails for a reason that may
   * pass (DNS timeout, DID document unreachable) queues the mail for relay like an MTA does on a
   * temporary failure: outbound retries and says why.
   */
  async routeKind(domain: string): Promise<OutboundTransport | undefined> {
    if (this.router.smtpRoute(domain)) return 'smtp';
    try {
      await this.router.route(domain);
      return 'relay';
    } catch (err) {
      const code = (err as GatewayError).code;
      if (code === 'DISCOVERY') {
        this.opts.log.warn({ domain, err: (err as Error).message }, 'discovery failed; queueing for retry');
        return 'relay';
      }
      return code === 'UNKNOWN_RECIPIENT' ? 'smtp' : undefined;
    }
  }

  /** Whether the node `peerDid` may send mail from `domain` (its route resolves to that DID). */
  async peerServesDomain(peerDid: string, domain: string): Promise<boolean> {
    try {
      return (await this.router.route(domain)).did === peerDid;
    } catch {
      return false;
    }
  }

  async start(): Promise<{ quic?: string; relay?: string }> {
    const { config, log } = this.opts;
    for (const transport of this.opts.transports) {
      transport.onConnection((conn) => this.onConnection(conn));
      const section = transport.kind === 'quic' ? 'quic' : 'relay';
      const listen = config.federation[section];
      const addr = await transport.listen({ host: listen.host, port: listen.port }).catch((err: Error) => {
        throw new GatewayError('LISTEN_FAILED', `${err.message} (${transport.kind === 'quic' ? 'QUIC, UDP' : 'HTTP/2 relay, TCP'}; config federation.${section}.host, federation.${section}.port)`, { cause: err });
      });
      this.addresses[transport.kind === 'quic' ? 'quic' : 'relay'] = `${addr.host}:${addr.port}`;
    }
    if (config.federation.witness.enabled) this.cosignatures.start(this.opts.scheduler);
    log.info(this.addresses, 'federation listening');
    return this.addresses;
  }

  private onConnection(conn: PeerConnection): void {
    const { config, log } = this.opts;
    const budget = this.peerBudgets.admit(conn.remotePublicKey);
    if (!budget) {
      log.warn({ peer: conn.remoteAddress, max: config.federation.peerBudget.maxConnections }, 'peer connection refused: the peer has its maximum of connections open');
      this.counters.refused.PEER_CONNECTIONS = (this.counters.refused.PEER_CONNECTIONS ?? 0) + 1;
      void conn.close();
      return;
    }
    this.connections.add(conn);
    void conn.closed.finally(() => { this.connections.delete(conn); budget.leave(); });
    conn.onStream((method, stream) => {
      if (method === COSIGN_METHOD) {
        void serveCosign(stream, conn, this.witness);
        return;
      }
      if (method === RESOLVE_METHOD) {
        void serveResolve(stream, (address) => {
          const mailbox = mailboxFor(this.opts.storage, address);
          return mailbox ? { did: mailbox.did, documentJson: mailbox.documentJson } : undefined;
        });
        return;
      }
      if (method !== RELAY_METHOD) {
        stream.abort(new Error(`unknown method ${method}`));
        return;
      }
      void serveRelayStream(conn, stream, {
        storage: this.opts.storage,
        resolver: this.opts.resolver,
        ledger: this.opts.ledger,
        verify: this.opts.verify,
        config,
        nodeDid: this.opts.nodeDid,
        localDomains: config.node.domains,
        maxInFlight: config.federation.maxInFlightPerPeer,
        budget,
        log: log.child({ component: 'relay-in' }),
        peerServesDomain: (did, domain) => this.peerServesDomain(did, domain),
        receipts: this.receipts,
        onEvent: (e) => {
          if (e.accepted) this.counters.accepted++;
          else if (!e.peerDid) this.counters.peersRefused++;
          else this.counters.refused[e.code ?? 'INTERNAL'] = (this.counters.refused[e.code ?? 'INTERNAL'] ?? 0) + 1;
        },
      });
    });
  }

  /** Which DID holds a remote address, asked of the domain's node over the authenticated connection. */
  async resolveRemoteAddress(address: string): Promise<{ did: string; documentJson: string }> {
    const channel = await this.relay.channelFor(domainOf(address));
    const found = await resolveAtPeer(channel.conn, address);
    // The document must be the DID's own (did:key derives it; did:web is fetched over HTTPS).
    const resolved = await this.opts.resolver.resolveKeys(found.did);
    return { did: found.did, documentJson: JSON.stringify(resolved.document) };
  }

  peers(): (PeerStatus & { cosignedSize: number; witnessError: string })[] {
    return this.relay.peerStatus().map((p) => {
      const w = this.cosignatures.status(p.domain);
      return { ...p, cosignedSize: w?.cosignedSize ?? 0, witnessError: w?.lastError ?? '' };
    });
  }

  async stop(): Promise<void> {
    await this.cosignatures.stop();
    for (const conn of this.connections) await conn.close().catch(() => {});
    for (const transport of this.opts.transports) await transport.close().catch(() => {});
  }
}
