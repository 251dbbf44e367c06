// The inbound listeners: mx (port 25), submission (587, AUTH after STARTTLS) and smtps (465, implicit TLS),
// each an smtp-server instance (connection.ts) under one shared policy: session limits, AUTH and submission
// budgets, address checks, recipient classes, the MX authentication policy (DNSBL, DMARC, ARC), duplicate
// suppression, the trace fields, and the durable 250 (the reply waits for the handler's accept()).
import { isIPv6 } from 'node:net';
import type { SMTPServerAddress, SMTPServerAuthentication, SMTPServerDataStream, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import type { AuthVerdicts } from '../auth/verify.ts';
import { verifyMessage } from '../auth/verify.ts';
import { addressHack, commandPath } from './address.ts';
import { BridgeSmtpServer, replyText, type BridgeConnection, type ListenerPolicy } from './connection.ts';
import { BridgeError, smtpReplyFor, type SmtpReply } from './errors.ts';
import { DuplicateCache, WindowCounter } from './limits.ts';
import { duplicateKey, headerFrom, MessageCollector, QUARANTINE_FIELD, receivedField, splitMessage, withoutOwnFields } from './message.ts';
import type {
  BridgeLogger, InboundMessage, InboundOptions, InboundRecipient, InboundServer, ListenerConfig, ListenerKind,
} from './types.ts';

/** How long an accepted message is remembered for duplicate suppression, and how many (message, recipient) pairs. */
const DUPLICATE_TTL_MS = 10 * 60_000;
const DUPLICATE_ENTRIES = 50_000;
/** AUTH failures in one session before it is closed. */
const AUTH_FAILURES_PER_SESSION = 3;

/** A reply as the error smtp-server's callbacks take. */
class ReplyError extends Error {
  readonly responseCode: number;
  constructor(reply: SmtpReply) {
    super(replyText(reply));
    this.responseCode = reply.code;
  }
}

function reply(code: number, enhanced: string, text: string): SmtpReply {
  return { code, enhanced, text };
}

interface SessionState {
  log: BridgeLogger;
  listener: ListenerKind;
  connection: BridgeConnection;
  ip: string;
  authFailures: number;
  /** The DNSBL verdict of this session's client, asked once (MX). */
  blocklisted?: Promise<string | null>;
  /** Stops the handler's accept() in progress when the listeners close. */
  abort?: AbortController;
}

interface UserRecord { address: string }

/** `<reversed address>.<zone>`: RFC 5782 §2.1 (IPv4 octets) and §2.4 (IPv6 nibbles). */
export function dnsblName(ip: string, zone: string): string {
  if (isIPv6(ip)) {
    const groups = ip.split('::');
    const head = groups[0] ? groups[0].split(':') : [];
    const tail = groups.length > 1 && groups[1] ? groups[1].split(':') : [];
    const full = [...head, ...Array(8 - head.length - tail.length).fill('0'), ...tail].map((g) => g.padStart(4, '0')).join('');
    return `${[...full].reverse().join('.')}.${zone}`;
  }
  return `${ip.split('.').reverse().join('.')}.${zone}`;
}

export async function startInbound(opts: InboundOptions): Promise<InboundServer> {
  const { limits, handler, hostname } = opts;
  const sessions = new Map<string, SessionState>();
  const perIp = new Map<string, number>();
  const authFailures = new WindowCounter(60_000);
  const sent = { minute: new WindowCounter(60_000), hour: new WindowCounter(3_600_000), day: new WindowCounter(86_400_000) };
  const duplicates = new DuplicateCache(DUPLICATE_TTL_MS, DUPLICATE_ENTRIES);
  const pendingAccepts = new Set<Promise<unknown>>();
  let closing = false;

  const state = (session: SMTPServerSession): SessionState => {
    const s = sessions.get(session.id);
    if (!s) throw new BridgeError('TEMPORARY', 'session state missing');
    return s;
  };

  const fail = (s: SessionState, r: SmtpReply, what: string, extra: object = {}): ReplyError => {
    s.log.info({ reply: `${r.code} ${r.enhanced} ${r.text}`, ...extra }, what);
    return new ReplyError(r);
  };

  async function blocklisted(ip: string, s: SessionState): Promise<string | null> {
    for (const zone of opts.dnsbl) {
      try {
        const answer = await opts.resolver.a(dnsblName(ip, zone));
        if (answer.status === 'NOERROR' && answer.records.length > 0) return zone;
      } catch (err) {
        // A blocklist that does not answer says nothing: the mail is not held up for it.
        s.log.warn({ zone, err: err instanceof Error ? err.message : String(err) }, 'dnsbl lookup failed');
      }
    }
    return null;
  }

  function protocolOf(session: SMTPServerSession): string {
    return `${session.openingCommand === 'HELO' ? 'SMTP' : 'ESMTP'}${session.secure ? 'S' : ''}${session.user ? 'A' : ''}`;
  }

  /** MX: what SPF, DKIM, DMARC and ARC say decides whether the message is taken (null) or refused. */
  function mxPolicy(v: AuthVerdicts): SmtpReply | null {
    const dmarc = v.dmarc;
    if (dmarc.result === 'temperror') return reply(451, '4.7.0', 'DMARC policy lookup failed (DNS), try again later');
    if (dmarc.result === 'fail' && dmarc.policy !== 'none' && !dmarc.testMode) {
      const unsure = v.spf.result === 'temperror' || v.dkim.some((d) => d.result === 'temperror');
      if (unsure) return reply(451, '4.7.0', 'DNS lookups for SPF or DKIM failed, try again later');
      if (dmarc.policy === 'reject' && !v.arc.trustedSealer) {
        return smtpReplyFor(new BridgeError('DMARC_REJECT', `rejected by the DMARC policy of ${dmarc.policyDomain ?? dmarc.domain}`));
      }
    }
    return null;
  }

  async function receive(s: SessionState, session: SMTPServerSession, collected: MessageCollector): Promise<string> {
    const fault = collected.fault;
    if (fault === 'bare-newline') throw fail(s, reply(550, '5.5.2', 'bare CR or LF in message data refused (SMTP smuggling), use CRLF'), 'data refused');
    if (fault === 'oversized') throw fail(s, reply(552, '5.3.4', `message exceeds fixed maximum message size ${limits.maxMessageBytes}`), 'data refused', { bytes: collected.bytes });
    if (fault === 'line-too-long') throw fail(s, reply(500, '5.5.2', 'line too long (RFC 5321 4.5.3.1.6: 1000 octets with CRLF)'), 'data refused');

    const original = collected.message();
    const { fields, body } = splitMessage(original);
    const author = headerFrom(fields);
    const authenticated = (session.user as UserRecord | undefined)?.address;
    if (s.listener !== 'mx' && author !== authenticated) {
      throw fail(s, smtpReplyFor(new BridgeError('SENDER_MISMATCH', `header From must be ${authenticated}`)), 'data refused', { headerFrom: author });
    }
    const envelope = session.envelope;
    const mailFrom = envelope.mailFrom ? envelope.mailFrom.address.toLowerCase() : '';
    const helo = session.hostNameAppearsAs || '';
    let verdicts: AuthVerdicts | undefined;
    let message: Buffer;
    const top: string[] = [];
    if (s.listener === 'mx') {
      try {
        verdicts = await verifyMessage({
          message: original, ip: s.ip, helo, mailFrom, resolver: opts.resolver, authservId: hostname, trustedArcSealers: opts.trustedArcSealers,
        });
      } catch (err) {
        throw fail(s, reply(451, '4.7.0', 'message authentication failed temporarily, try again later'), 'verify failed', { err: String(err) });
      }
      s.log.info({
        spf: verdicts.spf.result, dkim: verdicts.dkim.map((d) => `${d.result}:${d.domain}`), dmarc: verdicts.dmarc.result,
        dmarcPolicy: verdicts.dmarc.policy, arc: verdicts.arc.result, trustedSealer: verdicts.arc.trustedSealer,
      }, 'verdicts');
      const refusal = mxPolicy(verdicts);
      const dmarc = verdicts.dmarc;
      const enforced = dmarc.result === 'fail' && dmarc.policy !== 'none';
      const override = enforced && dmarc.testMode ? 'policy_test_mode' : enforced && verdicts.arc.trustedSealer ? 'trusted_forwarder' : undefined;
      // A deferral (4xx: DNS failed) is no outcome: the message comes again.
      if (!refusal || refusal.code >= 500) {
        const disposition = refusal ? 'reject' : enforced && !override && dmarc.policy === 'quarantine' ? 'quarantine' : 'none';
        try {
          handler.observe?.({ sourceIp: s.ip, mailFrom, headerFrom: author, verdicts, disposition, ...(override ? { override } : {}), atMs: Date.now() });
        } catch (err) {
          s.log.warn({ err: String(err) }, 'DMARC observation not recorded');
        }
      }
      if (refusal) throw fail(s, refusal, 'policy refused');
      if (enforced && dmarc.policy === 'quarantine' && !override) {
        top.push(`${QUARANTINE_FIELD}: dmarc\r\n`);
      }
      top.push(`Authentication-Results: ${verdicts.authenticationResults}\r\n`);
    }
    // On every listener: what arrives claiming the node's authserv-id, or its quarantine mark, came from outside.
    message = withoutOwnFields(original, hostname);

    let recipients: InboundRecipient[] = envelope.rcptTo.map((r) => ({
      address: r.address.toLowerCase(),
      ...(r.dsn?.notify ? { notify: r.dsn.notify as InboundRecipient['notify'] } : {}),
      ...(r.dsn?.orcpt ? { orcpt: r.dsn.orcpt } : {}),
    }));
    // A copy already accepted for a recipient (a client that lost our 250 and sent again) is not stored twice.
    const key = duplicateKey(fields, body);
    let firstId: string | undefined;
    if (key) {
      const fresh = recipients.filter((r) => {
        const id = duplicates.get(`${key}\0${r.address}`);
        firstId ??= id;
        return id === undefined;
      });
      if (fresh.length === 0 && firstId) {
        s.log.info({ messageId: firstId }, 'duplicate accepted once');
        return firstId;
      }
      recipients = fresh;
    }

    const tls = s.connection._socket as { getCipher?: () => { name?: string; version?: string } };
    const cipher = session.secure && typeof tls.getCipher === 'function' ? tls.getCipher() : undefined;
    top.push(receivedField({
      helo, clientIp: s.ip, hostname, protocol: protocolOf(session), id: session.id,
      recipients: recipients.map((r) => r.address), date: new Date(),
      ...(cipher?.name ? { tlsCipher: `${cipher.version ?? 'TLS'} ${cipher.name}` } : {}),
    }));
    const dsn = (envelope as { dsn?: { ret?: string | null; envid?: string | null } }).dsn;
    const inbound: InboundMessage = {
      sessionId: session.id,
      listener: s.listener,
      clientIp: s.ip,
      helo,
      tls: Boolean(session.secure),
      ...(authenticated ? { authenticated } : {}),
      mailFrom,
      recipients,
      dsn: {
        ...(dsn?.ret === 'FULL' || dsn?.ret === 'HDRS' ? { ret: dsn.ret } : {}),
        ...(dsn?.envid ? { envid: dsn.envid } : {}),
      },
      requireTls: Boolean(envelope.requireTLS),
      headerFrom: author,
      message: Buffer.concat([Buffer.from(top.join(''), 'latin1'), message]),
      ...(verdicts ? { verdicts } : {}),
    };
    const abort = new AbortController();
    s.abort = abort;
    const accepting = handler.accept(inbound, abort.signal);
    pendingAccepts.add(accepting);
    let messageId: string;
    try {
      ({ messageId } = await accepting);
    } catch (err) {
      throw fail(s, smtpReplyFor(err), 'handler refused', { err: err instanceof Error ? err.message : String(err) });
    } finally {
      pendingAccepts.delete(accepting);
      s.abort = undefined;
    }
    if (key) for (const r of recipients) duplicates.set(`${key}\0${r.address}`, messageId);
    if (authenticated) for (const w of Object.values(sent)) w.add(authenticated);
    return messageId;
  }

  const policyFor = (config: ListenerConfig): ListenerPolicy => ({
    config,
    commandTimeoutMs: limits.commandTimeoutMs,
    dataTimeoutMs: limits.dataTimeoutMs,
    admit(connection) {
      const ip = connection.remoteAddress;
      if (closing) return reply(421, '4.3.2', `${hostname} shutting down`);
      if (sessions.size >= limits.maxSessions) return reply(421, '4.7.0', `${hostname} too many sessions, try again later`);
      if ((perIp.get(ip) ?? 0) >= limits.maxSessionsPerIp) return reply(421, '4.7.0', `${hostname} too many sessions from ${ip}, try again later`);
      perIp.set(ip, (perIp.get(ip) ?? 0) + 1);
      const log = opts.logger.child({ session: connection.id, listener: config.kind });
      sessions.set(connection.id, { log, listener: config.kind, connection, ip, authFailures: 0 });
      log.info({ ip }, 'connect');
      return null;
    },
    command(connection, line) {
      const verb = line.split(' ', 1)[0]!.toUpperCase();
      // Submission offers AUTH only under TLS (RFC 8314 §3.3); say why instead of "command not recognized".
      if (verb === 'AUTH' && config.kind !== 'mx' && !connection.secure) return reply(530, '5.7.0', 'must issue a STARTTLS command first');
      return null;
    },
    path(line) {
      const path = commandPath(line);
      return path === null ? null : addressHack(path);
    },
    onReply(connection, code, text) {
      sessions.get(connection.id)?.log.debug({ code }, text);
    },
  });

  const servers: { kind: ListenerKind; server: BridgeSmtpServer }[] = [];
  for (const config of opts.listeners) {
    const submission = config.kind !== 'mx';
    const options: SMTPServerOptions = {
      name: hostname,
      key: opts.tls.key,
      cert: opts.tls.cert,
      secure: config.kind === 'smtps',
      logger: false,
      disableReverseLookup: true,
      size: limits.maxMessageBytes,
      maxRecipients: limits.maxRecipients,
      socketTimeout: Math.max(limits.commandTimeoutMs, 1000),
      closeTimeout: 5000,
      hideENHANCEDSTATUSCODES: false,
      hideDSN: false,
      hideREQUIRETLS: false,
      hidePIPELINING: false,
      hide8BITMIME: false,
      hideSMTPUTF8: false,
      authMethods: ['PLAIN', 'LOGIN'],
      allowInsecureAuth: false,
      authRequiredMessage: '5.7.0 authentication required',
      disabledCommands: submission ? [] : ['AUTH'],

      onConnect(session, callback) {
        // Before TLS the submission listener offers no AUTH (it is not advertised, and the command is refused).
        if (config.kind === 'submission' && !session.secure) session.disabledCommands = ['AUTH'];
        callback();
      },
      onSecure(_socket, session, callback) {
        if (config.kind === 'submission') session.disabledCommands = [];
        callback();
      },
      onAuth(auth: SMTPServerAuthentication, session, callback) {
        const s = state(session);
        if (auth.method !== 'PLAIN' && auth.method !== 'LOGIN') return callback(fail(s, reply(504, '5.5.4', 'unrecognized authentication type'), 'auth refused'));
        // RFC 4616: an authorization identity other than the authenticated one would be acting as someone else.
        if (auth.authzid && auth.authcid && auth.authzid.toLowerCase() !== auth.authcid.toLowerCase()) {
          return callback(fail(s, reply(535, '5.7.8', 'authorization identity must be the authenticated mailbox'), 'auth refused'));
        }
        if (authFailures.count(s.ip) >= limits.authFailuresPerIpPerMinute) {
          return callback(fail(s, reply(421, '4.7.0', 'too many authentication failures, try again later'), 'auth refused'));
        }
        handler.authenticate(auth.username ?? '', auth.password ?? '').then((user) => {
          if (user) {
            s.log.info({ user: user.address }, 'authenticated');
            return callback(null, { user: { address: user.address.toLowerCase() } satisfies UserRecord });
          }
          authFailures.add(s.ip);
          s.authFailures++;
          if (s.authFailures >= AUTH_FAILURES_PER_SESSION) return callback(fail(s, reply(421, '4.7.0', 'too many authentication failures'), 'auth failed'));
          callback(fail(s, reply(535, '5.7.8', 'authentication credentials invalid'), 'auth failed'));
        }, (err) => callback(fail(s, smtpReplyFor(err), 'auth error', { err: String(err) })));
      },
      onMailFrom(address: SMTPServerAddress, session, callback) {
        const s = state(session);
        const from = address.address.toLowerCase();
        const run = async (): Promise<void> => {
          if (config.kind === 'mx') {
            s.blocklisted ??= blocklisted(s.ip, s);
            const zone = await s.blocklisted;
            if (zone) throw fail(s, smtpReplyFor(new BridgeError('BLOCKLISTED', `${s.ip} is listed on ${zone}`)), 'mail refused');
            return;
          }
          const user = session.user as UserRecord | undefined;
          if (!user) throw fail(s, reply(530, '5.7.0', 'authentication required'), 'mail refused');
          if (from !== user.address) throw fail(s, smtpReplyFor(new BridgeError('SENDER_MISMATCH', `sender must be ${user.address}`)), 'mail refused', { from });
          const over = (['minute', 'hour', 'day'] as const).find((w) => sent[w].count(user.address) >= limits[`submissionsPer${w[0]!.toUpperCase()}${w.slice(1)}` as 'submissionsPerMinute']);
          if (over) throw fail(s, smtpReplyFor(new BridgeError('RATE_LIMITED', `sending limit per ${over} reached, try again later`)), 'mail refused');
        };
        run().then(() => callback(), (err) => callback(err instanceof ReplyError ? err : fail(s, smtpReplyFor(err), 'mail error')));
      },
      onRcptTo(address: SMTPServerAddress, session, callback) {
        const s = state(session);
        const rcpt = address.address.toLowerCase();
        const user = session.user as UserRecord | undefined;
        handler.recipient(rcpt, { listener: config.kind, ...(user ? { authenticated: user.address } : {}) }).then((kind) => {
          // Only an authenticated client may send beyond the node's own mailboxes (no open relay).
          if (kind === 'local' || ((kind === 'peer' || kind === 'legacy') && user)) return callback();
          if (kind === 'unknown') return callback(fail(s, smtpReplyFor(new BridgeError('UNKNOWN_RECIPIENT', `no such mailbox ${rcpt}`)), 'rcpt refused'));
          const why = kind === 'unroutable' && user ? `this node does not send to ${rcpt.slice(rcpt.lastIndexOf('@') + 1)} (no AfterSMTP node there, and its SMTP sending is off)` : `relay access denied for ${rcpt}`;
          callback(fail(s, smtpReplyFor(new BridgeError('RELAY_DENIED', why)), 'rcpt refused', { rcpt, kind }));
        }, (err) => callback(fail(s, smtpReplyFor(err), 'rcpt error', { err: String(err) })));
      },
      onData(stream: SMTPServerDataStream, session, callback) {
        const s = state(session);
        const collector = new MessageCollector(limits.maxMessageBytes);
        stream.on('data', (chunk: Buffer) => collector.push(chunk));
        stream.on('error', () => undefined);
        stream.on('end', () => {
          s.connection.holdDeadline();
          receive(s, session, collector).then((id) => {
            s.log.info({ messageId: id, bytes: collector.bytes }, `250 2.0.0 Ok: queued as ${id}`);
            callback(null, `2.0.0 Ok: queued as ${id}`);
          }, (err) => callback(err instanceof ReplyError ? err : fail(s, smtpReplyFor(err), 'data error', { err: String(err) })));
        });
      },
      onClose(session) {
        const s = sessions.get(session.id);
        if (!s) return;
        sessions.delete(session.id);
        const left = (perIp.get(s.ip) ?? 1) - 1;
        if (left > 0) perIp.set(s.ip, left);
        else perIp.delete(s.ip);
        s.log.info({}, 'close');
      },
    };
    const server = new BridgeSmtpServer(options, policyFor(config));
    server.on('error', (err: Error) => opts.logger.warn({ listener: config.kind, err: err.message }, 'smtp error'));
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.server.off('error', reject);
        resolve();
      });
    });
    servers.push({ kind: config.kind, server });
  }

  return {
    addresses() {
      const out: Partial<Record<ListenerKind, { host: string; port: number }>> = {};
      for (const { kind, server } of servers) {
        const a = server.server.address();
        if (a && typeof a === 'object') out[kind] = { host: a.address, port: a.port };
      }
      return out;
    },
    async close() {
      if (closing) return;
      closing = true;
      // smtp-server's close stops the listeners, drops sockets still in a TLS handshake and answers any later
      // command with 421; its callback comes when every connection is gone (at most closeTimeout).
      const stopped = servers.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve())));
      // A message in the handler's hands is told to stop; its client gets the handler's answer, then 421.
      for (const s of sessions.values()) s.abort?.abort(new BridgeError('SHUTTING_DOWN', 'the node is shutting down'));
      await Promise.allSettled([...pendingAccepts]);
      // The settled accepts' replies go out first (their callbacks run on the next turns).
      await new Promise((resolve) => setImmediate(resolve));
      for (const s of sessions.values()) s.connection.send(421, `4.3.2 ${hostname} shutting down`);
      await Promise.all(stopped);
    },
  };
}
