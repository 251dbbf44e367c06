/**
 * DID resolution on the did-resolver package, with our own `key` and `web` method drivers,
 * a TTL cache with in-flight de-duplication, and static documents the node hosts itself.
 *
 * did:web is fetched over HTTPS only (node:https): no redirects, HTTP 200, application/json or
 * application/did+json, at most 64 KiB, a timeout, and the document id must equal the DID.
 * `hostMap` sends the TCP connection elsewhere (tests, static setups) while SNI, the Host header and
 * the certificate check keep using the DID's host name. A node's own CA (`ownCa`) is trusted only for
 * the node's own host names: its key is a file on the node, and must not vouch for anyone else's DID.
 */
import https from 'node:https';
import net from 'node:net';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import tls from 'node:tls';
import type { IncomingMessage } from 'node:http';
import { Resolver } from 'did-resolver';
import type { DIDDocument, DIDResolutionResult, DIDResolver, ParsedDID } from 'did-resolver';
import { IdentityError } from './errors.ts';
import { didKeyDocument } from './did-key.ts';
import { parseDidWeb } from './did-web.ts';
import { extractKeys } from './document.ts';
import type { ResolvedDid } from './document.ts';

export type { ResolvedDid } from './document.ts';

/** What message and envelope verification need: keys of a DID. */
export interface KeyResolver {
  resolveKeys(did: string): Promise<ResolvedDid>;
}

export interface DidResolverOptions {
  /** Trusted CA certificate(s) for did:web fetches (PEM). Default: Node's bundled roots. */
  ca?: string | Buffer | Array<string | Buffer>;
  /**
   * A CA trusted, on top of `ca`, only for did:web hosts among `hosts` (exact names, any case): a node's
   * own CA, for its own names. For every other host, however `hostMap` routes it, only `ca` counts.
   */
  ownCa?: { ca: string | Buffer | Array<string | Buffer>; hosts: string[] };
  /** "example.test" or "example.test:8443" -> "127.0.0.1:4443": where to connect instead. */
  hostMap?: Record<string, string>;
  /** How long a resolved document is reused. Default 5 minutes. */
  cacheTtlMs?: number;
  /** Timeout of one did:web fetch (connect to end of body). Default 5 s. */
  fetchTimeoutMs?: number;
  /** Aborts every fetch (resolver shutdown). */
  signal?: AbortSignal;
  /** Cache capacity (LRU). Default 10,000 DIDs. */
  maxCacheEntries?: number;
  /** did:web document size cap. Default 64 KiB (PROTOCOL §3). */
  maxDocumentBytes?: number;
  /** Clock for cache expiry (tests). */
  now?: () => number;
  /** false: never fetch did:web (offline verification); only registered documents and did:key resolve. */
  allowFetch?: boolean;
  /**
   * false: a did:web fetch whose host is not in hostMap must not connect to a loopback, private,
   * link-local or unspecified address (checked on every address the name resolves to). A DID is named by
   * whoever asks for it: a node must not let that aim its connections at its own network. Default true.
   */
  allowPrivateAddresses?: boolean;
  /** How long a failed resolution is remembered and answered without a new fetch. Default 10 s. */
  failureTtlMs?: number;
  /**
   * The addresses of a did:web host (A and AAAA), for the node to ask its own DNS client like every other
   * lookup it makes. Default: the system's resolver (getaddrinfo).
   */
  resolveHost?: ResolveHost;
}

/** Addresses of a host name; an empty list when it has none. */
export type ResolveHost = (hostname: string) => Promise<{ address: string; family: 4 | 6 }[]>;

export interface DidResolver extends KeyResolver {
  /** The underlying did-resolver instance (methods `key` and `web`). */
  readonly resolver: Resolver;
  /** The validated DID document. */
  resolveDocument(did: string): Promise<DIDDocument>;
  /** Drops the cached result for a DID (e.g. after a key rotation notice). */
  invalidate(did: string): void;
  /** Serves this document from memory, ahead of any fetch (documents the node hosts itself). */
  register(document: DIDDocument): ResolvedDid;
  unregister(did: string): void;
  /** Drops every cached (not registered) entry, failures included. */
  clear(): void;
  /** Resolutions remembered (documents and failures), at most maxCacheEntries of each. */
  cachedEntries(): number;
}

const ACCEPTED_CONTENT_TYPES = new Set(['application/json', 'application/did+json']);
const DEFAULT_TTL_MS = 5 * 60_000;
const DEFAULT_FETCH_TIMEOUT_MS = 5_000;
const DEFAULT_MAX_DOCUMENT_BYTES = 64 * 1024;
const DEFAULT_MAX_CACHE_ENTRIES = 10_000;
const DEFAULT_FAILURE_TTL_MS = 10_000;

