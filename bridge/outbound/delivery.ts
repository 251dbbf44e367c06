// One delivery attempt of one message to the recipients of one domain: the hosts to try (MX or a static next
// hop), each under its TLS policy, until one takes a transaction; every recipient ends with exactly one
// status. The queue owns retries: a problem here is `deferred` (try later) or `failed` (never will work),
// and `deliver` resolves either way.
import { isIP } from 'node:net';
import { resolveStsPolicy, type StsResolution } from './mta-sts.ts';
import { hostAddresses, resolveMx } from './mx.ts';
import { ConnectionPool, type PooledSession } from './pool.ts';
import { abortable, openSecureSession } from './secure-session.ts';
import { safeMailbox } from './smtp-client.ts';
import { localReply, type SmtpReply } from './smtp-reply.ts';
import { authenticates, hostPolicy, policyKey, trustAnchors, type HostPolicy } from './tls-policy.ts';
import type {
  OutboundMessage, RecipientResult, RecipientStatus, SmtpNextHop, SmtpOutbound, SmtpOutboundOptions, SmtpTlsMode, TlsOutcome,
} from './types.ts';

const DEFAULTS = {
  connectTimeoutMs: 30_000,
  commandTimeoutMs: 300_000,
  dataTimeoutMs: 600_000,
  maxConnectionsPerHost: 4,
  maxMessagesPerConnection: 100,
  idleTimeoutMs: 30_000,
};

interface Target {
  host: string;
  port: number;
  tlsaPort: number;
  /** A static route's TLS mode; for MX hosts undefined (their DANE or MTA-STS policy), or `may` under TLS-Required: No. */
  mode?: SmtpTlsMode;
}

/** Where one host attempt left the delivery: every recipient settled, or try the next address or host. */
type Step = 'done' | 'next';

const positive = (reply: SmtpReply) => reply.code >= 200 && reply.code < 300;
const statusOf = (reply: SmtpReply): RecipientStatus => (positive(reply) ? 'delivered' : reply.code >= 500 ? 'failed' : 'deferred');
const oneLine = (reply: SmtpReply) => ({ code: reply.code, ...(reply.enhanced ? { enhanced: reply.enhanced } : {}), text: reply.text });

