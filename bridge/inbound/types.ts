// The seam between the SMTP listeners (bridge/inbound) and whoever makes received mail durable (the node).
// The listeners own SMTP: sessions, TLS, AUTH exchanges, limits, policy, the trace fields they prepend and
// the reply codes. The handler owns mailboxes, tokens and the store, and knows nothing of SMTP: it answers
// in BridgeError codes, which bridge/inbound maps to SMTP replies in one place.
import type { BridgeResolver } from '../auth/dns.ts';
import type { AuthVerdicts } from '../auth/verify.ts';

/** `mx`: mail from other MTAs for the node's domains (port 25). `submission`: mail clients with AUTH after
 *  STARTTLS (587). `smtps`: the same with implicit TLS (465). */
export type ListenerKind = 'mx' | 'submission' | 'smtps';

export interface ListenerConfig {
  kind: ListenerKind;
  host: string;
  /** 0 = any free port (tests). */
  port: number;
  /** Pause before the 220 greeting; a client that talks first is refused (anti-spam on a public MX, 0 on submission). */
  greetingDelayMs: number;
}

export interface InboundLimits {
  /** Advertised in SIZE; larger messages get 552 5.3.4. */
  maxMessageBytes: number;
  /** RCPT TO past this gets 452 4.5.3. */
  maxRecipients: number;
  /** Concurrent sessions over all listeners, and per client IP (421 4.7.0 past either). */
  maxSessions: number;
  maxSessionsPerIp: number;
  /** A command must arrive within this; DATA must complete within dataTimeoutMs (slowloris). */
  commandTimeoutMs: number;
  dataTimeoutMs: number;
  /** Failed AUTH attempts per client IP per minute before 421 4.7.0 (and per session before 535 and close). */
  authFailuresPerIpPerMinute: number;
  /** Per authenticated mailbox: messages per minute, hour and day on submission (451 4.7.1 past them). */
  submissionsPerMinute: number;
  submissionsPerHour: number;
  submissionsPerDay: number;
}

export interface InboundOptions {
  /** The node's host name: the 220 banner, the `by` of Received, and the authserv-id of Authentication-Results. */
  hostname: string;
  listeners: ListenerConfig[];
  /** The certificate for STARTTLS and implicit TLS (PEM). */
  tls: { key: string | Buffer; cert: string | Buffer };
  limits: InboundLimits;
  /** DNSBL zones asked about each MX client's IP (554 5.7.1 naming the zone on a listing). */
  dnsbl: string[];
  /** ARC sealers (d= domains) whose passing chain overrides a DMARC p=reject failure. */
  trustedArcSealers: string[];
  /** The node's one DNS client. */
  resolver: BridgeResolver;
  handler: InboundHandler;
  logger: BridgeLogger;
}

export interface InboundServer {
  /** Where each listener is bound (port 0 resolved). */
  addresses(): Partial<Record<ListenerKind, { host: string; port: number }>>;
  /** Stops accepting; open sessions get 421 4.3.2 and are closed; resolves when all are gone. */
  close(): Promise<void>;
}

/** What the handler says of a recipient address at RCPT TO. */
export type RecipientKind =
  /** A mailbox of this node (or its catch-all). */
  | 'local'
  /** A domain with an AfterSMTP node (route or `_aftersmtp` record): submission may send there. */
  | 'peer'
  /** A domain without an AfterSMTP node, reached over SMTP by the outbound bridge: submission may send there. */
  | 'legacy'
  /** A remote domain this node cannot send to (no AfterSMTP node, and the outbound bridge is off). */
  | 'unroutable'
  /** One of this node's domains, but no such mailbox. */
  | 'unknown';

export interface InboundRecipient {
  /** Lower-cased, validated (no source route, %-hack, bang path, quoted @). */
  address: string;
  /** DSN (RFC 3461) NOTIFY and ORCPT as given, for the outbound bridge to honour. */
  notify?: ('NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY')[];
  orcpt?: string;
}

export interface InboundMessage {
  /** The session id that is in every log line of the session. */
  sessionId: string;
  listener: ListenerKind;
  clientIp: string;
  helo: string;
  tls: boolean;
  /** Submission: the mailbox address AUTH proved. */
  authenticated?: string;
  /** The envelope sender; '' for the null sender (bounces). */
  mailFrom: string;
  recipients: InboundRecipient[];
  /** DSN (RFC 3461) RET and ENVID as given. */
  dsn: { ret?: 'FULL' | 'HDRS'; envid?: string };
  /** The client asked for REQUIRETLS (RFC 8689). */
  requireTls: boolean;
  /** The header From address (lower-cased); '' when the message has none. */
  headerFrom: string;
  /** The message as received (CRLF), with the bridge's Received (and, on MX, Authentication-Results) on top. */
  message: Buffer;
  /** MX only: what SPF, DKIM, DMARC and ARC said. */
  verdicts?: AuthVerdicts;
}

/**
 * What the MX made of one message's DMARC evaluation, whether it took it or not (for the node's DMARC
 * aggregate reports): the disposition applied (reject: refused; quarantine: marked; none: delivered as is)
 * and why it differs from the policy when it does.
 */
export interface InboundObservation {
  sourceIp: string;
  mailFrom: string;
  headerFrom: string;
  verdicts: AuthVerdicts;
  disposition: 'none' | 'quarantine' | 'reject';
  /** The policy was not applied: test mode, or a trusted ARC sealer's chain. */
  override?: 'policy_test_mode' | 'trusted_forwarder';
  /** When the message was received, ms. */
  atMs: number;
}

export interface InboundHandler {
  /** Told of each MX message's DMARC outcome once its verdicts are known (never awaited; must not throw). */
  observe?(observation: InboundObservation): void;
  recipient(address: string, context: { listener: ListenerKind; authenticated?: string }): Promise<RecipientKind>;
  /** AUTH PLAIN/LOGIN: user = the mailbox address, password = its API token. Null when they do not match. */
  authenticate(username: string, password: string): Promise<{ address: string } | null>;
  /**
   * Makes the message durable for every recipient and resolves with the id to name in the 250 reply.
   * Rejects with a BridgeError (STORE_FULL, SHUTTING_DOWN, TEMPORARY, REFUSED, ...) and nothing stored.
   */
  accept(message: InboundMessage, signal: AbortSignal): Promise<{ messageId: string }>;
}

/** pino's shape, so the node passes a child logger; the bridge adds the session id to every line. */
export interface BridgeLogger {
  child(bindings: Record<string, unknown>): BridgeLogger;
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}