/** Where a DID's name must not lead a node that refuses private addresses. */
const PRIVATE_ADDRESSES = new net.BlockList();
for (const [prefix, bits] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4]] as const) {
  PRIVATE_ADDRESSES.addSubnet(prefix, bits, 'ipv4');
}
for (const [prefix, bits] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) {
  PRIVATE_ADDRESSES.addSubnet(prefix, bits, 'ipv6');
}

/** Whether `address` (an IP literal) is loopback, private, link-local, multicast or unspecified. */
export function isPrivateAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 0) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address); // an IPv4 address written as IPv6
  if (mapped) return PRIVATE_ADDRESSES.check(mapped[1]!, 'ipv4');
  return PRIVATE_ADDRESSES.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

interface FetchOptions {
  ca: DidResolverOptions['ca'];
  ownCa: { ca: Array<string | Buffer>; hosts: Set<string> } | undefined;
  hostMap: Record<string, string>;
  timeoutMs: number;
  maxBytes: number;
  signal: AbortSignal | undefined;
  allowPrivateAddresses: boolean;
  resolveHost: ResolveHost | undefined;
}

function fetchFailure(url: URL, why: string, cause?: unknown): IdentityError {
  return new IdentityError('DID_RESOLUTION', `GET ${url.href}: ${why}`, cause === undefined ? undefined : { cause });
}

function connectTarget(host: string, port: number | undefined, hostMap: Record<string, string>): { host: string; port: number; mapped: boolean } {
  const effectivePort = port ?? 443;
  const mapped = hostMap[`${host}:${effectivePort}`] ?? hostMap[host] ?? hostMap[host.toLowerCase()];
  if (mapped === undefined) return { host, port: effectivePort, mapped: false };
  const m = /^\[?([^\]]+?)\]?(?::([0-9]{1,5}))?$/.exec(mapped);
  if (!m) throw new IdentityError('INVALID_ARGUMENT', `invalid hostMap target ${JSON.stringify(mapped)}`);
  return { host: m[1]!, port: m[2] === undefined ? effectivePort : Number(m[2]), mapped: true };
}

const systemResolveHost: ResolveHost = (hostname) => new Promise((resolve, reject) => {
  dnsLookup(hostname, { all: true }, (err, addresses) => (err ? reject(err) : resolve((addresses as LookupAddress[]).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 })))));
});

/**
 * The request's address lookup through `resolveHost`; when `publicOnly`, a name with any address in a
 * private range is refused (the check runs on what is actually dialed).
 */
function lookupThrough(resolveHost: ResolveHost, publicOnly: boolean): net.LookupFunction {
  return (hostname, options, callback) => {
    resolveHost(hostname).then((list) => {
      if (list.length === 0) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 0);
      if (publicOnly && list.some((a) => isPrivateAddress(a.address))) {
        return callback(Object.assign(new Error(`${hostname} resolves to a private address`), { code: 'EPRIVATE' }), '', 0);
      }
      if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list);
      callback(null, list[0]!.address, list[0]!.family);
    }, (err: unknown) => callback(err as NodeJS.ErrnoException, '', 0));
  };
}