export function createSmtpOutbound(options: SmtpOutboundOptions): SmtpOutbound {
  const opts = { ...DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as SmtpOutboundOptions & typeof DEFAULTS;
  const pool = new ConnectionPool(opts);
  // close() ends deliveries in progress through the same path as a caller's abort: they end deferred.
  const closing = new AbortController();
  const ca = trustAnchors(opts.ca);
  const emit = (outcome: TlsOutcome) => {
    try {
      opts.onTlsOutcome?.(outcome);
    } catch (err) {
      opts.log?.warn({ err }, 'onTlsOutcome threw');
    }
  };

  async function deliver(domain: string, message: OutboundMessage, call: { nextHop?: SmtpNextHop; signal?: AbortSignal; recordTls?: boolean } = {}): Promise<RecipientResult[]> {
    const { envelope } = message;
    // TLS-RPT reports are never reported on (RFC 8460 §3): their own deliveries record no outcome.
    const record = call.recordTls === false ? () => {} : emit;
    const signal = call.signal ? AbortSignal.any([call.signal, closing.signal]) : closing.signal;
    const results: (RecipientResult | undefined)[] = envelope.recipients.map(() => undefined);
    const settle = (i: number, status: RecipientStatus, reply: SmtpReply, mx: string, tls?: RecipientResult['tls']) => {
      results[i] = { address: envelope.recipients[i]!.address, status, reply: oneLine(reply), mx, ...(tls && status === 'delivered' ? { tls } : {}) };
    };
    const pending = () => results.flatMap((r, i) => (r ? [] : [i]));
    const settleAll = (status: RecipientStatus, reply: SmtpReply, mx = '') => { for (const i of pending()) settle(i, status, reply, mx); };
    const finish = () => {
      const done = results as RecipientResult[];
      opts.log?.info({ domain, results: done.map((r) => ({ rcpt: r.address, status: r.status, code: r.reply.code, mx: r.mx })) }, 'outbound delivery attempt');
      return done;
    };

    if (envelope.mailFrom !== '' && !safeMailbox(envelope.mailFrom)) {
      settleAll('failed', localReply(501, '5.1.7', 'the sender address cannot be put on an SMTP command line'));
      return finish();
    }
    envelope.recipients.forEach((rcpt, i) => {
      if (!safeMailbox(rcpt.address)) settle(i, 'failed', localReply(501, '5.1.3', 'the recipient address cannot be put on an SMTP command line'), '');
    });
    if (pending().length === 0) return finish();

    const problems: string[] = [];
    let requireTlsRefused = false;
    let targets: Target[];
    let mxSecure = false;
    let sts: StsResolution | undefined;
    const name = domain.toLowerCase().replace(/\.$/, '');
    if (call.nextHop) {
      targets = [{ host: call.nextHop.host.toLowerCase(), port: call.nextHop.port, tlsaPort: call.nextHop.port, mode: call.nextHop.tls }];
    } else {
      const mx = await resolveMx(opts.resolver, name);
      if (mx.kind === 'null-mx') {
        settleAll('failed', localReply(556, '5.1.10', `${name} accepts no mail (null MX)`));
        return finish();
      }
      if (mx.kind === 'no-domain') {
        settleAll('failed', localReply(550, '5.1.2', mx.reason));
        return finish();
      }
      if (mx.kind === 'lookup-failed') {
        settleAll('deferred', localReply(451, '4.4.3', mx.reason));
        return finish();
      }
      mxSecure = mx.secure;
      // TLS-Required: No: no DANE or MTA-STS for this message, opportunistic STARTTLS to each MX.
      const ignorePolicies = envelope.ignoreTlsPolicies === true && !envelope.requireTls;
      targets = mx.hosts.map((h) => ({ host: h.host, port: opts.portMap?.[h.host] ?? 25, tlsaPort: 25, ...(ignorePolicies ? { mode: 'may' as const } : {}) }));
      sts = ignorePolicies ? undefined : await resolveStsPolicy(name, opts.resolver, opts.stsCache, opts.stsFetch, Date.now())
        .catch((err: unknown): StsResolution => ({ kind: 'none', reason: `MTA-STS: ${(err as Error).message}` }));
      if (sts?.kind === 'failed') {
        record({ policyDomain: name, policyType: 'sts', policyStrings: [], mxHost: '', receivingIp: '', result: sts.failure, detail: sts.detail, atMs: Date.now() });
      }
    }

    /** One address of one host: a pooled session under the same policy, or a new one; then the transaction. */
    async function attempt(target: Target, address: string, policy: HostPolicy, plaintext = false): Promise<Step> {
      const hostKey = `${target.host}|${target.port}`;
      const key = `${hostKey}|${address}|${policyKey(policy)}${plaintext ? '|plain' : ''}`;
      let entry: PooledSession | undefined;
      while (!entry) {
        const acquired = await pool.acquire(hostKey, key, signal);
        if (acquired.kind === 'reuse') {
          const probe = await acquired.entry.session.rset().catch(() => undefined);
          if (probe && positive(probe)) entry = acquired.entry;
          else pool.discard(hostKey, acquired.entry);
          continue;
        }
        const opened = await openSecureSession({
          host: target.host, address, port: target.port, policy, clientName: opts.hostname, connectTimeoutMs: opts.connectTimeoutMs,
          commandTimeoutMs: opts.commandTimeoutMs, dataTimeoutMs: opts.dataTimeoutMs, ca, plaintext, signal, onOutcome: record,
        });
        if (!opened.ok) {
          pool.discard(hostKey);
          problems.push(opened.problem);
          if (opened.retryPlain && !signal.aborted) return attempt(target, address, policy, true);
          return 'next';
        }
        entry = { hostKey, key, session: opened.session, ...(opened.tls ? { tls: opened.tls } : {}) };
        pool.track(entry);
      }
      return transact(target.host, entry, address);
    }

    async function transact(host: string, entry: PooledSession, address: string): Promise<Step> {
      const { session } = entry;
      const ext = session.extensions;
      if (envelope.requireTls && !ext.requireTls) {
        requireTlsRefused = true;
        problems.push(`${host}[${address}]: does not offer REQUIRETLS`);
        pool.release(entry);
        return 'next';
      }
      if (envelope.smtputf8 && !ext.smtputf8) {
        settleAll('failed', localReply(553, '5.6.7', `${host} does not support SMTPUTF8, which the message needs`), host);
        pool.release(entry);
        return 'done';
      }
      if (ext.size && message.data.length > ext.size) {
        settleAll('failed', localReply(552, '5.3.4', `the message (${message.data.length} bytes) exceeds the ${ext.size} bytes ${host} accepts`), host);
        pool.release(entry);
        return 'done';
      }
      const indexes = pending();
      const txEnvelope = { ...envelope, recipients: indexes.map((i) => envelope.recipients[i]!) };
      let replies;
      try {
        replies = await abortable(session, signal, () => session.transaction(txEnvelope, message.data));
      } catch (err) {
        pool.discard(entry.hostKey, entry);
        problems.push(`${host}[${address}]: ${(err as Error).message}`);
        return 'next';
      }
      const { mail, rcpt, data } = replies;
      if (!positive(mail)) {
        pool.release(entry);
        if (mail.code >= 500) {
          settleAll('failed', mail, host);
          return 'done';
        }
        problems.push(`${host}[${address}]: MAIL ${mail.code} ${mail.text}`);
        return 'next';
      }
      indexes.forEach((i, n) => {
        const reply = rcpt[n];
        if (!reply) return;
        if (!positive(reply)) settle(i, statusOf(reply), reply, host);
        else if (data) settle(i, statusOf(data), data, host, entry.tls);
      });
      pool.release(entry);
      return 'done';
    }

    for (const target of targets) {
      if (signal.aborted || pending().length === 0) break;
      const policy = await hostPolicy({ resolver: opts.resolver, domain: name, host: target.host, tlsaPort: target.tlsaPort, mxSecure, sts, mode: target.mode });
      if (policy.kind === 'skip') {
        if (policy.outcome) record({ ...policy.outcome.report, mxHost: target.host, receivingIp: '', result: policy.outcome.result, detail: policy.reason, atMs: Date.now() });
        problems.push(`${target.host}: ${policy.reason}`);
        continue;
      }
      if (envelope.requireTls && !authenticates(policy)) {
        requireTlsRefused = true;
        problems.push(`${target.host}: no DANE or MTA-STS enforce policy, as REQUIRETLS needs`);
        continue;
      }
      let addresses: string[];
      try {
        addresses = isIP(target.host) ? [target.host] : await hostAddresses(opts.resolver, target.host);
      } catch (err) {
        problems.push(`${target.host}: address lookup failed: ${(err as Error).message}`);
        continue;
      }
      if (addresses.length === 0) problems.push(`${target.host}: no address`);
      let step: Step = 'next';
      for (const address of addresses) {
        try {
          step = await attempt(target, address, policy);
        } catch (err) {
          // Only an abort or the bridge closing reach here (pool.acquire); everything else is a problem of one host.
          problems.push((err as Error).message);
          break;
        }
        if (step === 'done' || signal.aborted) break;
      }
      if (step === 'done') break;
    }

    const why = problems.join('; ').replace(/[\r\n]+/g, ' ');
    if (signal.aborted) settleAll('deferred', localReply(451, '4.4.1', `delivery aborted${why ? `: ${why}` : ''}`));
    else if (requireTlsRefused) settleAll('failed', localReply(550, '5.7.30', `REQUIRETLS: no MX host offers authenticated TLS with REQUIRETLS (${why})`));
    else settleAll('deferred', localReply(451, '4.4.1', `no MX host took the message: ${why || 'none to try'}`));
    return finish();
  }

  return {
    deliver,
    close: async () => {
      closing.abort();
      await pool.close();
    },
  };
}
