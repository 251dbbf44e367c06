// smtp-server, with the three things it cannot be told through options: the pause before the greeting,
// strict line ends on commands, and replies that carry the bridge's own enhanced status codes.
//
// How: SMTPServer.connect(socket, options) is the one place the library turns an accepted socket into an
// SMTPConnection (the net server's callback and the implicit-TLS path both call it), so BridgeSmtpServer
// overrides it to build a BridgeConnection, a subclass of the library's own class (exported as
// `smtp-server/lib/smtp-connection.js`). The subclass overrides:
// - init() / connectionReady(): the library's init() arms a fixed 100 ms timer that calls connectionReady()
//   (the greeting). connectionReady() here ignores every call but the one from the listener's own timer
//   (greetingDelayMs, 0 = at once), so the library's timer fires into a no-op. Nothing of the library is
//   patched, and a future library that drops or renames its timer still greets on ours.
// - _createParser(): the same parser (SMTPStream) with its write step noting, per command line, whether
//   it ended in CRLF, because the library accepts a bare LF and hands over lines without their ends.
// - send(): a reply text that starts with an enhanced status code (RFC 3463) is sent as it is; the library
//   would otherwise put its own guess in front of it (it maps 550 to 5.1.1 whatever the reason).
// - handler_MAIL / handler_RCPT: the path is checked as sent, before the library drops a source route.
// Accepting sockets ourselves and handing them to the server would not help: the pause is inside
// SMTPConnection.init(), which every path runs. These are the library's internals (underscored members): package.json pins smtp-server to 3.21.x, and
// test/bridge/inbound*.test.ts fails loudly if a release changes them.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import type { ListenerConfig } from './types.ts';
import type { SmtpReply } from './errors.ts';
import { MAX_LINE_OCTETS } from './message.ts';

/** A reply text that already names its enhanced status code ("5.7.1 ..."). */
const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;

/** What a listener decides beyond smtp-server's own rules (server.ts implements it). */
export interface ListenerPolicy {
  config: ListenerConfig;
  commandTimeoutMs: number;
  dataTimeoutMs: number;
  /** At accept: null to go on to the greeting, or the reply that refuses the session (limits, shutdown). */
  admit(connection: BridgeConnection): SmtpReply | null;
  /** Before smtp-server sees a command line: null to go on, or the reply. */
  command(connection: BridgeConnection, line: string): SmtpReply | null;
  /** MAIL FROM / RCPT TO path as sent: why it is refused, or null. */
  path(line: string): string | null;
  onReply(connection: BridgeConnection, code: number, text: string): void;
}

export function replyText(reply: SmtpReply): string {
  return `${reply.enhanced} ${reply.text}`;
}

/** SMTPStream that records, for each command line it will hand over, whether it ended in a bare LF. */
class LineEndStream extends SMTPStream {
  readonly bareLf: boolean[] = [];

  override _write(chunk: Buffer, encoding: BufferEncoding | 'buffer', next: (err?: Error | null) => void): void {
    if (this._dataMode) {
      // The lines still recorded were not commands: the rest of the chunk is message data.
      this.bareLf.length = 0;
    } else if (!this.isClosed && chunk?.length) {
      // The same text and the same line-end expression the parser splits on.
      const data = this._remainder + chunk.toString('binary');
      for (const end of data.matchAll(/\r?\n/g)) this.bareLf.push(end[0] === '\n');
    }
    super._write(chunk, encoding, next);
  }
}

export class BridgeSmtpServer extends SMTPServer {
  readonly policy: ListenerPolicy;

  constructor(options: SMTPServerOptions, policy: ListenerPolicy) {
    super(options);
    this.policy = policy;
  }

  override connect(socket: Socket | TLSSocket, socketOptions?: SMTPConnectionOptions | null): void {
    const connection = new BridgeConnection(this, socket, socketOptions);
    this.connections.add(connection);
    connection.on('error', (err: Error) => this.emit('error', err));
    connection.on('connect', (data: unknown) => this.emit('connect', data));
    connection.init();
  }
}

