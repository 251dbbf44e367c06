// What the inbound listener tests share: a self-signed certificate, a small durable handler (each accepted
// message written to a temp dir and fsynced before accept() resolves, with an injectable BridgeError), a
// logger that keeps every line, a raw SMTP client over net/tls sockets, and startInbound with test limits.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import {
  BridgeError, startInbound, type BridgeErrorCode, type BridgeLogger, type BridgeResolver, type InboundHandler, type InboundLimits,
  type InboundMessage, type InboundOptions, type InboundServer, type ListenerConfig, type RecipientKind,
} from '../../bridge/index.ts';

export const HOSTNAME = 'mx.node.test';

export function selfSignedCert(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'inbound-cert-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', `/CN=${HOSTNAME}`, '-addext', `subjectAltName=DNS:${HOSTNAME},IP:127.0.0.1`,
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes each accepted message to its own file and fsyncs it before answering: a 250 means it is on disk. */
export class DurableHandler implements InboundHandler {
  readonly dir = mkdtempSync(join(tmpdir(), 'inbound-store-'));
  readonly accepted: InboundMessage[] = [];
  /** address -> class; anything else in a local domain is unknown, elsewhere legacy. */
  readonly recipients = new Map<string, RecipientKind>();
  readonly localDomains = new Set(['node.test']);
  readonly peerDomains = new Set(['peer.test']);
  /** mailbox -> token */
  readonly users = new Map<string, string>();
  /** The next accept() calls reject with this code (fault injection). */
  fault: BridgeErrorCode | null = null;
  /** Holds accept() until released (to test shutdown and the durable 250). */
  gate: Promise<void> | null = null;
  acceptCalls = 0;
  /** Every address recipient() was asked about. */
  readonly asked: string[] = [];
  /** Remote domains the node cannot send to (its outbound bridge off). */
  readonly unroutableDomains = new Set<string>(['nowhere.example']);

  async recipient(address: string): Promise<RecipientKind> {
    this.asked.push(address);
    const known = this.recipients.get(address);
    if (known) return known;
    const domain = address.split('@')[1] ?? '';
    if (this.localDomains.has(domain)) return 'unknown';
    if (this.unroutableDomains.has(domain)) return 'unroutable';
    return this.peerDomains.has(domain) ? 'peer' : 'legacy';
  }

  async authenticate(username: string, password: string): Promise<{ address: string } | null> {
    return this.users.get(username.toLowerCase()) === password ? { address: username.toLowerCase() } : null;
  }

  async accept(message: InboundMessage, signal: AbortSignal): Promise<{ messageId: string }> {
    this.acceptCalls++;
    if (this.gate) await this.gate;
    if (signal.aborted) throw new BridgeError('SHUTTING_DOWN', 'the node is shutting down');
    if (this.fault) throw new BridgeError(this.fault, `injected ${this.fault}`);
    const messageId = randomUUID();
    const fd = openSync(join(this.dir, `${messageId}.eml`), 'wx');
    try {
      writeSync(fd, message.message);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.accepted.push(message);
    return { messageId };
  }

  stored(messageId: string): Buffer {
    return readFileSync(join(this.dir, `${messageId}.eml`));
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface LogLine { level: string; bindings: Record<string, unknown>; obj: object; msg?: string }

export function memoryLogger(lines: LogLine[] = [], bindings: Record<string, unknown> = {}): BridgeLogger & { lines: LogLine[] } {
  const at = (level: string) => (obj: object, msg?: string) => { lines.push({ level, bindings, obj, ...(msg !== undefined ? { msg } : {}) }); };
  return {
    lines,
    child: (more) => memoryLogger(lines, { ...bindings, ...more }),
    debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'),
  };
}

export const TEST_LIMITS: InboundLimits = {
  maxMessageBytes: 64 * 1024,
  maxRecipients: 5,
  maxSessions: 50,
  maxSessionsPerIp: 40,
  commandTimeoutMs: 5_000,
  dataTimeoutMs: 10_000,
  authFailuresPerIpPerMinute: 5,
  submissionsPerMinute: 100,
  submissionsPerHour: 1000,
  submissionsPerDay: 10_000,
};

export interface Bridge {
  server: InboundServer;
  handler: DurableHandler;
  logger: ReturnType<typeof memoryLogger>;
  port(kind: ListenerConfig['kind']): number;
  close(): Promise<void>;
}

export async function startBridge(cert: { key: string; cert: string }, resolver: BridgeResolver, overrides: {
  limits?: Partial<InboundLimits>; greetingDelayMs?: Partial<Record<ListenerConfig['kind'], number>>;
  dnsbl?: string[]; trustedArcSealers?: string[]; handler?: DurableHandler;
} = {}): Promise<Bridge> {
  const handler = overrides.handler ?? new DurableHandler();
  const logger = memoryLogger();
  const kinds: ListenerConfig['kind'][] = ['mx', 'submission', 'smtps'];
  const options: InboundOptions = {
    hostname: HOSTNAME,
    listeners: kinds.map((kind) => ({ kind, host: '127.0.0.1', port: 0, greetingDelayMs: overrides.greetingDelayMs?.[kind] ?? 0 })),
    tls: cert,
    limits: { ...TEST_LIMITS, ...overrides.limits },
    dnsbl: overrides.dnsbl ?? [],
    trustedArcSealers: overrides.trustedArcSealers ?? [],
    resolver,
    handler,
    logger,
  };
  const server = await startInbound(options);
  return {
    server, handler, logger,
    port: (kind) => server.addresses()[kind]!.port,
    close: async () => { await server.close(); handler.cleanup(); },
  };
}

/** A raw SMTP client: writes bytes as given and reads whole replies (multi-line joined by \n). */
export class RawSmtp {
  private buffer = '';
  private readonly replies: string[] = [];
  private waiters: ((reply: string | null) => void)[] = [];
  closed = false;
  socket: Socket | TLSSocket;

  private constructor(socket: Socket | TLSSocket) {
    this.socket = socket;
    this.attach(socket);
  }

  private attach(socket: Socket | TLSSocket): void {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('close', () => { this.closed = true; for (const w of this.waiters.splice(0)) w(null); });
    socket.on('error', () => undefined);
  }

  private onData(d: Buffer): void {
    this.buffer += d.toString('latin1');
    let current: string[] = [];
    for (;;) {
      const end = this.buffer.indexOf('\r\n');
      if (end < 0) break;
      const line = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      current.push(line);
      if (/^\d{3}(?: |$)/.test(line)) {
        const reply = current.join('\n');
        current = [];
        const waiter = this.waiters.shift();
        if (waiter) waiter(reply);
        else this.replies.push(reply);
      }
    }
    if (current.length) this.buffer = `${current.join('\r\n')}\r\n${this.buffer}`;
  }

  static open(port: number, opts: { tls?: boolean; localAddress?: string } = {}): Promise<RawSmtp> {
    return new Promise((resolve, reject) => {
      const local = opts.localAddress ? { localAddress: opts.localAddress } : {};
      const socket = opts.tls
        ? tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...local }, () => resolve(new RawSmtp(socket)))
        : netConnect({ host: '127.0.0.1', port, ...local }, () => resolve(new RawSmtp(socket)));
      socket.once('error', reject);
    });
  }

  /** The next reply, or null once the server closed the connection. */
  read(): Promise<string | null> {
    const ready = this.replies.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  write(raw: string | Buffer): void {
    this.socket.write(raw);
  }

  async cmd(line: string): Promise<string | null> {
    this.write(`${line}\r\n`);
    return this.read();
  }

  /** STARTTLS on this connection: the reads continue on the TLS socket. */
  async starttls(): Promise<string | null> {
    const ready = await this.cmd('STARTTLS');
    if (!ready?.startsWith('220')) return ready;
    const raw = this.socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    const secure = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ socket: raw, rejectUnauthorized: false, servername: HOSTNAME }, () => resolve(s));
      s.once('error', reject);
    });
    this.socket = secure;
    this.attach(secure);
    return ready;
  }

  /** Resolves when the server has closed the connection. */
  ended(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.socket.once('close', () => resolve()));
  }

  close(): void {
    this.socket.destroy();
  }
}

