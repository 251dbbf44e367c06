// Where mail for a remote domain goes: static routes first (config, then `aftersmtp route add`), like
// Postfix's transport map; otherwise DNS discovery: TXT `_aftersmtp.<domain>` names the node DID, whose
// document gives the endpoints. Either way the peer must later prove the DID's key in the handshake.
import type { DidResolver } from '../../identity/index.ts';
import type { Store } from '../store/index.ts';
import { GatewayError, LruMap } from '../core/index.ts';
import type { DnsResolver } from '../dns/index.ts';

const DISCOVERY_TTL_MS = 60_000;
const MAX_BUILT_ROUTES = 1024;
/** Domains whose discovery (found or failed) is remembered. */
const MAX_DISCOVERED_DOMAINS = 10_000;

export interface Endpoint { transport: 'quic' | 'http2'; host: string; port: number }

export interface Route {
  domain: string;
  did: string;
  /** In preference order: QUIC first, HTTP/2 as the fallback. */
  endpoints: Endpoint[];
  source: 'config' | 'static' | 'dns';
  /** Domains the peer node serves (from its DID document or the route's domain). */
  peerDomains: string[];
}

export interface StaticRoute { domain: string; did: string; endpoint: string }

/**
 * How a static SMTP route secures its connection (Postfix's smtp_tls_security_level): `dane` (the default)
 * applies DANE when the host has secure TLSA records and is opportunistic otherwise; `verify` wants a
 * PKIX-valid certificate for the host; `may` takes STARTTLS when offered; `none` sends in plaintext.
 */
export type SmtpRouteTls = 'dane' | 'verify' | 'may' | 'none';
export const SMTP_ROUTE_TLS: readonly SmtpRouteTls[] = ['dane', 'verify', 'may', 'none'];

/** A static route to an SMTP server (Postfix's transport_maps entry, or with domain "*" its relayhost). */
export interface SmtpRouteTarget { host: string; port: number; tls: SmtpRouteTls }

export function isSmtpEndpoint(text: string): boolean {
  return /^smtp:\/\//i.test(text.trim());
}

/** `smtp://host[:port][?tls=dane|verify|may|none]` (port 25, tls dane by default) -> SmtpRouteTarget. */
export function parseSmtpEndpoint(text: string): SmtpRouteTarget {
  const m = /^smtp:\/\/(\[[^\]]+\]|[^:/?\s]+)(?::(\d{1,5}))?\/?(?:\?tls=([a-z]+))?$/i.exec(text.trim());
  const tls = (m?.[3]?.toLowerCase() ?? 'dane') as SmtpRouteTls;
  if (!m || Number(m[2] ?? 25) > 65535 || Number(m[2] ?? 25) === 0 || !SMTP_ROUTE_TLS.includes(tls)) {
    throw new GatewayError('INVALID_ARGUMENT', `"${text}" is not an SMTP endpoint (smtp://HOST[:PORT][?tls=dane|verify|may|none])`);
  }
  return { host: m[1]!.replace(/^\[|\]$/g, '').toLowerCase(), port: Number(m[2] ?? 25), tls };
}

export function formatSmtpEndpoint(t: SmtpRouteTarget): string {
  return `smtp://${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}?tls=${t.tls}`;
}

/** `quic://host:port`, `relay://host:port` / `grpc://host:port` (HTTP/2) -> Endpoint. */
export function parseEndpoint(text: string): Endpoint {
  const m = /^(quic|relay|grpc|http2):\/\/(\[[^\]]+\]|[^:/]+):(\d{1,5})$/.exec(text.trim());
  if (!m || Number(m[3]) > 65535) throw new GatewayError('INVALID_ARGUMENT', `"${text}" is not an endpoint (quic://host:port or relay://host:port)`);
  return { transport: m[1] === 'quic' ? 'quic' : 'http2', host: m[2]!.replace(/^\[|\]$/g, ''), port: Number(m[3]) };
}

export function formatEndpoint(e: Endpoint): string {
  return `${e.transport === 'quic' ? 'quic' : 'relay'}://${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`;
}

