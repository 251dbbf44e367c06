// Opening a session to one MX address under the TLS policy of that host: greeting, EHLO, STARTTLS, the peer
// judged by the policy, EHLO again. Every TLS negotiation ends in exactly one TLS-RPT outcome. What went wrong
// comes back as one line for the 4.4.1 reply the recipients get when no host could be used.
import { SmtpSession } from './smtp-client.ts';
import { SmtpClientError, type SmtpReply } from './smtp-reply.ts';
import { checkPeer, tlsRequired, type HostPolicy } from './tls-policy.ts';
import type { RecipientResult, TlsFailureType, TlsOutcome } from './types.ts';

export interface SecureSessionInput {
  host: string;
  address: string;
  port: number;
  policy: HostPolicy;
  clientName: string;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  dataTimeoutMs: number;
  /** Trust anchors for PKIX checks (undefined: the system's). */
  ca: string[] | undefined;
  /** Skip STARTTLS even when offered: the second try of an opportunistic host whose handshake failed. */
  plaintext?: boolean;
  signal?: AbortSignal;
  onOutcome: (outcome: TlsOutcome) => void;
}

export type SecureSession =
  | { ok: true; session: SmtpSession; tls?: RecipientResult['tls'] }
  /** `retryPlain`: STARTTLS failed where TLS was optional: the same host may be tried again in clear, once. */
  | { ok: false; problem: string; retryPlain?: boolean };

const positive = (reply: SmtpReply) => reply.code >= 200 && reply.code < 300;
const said = (reply: SmtpReply) => `${reply.code}${reply.enhanced ? ` ${reply.enhanced}` : ''} ${reply.text}`.trim();

/** Runs `step` with the session ended as soon as `signal` aborts. */
export async function abortable<T>(session: SmtpSession, signal: AbortSignal | undefined, step: () => Promise<T>): Promise<T> {
  if (!signal) return step();
  const stop = () => session.destroy(new SmtpClientError('aborted', 'delivery aborted'));
  if (signal.aborted) stop();
  signal.addEventListener('abort', stop, { once: true });
  try {
    return await step();
  } finally {
    signal.removeEventListener('abort', stop);
  }
}

export async function openSecureSession(input: SecureSessionInput): Promise<SecureSession> {
  const { host, address, policy } = input;
  const where = `${host}[${address}]`;
  const report = (result: 'success' | TlsFailureType, detail: string) => {
    if (policy.kind === 'skip') return;
    input.onOutcome({ ...policy.report, mxHost: host, receivingIp: address, result, detail: detail.replace(/[\r\n]+/g, ' '), atMs: Date.now() });
  };
  let session: SmtpSession;
  try {
    session = await SmtpSession.open({
      address, port: input.port, serverName: host, clientName: input.clientName,
      connectTimeoutMs: input.connectTimeoutMs, commandTimeoutMs: input.commandTimeoutMs, dataTimeoutMs: input.dataTimeoutMs,
    }, input.signal);
  } catch (err) {
    return { ok: false, problem: `${where}: ${(err as Error).message}` };
  }
  const fail = (problem: string, retryPlain = false): SecureSession => {
    void session.quit();
    return { ok: false, problem: `${where}: ${problem}`, ...(retryPlain ? { retryPlain } : {}) };
  };
  try {
    return await abortable(session, input.signal, async () => {
      if (!positive(session.greeting)) return fail(`greeting ${said(session.greeting)}`);
      const ehlo = await session.hello();
      if (!positive(ehlo)) return fail(`EHLO ${said(ehlo)}`);
      if (policy.kind === 'none' || input.plaintext) return { ok: true, session };

      const required = tlsRequired(policy);
      if (!session.extensions.starttls) {
        if (required || policy.kind === 'sts') report('starttls-not-supported', `${where} does not offer STARTTLS`);
        return required ? fail('STARTTLS required but not offered') : { ok: true, session };
      }
      let started;
      try {
        started = await session.startTls(input.ca);
      } catch (err) {
        if (!(err instanceof SmtpClientError) || err.code !== 'tls') throw err;
        report('validation-failure', err.message);
        return fail(err.message, !required);
      }
      if (!started.ok) {
        report('starttls-not-supported', `STARTTLS refused: ${said(started.reply)}`);
        if (required) return fail(`STARTTLS refused: ${said(started.reply)}`);
        const again = await session.hello();
        return positive(again) ? { ok: true, session } : fail(`EHLO ${said(again)}`);
      }
      const verdict = checkPeer(policy, started.socket, host);
      report(verdict.ok ? 'success' : verdict.result, verdict.ok ? `authenticated: ${verdict.authenticated}` : verdict.detail);
      if (!verdict.ok && required) return fail(`TLS ${verdict.result}: ${verdict.detail}`);
      const again = await session.hello();
      if (!positive(again)) return fail(`EHLO after STARTTLS ${said(again)}`);
      const cipher = started.socket.getCipher();
      return {
        ok: true, session,
        tls: { protocol: started.socket.getProtocol() ?? '', cipher: cipher?.name ?? '', authenticated: verdict.ok ? verdict.authenticated : 'none' },
      };
    });
  } catch (err) {
    session.destroy();
    return { ok: false, problem: `${where}: ${(err as Error).message}` };
  }
}