export function message(opts: { from: string; to?: string; subject?: string; body?: string; messageId?: string; extra?: string[] }): string {
  return [
    `From: ${opts.from}`,
    `To: ${opts.to ?? 'alice@node.test'}`,
    `Subject: ${opts.subject ?? 'inbound test'}`,
    'Date: Mon, 07 Dec 2026 02:00:00 +0000',
    `Message-ID: <${opts.messageId ?? randomUUID()}@sender.test>`,
    ...(opts.extra ?? []),
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    opts.body ?? 'Hello over SMTP.',
    '',
  ].join('\r\n');
}

/** EHLO, STARTTLS, EHLO and AUTH PLAIN on a submission connection; returns the AUTH reply. */
export async function login(c: RawSmtp, user: string, password: string): Promise<string | null> {
  await c.read();
  await c.cmd('EHLO client.test');
  await c.starttls();
  await c.cmd('EHLO client.test');
  return c.cmd(`AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`).toString('base64')}`);
}

/** EHLO, MAIL, RCPT..., DATA, the message and the final dot; returns every reply in order. */
export async function transaction(c: RawSmtp, from: string, to: string[], data: string, ehlo = true): Promise<(string | null)[]> {
  const replies: (string | null)[] = [];
  if (ehlo) replies.push(await c.cmd('EHLO client.test'));
  replies.push(await c.cmd(`MAIL FROM:<${from}>`));
  for (const r of to) replies.push(await c.cmd(`RCPT TO:<${r}>`));
  replies.push(await c.cmd('DATA'));
  c.write(`${data.replace(/\r\n\./g, '\r\n..')}\r\n.\r\n`);
  replies.push(await c.read());
  return replies;
}
