// MTA-STS (RFC 8461): a domain without DNSSEC says over HTTPS which MX hosts may receive its mail and whether
// a sender must refuse to deliver without PKIX-valid TLS to one of them. The TXT record only announces a
// policy id; the policy itself is fetched, cached for its max_age, and kept when the TXT record or the web
// server later fails, so an attacker who blocks either cannot switch a known policy off.
import { request } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { BridgeSecureResolver } from '../auth/dns.ts';

/** RFC 8460 result types an MTA-STS failure is reported under. */
export type StsFailureCode = 'sts-policy-fetch-error' | 'sts-policy-invalid' | 'sts-webpki-invalid';

export class StsError extends Error {
  readonly code: StsFailureCode;
  constructor(code: StsFailureCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StsError';
    this.code = code;
  }
}

export type StsMode = 'enforce' | 'testing' | 'none';

export interface StsPolicy {
  version: 'STSv1';
  mode: StsMode;
  /** Host names and single-label wildcards (`*.example.net`), lower case, without a trailing dot. */
  mx: string[];
  maxAgeSeconds: number;
}

export type StsRecord =
  | { kind: 'record'; id: string }
  /** No record starts with `v=STSv1`: the domain has no policy. */
  | { kind: 'none' }
  /** Several STS records, or one that cannot be read: treated as no policy announced (RFC 8461 §3.1). */
  | { kind: 'invalid'; reason: string };

/** RFC 8461 §3.2: a policy may be cached for at most one year. */
export const MAX_STS_AGE_SECONDS = 31_557_600;
const ID = /^[A-Za-z0-9]{1,32}$/;
const FIELD_NAME = /^[A-Za-z0-9_.-]{1,32}$/;
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const MX_PATTERN = new RegExp(`^(?:\\*\\.)?(?:${LABEL}\\.)*${LABEL}$`);

/** The `_mta-sts.<domain>` TXT record among the TXT records there (each whole, its strings joined). */
export function parseStsRecord(txt: string[]): StsRecord {
  // The separator may carry spaces or tabs on either side (RFC 8461 §3.1: sts-sep = *WSP ";" *WSP).
  const sts = txt.filter((record) => /^v=STSv1[ \t]*(;|$)/.test(record));
  if (sts.length === 0) return { kind: 'none' };
  if (sts.length > 1) return { kind: 'invalid', reason: `${sts.length} STS records` };
  let id: string | undefined;
  for (const field of sts[0]!.split(';').slice(1).map((f) => f.replace(/^[ \t]+|[ \t]+$/g, ''))) {
    if (field === '') continue;
    const eq = field.indexOf('=');
    if (eq <= 0) return { kind: 'invalid', reason: `malformed field "${field}"` };
    const key = field.slice(0, eq);
    const value = field.slice(eq + 1);
    if (key === 'id') {
      if (id !== undefined) return { kind: 'invalid', reason: 'two id fields' };
      if (!ID.test(value)) return { kind: 'invalid', reason: `malformed id "${value}"` };
      id = value;
    }
  }
  return id === undefined ? { kind: 'invalid', reason: 'no id field' } : { kind: 'record', id };
}

/**
 * The policy document. Strict: every line is `key: value` (CRLF or LF), unknown keys are ignored as the RFC
 * requires, but a repeated single-valued field is refused: two modes or two ages leave no safe choice.
 */
export function parseStsPolicy(text: string): StsPolicy {
  const invalid = (why: string) => new StsError('sts-policy-invalid', `MTA-STS policy: ${why}`);
  const lines = text.split(/\r?\n/);
  if (lines.at(-1) === '') lines.pop();
  const single = new Map<string, string>();
  const mx: string[] = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw invalid(`not a "key: value" line: ${JSON.stringify(line.slice(0, 80))}`);
    const key = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!FIELD_NAME.test(key)) throw invalid(`bad field name ${JSON.stringify(key)}`);
    if (key === 'mx') {
      const pattern = value.toLowerCase().replace(/\.$/, '');
      if (!MX_PATTERN.test(pattern) || pattern.length > 253) throw invalid(`bad mx pattern ${JSON.stringify(value)}`);
      mx.push(pattern);
    } else if (key === 'version' || key === 'mode' || key === 'max_age') {
      if (single.has(key)) throw invalid(`${key} given twice`);
      single.set(key, value);
    }
  }
  if (single.get('version') !== 'STSv1') throw invalid('version is not STSv1');
  const mode = single.get('mode');
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') throw invalid(`mode ${JSON.stringify(mode ?? '')}`);
  const age = single.get('max_age') ?? '';
  if (!/^[0-9]{1,10}$/.test(age) || Number(age) > MAX_STS_AGE_SECONDS) throw invalid(`max_age ${JSON.stringify(age)}`);
  if (mode !== 'none' && mx.length === 0) throw invalid(`mode ${mode} without mx`);
  return { version: 'STSv1', mode, mx, maxAgeSeconds: Number(age) };
}

