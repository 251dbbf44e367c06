// The application side: a mailbox profile, sealing and submitting messages, subscribing with acks.
// Used by the CLI and by tests; an app in another language does the same through the .proto.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { loadProto, type MailboxClient, type IdentityClient, type ProvenanceClient, type Delivery__Output, type SubmitReply__Output, type Envelope } from '../../proto/index.ts';
import {
  createDidResolver,
  signMessage,
  sealEnvelope,
  openEnvelope,
  verifySignedMessage,
  extractKeys,
  parseDidWeb,
  type DidResolver,
} from '../../identity/index.ts';
import { fromB64u, envelopeFromWire, envelopeToWire, GatewayError, CLIENT_FLOW_CONTROL_WINDOW, type KeyMaterial } from '../core/index.ts';
import { bridgedTrace, fromAddress, headerFields, type BridgedTrace } from './bridged-mail.ts';

export interface MailboxProfile {
  version: 1;
  address: string;
  did: string;
  signing: KeyMaterial;
  agreement: KeyMaterial;
  token: string;
  /** `names`: the DNS names and IPs the node's CA issues for (absent in profiles made before it existed). */
  node: { grpc: string; did: string; ca: string; names?: string[] };
  /** did:web host overrides the client needs to reach its node's HTTPS (non-standard ports). */
  didWebHosts: Record<string, string>;
}

export function readProfile(file: string): MailboxProfile {
  let profile: MailboxProfile;
  try {
    profile = JSON.parse(readFileSync(file, 'utf8')) as MailboxProfile;
  } catch (err) {
    throw new GatewayError('CONFIG_INVALID', `cannot read profile ${file}: ${(err as Error).message}`);
  }
  if (profile.version !== 1 || !profile.token || !profile.signing?.privateKey) {
    throw new GatewayError('CONFIG_INVALID', `${file} is not an AfterSMTP mailbox profile`);
  }
  return profile;
}

export interface Clients {
  mailbox: MailboxClient;
  identity: IdentityClient;
  provenance: ProvenanceClient;
  metadata: grpc.Metadata;
  close(): void;
}