/** GET the did:web document with every PROTOCOL §3 rule enforced. Resolves to the parsed JSON. */
function fetchDidWebDocument(did: string, opts: FetchOptions): Promise<unknown> {
  const parts = parseDidWeb(did);
  const target = connectTarget(parts.host, parts.port, opts.hostMap);
  const guarded = !opts.allowPrivateAddresses && !target.mapped;
  if (guarded && isPrivateAddress(target.host)) {
    return Promise.reject(fetchFailure(parts.url, 'the DID names a private address'));
  }
  const signals = [AbortSignal.timeout(opts.timeoutMs)];
  if (opts.signal) signals.push(opts.signal);
  const signal = AbortSignal.any(signals);
  const expectedHost = parts.host;

  return new Promise<unknown>((resolve, reject) => {
    let settled = false;
    const finish = (err: IdentityError | undefined, value?: unknown): void => {
      if (settled) return;
      settled = true;
      if (err) {
        req.destroy();
        reject(err);
      } else {
        resolve(value);
      }
    };
    const requestOptions: https.RequestOptions = {
      protocol: 'https:',
      host: target.host,
      port: target.port,
      method: 'GET',
      path: parts.url.pathname,
      headers: { host: parts.url.host, accept: 'application/did+json, application/json' },
      agent: false,
      signal,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      // The certificate must be valid for the DID's host, wherever the TCP connection went.
      checkServerIdentity: (_hostname: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(expectedHost, cert),
    };
    if (opts.ownCa?.hosts.has(expectedHost.toLowerCase())) {
      requestOptions.ca = [...[opts.ca ?? tls.rootCertificates].flat(), ...opts.ownCa.ca];
    } else if (opts.ca !== undefined) {
      requestOptions.ca = opts.ca;
    }
    if (guarded || opts.resolveHost) requestOptions.lookup = lookupThrough(opts.resolveHost ?? systemResolveHost, guarded);
    if (net.isIP(expectedHost) === 0) requestOptions.servername = expectedHost;

    const req = https.request(requestOptions, (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400) {
        res.resume();
        return finish(fetchFailure(parts.url, `HTTP ${status} redirect to ${JSON.stringify(res.headers.location ?? '')} rejected (did:web forbids redirects)`));
      }
      if (status !== 200) {
        res.resume();
        return finish(fetchFailure(parts.url, `HTTP ${status} from ${parts.url.href}`));
      }
      const contentType = String(res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (!ACCEPTED_CONTENT_TYPES.has(contentType)) {
        res.resume();
        return finish(fetchFailure(parts.url, `content type ${JSON.stringify(contentType)} is not application/json or application/did+json`));
      }
      const declared = Number(res.headers['content-length'] ?? NaN);
      if (Number.isFinite(declared) && declared > opts.maxBytes) {
        return finish(fetchFailure(parts.url, `document of ${declared} bytes exceeds ${opts.maxBytes} bytes`));
      }
      const chunks: Buffer[] = [];
      let total = 0;
      res.on('data', (chunk: Buffer) => {
        total += chunk.length;
        if (total > opts.maxBytes) return finish(fetchFailure(parts.url, `document exceeds ${opts.maxBytes} bytes`));
        chunks.push(chunk);
      });
      res.on('end', () => {
        if (settled) return;
        let parsed: unknown;
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch (e) {
          return finish(fetchFailure(parts.url, 'document is not valid JSON', e));
        }
        finish(undefined, parsed);
      });
      res.on('error', (e) => finish(fetchFailure(parts.url, e.message, e)));
    });
    req.on('error', (e: Error) => {
      const why =
        e.name === 'TimeoutError' || (e.name === 'AbortError' && signals[0]!.aborted)
          ? `timed out after ${opts.timeoutMs} ms`
          : e.name === 'AbortError'
            ? 'aborted'
            : e.message;
      finish(fetchFailure(parts.url, why, e));
    });
    req.end();
  });
}

function failureResult(error: string, message: string): DIDResolutionResult {
  return { didResolutionMetadata: { error, message }, didDocument: null, didDocumentMetadata: {} };
}

function successResult(document: DIDDocument, contentType: string): DIDResolutionResult {
  return { didResolutionMetadata: { contentType }, didDocument: document, didDocumentMetadata: {} };
}

export function createDidResolver(options: DidResolverOptions = {}): DidResolver {
  const ttlMs = options.cacheTtlMs ?? DEFAULT_TTL_MS;
  const maxEntries = options.maxCacheEntries ?? DEFAULT_MAX_CACHE_ENTRIES;
  const now = options.now ?? Date.now;
  const fetchOptions: FetchOptions = {
    ca: options.ca,
    ownCa: options.ownCa && { ca: [options.ownCa.ca].flat(), hosts: new Set(options.ownCa.hosts.map((h) => h.toLowerCase())) },
    hostMap: options.hostMap ?? {},
    timeoutMs: options.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS,
    maxBytes: options.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES,
    signal: options.signal,
    allowPrivateAddresses: options.allowPrivateAddresses ?? true,
    resolveHost: options.resolveHost,
  };
  const failureTtlMs = options.failureTtlMs ?? DEFAULT_FAILURE_TTL_MS;

  const keyDriver: DIDResolver = async (did: string, parsed: ParsedDID) => {
    if (parsed.path !== undefined || parsed.query !== undefined || parsed.fragment !== undefined) {
      return failureResult('invalidDid', `${parsed.didUrl}: a DID without path, query or fragment is required`);
    }
    try {
      return successResult(didKeyDocument(did), 'application/did+json');
    } catch (e) {
      return failureResult('invalidDid', (e as Error).message);
    }
  };

  const webDriver: DIDResolver = async (did: string, parsed: ParsedDID) => {
    if (parsed.path !== undefined || parsed.query !== undefined || parsed.fragment !== undefined) {
      return failureResult('invalidDid', `${parsed.didUrl}: a DID without path, query or fragment is required`);
    }
    if (options.allowFetch === false) {
      return failureResult('notFound', `${did} is not registered and did:web fetching is disabled`);
    }
    try {
      const doc = await fetchDidWebDocument(did, fetchOptions);
      // id check and key extraction happen once more in resolveKeys; this rejects early.
      if (doc === null || typeof doc !== 'object' || (doc as { id?: unknown }).id !== did) {
        return failureResult('notFound', `document id ${JSON.stringify((doc as { id?: unknown } | null)?.id)} does not equal the DID`);
      }
      return successResult(doc as DIDDocument, 'application/did+json');
    } catch (e) {
      return failureResult('notFound', (e as Error).message);
    }
  };

  const resolver = new Resolver({ key: keyDriver, web: webDriver }, { cache: false });

  const registered = new Map<string, ResolvedDid>();
  const cache = new Map<string, { value: ResolvedDid; expiresAt: number }>();
  /**
   * Failed resolutions, answered again without a fetch until they expire (LRU, same bound as the cache):
   * a DID that does not resolve costs one fetch per failureTtlMs however often it is named.
   */
  const failures = new Map<string, { error: Error; expiresAt: number }>();
  const inflight = new Map<string, Promise<ResolvedDid>>();

  const remember = (did: string, value: ResolvedDid): void => {
    const expiresAt = did.startsWith('did:key:') ? Number.POSITIVE_INFINITY : now() + ttlMs;
    cache.delete(did);
    cache.set(did, { value, expiresAt });
    while (cache.size > maxEntries) cache.delete(cache.keys().next().value!);
  };

  const load = async (did: string): Promise<ResolvedDid> => {
    try {
      const result = await resolver.resolve(did);
      const meta = result.didResolutionMetadata;
      if (meta.error !== undefined || result.didDocument === null) {
        const detail = typeof meta['message'] === 'string' ? meta['message'] : (meta.error ?? 'no document');
        throw new IdentityError('DID_RESOLUTION', `cannot resolve ${did}: ${detail}`);
      }
      const resolved = extractKeys(did, result.didDocument);
      remember(did, resolved);
      return resolved;
    } catch (err) {
      if (failureTtlMs > 0) {
        failures.delete(did);
        failures.set(did, { error: err as Error, expiresAt: now() + failureTtlMs });
        while (failures.size > maxEntries) failures.delete(failures.keys().next().value!);
      }
      throw err;
    }
  };

  const resolveKeys = (did: string): Promise<ResolvedDid> => {
    if (typeof did !== 'string' || did.includes('#')) {
      return Promise.reject(new IdentityError('DID_RESOLUTION', `${String(did)}: a DID (not a DID URL) is required`));
    }
    const fixed = registered.get(did);
    if (fixed !== undefined) return Promise.resolve(fixed);
    const hit = cache.get(did);
    if (hit !== undefined) {
      if (hit.expiresAt > now()) {
        cache.delete(did);
        cache.set(did, hit);
        return Promise.resolve(hit.value);
      }
      cache.delete(did);
    }
    const failed = failures.get(did);
    if (failed !== undefined) {
      if (failed.expiresAt > now()) return Promise.reject(failed.error);
      failures.delete(did);
    }
    const pending = inflight.get(did);
    if (pending !== undefined) return pending;
    const p = load(did).finally(() => inflight.delete(did));
    inflight.set(did, p);
    return p;
  };

  return {
    resolver,
    resolveKeys,
    async resolveDocument(did: string): Promise<DIDDocument> {
      return (await resolveKeys(did)).document;
    },
    invalidate(did: string): void {
      cache.delete(did);
      failures.delete(did);
    },
    register(document: DIDDocument): ResolvedDid {
      if (document === null || typeof document !== 'object' || typeof document.id !== 'string') {
        throw new IdentityError('INVALID_ARGUMENT', 'register() needs a DID document with an id');
      }
      const resolved = extractKeys(document.id, structuredClone(document));
      registered.set(document.id, resolved);
      cache.delete(document.id);
      failures.delete(document.id);
      return resolved;
    },
    unregister(did: string): void {
      registered.delete(did);
    },
    clear(): void {
      cache.clear();
      failures.clear();
    },
    cachedEntries(): number {
      return cache.size + failures.size;
    },
  };
}

/** A resolver over a fixed set of documents (tests, offline verification); did:key is derived. */
export function createStaticResolver(documents: DIDDocument[] = []): DidResolver {
  const r = createDidResolver({ allowFetch: false });
  for (const d of documents) r.register(d);
  return r;
}