/** Whether an MX host is one the policy names; `*.` stands for exactly one leftmost label (RFC 8461 §4.1). */
export function mxMatches(policy: Pick<StsPolicy, 'mx'>, host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return policy.mx.some((pattern) => {
    if (!pattern.startsWith('*.')) return pattern === name;
    const dot = name.indexOf('.');
    return dot > 0 && name.slice(dot + 1) === pattern.slice(2);
  });
}

export interface StsFetchOptions {
  /** One deadline for connecting, the response and the whole body. */
  fetchTimeoutMs: number;
  /** Largest policy body read (default 64 KiB, RFC 8461 §3.3). */
  maxBytes?: number;
  /** Trust anchors instead of the system's (tests pass their own CA). */
  ca?: string | string[];
  /** Test-only: `mta-sts.<domain>` -> `host:port` to connect to; the name checked and sent stays the policy host. */
  hostMap?: Record<string, string>;
  /** The address to connect to for the policy host (default: the system resolver). */
  resolveHost?: (host: string) => Promise<string>;
}

const TLS_VERIFY_ERRORS = new Set([
  'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED', 'CERT_REJECTED', 'INVALID_CA', 'CERT_REVOKED',
]);

function failureOf(err: unknown): StsError {
  if (err instanceof StsError) return err;
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
  const text = err instanceof Error ? err.message : String(err);
  return TLS_VERIFY_ERRORS.has(code)
    ? new StsError('sts-webpki-invalid', `policy host certificate: ${text}`, { cause: err })
    : new StsError('sts-policy-fetch-error', `policy fetch: ${text}`, { cause: err });
}

/**
 * Fetches and parses `https://mta-sts.<domain>/.well-known/mta-sts.txt`: status 200 only (a redirect is a
 * failure, RFC 8461 §3.3), `text/plain`, at most `maxBytes`, from a host whose certificate is PKIX-valid for
 * the policy host name. Throws StsError.
 */