export function connect(profile: MailboxProfile, nodeAddress?: string): Clients {
  const { proto } = loadProto();
  const target = nodeAddress ?? profile.node.grpc;
  const creds = grpc.credentials.createSsl(Buffer.from(profile.node.ca));
  const options = {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    'grpc-node.flow_control_window': CLIENT_FLOW_CONTROL_WINDOW,
    // Nodes are usually addressed by IP on loopback/private setups; TLS SNI must be a name, and the
    // node certificate always carries "localhost" besides its domains and IPs.
    ...(isIpTarget(target) ? { 'grpc.ssl_target_name_override': 'localhost' } : {}),
  };
  const mailbox = new proto.aftersmtp.v1.Mailbox(target, creds, options) as unknown as MailboxClient;
  const identity = new proto.aftersmtp.v1.Identity(target, creds, { ...options, channelOverride: (mailbox as unknown as grpc.Client).getChannel() }) as unknown as IdentityClient;
  const provenance = new proto.aftersmtp.v1.Provenance(target, creds, { ...options, channelOverride: (mailbox as unknown as grpc.Client).getChannel() }) as unknown as ProvenanceClient;
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${profile.token}`);
  return { mailbox, identity, provenance, metadata, close: () => (mailbox as unknown as grpc.Client).close() };
}

function isIpTarget(target: string): boolean {
  const host = target.startsWith('[') ? target.slice(1, target.indexOf(']')) : target.split(':')[0]!;
  return isIP(host) !== 0;
}

/**
 * did:web resolution for the app: the node's CA is trusted only for the node's own names (from the
 * profile, or, in an older profile, the mailbox's domain and the node's did:web host); other hosts need a
 * certificate from the system's roots.
 */
export function profileResolver(profile: MailboxProfile): DidResolver {
  const names = profile.node.names ?? [
    'localhost', '127.0.0.1', '::1', profile.address.split('@')[1] ?? '',
    ...(profile.node.did.startsWith('did:web:') ? [parseDidWeb(profile.node.did).host] : []),
  ];
  return createDidResolver({ ownCa: { ca: profile.node.ca, hosts: names.filter(Boolean) }, hostMap: profile.didWebHosts ?? {} });
}

export function unary<Req, Res>(fn: (req: Req, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Res) => void) => unknown, req: Req, md: grpc.Metadata): Promise<Res> {
  return new Promise((resolve, reject) => fn(req, md, (err, res) => (err ? reject(err) : resolve(res as Res))));
}

export interface ComposeOptions {
  to: string[];
  /**
   * Mailboxes that get a copy without being named among the recipients (the content key is wrapped for
   * them): a journal mailbox the sender's node requires (docs/DECISIONS.md, compliance rules).
   */
  bcc?: string[];
  subject?: string;
  text?: string;
  eml?: Uint8Array;
  lifetimeMs?: number;
  /** DIDs the app already knows (address -> DID), e.g. from earlier mail; others are asked of the node. */
  knownDids?: Record<string, string>;
}

/** Builds an RFC 5322 message for plain text. */
export function buildRfc5322(from: string, to: string[], subject: string, text: string, messageId: Uint8Array): Uint8Array {
  const domain = from.split('@')[1] ?? 'localhost';
  const lines = [
    `From: <${from}>`,
    `To: ${to.map((a) => `<${a}>`).join(', ')}`,
    `Subject: ${subject}`,
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <${Buffer.from(messageId).toString('hex')}@${domain}>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    text.replace(/\r?\n/g, '\r\n'),
  ];
  return new TextEncoder().encode(lines.join('\r\n'));
}

/** Reads one header field (first occurrence, unfolded) from RFC 5322 bytes. */
function headerField(message: Uint8Array, name: string): string | undefined {
  const text = Buffer.from(message).toString('utf8');
  const end = text.search(/\r?\n\r?\n/);
  const head = (end < 0 ? text : text.slice(0, end)).replace(/\r?\n[ \t]+/g, ' ');
  const m = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(head);
  return m?.[1]?.trim();
}

export interface SealedSubmission {
  envelope: Envelope;
  messageId: Uint8Array;
  messageHash: Uint8Array;
  /**
   * Recipients whose domain has no AfterSMTP node: their copy is sealed to the app's own node (the bridge
   * key), which opens it and sends it on over SMTP. End-to-end encryption ends at that node for them.
   */
  legacy: string[];
}

/** Signs and seals one message for its recipients (resolved through the node, keys checked via their DIDs). */
export async function sealFor(profile: MailboxProfile, clients: Clients, resolver: DidResolver, opts: ComposeOptions): Promise<SealedSubmission> {
  const recipients: { did: string; address: string; keyId: string; publicKey: Uint8Array }[] = [];
  const legacy: string[] = [];
  const hidden = new Set((opts.bcc ?? []).map((a) => a.toLowerCase()).filter((a) => !opts.to.includes(a)));
  for (const address of [...opts.to, ...hidden]) {
    const found = opts.knownDids?.[address]
      ? { did: opts.knownDids[address]!, documentJson: '', legacy: false }
      : await unary(clients.identity.Resolve.bind(clients.identity), { address }, clients.metadata) as { did: string; documentJson: string; legacy: boolean };
    if (found.legacy) {
      // The answer is the app's own node: the one it is authenticated to over TLS (profile.node).
      if (found.did !== profile.node.did) throw new GatewayError('INVALID_ARGUMENT', `the node answered for ${address} with a bridge that is not itself (${found.did})`);
      legacy.push(address);
    }
    // did:key documents are derived locally. A did:web document of a remote domain comes from the
    // app's own node, which fetched it over HTTPS; it is still checked to be that DID's document.
    const keys = found.did.startsWith('did:web:') && found.documentJson
      ? extractKeys(found.did, JSON.parse(found.documentJson))
      : await resolver.resolveKeys(found.did);
    const [keyId, publicKey] = [...keys.keyAgreement.entries()][0] ?? [];
    if (!keyId || !publicKey) throw new GatewayError('INVALID_ARGUMENT', `${address} (${found.did}) has no key agreement key`);
    recipients.push({ did: found.did, address, keyId, publicKey });
  }
  const messageId = new Uint8Array(randomBytes(16));
  const createdMs = Date.now();
  const expiresMs = createdMs + (opts.lifetimeMs ?? 3 * 24 * 3600 * 1000);
  const body = opts.eml ?? buildRfc5322(profile.address, opts.to, opts.subject ?? '', opts.text ?? '', messageId);
  const signingKey = fromB64u(profile.signing.privateKey);
  const signed = signMessage({
    header: {
      messageId,
      from: { did: profile.did, address: profile.address },
      to: recipients.filter((r) => !hidden.has(r.address)).map((r) => ({ did: r.did, address: r.address })),
      createdMs,
      expiresMs,
      contentType: 'message/rfc822',
    },
    body,
    keyId: profile.signing.keyId,
    privateKey: signingKey,
  });
  const envelope = sealEnvelope({
    signedMessage: signed.signedMessage,
    messageId,
    messageHash: signed.messageHash,
    senderDid: profile.did,
    senderKeyId: profile.signing.keyId,
    senderPrivateKey: signingKey,
    recipientAddresses: opts.to,
    // Legacy recipients share the bridge key: it is wrapped once.
    recipients: [...new Map(recipients.map((r) => [r.keyId, { keyId: r.keyId, publicKey: r.publicKey }])).values()],
    createdMs,
    expiresMs,
  });
  return { envelope: envelopeToWire(envelope), messageId, messageHash: signed.messageHash, legacy };
}

export function submit(clients: Clients, envelope: Envelope): Promise<SubmitReply__Output> {
  return unary(clients.mailbox.Submit.bind(clients.mailbox), { envelope }, clients.metadata) as Promise<SubmitReply__Output>;
}

export interface ReceivedMessage {
  seq: number;
  messageId: string;
  from: string;
  fromDid: string;
  to: string[];
  subject: string | null;
  verified: boolean;
  reason?: string;
  receivedAt: string;
  messageHash: string;
  body?: Uint8Array;
  /** The signed inner message (what the ledger hash covers), when the envelope opened. */
  signedMessage?: Uint8Array;
  /** Mail the recipient's own node bridged from SMTP (signed by the node's DID; docs/APPS.md "Bridged mail"). */
  via?: BridgedTrace['via'];
  /** The SMTP envelope sender, the client's address and its HELO, as the node recorded them. */
  mailFrom?: string;
  clientIp?: string;
  helo?: string;
  /** The node's verdicts (mail from other MTAs only). */
  auth?: BridgedTrace['auth'];
  /** Labels the node's compliance rules put on the message (`tag` rules). */
  labels?: string[];
}

/** Opens and verifies one delivery; never throws for a bad message (reports verified:false). */
export async function openDelivery(profile: MailboxProfile, resolver: DidResolver, delivery: Delivery__Output): Promise<ReceivedMessage> {
  const env = envelopeFromWire(delivery.envelope);
  const base = {
    seq: delivery.seq,
    messageId: Buffer.from(env.messageId).toString('hex'),
    receivedAt: new Date(delivery.receivedMs).toISOString(),
    messageHash: Buffer.from(env.messageHash).toString('hex'),
    ...(delivery.labels?.length ? { labels: [...delivery.labels] } : {}),
  };
  let signed: Uint8Array;
  try {
    signed = openEnvelope(env, { keyId: profile.agreement.keyId, privateKey: fromB64u(profile.agreement.privateKey) });
  } catch (err) {
    return { ...base, from: '', fromDid: env.senderDid, to: env.recipientAddresses, subject: null, verified: false, reason: (err as Error).message };
  }
  const result = await verifySignedMessage(signed, resolver, {});
  const header = result.header;
  if (!header || !result.body) {
    return { ...base, from: '', fromDid: env.senderDid, to: env.recipientAddresses, subject: null, verified: false, reason: result.reason ?? 'undecodable message' };
  }
  let verified = result.verified;
  let reason = result.reason;
  if (verified && Buffer.compare(Buffer.from(header.messageId), Buffer.from(env.messageId)) !== 0) {
    verified = false;
    reason = 'inner message id differs from the envelope message id';
  }
  if (verified && header.from.did !== env.senderDid) {
    verified = false;
    reason = 'inner sender differs from the envelope sender';
  }
  // Mail the app's own node bridged: its trace fields are under the node's signature.
  const trace = header.from.did === profile.node.did && header.contentType === 'message/rfc822' ? bridgedTrace(result.body) : undefined;
  let from = header.from.address;
  let unbound: string | undefined;
  if (trace?.via === 'smtp') {
    // The address shown is the header From; it is the sender only when DMARC passed for its domain.
    from = fromAddress(headerFields(result.body).find((f) => f.name === 'from')?.value ?? '');
    unbound = verified ? smtpSenderUnverified(trace, from, header.from.address, delivery) : undefined;
  } else {
    // An app's mail, and submission: the address the node authenticated (or a peer node vouched for).
    unbound = verified ? senderNotVouched(header.from.address, delivery) : undefined;
  }
  if (unbound) {
    verified = false;
    reason = unbound;
  }
  return {
    ...base,
    from,
    fromDid: header.from.did,
    to: header.to.map((t) => t.address),
    subject: headerField(result.body, 'Subject') ?? null,
    verified,
    ...(reason ? { reason } : {}),
    body: result.body,
    signedMessage: signed,
    ...(trace ? { via: trace.via, mailFrom: trace.mailFrom, clientIp: trace.clientIp, helo: trace.helo, ...(trace.auth ? { auth: trace.auth } : {}) } : {}),
  };
}

/**
 * Why mail the node received from another MTA is not shown as from its header From address, or
 * undefined when it is: only DMARC vouches for an SMTP sender (docs/PROTOCOL.md §4 "Sender binding").
 */
function smtpSenderUnverified(trace: BridgedTrace, headerFrom: string, signedFrom: string, delivery: Delivery__Output): string | undefined {
  if (!headerFrom) return 'the message has no From address';
  if (!trace.auth) return 'the node recorded no authentication results for this message';
  const domain = headerFrom.slice(headerFrom.lastIndexOf('@') + 1);
  if (trace.auth.dmarc !== 'pass') return `DMARC did not pass for ${domain} (dmarc=${trace.auth.dmarc}, spf=${trace.auth.spf}, dkim=${trace.auth.dkim})`;
  if (trace.auth.dmarcDomain !== domain) return `DMARC passed for ${trace.auth.dmarcDomain || 'no domain'}, not for the From domain ${domain}`;
  if (signedFrom.toLowerCase() !== headerFrom || delivery.authenticatedSender.toLowerCase() !== headerFrom) {
    return `the node did not vouch for ${headerFrom}`;
  }
  return undefined;
}

/**
 * Why the signed sender address is not bound to the signing DID, or undefined when it is: a signature
 * proves only the DID; the address is the one the node authenticated for that DID (its own mailbox or
 * postmaster), or that the sending node vouched for, with its domain (docs/PROTOCOL.md §4).
 */
function senderNotVouched(address: string, delivery: Delivery__Output): string | undefined {
  const claimed = address.toLowerCase();
  const vouched = delivery.authenticatedSender.toLowerCase();
  if (vouched) return claimed === vouched ? undefined : `the signed sender address ${address} is not the one the sending node vouched for (${vouched})`;
  const domain = delivery.senderDomain.toLowerCase();
  if (!domain) return `no node vouched for the sender address ${address}`;
  const at = claimed.lastIndexOf('@');
  return at > 0 && claimed.slice(at + 1) === domain ? undefined : `the signed sender address ${address} is not in the domain the sending node vouched for (${domain})`;
}

export interface SubscribeOptions {
  fromCursor?: number;
  count?: number;
  maxInFlight?: number;
  signal?: AbortSignal;
  /** Called for each message; the delivery is acknowledged after it returns. */
  onMessage: (message: ReceivedMessage) => void | Promise<void>;
}

/**
 * Streams the mailbox, acknowledging each message after onMessage returns. Resolves after `count`
 * messages whose acks the node has confirmed durable (or when the stream ends / the signal aborts).
 */
export function subscribe(profile: MailboxProfile, clients: Clients, resolver: DidResolver, opts: SubscribeOptions): Promise<{ received: number; lastSeq: number }> {
  return new Promise((resolve, reject) => {
    const call = clients.mailbox.Subscribe(clients.metadata);
    let received = 0;
    let confirmed = 0;
    let lastSeq = opts.fromCursor ?? 0;
    let done = false;
    let chain: Promise<void> = Promise.resolve();
    const finish = (err?: unknown) => {
      if (done) return;
      done = true;
      call.cancel();
      if (err) reject(err); else resolve({ received, lastSeq });
    };
    opts.signal?.addEventListener('abort', () => finish(), { once: true });
    call.on('data', (frame: Delivery__Output) => {
      if (frame.confirmedAcks.length) {
        confirmed += frame.confirmedAcks.length;
        if (opts.count !== undefined && confirmed >= opts.count) finish();
        return;
      }
      if (opts.count !== undefined && received >= opts.count) return; // beyond what was asked: left unacked
      received++;
      chain = chain.then(async () => {
        const message = await openDelivery(profile, resolver, frame);
        await opts.onMessage(message);
        lastSeq = Math.max(lastSeq, frame.seq);
        if (!done) call.write({ ack: { seqs: [frame.seq] } });
      }).catch(finish);
    });
    call.on('error', (err: grpc.ServiceError) => {
      if (err.code === grpc.status.CANCELLED && done) return;
      finish(err);
    });
    call.on('end', () => finish());
    call.write({ start: { fromCursor: opts.fromCursor ?? 0, maxInFlight: opts.maxInFlight ?? 0 } });
  });
}
