// One validated configuration schema. Sources, later wins: defaults < DATA/config.yaml < AFTERSMTP_* env.
// Unknown keys are rejected so a typo never silently falls back to a default.
import { readFileSync, existsSync } from 'node:fs';
import { join, isAbsolute } from 'node:path';
import { z } from 'zod';
import YAML from 'yaml';
import { GatewayError } from './errors.ts';
import { HTTP2_DEFAULT_WINDOW, HTTP2_MAX_WINDOW } from './grpc-windows.ts';
import { parseAction, parseCondition, parseRuleName, type Rule } from '../rules/index.ts';

const hostPort = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535),
});

/** One SMTP listener of the bridge. */
const smtpListener = (port: number, enabled: boolean, greetingDelayMs: number) => z.strictObject({
  enabled: z.boolean().default(enabled),
  host: z.string().min(1).default('127.0.0.1'),
  /** 0 = any free port (what `aftersmtp init` writes unless a port is given). */
  port: z.number().int().min(0).max(65535).default(port),
  /** Pause before the 220 greeting; a client that talks first is refused (anti-spam on a public MX). */
  greetingDelayMs: z.number().int().min(0).max(60_000).default(greetingDelayMs),
}).prefault({});

export const configSchema = z.strictObject({
  node: z.strictObject({
    domains: z.array(z.string().min(1)).min(1).default(['localhost']),
    didMethod: z.enum(['key', 'web']).default('key'),
    /** Where the node's DID document and keys live, relative to the data directory. */
    keyFile: z.string().default('keys/node.json'),
  }).prefault({}),
  grpc: hostPort.extend({
    port: z.number().int().min(0).max(65535).default(7443),
    /** HTTP/2 receive window per stream for app connections (64 KiB stalls bulk submits: DECISIONS 16). */
    streamWindowBytes: z.number().int().min(HTTP2_DEFAULT_WINDOW).max(HTTP2_MAX_WINDOW).default(1024 * 1024),
    /** HTTP/2 receive window per app connection, shared by its streams. */
    connectionWindowBytes: z.number().int().min(HTTP2_DEFAULT_WINDOW).max(HTTP2_MAX_WINDOW).default(4 * 1024 * 1024),
    /** Calls (HTTP/2 streams) one app connection may have open at once; more wait in the client. */
    maxConcurrentStreams: z.number().int().min(1).max(100_000).default(1000),
  }).prefault({}),
  /** HTTPS for did:web documents (/.well-known/did.json, /users/<name>/did.json). */
  http: z.strictObject({
    enabled: z.boolean().default(true),
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(0),
    /**
     * Prometheus metrics (/metrics, plain HTTP) on a listener of their own, on loopback by default: they
     * tell how busy the node is and how many mailboxes it hosts, which is the operator's business. The
     * public HTTPS listener does not serve them.
     */
    metrics: z.strictObject({
      enabled: z.boolean().default(true),
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(0),
    }).prefault({}),
  }).prefault({}),
  tls: z.strictObject({
    certFile: z.string().default('tls/server.crt'),
    keyFile: z.string().default('tls/server.key'),
    caFile: z.string().default('tls/ca.crt'),
  }).prefault({}),
  storage: z.strictObject({
    file: z.string().default('node.db'),
    /** Group commit: at most this many writes share one fsync'd transaction. */
    maxBatch: z.number().int().min(1).max(10_000).default(256),
    /**
     * Bytes of mail the store may hold (0 = as much as the disk allows; a soft cap, checked as mail
     * arrives). Beyond it, and when the disk is full, new mail is refused as transient (UNAVAILABLE,
     * STORAGE_FULL); reads, acks and housekeeping go on: docs/DECISIONS.md 24.
     */
    maxBytes: z.number().int().min(0).default(0),
    /**
     * New mail is refused (STORAGE_FULL) while the disk holding the store has less free space than this
     * (0 = until the disk is full), so acks, housekeeping and the log keep room to work: as Postfix
     * keeps room for 1.5 messages of the largest size. Default: two envelopes of the largest default size.
     */
    minFreeBytes: z.number().int().min(0).default(64 * 1024 * 1024),
    /** How long a message stays in the store after its mailbox acknowledged it (then housekeeping deletes it). */
    ackedRetentionMs: z.number().int().min(0).default(7 * 24 * 3600_000),
  }).prefault({}),
  ledger: z.strictObject({
    file: z.string().default('ledger.db'),
    /** Checkpoint origin line; default "<first domain>/aftersmtp". */
    origin: z.string().min(1).optional(),
    checkpointIntervalMs: z.number().int().min(100).default(2000),
    checkpointEvery: z.number().int().min(1).default(1024),
    /** Substrate anchoring: off unless an endpoint is set. One extrinsic per interval at most. */
    anchor: z.strictObject({
      endpoint: z.string().regex(/^wss?:\/\//, 'must be a ws:// or wss:// URL').optional(),
      intervalMs: z.number().int().min(1000).default(60_000),
      finality: z.enum(['finalized', 'inBlock']).default('finalized'),
    }).prefault({}),
  }).prefault({}),
  limits: z.strictObject({
    maxEnvelopeBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(25 * 1024 * 1024),
    maxRecipients: z.number().int().min(1).max(1000).default(1000),
    maxLifetimeMs: z.number().int().min(60_000).default(7 * 24 * 3600 * 1000),
    clockSkewMs: z.number().int().min(0).default(5 * 60 * 1000),
    maxInFlightDeliveries: z.number().int().min(1).max(10_000).default(256),
    /**
     * Messages of one SubmitStream the node works on at once. Beyond it the node stops reading that stream
     * until replies go out, so HTTP/2 flow control holds a sender back instead of the node's memory growing.
     */
    maxInFlightSubmits: z.number().int().min(1).max(10_000).default(256),
  }).prefault({}),
  /** DID resolution. */
  identity: z.strictObject({
    /** did:web host overrides ("b.test": "127.0.0.1:8443"), for private setups and tests. */
    didWebHosts: z.record(z.string(), z.string()).default({}),
    /** Extra CA certificates (PEM files) trusted for did:web over HTTPS, besides the system's. */
    caFiles: z.array(z.string()).default([]),
    cacheTtlMs: z.number().int().min(0).default(300_000),
    /** How long a DID that did not resolve is answered as failed without a new fetch (0 = not remembered). */
    failureTtlMs: z.number().int().min(0).default(10_000),
  }).prefault({}),
  /** Node-to-node federation. */
  federation: z.strictObject({
    enabled: z.boolean().default(true),
    /** QUIC listener (UDP); port 0 = any free port. */
    quic: z.strictObject({
      enabled: z.boolean().default(true),
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(0),
    }).prefault({}),
    /** HTTP/2 + TLS relay listener, the fallback where UDP is blocked. */
    relay: z.strictObject({
      enabled: z.boolean().default(true),
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(0),
    }).prefault({}),
    /** Static routes (like Postfix's transport map); they override DNS discovery. */
    // A route to an SMTP server (`smtp://HOST[:PORT][?tls=...]`, domain "*" for a smarthost) names no DID.
    routes: z.array(z.strictObject({
      domain: z.string().min(1),
      did: z.string().regex(/^did:[a-z0-9]+:/).or(z.literal('')).default(''),
      endpoint: z.string().min(1),
    }).refine((r) => r.did !== '' || /^smtp:\/\//i.test(r.endpoint), { message: 'a route to an AfterSMTP node needs its did' })).default([]),
    /** Deprecated: dns.servers. Still read (added to dns.servers) when set. */
    dnsServers: z.array(z.string()).default([]),
    retry: z.strictObject({
      initialMs: z.number().int().min(10).default(60_000),
      maxMs: z.number().int().min(10).default(3600_000),
    }).prefault({}),
    maxInFlightPerPeer: z.number().int().min(1).max(1024).default(64),
    /**
     * What one peer node (one transport key) may have this node work on at once, over all its
     * connections and streams; beyond it the peer's streams are not read (it is held by flow control)
     * while other peers go on. Defaults: what a well-behaved sender uses (4 relay streams of 64).
     */
    peerBudget: z.strictObject({
      maxInFlightMessages: z.number().int().min(1).max(100_000).default(256),
      maxInFlightBytes: z.number().int().min(1024).default(128 * 1024 * 1024),
      // Room for a peer's QUIC and HTTP/2 connections and for stale ones of a restarted peer (closed when idle).
      maxConnections: z.number().int().min(1).max(1000).default(8),
    }).prefault({}),
    /** How often the outbound queue is re-read as a safety net, even when nothing says it changed. */
    queueScanMs: z.number().int().min(100).default(5000),
    /** How long the queue keeps the record of a delivered or failed recipient (with its receipt or error). */
    finishedRetentionMs: z.number().int().min(0).default(7 * 24 * 3600_000),
    /** A peer that has not acknowledged an envelope by then is considered gone; the mail is retried. */
    ackTimeoutMs: z.number().int().min(100).default(30_000),
    dialTimeoutMs: z.number().int().min(100).default(5000),
    /** Witnessing (docs/LEDGER.md "Witnessing"): peers cosign our checkpoints, we cosign theirs. */
    witness: z.strictObject({
      enabled: z.boolean().default(true),
      /** How often our newest checkpoint is presented to each witness. */
      intervalMs: z.number().int().min(100).default(30_000),
      /** Domains whose nodes are asked to cosign; empty = every peer with a route or a relay channel. */
      peers: z.array(z.string().min(1)).default([]),
      /** New logs are witnessed only while fewer are followed (state per origin); configured peers' logs always are. */
      maxLogs: z.number().int().min(1).default(1000),
    }).prefault({}),
  }).prefault({}),
  /** The node's one DNS client (federation discovery and the SMTP bridge). */
  dns: z.strictObject({
    /** "host:port" or "host"; empty = the nameservers of /etc/resolv.conf. A loopback validating resolver is what DANE needs. */
    servers: z.array(z.string().min(1)).default([]),
    /** Per try and server. */
    timeoutMs: z.number().int().min(100).max(60_000).default(2000),
  }).prefault({}),
  /** The SMTP bridge (docs/BRIDGE.md). */
  bridge: z.strictObject({
    smtp: z.strictObject({
      enabled: z.boolean().default(true),
      /** The 220 banner, the `by` of Received and the authserv-id of Authentication-Results; default: the node's first domain. */
      hostname: z.string().min(1).optional(),
      /** Mail from other MTAs for the node's domains. */
      mx: smtpListener(25, true, 0),
      /** Mail clients with AUTH (mailbox address + API token) after STARTTLS. */
      submission: smtpListener(587, true, 0),
      /** The same with implicit TLS. */
      smtps: smtpListener(465, false, 0),
      limits: z.strictObject({
        /**
         * Advertised in SIZE. The sealed message must still fit limits.maxEnvelopeBytes (25 MiB by
         * default), so the default leaves a megabyte for the envelope around it.
         */
        maxMessageBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(24 * 1024 * 1024),
        /** RFC 5321 §4.5.3.1.8: at least 100. */
        maxRecipients: z.number().int().min(1).max(1000).default(100),
        maxSessions: z.number().int().min(1).max(100_000).default(100),
        maxSessionsPerIp: z.number().int().min(1).max(100_000).default(10),
        commandTimeoutMs: z.number().int().min(1000).default(5 * 60_000),
        dataTimeoutMs: z.number().int().min(1000).default(10 * 60_000),
        authFailuresPerIpPerMinute: z.number().int().min(1).default(10),
        submissionsPerMinute: z.number().int().min(1).default(60),
        submissionsPerHour: z.number().int().min(1).default(1000),
        submissionsPerDay: z.number().int().min(1).default(5000),
      }).prefault({}),
      /** DNSBL zones asked about each MX client's IP. */
      dnsbl: z.array(z.string().min(1)).default([]),
      /** ARC sealers (d= domains) whose passing chain overrides a DMARC p=reject failure. */
      trustedArcSealers: z.array(z.string().min(1)).default([]),
      /** STARTTLS and implicit TLS certificate; default: the node's server certificate (tls.certFile, tls.keyFile). */
      tls: z.strictObject({
        certFile: z.string().min(1).optional(),
        keyFile: z.string().min(1).optional(),
      }).prefault({}),
      /**
       * The MTA-STS policy (RFC 8461) the node serves for each of its domains at
       * https://mta-sts.<domain>/.well-known/mta-sts.txt; its id follows its content.
       */
      mtaSts: z.strictObject({
        mode: z.enum(['enforce', 'testing', 'none']).default('testing'),
        /** MX host patterns the policy names (`*.` for one label); empty = the bridge's host name. */
        mx: z.array(z.string().min(1)).default([]),
        maxAgeSeconds: z.number().int().min(86_400).max(31_557_600).default(604_800),
      }).prefault({}),
      /** Reports about others' mail (docs/BRIDGE.md "Reports"). */
      reports: z.strictObject({
        /** TLS-RPT (RFC 8460): a daily report of the TLS the node met, to each policy domain that asks. */
        tlsRpt: z.boolean().default(true),
        /** DMARC aggregate reports (RFC 9990): a daily report of what the MX saw, to each DMARC domain's rua. */
        dmarc: z.boolean().default(true),
        /** How often due reports are looked for (finished UTC days not yet reported). */
        intervalMs: z.number().int().min(100).default(3600_000),
        /** How long a report POST may take. */
        postTimeoutMs: z.number().int().min(100).default(30_000),
        /** Test setups only: report URL host -> `host:port` to connect to (the name checked stays the URL's). */
        postHostMap: z.record(z.string(), z.string()).default({}),
      }).prefault({}),
      /** Sending to domains without an AfterSMTP node (docs/BRIDGE.md "Sending to legacy domains"). */
      outbound: z.strictObject({
        enabled: z.boolean().default(true),
        connectTimeoutMs: z.number().int().min(100).default(30_000),
        /** RFC 5321 §4.5.3.2: 5 minutes per command, 10 for the reply to the message data. */
        commandTimeoutMs: z.number().int().min(100).default(5 * 60_000),
        dataTimeoutMs: z.number().int().min(100).default(10 * 60_000),
        /** Connections kept open per MX host (reused with RSET for the next message). */
        maxConnectionsPerHost: z.number().int().min(1).max(100).default(8),
        maxMessagesPerConnection: z.number().int().min(1).default(100),
        idleTimeoutMs: z.number().int().min(0).default(10_000),
        /** How long an MTA-STS policy fetch may take (connect, response and body). */
        stsFetchTimeoutMs: z.number().int().min(100).default(10_000),
        /** Extra CAs (PEM files) trusted for PKIX checks (MTA-STS, `verify` routes), besides the system's. */
        caFiles: z.array(z.string()).default([]),
        /** Test setups only: MX host -> port to connect to (TLSA names still say _25._tcp). */
        portMap: z.record(z.string(), z.number().int().min(1).max(65535)).default({}),
        /** Test setups only: `mta-sts.<domain>` -> `host:port` to fetch its policy from (the name checked stays). */
        stsHostMap: z.record(z.string(), z.string()).default({}),
        /**
         * DKIM keys the bridge signs with, for each of the node's domains (`aftersmtp init` makes an
         * RSA-2048 and an Ed25519 key for the first domain; `aftersmtp dkim show` prints their DNS records).
         */
        dkim: z.array(z.strictObject({
          domain: z.string().min(1),
          selector: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9-]*(\.[A-Za-z0-9][A-Za-z0-9-]*)*$/),
          algorithm: z.enum(['rsa', 'ed25519']),
          keyFile: z.string().min(1),
          /** Set by `aftersmtp dkim rotate`: the key no longer signs, and stays published for dkimGraceDays. */
          retiredAt: z.iso.datetime().optional(),
        })).default([]),
        /** How long a retired DKIM key stays in `dns records` (mail it signed may still be verified). */
        dkimGraceDays: z.number().int().min(0).max(365).default(7),
        /** The secret of the Sender Rewriting Scheme for forwarded mail (a file `init` writes). */
        srsSecretFile: z.string().min(1).default('srs.secret'),
      }).prefault({}),
    }).prefault({}),
  }).prefault({}),
  /** Webhooks: each delivery to a mailbox with a hook is POSTed to it (docs/APPS.md "Webhooks"). */
  webhooks: z.strictObject({
    /** false: nothing is posted; deliveries still queue for their hooks and stay in the mailbox until acknowledged. */
    enabled: z.boolean().default(true),
    /** How long one POST may take (connect, answer and body); a slower hook is retried. */
    timeoutMs: z.number().int().min(100).max(600_000).default(15_000),
    /** Backoff between attempts: initialMs, doubled each time, capped at maxMs. */
    retry: z.strictObject({
      initialMs: z.number().int().min(10).default(10_000),
      maxMs: z.number().int().min(10).default(3600_000),
    }).prefault({}),
    /** A delivery its hook has not taken for this long is dead-lettered (`aftersmtp webhooks retry`); it stays in the mailbox. */
    maxAgeMs: z.number().int().min(100).default(3 * 24 * 3600_000),
    /** POSTs in flight to one hook at once. */
    concurrency: z.number().int().min(1).max(4).default(1),
    /** How often the rows are re-read as a safety net (retries due, hooks set or retried by the CLI). */
    scanMs: z.number().int().min(50).default(5000),
    /** Extra CAs (PEM files) trusted for hook URLs, besides the system's. */
    caFiles: z.array(z.string()).default([]),
    /** Test setups only: hook URL host -> `host:port` to connect to (the name checked stays the URL's). */
    hostMap: z.record(z.string(), z.string()).default({}),
  }).prefault({}),
  /**
   * Compliance rules (docs/OPERATIONS.md "Compliance rules"), written as `aftersmtp rules add` takes them
   * (`when: ['to:*@example.test']`, `then: 'journal archive@example.test'`). They apply in this order,
   * before the rules `rules add` keeps in the store, and only a change of this file changes them.
   */
  rules: z.array(z.strictObject({
    name: z.string(),
    when: z.array(z.string()).default([]),
    then: z.string(),
  }).transform((r, ctx): Rule => {
    try {
      return { name: parseRuleName(r.name), when: r.when.map(parseCondition), then: parseAction(r.then) };
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `rule ${JSON.stringify(r.name)}: ${(err as Error).message}` });
      return z.NEVER;
    }
  })).default([]).refine((rules) => new Set(rules.map((r) => r.name)).size === rules.length, { message: 'two rules have the same name' }),
  admin: z.strictObject({
    /** SHA-256 (hex) of the admin API token; set by `aftersmtp init`. */
    tokenSha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  }).prefault({}),
  memory: z.strictObject({
    /** Old-generation growth per full GC in percent (100 = double; 0 = V8's own heuristic): docs/DECISIONS.md 15. */
    heapGrowthPercent: z.number().int().min(0).max(400).default(100),
    /** A memory-reducing GC after start-up and whenever the node turns idle after a busy spell. */
    idleTrim: z.boolean().default(true),
  }).prefault({}),
  log: z.strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  }).prefault({}),
});