export class BridgeConnection extends SMTPConnection {
  private greetingDue = false;
  private deadline: NodeJS.Timeout | undefined;

  private get policy(): ListenerPolicy {
    return (this._server as BridgeSmtpServer).policy;
  }

  override init(): void {
    super.init();
    const refusal = this.policy.admit(this);
    if (refusal) {
      this.send(refusal.code, replyText(refusal), false);
      this.close();
      return;
    }
    const greet = () => {
      this.greetingDue = true;
      this.connectionReady();
    };
    const delay = this.policy.config.greetingDelayMs;
    if (delay <= 0) greet();
    else setTimeout(greet, delay).unref();
  }

  override connectionReady(next?: () => void): void {
    if (!this.greetingDue || this._closing || this._closed) return;
    this.greetingDue = false;
    super.connectionReady(next);
  }

  override _createParser(): SMTPStream {
    const parser = new LineEndStream({ maxCommandLength: 4 * MAX_LINE_OCTETS });
    parser.oncommand = (command: Buffer, callback?: () => void) => this.onLine(parser, command, callback);
    parser.on('error', (err: Error) => this.send(421, `4.5.2 ${err.message}`));
    return parser;
  }

  private onLine(parser: LineEndStream, command: Buffer, callback?: () => void): void {
    this.clearDeadline();
    const next = callback ?? (() => undefined);
    if (parser.bareLf.shift()) {
      // RFC 5321 §2.3.8: lines end in CRLF. A client that ends a command in a bare LF would also end DATA
      // lines that way, where the ends decide what is message and what is command.
      this.send(500, '5.5.2 command line ended in a bare LF, use CRLF');
      this.close();
      return next();
    }
    if (command.length > MAX_LINE_OCTETS) {
      this.send(500, '5.5.2 line too long');
      return next();
    }
    // Not for AUTH continuation lines, plaintext queued behind STARTTLS, or an early talker (the library refuses it).
    const reply = this._upgrading || this._nextHandler || !this._ready ? null : this.policy.command(this, command.toString('binary'));
    if (reply) {
      this.send(reply.code, replyText(reply));
      return next();
    }
    this._onCommand(command, callback);
  }

  override handler_MAIL(command: Buffer, callback: () => void): void {
    if (!this.refusedPath(command, '5.1.7', callback)) super.handler_MAIL(command, callback);
  }

  override handler_RCPT(command: Buffer, callback: () => void): void {
    if (!this.refusedPath(command, '5.1.3', callback)) super.handler_RCPT(command, callback);
  }

  /** Answers 553 when the policy refuses the command's path (source route, %-hack, ...); true if it did. */
  private refusedPath(command: Buffer, enhanced: string, callback: () => void): boolean {
    const refusal = this.policy.path(command.toString('utf8'));
    if (!refusal) return false;
    this.send(553, `${enhanced} ${refusal}`);
    callback();
    return true;
  }

  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    if (code === 421 && data === 'Server shutting down') data = '4.3.2 shutting down';
    if (typeof data === 'string' && ENHANCED.test(data)) context = false;
    super.send(code, data, context);
    if (!this._closing && !this._closed) this.policy.onReply(this, code, Array.isArray(data) ? data[0] ?? '' : data ?? '');
    // The client owes the next command (or, after 354, the whole message) within the limit; any byte
    // resetting an idle timer would let a client holding the session send one byte a second forever.
    if (code !== 421) this.armDeadline(code === 354 ? this.policy.dataTimeoutMs : this.policy.commandTimeoutMs);
  }

  /** The server is working on the client's behalf (a handler, verification, the store): no deadline. */
  holdDeadline(): void {
    this.clearDeadline();
  }

  private armDeadline(ms: number): void {
    this.clearDeadline();
    if (this._closing || this._closed) return;
    this.deadline = setTimeout(() => {
      if (this._closing || this._closed) return;
      this.send(421, `4.4.2 ${this.name} timeout, closing connection`);
    }, ms);
    this.deadline.unref();
  }

  private clearDeadline(): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = undefined;
  }

  override close(): void {
    this.clearDeadline();
    super.close();
  }
}