/** Parses `v=aftersmtp1; did=did:web:b.test` (order-free; unknown tags ignored). */
function parseDiscoveryRecord(text: string): string | undefined {
  const tags = new Map(text.split(';').map((part) => {
    const i = part.indexOf('=');
    return [part.slice(0, i).trim().toLowerCase(), part.slice(i + 1).trim()] as [string, string];
  }));
  if (tags.get('v') !== 'aftersmtp1') return undefined;
  const did = tags.get('did');
  return did && /^did:[a-z0-9]+:\S+$/.test(did) ? did : undefined;
}

function hostPort(text: string, transport: Endpoint['transport']): Endpoint | undefined {
  const m = /^(\[[^\]]+\]|[^:/]+):(\d{1,5})$/.exec(text);
  return m ? { transport, host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) } : undefined;
}

export interface RouterOptions {
  storage: Store;
  resolver: DidResolver;
  configRoutes: StaticRoute[];
  /** The node's DNS client (discovery asks it for `_aftersmtp.<domain>` TXT). */
  dns: Pick<DnsResolver, 'txt'>;
  localDomains: string[];
  /**
   * How long a failed discovery is answered again without a new DNS or DID lookup (default 5 s): a peer
   * that names unknown sender domains, or a caller that names unknown recipients, costs one lookup per
   * domain per period, not one per message.
   */
  discoveryFailureTtlMs?: number;
  /** Domains remembered (LRU); default 10,000. */
  maxDiscoveredDomains?: number;
}

export class Router {
  private readonly opts: RouterOptions;
  private readonly dns: Pick<DnsResolver, 'txt'>;
  /**
   * Discovered routes, kept for a minute, and failed discoveries, kept for discoveryFailureTtlMs (static
   * route rows are re-read after Storage's ROUTE_REREAD_MS). Bounded: the domains are named by others.
   */
  private readonly discovered: LruMap<string, { route?: Route; error?: Error; until: number }>;
  private readonly failureTtlMs: number;
  /**
   * Routes built from static records, by record, kept for a minute: the record itself comes from the
   * store on every lookup (re-read after 0.2 s, so a changed route applies within that), its parsing and
   * DID lookup are not (a node looks a route up two or three times per message).
   */
  private readonly built = new Map<string, { route: Route; at: number }>();

  constructor(opts: RouterOptions) {
    this.opts = opts;
    this.dns = opts.dns;
    this.discovered = new LruMap(opts.maxDiscoveredDomains ?? MAX_DISCOVERED_DOMAINS);
    this.failureTtlMs = opts.discoveryFailureTtlMs ?? 5_000;
  }

  isLocal(domain: string): boolean {
    return this.opts.localDomains.includes(domain.toLowerCase());
  }

  /**
   * The route to a peer node the operator set for a domain (config, then `route add`), read without any
   * lookup. A domain routed over SMTP has none (see smtpRoute).
   */
  configuredRoute(domain: string): { record: StaticRoute; source: 'config' | 'static' } | undefined {
    const found = this.operatorRoute(domain);
    return found && !isSmtpEndpoint(found.record.endpoint) ? found : undefined;
  }

  /** The SMTP server the operator routed a domain to (its own route, not the "*" smarthost), if any. */
  smtpRoute(domain: string): SmtpRouteTarget | undefined {
    const found = this.operatorRoute(domain);
    return found && isSmtpEndpoint(found.record.endpoint) ? parseSmtpEndpoint(found.record.endpoint) : undefined;
  }

  private operatorRoute(domain: string): { record: StaticRoute; source: 'config' | 'static' } | undefined {
    domain = domain.toLowerCase();
    const configured = this.opts.configRoutes.find((r) => r.domain === domain);
    if (configured) return { record: configured, source: 'config' };
    const stored = this.opts.storage.routes.for(domain);
    return stored && { record: stored, source: 'static' };
  }