export type NodeConfig = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

export const CONFIG_FILE = 'config.yaml';

/** Turns AFTERSMTP_GRPC__PORT=7000 into { grpc: { port: 7000 } } (sections split on "__", snake to camel). */
export function envOverrides(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('AFTERSMTP_') || raw === undefined || name === 'AFTERSMTP_DATA') continue;
    const path = name.slice('AFTERSMTP_'.length).split('__').map(camelCase);
    let target = out;
    for (const key of path.slice(0, -1)) {
      const next = (target[key] ??= {});
      if (typeof next !== 'object' || next === null) break;
      target = next as Record<string, unknown>;
    }
    target[path.at(-1)!] = YAML.parse(raw);
  }
  return out;
}

function camelCase(snake: string): string {
  return snake.toLowerCase().replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prev = out[key];
    out[key] = isPlainObject(prev) && isPlainObject(value) ? deepMerge(prev, value) : value;
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validates raw config input; the error names every offending key path. */
export function parseConfig(input: unknown, source = 'config'): NodeConfig {
  const result = configSchema.safeParse(input ?? {});
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const keys = issue.code === 'unrecognized_keys' ? issue.keys : [];
      const path = [...issue.path.map(String)];
      if (keys.length) return `${[...path, keys.join(', ')].join('.')}: unknown key`;
      return `${path.join('.') || '(root)'}: ${issue.message}`;
    });
    throw new GatewayError('CONFIG_INVALID', `invalid configuration in ${source}: ${problems.join('; ')}`);
  }
  return result.data;
}

