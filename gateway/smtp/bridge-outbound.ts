// The SMTP bridge's sending side as part of the node: bridge/outbound's delivery with the node's DNS
// client, its store (MTA-STS policies kept across restarts, TLS outcomes counted for TLS-RPT), its DKIM
// keys and the operator's SMTP routes, behind the queue's smtp delivery agent.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { Logger } from 'pino';
import { createSmtpOutbound, dkimDnsRecord, refreshStsPolicy, Srs, type DkimSigner, type SmtpNextHop, type StsFetchOptions } from '../../bridge/index.ts';
import type { DidResolver } from '../../identity/index.ts';
import { dataPath, smtpHostname, writeSecretFile, type NodeConfig } from '../core/index.ts';
import { hostAddresses, type DnsPacketResolver } from '../dns/index.ts';
import { isSmtpEndpoint, parseSmtpEndpoint } from '../federation/index.ts';
import type { Store } from '../store/index.ts';
import { SmtpAgent, type SmtpAgentOptions } from './smtp-agent.ts';
import type { NodeLedger } from '../provenance/index.ts';

export interface BridgeOutboundDeps {
  config: NodeConfig;
  nodeDid: string;
  dataDir: string;
  storage: Store;
  dns: DnsPacketResolver;
  resolver: DidResolver;
  bridgeKey: { keyId: string; privateKey: Uint8Array };
  logOrigin: string;
  /** The node's log: smtp-out rules record their audit leaves there. */
  ledger?: NodeLedger;
  /** Stores the copy an smtp-out rule makes for a mailbox (storeRuleCopy with the node's acceptance path). */
  keepRuleCopy: SmtpAgentOptions['keepRuleCopy'];
  log: Logger;
}

function readDkimKey(dataDir: string, k: NodeConfig['bridge']['smtp']['outbound']['dkim'][number]): DkimSigner {
  return { domain: k.domain.toLowerCase(), selector: k.selector, algorithm: k.algorithm, privateKeyPem: readFileSync(dataPath(dataDir, k.keyFile), 'utf8') };
}

/** The DKIM keys that sign (bridge.smtp.outbound.dkim, the retired ones left out), read from the data directory. */
export function dkimSigners(config: NodeConfig, dataDir: string): DkimSigner[] {
  return config.bridge.smtp.outbound.dkim.filter((k) => !k.retiredAt).map((k) => readDkimKey(dataDir, k));
}

/** The DKIM keys whose records must be published: those that sign, and those retired within the grace period. */
export function publishedDkimKeys(config: NodeConfig, dataDir: string, nowMs = Date.now()): (DkimSigner & { retiredAt?: string })[] {
  const graceMs = config.bridge.smtp.outbound.dkimGraceDays * 86_400_000;
  return config.bridge.smtp.outbound.dkim
    .filter((k) => !k.retiredAt || Date.parse(k.retiredAt) + graceMs > nowMs)
    .map((k) => ({ ...readDkimKey(dataDir, k), ...(k.retiredAt ? { retiredAt: k.retiredAt } : {}) }));
}

/**
 * The TXT record of one of the node's DKIM keys. Its keys sign the node's TLS reports too, and RFC 8460 §3
 * asks receivers to ignore a report whose key does not list the tlsrpt service: each lists email and tlsrpt.
 */
export function nodeDkimRecord(k: DkimSigner): { name: string; value: string } {
  return dkimDnsRecord({ domain: k.domain, selector: k.selector, algorithm: k.algorithm, publicKey: k.privateKeyPem, services: DKIM_SERVICES });
}

export const DKIM_SERVICES = ['email', 'tlsrpt'] as const;

/**
 * The node's Sender Rewriting Scheme: its secret file (made here for a node created before forwarding
 * existed), its first domain.
 */
export function nodeSrs(config: NodeConfig, dataDir: string): Srs {
  const file = dataPath(dataDir, config.bridge.smtp.outbound.srsSecretFile);
  if (!existsSync(file)) writeSecretFile(file, `${randomBytes(32).toString('base64url')}\n`);
  const secret = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64url');
  return new Srs({ secret, domain: config.node.domains[0]! });
}

/**
 * The operator's SMTP route for a domain: its own route when that is an SMTP one, else the "*" route (a
 * smarthost). Config routes come before `route add` ones, as for routes to nodes.
 */
export function smtpNextHop(config: NodeConfig, storage: Store, domain: string): SmtpNextHop | undefined {
  for (const name of [domain.toLowerCase(), '*']) {
    const record = config.federation.routes.find((r) => r.domain.toLowerCase() === name) ?? storage.routes.for(name);
    if (!record) continue;
    if (isSmtpEndpoint(record.endpoint)) return parseSmtpEndpoint(record.endpoint);
    if (name !== '*') return undefined; // a route to a node: not ours to send
  }
  return undefined;
}

/** The node's sending side: the queue's smtp agent, and the upkeep of its MTA-STS policies. */
export interface SmtpSending {
  agent: SmtpAgent;
  /** Refetches cached MTA-STS policies past half their max_age (a scheduler job). */
  refreshStsPolicies(nowMs: number): Promise<void>;
}

export function createSmtpSending(deps: BridgeOutboundDeps): SmtpSending {
  const { config, dataDir, storage, log } = deps;
  const out = config.bridge.smtp.outbound;
  const ca = [...rootCertificates, ...out.caFiles.map((f) => readFileSync(dataPath(dataDir, f), 'utf8'))];
  const addresses = hostAddresses(deps.dns);
  const stsFetch: StsFetchOptions = {
    fetchTimeoutMs: out.stsFetchTimeoutMs,
    ca,
    hostMap: out.stsHostMap,
    // Through the node's own DNS client, like every other lookup of the bridge.
    resolveHost: async (host) => {
      const found = await addresses(host);
      if (!found[0]) throw new Error(`${host} has no address`);
      return found[0].address;
    },
  };
  const outbound = createSmtpOutbound({
    hostname: smtpHostname(config),
    resolver: deps.dns,
    stsCache: storage.stsPolicies,
    stsFetch,
    portMap: out.portMap,
    ca,
    onTlsOutcome: (outcome) => {
      storage.tlsOutcomes.record(outcome).catch((err: Error) => log.warn({ err: err.message }, 'TLS outcome not recorded'));
    },
    connectTimeoutMs: out.connectTimeoutMs,
    commandTimeoutMs: out.commandTimeoutMs,
    dataTimeoutMs: out.dataTimeoutMs,
    maxConnectionsPerHost: out.maxConnectionsPerHost,
    maxMessagesPerConnection: out.maxMessagesPerConnection,
    idleTimeoutMs: out.idleTimeoutMs,
    log,
  });
  const agent = new SmtpAgent({
    storage,
    nodeDid: deps.nodeDid,
    outbound,
    resolver: deps.resolver,
    bridgeKey: deps.bridgeKey,
    logOrigin: deps.logOrigin,
    ...(deps.ledger ? { ledger: deps.ledger } : {}),
    dkim: dkimSigners(config, dataDir),
    keepRuleCopy: deps.keepRuleCopy,
    nextHop: (domain) => smtpNextHop(config, storage, domain),
    log,
  });
  return {
    agent,
    async refreshStsPolicies(nowMs) {
      await storage.stsPolicies.prune(nowMs);
      for (const entry of storage.stsPolicies.list()) {
        const result = await refreshStsPolicy(entry, deps.dns, storage.stsPolicies, stsFetch, nowMs);
        if (result !== 'fresh') log.info({ domain: entry.domain, result }, 'MTA-STS policy refresh');
      }
    },
  };
}