export async function fetchStsPolicy(domain: string, opts: StsFetchOptions): Promise<StsPolicy> {
  const policyHost = `mta-sts.${domain.toLowerCase().replace(/\.$/, '')}`;
  const maxBytes = opts.maxBytes ?? 65_536;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new StsError('sts-policy-fetch-error', `policy fetch: no complete answer within ${opts.fetchTimeoutMs} ms`)), opts.fetchTimeoutMs);
  try {
    let host = policyHost;
    let port = 443;
    const mapped = opts.hostMap?.[policyHost];
    if (mapped) {
      const colon = mapped.lastIndexOf(':');
      host = mapped.slice(0, colon);
      port = Number(mapped.slice(colon + 1));
    } else if (opts.resolveHost) {
      host = await opts.resolveHost(policyHost);
    }
    const body = await new Promise<Buffer>((resolve, reject) => {
      const fail = (err: unknown) => reject(failureOf(err));
      const req = request({
        host, port, servername: policyHost, path: '/.well-known/mta-sts.txt', method: 'GET',
        headers: { host: policyHost, accept: 'text/plain' }, ca: opts.ca, rejectUnauthorized: true, agent: false,
        signal: controller.signal,
      }, (res: IncomingMessage) => {
        // Settles first: destroying the response emits 'aborted', which must not replace the reason given here.
        const stop = (err: StsError) => { fail(err); res.destroy(); };
        const type = (res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
        if (res.statusCode !== 200) {
          return stop(new StsError('sts-policy-fetch-error', `policy fetch: HTTP ${res.statusCode}${res.headers.location ? ` (redirect not followed)` : ''}`));
        }
        if (type !== 'text/plain') {
          return stop(new StsError('sts-policy-invalid', `policy fetch: content type ${JSON.stringify(res.headers['content-type'] ?? '')}, not text/plain`));
        }
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > maxBytes) {
          return stop(new StsError('sts-policy-invalid', `policy fetch: body of ${declared} bytes exceeds ${maxBytes}`));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            stop(new StsError('sts-policy-invalid', `policy fetch: body exceeds ${maxBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => resolve(Buffer.concat(chunks)));
        res.on('error', fail);
        res.on('aborted', () => fail(new StsError('sts-policy-fetch-error', 'policy fetch: the response was cut off')));
      });
      req.on('error', (err) => fail(controller.signal.aborted ? controller.signal.reason : err));
      req.end();
    });
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(body);
    } catch (err) {
      throw new StsError('sts-policy-invalid', 'MTA-STS policy: not UTF-8', { cause: err });
    }
    return parseStsPolicy(text);
  } catch (err) {
    throw failureOf(controller.signal.aborted ? controller.signal.reason : err);
  } finally {
    clearTimeout(timer);
  }
}

export interface CachedStsPolicy {
  domain: string;
  id: string;
  policy: StsPolicy;
  fetchedMs: number;
  expiresMs: number;
}

/** Where known policies are kept between deliveries (persisted by the node: a policy must survive restarts). */
export interface StsPolicyCache {
  get(domain: string): Promise<CachedStsPolicy | undefined>;
  put(entry: CachedStsPolicy): Promise<void>;
}

/** A cache in memory, for tests and tools; the node keeps policies in its store. */
export class InMemoryStsPolicyCache implements StsPolicyCache {
  readonly #entries = new Map<string, CachedStsPolicy>();
  async get(domain: string): Promise<CachedStsPolicy | undefined> { return this.#entries.get(domain.toLowerCase()); }
  async put(entry: CachedStsPolicy): Promise<void> { this.#entries.set(entry.domain.toLowerCase(), entry); }
}

export type StsResolution =
  /** An enforce or testing policy applies; `fromCache` when it was not fetched now. */
  | { kind: 'policy'; id: string; policy: StsPolicy; fromCache: boolean }
  /** No policy applies: none announced and none cached, or the domain withdrew it with `mode: none`. */
  | { kind: 'none'; reason: string }
  /** A policy was announced but could not be fetched and none is cached: report it; deliver as without one. */
  | { kind: 'failed'; failure: StsFailureCode; detail: string };

function applied(entry: CachedStsPolicy, fromCache: boolean): StsResolution {
  if (entry.policy.mode === 'none') return { kind: 'none', reason: `policy ${entry.id} has mode none` };
  return { kind: 'policy', id: entry.id, policy: entry.policy, fromCache };
}

/**
 * The MTA-STS policy for mail to `domain` now (RFC 8461 §5.1): the TXT id decides whether the cached policy
 * still stands; a new id is fetched; when the TXT lookup or the fetch fails, a cached policy still within its
 * max_age keeps applying.
 */
export async function resolveStsPolicy(
  domain: string, resolver: Pick<BridgeSecureResolver, 'txt'>, cache: StsPolicyCache, fetchOpts: StsFetchOptions, nowMs: number,
): Promise<StsResolution> {
  const name = domain.toLowerCase().replace(/\.$/, '');
  const stored = await cache.get(name);
  const cached = stored && stored.expiresMs > nowMs ? stored : undefined;

  let record: StsRecord;
  try {
    const answer = await resolver.txt(`_mta-sts.${name}`);
    record = parseStsRecord(answer.records);
  } catch (err) {
    if (cached) return applied(cached, true);
    return { kind: 'none', reason: `TXT lookup for _mta-sts.${name} failed: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (record.kind !== 'record') {
    if (cached) return applied(cached, true);
    return { kind: 'none', reason: record.kind === 'none' ? 'no MTA-STS record' : `MTA-STS record invalid: ${record.reason}` };
  }
  if (cached && cached.id === record.id) return applied(cached, true);

  let policy: StsPolicy;
  try {
    policy = await fetchStsPolicy(name, fetchOpts);
  } catch (err) {
    if (cached) return applied(cached, true);
    const failure = failureOf(err);
    return { kind: 'failed', failure: failure.code, detail: failure.message };
  }
  const entry: CachedStsPolicy = { domain: name, id: record.id, policy, fetchedMs: nowMs, expiresMs: nowMs + policy.maxAgeSeconds * 1000 };
  await cache.put(entry);
  return applied(entry, false);
}

/**
 * Refreshes a cached policy past half its max_age before it runs out (RFC 8461 §5.1: a sender should not
 * let a policy lapse while the domain still publishes it): the TXT record is read again and the policy
 * fetched again, even under the same id, and kept with a new max_age. A domain that no longer announces a
 * policy, or one that cannot be fetched now, keeps what is cached until it expires. Resolves with what
 * happened, for the log.
 */
export async function refreshStsPolicy(
  entry: CachedStsPolicy, resolver: Pick<BridgeSecureResolver, 'txt'>, cache: StsPolicyCache, fetchOpts: StsFetchOptions, nowMs: number,
): Promise<'fresh' | 'refreshed' | 'kept'> {
  if (nowMs < entry.fetchedMs + (entry.expiresMs - entry.fetchedMs) / 2) return 'fresh';
  try {
    const record = parseStsRecord((await resolver.txt(`_mta-sts.${entry.domain}`)).records);
    if (record.kind !== 'record') return 'kept';
    const policy = await fetchStsPolicy(entry.domain, fetchOpts);
    await cache.put({ domain: entry.domain, id: record.id, policy, fetchedMs: nowMs, expiresMs: nowMs + policy.maxAgeSeconds * 1000 });
    return 'refreshed';
  } catch {
    return 'kept';
  }
}
