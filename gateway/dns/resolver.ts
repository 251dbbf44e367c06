// The node's one DNS client: every lookup the node makes (discovery TXT, MX, A/AAAA, TLSA, the SMTP
// bridge's SPF/DKIM/DMARC/MTA-STS/TLS-RPT records) goes through a DnsResolver, so that tests point the
// whole node at one real test resolver, and so that DNSSEC status is known. `node:dns` cannot report the
// AD bit, which DANE needs: queries go out with dns-packet, over UDP and over TCP when truncated.
//
// The AD bit is believed only from a resolver on loopback: between a remote resolver and the node
// anyone on the path can set it, so a remote resolver's answers are always reported as not secure.
import { createSocket, type Socket } from 'node:dgram';
import { connect, isIP } from 'node:net';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as dnsPacket from 'dns-packet';
import { DnsError } from './errors.ts';

export type DnsRecordType = 'A' | 'AAAA' | 'MX' | 'TXT' | 'TLSA' | 'PTR' | 'CNAME';

/** NOERROR with records, NOERROR without (no data), or NXDOMAIN: all answers, not errors. */
export type DnsStatus = 'NOERROR' | 'NXDOMAIN';

export interface DnsAnswer<T> {
  name: string;
  /** The owner of the records: the name asked, or where the CNAME chain in the answer led from it. */
  canonicalName: string;
  type: DnsRecordType;
  status: DnsStatus;
  records: T[];
  /** The validating resolver vouched for the answer (AD bit) and it is on loopback. */
  secure: boolean;
  /** Seconds the answer may be kept (the smallest TTL in it; for a negative answer, the SOA minimum). */
  ttl: number;
}

export interface MxRecord { exchange: string; priority: number }
export interface TlsaRecord { usage: number; selector: number; matchingType: number; data: Uint8Array }

export interface LookupOptions { signal?: AbortSignal }

/** What the node and the bridge need of DNS. Implementations: DnsPacketResolver; tests may wrap it. */
export interface DnsResolver {
  txt(name: string, opts?: LookupOptions): Promise<DnsAnswer<string>>;
  a(name: string, opts?: LookupOptions): Promise<DnsAnswer<string>>;
  aaaa(name: string, opts?: LookupOptions): Promise<DnsAnswer<string>>;
  mx(name: string, opts?: LookupOptions): Promise<DnsAnswer<MxRecord>>;
  tlsa(name: string, opts?: LookupOptions): Promise<DnsAnswer<TlsaRecord>>;
  ptr(name: string, opts?: LookupOptions): Promise<DnsAnswer<string>>;
}

export interface DnsServer { host: string; port: number }

export interface DnsResolverOptions {
  /** `host:port` or `host` (port 53), `[v6]:port`; empty = the nameservers of /etc/resolv.conf. */
  servers?: string[];
  /** Per try (default 2 s); each server is tried in turn, `tries` rounds (default 2). */
  timeoutMs?: number;
  tries?: number;
  /** Answers kept (positive and negative), least recently used dropped first (default 10,000). */
  cacheEntries?: number;
  /** Longest a positive answer is kept whatever its TTL says (default 300 s); 0 = no cache. */
  maxTtlSeconds?: number;
  /** How long a failure (timeout, SERVFAIL) is remembered, so a broken name costs one query per period (default 30 s). */
  failureTtlSeconds?: number;
  now?: () => number;
}

/** EDNS payload size of the DNS flag day 2020: fits any path's MTU without fragments. */
const UDP_PAYLOAD = 1232;
const MAX_TCP_RESPONSE = 65_535;
const MAX_CNAME_CHAIN = 8;

export function parseServer(text: string): DnsServer {
  const t = text.trim();
  const v6 = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(t);
  if (v6) return checkServer(v6[1]!, v6[2], text);
  if (isIP(t) === 6) return { host: t, port: 53 };
  const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(t);
  if (!m) throw new DnsError('BAD_CONFIG', `"${text}" is not a DNS server (host, host:port or [v6]:port)`);
  return checkServer(m[1]!, m[2], text);
}

function checkServer(host: string, port: string | undefined, text: string): DnsServer {
  const p = port === undefined ? 53 : Number(port);
  if (isIP(host) === 0 || p < 1 || p > 65535) throw new DnsError('BAD_CONFIG', `"${text}" is not a DNS server: it needs an IP address and a port 1-65535`);
  return { host, port: p };
}

export function isLoopback(host: string): boolean {
  return isIP(host) === 4 ? host.startsWith('127.') : host === '::1';
}