/** Loads DATA/config.yaml, applies AFTERSMTP_* overrides, validates. */
export function loadConfig(dataDir: string, env: NodeJS.ProcessEnv = process.env): NodeConfig {
  const file = join(dataDir, CONFIG_FILE);
  let fromFile: unknown = {};
  if (existsSync(file)) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new GatewayError('CONFIG_INVALID', `cannot read ${file}: ${(err as Error).message}`);
    }
    try {
      fromFile = YAML.parse(text) ?? {};
    } catch (err) {
      throw new GatewayError('CONFIG_INVALID', `${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
    }
    if (!isPlainObject(fromFile)) throw new GatewayError('CONFIG_INVALID', `${file} must hold a mapping at the top level`);
  }
  const merged = deepMerge(fromFile as Record<string, unknown>, envOverrides(env));
  return parseConfig(merged, file);
}

/** The node's DNS servers: dns.servers, plus the deprecated federation.dnsServers where still set. */
export function dnsServersOf(config: NodeConfig): string[] {
  return [...new Set([...config.dns.servers, ...config.federation.dnsServers])];
}

/** The SMTP bridge's host name: the banner, Received's `by` and the authserv-id. */
export function smtpHostname(config: NodeConfig): string {
  return config.bridge.smtp.hostname ?? config.node.domains[0]!;
}

/** Resolves a config path relative to the data directory. */
export function dataPath(dataDir: string, path: string): string {
  return isAbsolute(path) ? path : join(dataDir, path);
}

const SECRET_KEY = /token|secret|private|password/i;

/** A copy safe to print: every value under a secret-looking key is replaced. */
export function redactConfig(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactConfig);
  if (!isPlainObject(value)) return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, SECRET_KEY.test(k) && v !== undefined ? '[redacted]' : redactConfig(v)]),
  );
}