  /** Resolves the route for a remote domain; throws UNKNOWN_RECIPIENT when there is none. */
  async route(domain: string): Promise<Route> {
    domain = domain.toLowerCase();
    const configured = this.configuredRoute(domain);
    if (configured) return this.fromStatic(configured.record, configured.source);
    if (this.smtpRoute(domain)) throw new GatewayError('UNKNOWN_RECIPIENT', `${domain} is routed to an SMTP server, not to an AfterSMTP node`);
    const cached = this.discovered.get(domain);
    if (cached && Date.now() < cached.until) {
      if (cached.error) throw cached.error;
      return cached.route!;
    }
    let route: Route;
    try {
      route = await this.discover(domain);
    } catch (err) {
      if (this.failureTtlMs > 0) this.discovered.set(domain, { error: err as Error, until: Date.now() + this.failureTtlMs });
      throw err;
    }
    this.discovered.set(domain, { route, until: Date.now() + DISCOVERY_TTL_MS });
    return route;
  }

  /** Domains whose discovery is remembered (found or failed); at most maxDiscoveredDomains. */
  get rememberedDomains(): number {
    return this.discovered.size;
  }

  private async fromStatic(r: StaticRoute, source: 'config' | 'static'): Promise<Route> {
    const key = `${source} ${r.domain} ${r.did} ${r.endpoint}`;
    const hit = this.built.get(key);
    if (hit && Date.now() - hit.at < DISCOVERY_TTL_MS) return hit.route;
    const endpoints = r.endpoint.split(',').map(parseEndpoint);
    let peerDomains = [r.domain];
    let resolved = false;
    try {
      const keys = await this.opts.resolver.resolveKeys(r.did);
      if (keys.service?.domains?.length) peerDomains = [...new Set([r.domain, ...keys.service.domains])];
      resolved = true;
    } catch { /* the handshake will fail with a clear reason if the DID cannot be resolved */ }
    const route: Route = { domain: r.domain, did: r.did, endpoints: sortEndpoints(endpoints), source, peerDomains };
    if (resolved) {
      if (this.built.size >= MAX_BUILT_ROUTES) this.built.clear();
      this.built.set(key, { route, at: Date.now() });
    }
    return route;
  }

  private async discover(domain: string): Promise<Route> {
    let records: string[];
    try {
      records = (await this.dns.txt(`_aftersmtp.${domain}`)).records;
    } catch (err) {
      const code = (err as { code?: string }).code;
      throw new GatewayError('DISCOVERY', `DNS lookup of _aftersmtp.${domain} failed: ${code ?? (err as Error).message}`);
    }
    if (records.length === 0) {
      throw new GatewayError('UNKNOWN_RECIPIENT', `${domain} has no AfterSMTP node (no _aftersmtp.${domain} TXT record and no route)`);
    }
    const dids = records.map(parseDiscoveryRecord).filter((d): d is string => !!d);
    if (dids.length === 0) throw new GatewayError('UNKNOWN_RECIPIENT', `_aftersmtp.${domain} holds no valid "v=aftersmtp1; did=..." record`);
    const did = dids[0]!;
    const keys = await this.opts.resolver.resolveKeys(did).catch((err: Error) => {
      throw new GatewayError('DISCOVERY', `cannot resolve ${did} for ${domain}: ${err.message}`);
    });
    const endpoints: Endpoint[] = [];
    if (keys.service?.quic) { const e = hostPort(keys.service.quic, 'quic'); if (e) endpoints.push(e); }
    if (keys.service?.relay) { const e = hostPort(keys.service.relay, 'http2'); if (e) endpoints.push(e); }
    if (endpoints.length === 0) throw new GatewayError('DISCOVERY', `${did} lists no AfterSMTP relay endpoint`);
    return { domain, did, endpoints, source: 'dns', peerDomains: keys.service?.domains?.length ? keys.service.domains : [domain] };
  }
}

function sortEndpoints(endpoints: Endpoint[]): Endpoint[] {
  return [...endpoints].sort((a, b) => (a.transport === b.transport ? 0 : a.transport === 'quic' ? -1 : 1));
}