function systemServers(): DnsServer[] {
  let text = '';
  try {
    text = readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    return [{ host: '127.0.0.1', port: 53 }];
  }
  const servers = text.split('\n')
    .map((line) => /^\s*nameserver\s+(\S+)/.exec(line)?.[1])
    .filter((h): h is string => h !== undefined && isIP(h) !== 0)
    .map((host) => ({ host, port: 53 }));
  return servers.length > 0 ? servers : [{ host: '127.0.0.1', port: 53 }];
}

function normalise(name: string): string {
  const n = name.trim().toLowerCase().replace(/\.$/, '');
  if (n.length === 0 || n.length > 253 || n.split('.').some((label) => label.length === 0 || label.length > 63)) {
    throw new DnsError('BAD_NAME', `"${name}" is not a domain name`);
  }
  return n;
}

interface CacheEntry { expiresAt: number; answer?: DnsAnswer<unknown>; failure?: DnsError }

type Decoded = ReturnType<typeof dnsPacket.decode>;

export class DnsPacketResolver implements DnsResolver {
  readonly servers: DnsServer[];
  readonly #timeoutMs: number;
  readonly #tries: number;
  readonly #cacheEntries: number;
  readonly #maxTtl: number;
  readonly #failureTtl: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, CacheEntry>();
  /** Concurrent lookups of one name and type share one query. */
  readonly #inflight = new Map<string, Promise<DnsAnswer<unknown>>>();

  constructor(opts: DnsResolverOptions = {}) {
    this.servers = opts.servers && opts.servers.length > 0 ? opts.servers.map(parseServer) : systemServers();
    this.#timeoutMs = opts.timeoutMs ?? 2000;
    this.#tries = opts.tries ?? 2;
    this.#cacheEntries = opts.cacheEntries ?? 10_000;
    this.#maxTtl = opts.maxTtlSeconds ?? 300;
    this.#failureTtl = opts.failureTtlSeconds ?? 30;
    this.#now = opts.now ?? Date.now;
  }

  /** Answers and failures held in the cache now (bounded by `cacheEntries`). */
  get cachedAnswers(): number {
    return this.#cache.size;
  }

  txt(name: string, opts?: LookupOptions): Promise<DnsAnswer<string>> {
    return this.#lookup(name, 'TXT', opts, (rr) => (rr.data as Buffer[]).map((b) => Buffer.from(b).toString('utf8')).join(''));
  }

  a(name: string, opts?: LookupOptions): Promise<DnsAnswer<string>> {
    return this.#lookup(name, 'A', opts, (rr) => rr.data as string);
  }

  aaaa(name: string, opts?: LookupOptions): Promise<DnsAnswer<string>> {
    return this.#lookup(name, 'AAAA', opts, (rr) => rr.data as string);
  }

