// The outbound bridge's contract with the node: what it is given to deliver (an envelope and RFC 5322 bytes,
// already DKIM-signed), what it answers per recipient, and the TLS outcomes it records for TLS-RPT. The node
// owns the queue (states, retries, expiry, DSNs); the bridge owns one delivery attempt to one domain.
import type { BridgeSecureResolver } from '../auth/dns.ts';
import type { BridgeLogger } from '../inbound/types.ts';
import type { StsFetchOptions, StsPolicyCache } from './mta-sts.ts';

/**
 * How a static route (or smarthost) secures its connection, as Postfix's `smtp_tls_security_level`:
 * `dane` = the DANE rules against the route host's TLSA records (opportunistic when it has none);
 * `verify` = STARTTLS with a PKIX-valid certificate for the host name; `may` = STARTTLS when offered,
 * unauthenticated; `none` = plaintext.
 */
export type SmtpTlsMode = 'dane' | 'verify' | 'may' | 'none';

/** A static route's next hop (`--endpoint smtp://HOST:PORT`): no MX lookup, the host as given. */
export interface SmtpNextHop { host: string; port: number; tls: SmtpTlsMode }

/** One recipient of an outbound transaction, with its RFC 3461 parameters when the sender gave them. */
export interface OutboundRecipient {
  address: string;
  notify?: ('NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY')[];
  /** ORCPT as received (`rfc822;addr`), passed on unchanged. */
  orcpt?: string;
}

export interface OutboundEnvelope {
  /** The reverse-path; '' = the null sender (DSNs, reports). */
  mailFrom: string;
  /** All in the one domain this delivery is for. */
  recipients: OutboundRecipient[];
  dsn?: { ret?: 'FULL' | 'HDRS'; envid?: string };
  /**
   * RFC 8689: the message may go only over TLS verified by DANE, MTA-STS or (static routes) `verify`, to a
   * server that offers REQUIRETLS; otherwise every recipient fails permanently (5.7.30).
   */
  requireTls: boolean;
  /**
   * RFC 8689 §5 (`TLS-Required: No`): the sender asks that the recipient side's TLS policies (DANE, MTA-STS)
   * be ignored, delivery over security: each MX is tried with opportunistic STARTTLS. Ignored when
   * `requireTls` is set (the REQUIRETLS parameter wins over the header field).
   */
  ignoreTlsPolicies?: boolean;
  /** The envelope or headers need SMTPUTF8 (RFC 6531): a server without it fails the recipients (5.6.7). */
  smtputf8: boolean;
  /** The body has 8-bit octets: BODY=8BITMIME when offered. */
  eightBit: boolean;
}

export interface OutboundMessage {
  envelope: OutboundEnvelope;
  /** The message as it goes on the wire after DATA, CRLF lines, not dot-stuffed (the client stuffs). */
  data: Buffer;
}

export interface SmtpReplyText {
  code: number;
  /** RFC 3463 enhanced status, e.g. "5.1.1", when the server (or the bridge) gave one. */
  enhanced?: string;
  /** The reply's text, one line (multi-line replies joined with spaces), at most 512 characters. */
  text: string;
}

export type RecipientStatus = 'delivered' | 'deferred' | 'failed';

export interface RecipientResult {
  address: string;
  status: RecipientStatus;
  /** The server's reply that decided it, or the bridge's own (e.g. 451 4.4.1 for no reachable MX). */
  reply: SmtpReplyText;
  /** The MX host (or route host) that answered last; '' when none was reached. */
  mx: string;
  /** The TLS the message went over when delivered: how the server was authenticated. */
  tls?: { protocol: string; cipher: string; authenticated: 'dane' | 'sts' | 'pkix' | 'none' };
}

/** RFC 8460 §4.3 result types. */
export type TlsFailureType =
  | 'starttls-not-supported' | 'certificate-host-mismatch' | 'certificate-expired' | 'certificate-not-trusted'
  | 'validation-failure' | 'tlsa-invalid' | 'dnssec-invalid' | 'dane-required'
  | 'sts-policy-fetch-error' | 'sts-policy-invalid' | 'sts-webpki-invalid';

/** One TLS negotiation (or the failure to get a policy), as TLS-RPT reports it. */
export interface TlsOutcome {
  /** The recipient domain for `sts` and `no-policy-found`; the MX host for `tlsa` (RFC 8460 §4.3). */
  policyDomain: string;
  policyType: 'tlsa' | 'sts' | 'no-policy-found';
  /** RFC 8460 policy-string: the TLSA records in presentation form, or the STS policy's lines. */
  policyStrings: string[];
  mxHost: string;
  /** The address connected to; '' when no connection was made (a policy fetch failure). */
  receivingIp: string;
  result: 'success' | TlsFailureType;
  /** Free text for `failure-reason-code` (one line). */
  detail: string;
  atMs: number;
}

export interface SmtpOutboundOptions {
  /** The name the client says in EHLO (the node's SMTP host name). */
  hostname: string;
  /** The node's DNS client: MX, A/AAAA, TLSA, TXT with the AD bit from a loopback validating resolver. */
  resolver: BridgeSecureResolver;
  /** Where MTA-STS policies are kept between deliveries and restarts (the node passes a store-backed one). */
  stsCache: StsPolicyCache;
  stsFetch: StsFetchOptions;
  /**
   * Test-only: MX host name -> port to connect to (TLSA names still say `_25._tcp`, DESIGN.md §8). Hosts not
   * listed use port 25.
   */
  portMap?: Record<string, number>;
  /** Extra trust anchors (PEM) for PKIX checks (`verify` routes, MTA-STS MX certificates); tests pass their CA. */
  ca?: string | string[];
  /** Called for every TLS outcome (the node stores them for TLS-RPT); never awaited. */
  onTlsOutcome?: (outcome: TlsOutcome) => void;
  connectTimeoutMs?: number;
  /** Per command; DATA's final reply may take dataTimeoutMs (RFC 5321 §4.5.3.2: 10 min). */
  commandTimeoutMs?: number;
  dataTimeoutMs?: number;
  /** Open connections kept per host and port (for reuse, RSET between messages). */
  maxConnectionsPerHost?: number;
  /** A connection is closed after this many messages or this long idle. */
  maxMessagesPerConnection?: number;
  idleTimeoutMs?: number;
  log?: BridgeLogger;
}

export interface SmtpOutbound {
  /**
   * One delivery attempt of one message to the recipients of one domain: MX lookup (null MX, implicit MX), then
   * per MX in preference order DANE, else MTA-STS, else opportunistic TLS; or the static next hop when given.
   * Resolves with one result per recipient, in order; never rejects for a delivery problem (only for a bug).
   * `recordTls: false` (the delivery of a TLS report) calls no onTlsOutcome.
   */
  deliver(domain: string, message: OutboundMessage, opts?: { nextHop?: SmtpNextHop; signal?: AbortSignal; recordTls?: boolean }): Promise<RecipientResult[]>;
  /** Closes idle and open connections (QUIT); deliveries in progress end with `deferred`. */
  close(): Promise<void>;
}
