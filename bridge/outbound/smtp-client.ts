// One SMTP client session to one server (RFC 5321), with the extensions outbound delivery uses: STARTTLS
// (RFC 3207), PIPELINING (RFC 2920), SIZE, 8BITMIME, SMTPUTF8, DSN (RFC 3461), REQUIRETLS (RFC 8689).
// It knows the protocol only: which TLS is good enough and what a reply means for a recipient is decided by
// the caller (tls-policy.ts, delivery.ts). Every wait has a deadline (RFC 5321 §4.5.3.2) and every reply a
// size bound, so a silent or babbling server costs one connection, never memory or a stuck delivery.
import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { connect as connectTls, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import type { OutboundEnvelope } from './types.ts';
import { parseExtensions, ReplyParser, SmtpClientError, NO_EXTENSIONS, type SmtpExtensions, type SmtpReply } from './smtp-reply.ts';

export interface SmtpSessionOptions {
  /** The address connected to. */
  address: string;
  port: number;
  /** The server's name: SNI, and what certificates are checked against (by the caller). */
  serverName: string;
  /** What the client says in EHLO. */
  clientName: string;
  connectTimeoutMs: number;
  /** Greeting and every command reply, DATA's final reply excepted. */
  commandTimeoutMs: number;
  /** The reply to the end of DATA (RFC 5321 §4.5.3.2.6: 10 minutes). */
  dataTimeoutMs: number;
}

export interface TransactionReplies {
  mail: SmtpReply;
  /** One per recipient, in order; absent when MAIL was refused and the server was not pipelining. */
  rcpt: SmtpReply[];
  /** What decided the data of the accepted recipients: DATA's refusal, or the reply to the end of the data; absent when no recipient was accepted. */
  data?: SmtpReply;
}

/** Characters that could end or extend an SMTP command if put into one: refused before anything is sent. */
const UNSAFE_IN_PATH = /[\x00-\x20<>\x7f]/;

/** ORCPT's `addr-type;xtext` (RFC 3461 §4.2): printable ASCII without spaces or "=". */
const XTEXT_WORD = /^[A-Za-z0-9-]+;[\x21-\x3c\x3e-\x7e]{1,500}$/;

/** Whether an address can go inside `<...>` on a command line as it is (no injection, no whitespace). */
export function safeMailbox(address: string): boolean {
  return !UNSAFE_IN_PATH.test(address) && Buffer.byteLength(address) <= 512;
}

/** RFC 3461 §4: xtext, for ENVID (ORCPT arrives already encoded and is passed on unchanged). */
export function xtext(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    out += byte < 33 || byte > 126 || byte === 0x2b || byte === 0x3d ? `+${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
  }
  return out;
}

/**
 * The message as it goes after DATA: every line ends with CRLF (a lone CR or LF becomes CRLF, so no server
 * can read an end of data the client did not mean: SMTP smuggling), a line starting with "." gets another,
 * and the terminating ".\r\n" follows.
 */
export function dotStuff(data: Buffer): Buffer {
  const out = Buffer.allocUnsafe(data.length * 2 + 5);
  let n = 0;
  let lineStart = true;
  for (let i = 0; i < data.length; i++) {
    const byte = data[i]!;
    if (byte === 0x0d || byte === 0x0a) {
      out[n++] = 0x0d;
      out[n++] = 0x0a;
      if (byte === 0x0d && data[i + 1] === 0x0a) i++;
      lineStart = true;
      continue;
    }
    if (lineStart && byte === 0x2e) out[n++] = 0x2e;
    out[n++] = byte;
    lineStart = false;
  }
  if (!lineStart) { out[n++] = 0x0d; out[n++] = 0x0a; }
  out[n++] = 0x2e; out[n++] = 0x0d; out[n++] = 0x0a;
  return out.subarray(0, n);
}

const positive = (reply: SmtpReply) => reply.code >= 200 && reply.code < 300;

/**
 * One TLS context per set of trust anchors (the caller keeps one array for its lifetime): a context built
 * for each connection parsed every anchor again, the system's roots included, milliseconds of CPU each time.
 */
const contexts = new WeakMap<string[], SecureContext>();

function contextFor(ca: string[]): SecureContext {
  let context = contexts.get(ca);
  if (!context) {
    context = createSecureContext({ ca });
    contexts.set(ca, context);
  }
  return context;
}

export class SmtpSession {
  readonly options: SmtpSessionOptions;
  greeting!: SmtpReply;
  extensions: SmtpExtensions = NO_EXTENSIONS;
  /** Transactions whose data was sent on this connection. */
  messages = 0;
  #socket: Socket | TLSSocket;
  #tls: TLSSocket | undefined;
  #parser = new ReplyParser();
  #error: SmtpClientError | undefined;
  #waiter: { resolve: (reply: SmtpReply) => void; reject: (err: SmtpClientError) => void; timer: NodeJS.Timeout } | undefined;
  readonly #onData = (chunk: Buffer) => {
    try {
      this.#parser.feed(chunk);
    } catch (err) {
      this.#fail(err as SmtpClientError);
      return;
    }
    this.#deliverReply();
  };

  private constructor(options: SmtpSessionOptions, socket: Socket) {
    this.options = options;
    this.#socket = socket;
  }

  /** Connects and reads the greeting (whatever its code: the caller decides what a 4xx or 5xx greeting means). */
  static async open(options: SmtpSessionOptions, signal?: AbortSignal): Promise<SmtpSession> {
    const aborted = () => new SmtpClientError('aborted', 'delivery aborted');
    if (signal?.aborted) throw aborted();
    const socket = connectTcp({ host: options.address, port: options.port });
    const session = new SmtpSession(options, socket);
    const onAbort = () => session.#fail(aborted());
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          socket.destroy();
          reject(new SmtpClientError('connect', `no connection to ${options.address}:${options.port} within ${options.connectTimeoutMs} ms`));
        }, options.connectTimeoutMs);
        socket.once('connect', () => { clearTimeout(timer); resolve(); });
        socket.once('close', () => { clearTimeout(timer); reject(session.#error ?? aborted()); });
        socket.once('error', (err) => { clearTimeout(timer); reject(new SmtpClientError('connect', `connect to ${options.address}:${options.port}: ${err.message}`, { cause: err })); });
      });
      session.#attach(socket);
      session.greeting = await session.read(options.commandTimeoutMs);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    return session;
  }

  #attach(socket: Socket | TLSSocket): void {
    socket.on('data', this.#onData);
    socket.on('error', (err) => this.#fail(new SmtpClientError('closed', `connection to ${this.options.serverName}: ${err.message}`, { cause: err })));
    socket.on('close', () => this.#fail(new SmtpClientError('closed', `${this.options.serverName} closed the connection`)));
  }

  #fail(err: SmtpClientError): void {
    if (this.#error) return;
    this.#error = err;
    this.#socket.destroy();
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (waiter) { clearTimeout(waiter.timer); waiter.reject(err); }
  }

  #deliverReply(): void {
    if (!this.#waiter) return;
    const reply = this.#parser.shift();
    if (!reply) return;
    const { resolve, timer } = this.#waiter;
    this.#waiter = undefined;
    clearTimeout(timer);
    resolve(reply);
  }

  /** Whether the session can still take commands. */
  get usable(): boolean { return this.#error === undefined; }
  get tlsSocket(): TLSSocket | undefined { return this.#tls; }

  /** The next reply; a deadline, a protocol error or a closed connection ends the session. */
  read(timeoutMs: number): Promise<SmtpReply> {
    if (this.#error) return Promise.reject(this.#error);
    return new Promise<SmtpReply>((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(new SmtpClientError('timeout', `no reply from ${this.options.serverName} within ${timeoutMs} ms`)), timeoutMs);
      this.#waiter = { resolve, reject, timer };
      this.#deliverReply();
    });
  }

  async #write(data: string | Buffer): Promise<void> {
    if (this.#error) throw this.#error;
    const socket = this.#socket;
    if (!socket.write(data)) {
      // A server that stops reading holds the client here; RFC 5321 §4.5.3.2.5 gives each data block 3 minutes.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.#fail(new SmtpClientError('timeout', `${this.options.serverName} stopped reading for ${this.options.commandTimeoutMs} ms`));
          done();
        }, this.options.commandTimeoutMs);
        const done = () => { clearTimeout(timer); socket.off('drain', done); socket.off('close', done); resolve(); };
        socket.on('drain', done);
        socket.on('close', done);
      });
      if (this.#error) throw this.#error;
    }
  }

  async command(line: string, timeoutMs = this.options.commandTimeoutMs): Promise<SmtpReply> {
    await this.#write(`${line}\r\n`);
    return this.read(timeoutMs);
  }

  /** EHLO, or HELO when the server refuses EHLO permanently (then no extensions). Sets `extensions`. */
  async hello(): Promise<SmtpReply> {
    const ehlo = await this.command(`EHLO ${this.options.clientName}`);
    if (positive(ehlo)) {
      this.extensions = parseExtensions(ehlo);
      return ehlo;
    }
    this.extensions = NO_EXTENSIONS;
    if (ehlo.code < 500) return ehlo;
    return this.command(`HELO ${this.options.clientName}`);
  }

  /**
   * STARTTLS and the handshake, without any certificate decision (`rejectUnauthorized: false`): the caller checks
   * the peer after the handshake, by the policy this host falls under. Resolves with the server's reply when it
   * refused STARTTLS; throws SmtpClientError('tls') when the handshake fails. EHLO is the caller's next step.
   */
  async startTls(ca: string[] | undefined): Promise<{ ok: true; socket: TLSSocket } | { ok: false; reply: SmtpReply }> {
    const reply = await this.command('STARTTLS');
    if (reply.code !== 220) return { ok: false, reply };
    // Anything after the 220 arrived in clear and would be read as if it came over TLS (CVE-2011-0411).
    if (this.#parser.buffered > 0) {
      this.#fail(new SmtpClientError('bad-reply', `${this.options.serverName} sent data after its STARTTLS reply`));
      throw this.#error!;
    }
    const plain = this.#socket;
    plain.off('data', this.#onData);
    const servername = isIP(this.options.serverName) ? undefined : this.options.serverName;
    const tls = connectTls({ socket: plain, servername, rejectUnauthorized: false, ...(ca ? { secureContext: contextFor(ca) } : {}) });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new SmtpClientError('tls', `no TLS handshake with ${this.options.serverName} within ${this.options.commandTimeoutMs} ms`)), this.options.commandTimeoutMs);
        tls.once('secureConnect', () => { clearTimeout(timer); resolve(); });
        tls.once('error', (err) => { clearTimeout(timer); reject(new SmtpClientError('tls', `TLS handshake with ${this.options.serverName}: ${err.message}`, { cause: err })); });
        tls.once('close', () => { clearTimeout(timer); reject(new SmtpClientError('tls', `${this.options.serverName} closed the connection during the TLS handshake`)); });
      });
    } catch (err) {
      this.#fail(err as SmtpClientError);
      tls.destroy();
      throw err;
    }
    this.#socket = tls;
    this.#tls = tls;
    this.#parser = new ReplyParser();
    this.extensions = NO_EXTENSIONS;
    this.#attach(tls);
    return { ok: true, socket: tls };
  }

  #mailCommand(envelope: OutboundEnvelope, size: number): string {
    const ext = this.extensions;
    const params: string[] = [];
    if (ext.size !== undefined) params.push(`SIZE=${size}`);
    if (envelope.eightBit && ext.eightBitMime) params.push('BODY=8BITMIME');
    if (envelope.smtputf8 && ext.smtputf8) params.push('SMTPUTF8');
    if (envelope.requireTls) params.push('REQUIRETLS');
    if (ext.dsn && envelope.dsn?.ret) params.push(`RET=${envelope.dsn.ret}`);
    if (ext.dsn && envelope.dsn?.envid) params.push(`ENVID=${xtext(envelope.dsn.envid)}`);
    return [`MAIL FROM:<${envelope.mailFrom}>`, ...params].join(' ');
  }

  #rcptCommands(envelope: OutboundEnvelope): string[] {
    return envelope.recipients.map((rcpt) => {
      const params: string[] = [];
      if (this.extensions.dsn && rcpt.notify?.length) params.push(`NOTIFY=${rcpt.notify.join(',')}`);
      // Passed on as received, so only when it is still one xtext word: anything else could extend the command.
      if (this.extensions.dsn && rcpt.orcpt && XTEXT_WORD.test(rcpt.orcpt)) params.push(`ORCPT=${rcpt.orcpt}`);
      return [`RCPT TO:<${rcpt.address}>`, ...params].join(' ');
    });
  }

  /**
   * One mail transaction. With PIPELINING, MAIL, every RCPT and DATA go in one write and the replies are read
   * in order (RFC 2920 §3.1); without it, each waits for its reply and the transaction stops at the first
   * refusal that leaves nothing to send. Addresses must pass `safeMailbox` (the caller filters).
   */
  async transaction(envelope: OutboundEnvelope, message: Buffer): Promise<TransactionReplies> {
    for (const path of [envelope.mailFrom, ...envelope.recipients.map((r) => r.address)]) {
      if (path !== '' && !safeMailbox(path)) throw new Error(`unsafe address reached the SMTP client: ${JSON.stringify(path)}`);
    }
    const mailLine = this.#mailCommand(envelope, message.length);
    const rcptLines = this.#rcptCommands(envelope);
    const timeout = this.options.commandTimeoutMs;
    let mail: SmtpReply;
    const rcpt: SmtpReply[] = [];
    let dataStart: SmtpReply | undefined;
    if (this.extensions.pipelining) {
      await this.#write([mailLine, ...rcptLines, 'DATA', ''].join('\r\n'));
      mail = await this.read(timeout);
      for (let i = 0; i < rcptLines.length; i++) rcpt.push(await this.read(timeout));
      dataStart = await this.read(timeout);
    } else {
      mail = await this.command(mailLine);
      if (!positive(mail)) return { mail, rcpt };
      for (const line of rcptLines) rcpt.push(await this.command(line));
      if (rcpt.some(positive)) dataStart = await this.command('DATA');
    }
    const accepted = positive(mail) && rcpt.some(positive);
    if (dataStart && dataStart.code !== 354) return accepted ? { mail, rcpt, data: dataStart } : { mail, rcpt };
    if (!dataStart) return { mail, rcpt };
    if (!accepted) {
      // A pipelining server that took DATA with no recipient gets an empty message, which it must refuse (RFC 2920 §3.1).
      await this.#write('.\r\n');
      await this.read(timeout);
      return { mail, rcpt };
    }
    await this.#write(dotStuff(message));
    const data = await this.read(this.options.dataTimeoutMs);
    this.messages++;
    return { mail, rcpt, data };
  }

  /** Ends a transaction (or probes a pooled connection before reuse). */
  rset(): Promise<SmtpReply> {
    return this.command('RSET');
  }

  /** QUIT, waiting briefly for the reply; the socket is closed either way. */
  async quit(): Promise<void> {
    if (this.#error) return;
    try {
      await this.command('QUIT', Math.min(this.options.commandTimeoutMs, 5000));
    } catch { /* closing anyway */ }
    this.destroy();
  }

  /** Ends the session at once; a command waiting for its reply fails with `reason`. */
  destroy(reason = new SmtpClientError('closed', 'session closed by the client')): void {
    this.#fail(reason);
  }
}

export { SmtpClientError } from './smtp-reply.ts';
export type { SmtpExtensions, SmtpReply } from './smtp-reply.ts';