  mx(name: string, opts?: LookupOptions): Promise<DnsAnswer<MxRecord>> {
    return this.#lookup(name, 'MX', opts, (rr) => {
      const d = rr.data as { preference: number; exchange: string };
      return { priority: d.preference, exchange: d.exchange.toLowerCase().replace(/\.$/, '') };
    });
  }

  tlsa(name: string, opts?: LookupOptions): Promise<DnsAnswer<TlsaRecord>> {
    return this.#lookup(name, 'TLSA', opts, (rr) => {
      const d = rr.data as { usage: number; selector: number; matchingType: number; certificate: Buffer };
      return { usage: d.usage, selector: d.selector, matchingType: d.matchingType, data: Uint8Array.from(d.certificate) };
    });
  }

  ptr(name: string, opts?: LookupOptions): Promise<DnsAnswer<string>> {
    return this.#lookup(name, 'PTR', opts, (rr) => (rr.data as string).toLowerCase().replace(/\.$/, ''));
  }

  async #lookup<T>(rawName: string, type: DnsRecordType, opts: LookupOptions | undefined, read: (rr: AnswerRecord) => T): Promise<DnsAnswer<T>> {
    const name = normalise(rawName);
    const key = `${type} ${name}`;
    const cached = this.#cached(key);
    if (cached?.failure) throw cached.failure;
    if (cached?.answer) return cached.answer as DnsAnswer<T>;
    let pending = this.#inflight.get(key) as Promise<DnsAnswer<T>> | undefined;
    if (!pending) {
      pending = this.#resolve(name, type, read).then(
        (answer) => { this.#remember(key, { expiresAt: this.#now() + Math.min(answer.ttl, this.#maxTtl) * 1000, answer }); return answer; },
        (err: unknown) => {
          if (err instanceof DnsError && (err.code === 'TIMEOUT' || err.code === 'SERVFAIL')) {
            this.#remember(key, { expiresAt: this.#now() + this.#failureTtl * 1000, failure: err });
          }
          throw err;
        },
      ).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, pending as Promise<DnsAnswer<unknown>>);
    }
    if (!opts?.signal) return pending;
    opts.signal.throwIfAborted();
    const signal = opts.signal;
    return new Promise<DnsAnswer<T>>((resolve, reject) => {
      const onAbort = () => reject(new DnsError('ABORTED', `lookup of ${type} ${name} aborted`, { cause: signal.reason }));
      signal.addEventListener('abort', onAbort, { once: true });
      pending.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  #cached(key: string): CacheEntry | undefined {
    const entry = this.#cache.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.#now()) {
      this.#cache.delete(key);
      return undefined;
    }
    // Least recently used first out: a hit moves the entry to the end.
    this.#cache.delete(key);
    this.#cache.set(key, entry);
    return entry;
  }

  #remember(key: string, entry: CacheEntry): void {
    if (this.#maxTtl <= 0 || entry.expiresAt <= this.#now()) return;
    this.#cache.delete(key);
    this.#cache.set(key, entry);
    while (this.#cache.size > this.#cacheEntries) this.#cache.delete(this.#cache.keys().next().value!);
  }

  async #resolve<T>(name: string, type: DnsRecordType, read: (rr: AnswerRecord) => T): Promise<DnsAnswer<T>> {
    let lastError: DnsError | undefined;
    for (let round = 0; round < this.#tries; round++) {
      for (const server of this.servers) {
        try {
          let response = await queryUdp(server, name, type, this.#timeoutMs);
          if (response.flag_tc) response = await queryTcp(server, name, type, this.#timeoutMs);
          return toAnswer(response, server, name, type, read);
        } catch (err) {
          if (!(err instanceof DnsError)) throw err;
          lastError = err;
          // A server's definite refusal is not worth a second round at that server; the others are tried.
          if (err.code === 'BAD_RESPONSE' || err.code === 'REFUSED') continue;
        }
      }
    }
    throw lastError ?? new DnsError('TIMEOUT', `no answer for ${type} ${name}`);
  }
}

const RCODES: Record<number, string> = { 0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED' };

interface AnswerRecord { name: string; type: string; ttl?: number; data: unknown }

function toAnswer<T>(response: Decoded, server: DnsServer, name: string, type: DnsRecordType, read: (rr: AnswerRecord) => T): DnsAnswer<T> {
  const rcode = RCODES[(response.flags ?? 0) & 0xf] ?? `RCODE ${(response.flags ?? 0) & 0xf}`;
  if (rcode === 'SERVFAIL') throw new DnsError('SERVFAIL', `the resolver failed on ${type} ${name} (SERVFAIL; with DNSSEC, a bogus answer)`);
  if (rcode === 'REFUSED') throw new DnsError('REFUSED', `the resolver ${server.host}:${server.port} refused ${type} ${name}`);
  if (rcode !== 'NOERROR' && rcode !== 'NXDOMAIN') throw new DnsError('BAD_RESPONSE', `the resolver answered ${rcode} for ${type} ${name}`);
  const answers = (response.answers ?? []) as AnswerRecord[];
  // Follow the CNAME chain the resolver put in the answer, from the name asked.
  let owner = name;
  let ttl = Infinity;
  for (let hops = 0; hops < MAX_CNAME_CHAIN && type !== 'CNAME'; hops++) {
    const cname = answers.find((rr) => rr.type === 'CNAME' && rr.name.toLowerCase().replace(/\.$/, '') === owner);
    if (!cname) break;
    ttl = Math.min(ttl, cname.ttl ?? 0);
    owner = String(cname.data).toLowerCase().replace(/\.$/, '');
  }
  const matching = answers.filter((rr) => rr.type === type && rr.name.toLowerCase().replace(/\.$/, '') === owner);
  for (const rr of matching) ttl = Math.min(ttl, rr.ttl ?? 0);
  if (matching.length === 0) {
    // Negative answer: kept as long as the zone's SOA says (RFC 2308), else briefly.
    const soa = ((response.authorities ?? []) as AnswerRecord[]).find((rr) => rr.type === 'SOA');
    const minimum = soa ? Math.min(soa.ttl ?? 0, (soa.data as { minimum?: number }).minimum ?? 0) : 30;
    ttl = minimum;
  }
  return {
    name,
    canonicalName: owner,
    type,
    status: rcode === 'NXDOMAIN' ? 'NXDOMAIN' : 'NOERROR',
    records: matching.map(read),
    secure: response.flag_ad === true && isLoopback(server.host),
    ttl: Number.isFinite(ttl) ? ttl : 0,
  };
}

function query(name: string, type: DnsRecordType, id: number): dnsPacket.Packet {
  return {
    type: 'query',
    id,
    // RD: the resolver recurses. AD asks it to report validation (RFC 6840 §5.7); CD is never set, so a
    // bogus answer comes back as SERVFAIL instead of data.
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.AUTHENTIC_DATA,
    questions: [{ type, name, class: 'IN' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: UDP_PAYLOAD, flags: dnsPacket.DNSSEC_OK } as dnsPacket.Answer],
  };
}

/** The response answers our question: same id, one question, same name, type and class. */
function answersQuestion(response: Decoded, id: number, name: string, type: DnsRecordType): boolean {
  const q = response.questions?.[0];
  return response.type === 'response' && response.id === id && response.questions?.length === 1 && q !== undefined &&
    q.type === type && q.name.toLowerCase().replace(/\.$/, '') === name && (q.class ?? 'IN') === 'IN';
}

function queryUdp(server: DnsServer, name: string, type: DnsRecordType, timeoutMs: number): Promise<Decoded> {
  const id = randomInt(0, 65536);
  const packet = dnsPacket.encode(query(name, type, id));
  return new Promise<Decoded>((resolve, reject) => {
    const socket: Socket = createSocket(isIP(server.host) === 6 ? 'udp6' : 'udp4');
    const done = (err: DnsError | null, response?: Decoded) => {
      clearTimeout(timer);
      socket.close();
      if (err) reject(err); else resolve(response!);
    };
    const timer = setTimeout(() => done(new DnsError('TIMEOUT', `no answer from ${server.host}:${server.port} for ${type} ${name} within ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', (err) => done(new DnsError('NETWORK', `DNS query to ${server.host}:${server.port} failed: ${err.message}`, { cause: err })));
    socket.on('message', (msg, rinfo) => {
      // Only the server asked, with our id and question: anything else is ignored (spoofing, stray packets).
      if (rinfo.address !== server.host || rinfo.port !== server.port) return;
      let response: Decoded;
      try {
        response = dnsPacket.decode(msg);
      } catch {
        return;
      }
      if (answersQuestion(response, id, name, type)) done(null, response);
    });
    socket.send(packet, server.port, server.host, (err) => {
      if (err) done(new DnsError('NETWORK', `DNS query to ${server.host}:${server.port} failed: ${err.message}`, { cause: err }));
    });
  });
}

function queryTcp(server: DnsServer, name: string, type: DnsRecordType, timeoutMs: number): Promise<Decoded> {
  const id = randomInt(0, 65536);
  const packet = dnsPacket.streamEncode(query(name, type, id));
  return new Promise<Decoded>((resolve, reject) => {
    const socket = connect({ host: server.host, port: server.port });
    let buffered = Buffer.alloc(0);
    let settled = false;
    const done = (err: DnsError | null, response?: Decoded) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err); else resolve(response!);
    };
    const timer = setTimeout(() => done(new DnsError('TIMEOUT', `no answer over TCP from ${server.host}:${server.port} for ${type} ${name} within ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', (err) => done(new DnsError('NETWORK', `DNS query over TCP to ${server.host}:${server.port} failed: ${err.message}`, { cause: err })));
    socket.on('close', () => done(new DnsError('BAD_RESPONSE', `${server.host}:${server.port} closed the TCP connection without an answer for ${type} ${name}`)));
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 2) return;
      const length = buffered.readUInt16BE(0);
      if (length > MAX_TCP_RESPONSE) return done(new DnsError('BAD_RESPONSE', 'oversized DNS response'));
      if (buffered.length < 2 + length) return;
      let response: Decoded;
      try {
        response = dnsPacket.decode(buffered.subarray(2, 2 + length));
      } catch (err) {
        return done(new DnsError('BAD_RESPONSE', `undecodable DNS response from ${server.host}:${server.port}`, { cause: err }));
      }
      if (!answersQuestion(response, id, name, type)) return done(new DnsError('BAD_RESPONSE', `the TCP answer from ${server.host}:${server.port} does not match the question`));
      done(null, response);
    });
    socket.write(packet);
  });
}

/**
 * A host's addresses (A and AAAA together) through `dns`, in the shape connection code asks for: what
 * the node dials by name (a did:web host) is looked up by the same client as everything else.
 */
export function hostAddresses(dns: DnsResolver): (hostname: string) => Promise<{ address: string; family: 4 | 6 }[]> {
  return async (hostname) => {
    if (isIP(hostname) !== 0) return [{ address: hostname, family: isIP(hostname) === 6 ? 6 : 4 }];
    const [v4, v6] = await Promise.allSettled([dns.a(hostname), dns.aaaa(hostname)]);
    if (v4.status === 'rejected' && v6.status === 'rejected') throw v4.reason;
    return [
      ...(v4.status === 'fulfilled' ? v4.value.records.map((address) => ({ address, family: 4 as const })) : []),
      ...(v6.status === 'fulfilled' ? v6.value.records.map((address) => ({ address, family: 6 as const })) : []),
    ];
  };
}
