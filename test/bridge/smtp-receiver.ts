// Receiving MTAs for the outbound tests: smtp-server instances on 127.0.0.1:0 that keep what they saw (each
// connection, every MAIL and RCPT with its parameters, each message as received, whether it came over TLS),
// scripted raw servers for peers that break the protocol, and a private Postfix as a real far end.
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer as createTcpServer, type Server as TcpServer, type Socket, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { startPrivatePostfix } from '../../bench/helpers/private-postfix.ts';

export interface Received {
  mailFrom: string;
  mailArgs: Record<string, unknown>;
  /** RET and ENVID, as smtp-server keeps them apart from the other MAIL parameters. */
  dsn: Record<string, unknown>;
  rcpts: { address: string; args: Record<string, unknown>; dsn?: Record<string, unknown> }[];
  data: Buffer;
  secure: boolean;
  connection: number;
}

export interface Receiver {
  port: number;
  connections: number;
  /** Connections that have ended. */
  closed: number;
  messages: Received[];
  close(): Promise<void>;
}

export interface ReceiverOptions extends Partial<SMTPServerOptions> {
  /** RCPT address -> [code, message] refused with. */
  refuseRcpt?: Record<string, [number, string]>;
}

export async function startReceiver(options: ReceiverOptions = {}): Promise<Receiver> {
  const { refuseRcpt = {}, ...serverOptions } = options;
  const receiver: Receiver = { port: 0, connections: 0, closed: 0, messages: [], close: async () => {} };
  const ids = new WeakMap<object, number>();
  const server = new SMTPServer({
    logger: false, authOptional: true, disabledCommands: ['AUTH'], size: 10 * 1024 * 1024, hideDSN: false, hideREQUIRETLS: false,
    ...serverOptions,
    onConnect(session, callback) {
      ids.set(session, ++receiver.connections);
      callback();
    },
    onClose() {
      receiver.closed++;
    },
    onRcptTo(address, _session, callback) {
      const refusal = refuseRcpt[address.address];
      if (refusal) {
        const err = Object.assign(new Error(refusal[1]), { responseCode: refusal[0] });
        return callback(err);
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        receiver.messages.push({
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          mailArgs: (session.envelope.mailFrom ? session.envelope.mailFrom.args : {}) as Record<string, unknown>,
          dsn: ((session.envelope as { dsn?: object }).dsn ?? {}) as Record<string, unknown>,
          rcpts: session.envelope.rcptTo.map((r) => ({
            address: r.address, args: (r.args ?? {}) as Record<string, unknown>, dsn: (r as { dsn?: Record<string, unknown> }).dsn,
          })),
          data: Buffer.concat(chunks),
          secure: session.secure,
          connection: ids.get(session) ?? 0,
        });
        callback();
      });
    },
  });
  server.on('error', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.port = (server.server.address() as AddressInfo).port;
  receiver.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return receiver;
}

/**
 * A raw server that runs `script` for each connection: for peers no real MTA would be (an endless line, no
 * greeting, a refused EHLO).
 */
export async function startRawServer(script: (socket: Socket) => void): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: TcpServer = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    script(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}

/** Reads CRLF lines from a raw server's socket and answers each through `answer` (undefined: say nothing). */
export function lineServer(greeting: string | undefined, answer: (line: string, socket: Socket) => string | undefined): (socket: Socket) => void {
  return (socket) => {
    if (greeting) socket.write(greeting);
    let buffer = '';
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      let at;
      while ((at = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, at);
        buffer = buffer.slice(at + 2);
        const reply = answer(line, socket);
        if (reply !== undefined) socket.write(reply);
      }
    });
  };
}

/** A port nothing listens on. */
export async function closedPort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface PostfixReceiver {
  port: number;
  /** Where each received message lands, one file per message (maildir `new/`). */
  maildir: string;
  stop(): Promise<void>;
}

/**
 * A private Postfix (own config, queue and mail under a temp dir, one loopback listener) that accepts mail for
 * `domain` into one maildir, offering STARTTLS with the given certificate: a real MTA as the far end of
 * outbound delivery. Runs as root (Postfix's daemons drop to the postfix user).
 */
export async function startPostfixReceiver(domain: string, tls: { cert: string; key: string }): Promise<PostfixReceiver> {
  const nobody = { uid: Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim()), gid: Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).trim()) };
  const postfix = await startPrivatePostfix({
    name: 'outbound-postfix', listeners: 1, configure: (dir) => {
      mkdirSync(join(dir, 'mail'));
      chownSync(join(dir, 'mail'), nobody.uid, nobody.gid);
      writeFileSync(join(dir, 'conf', 'cert.pem'), tls.cert);
      writeFileSync(join(dir, 'conf', 'key.pem'), tls.key, { mode: 0o600 });
      return [
        `myhostname = mta.${domain}`,
        `mydomain = ${domain}`,
        'mydestination =',
        'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
        'smtpd_tls_security_level = may',
        `smtpd_tls_cert_file = ${dir}/conf/cert.pem`,
        `smtpd_tls_key_file = ${dir}/conf/key.pem`,
        `virtual_mailbox_domains = ${domain}`,
        `virtual_mailbox_base = ${dir}/mail`,
        'virtual_mailbox_maps = static:mailbox/',
        `virtual_uid_maps = static:${nobody.uid}`,
        `virtual_gid_maps = static:${nobody.gid}`,
      ];
    },
  });
  return { port: postfix.ports[0]!, maildir: join(postfix.dir, 'mail', 'mailbox', 'new'), stop: async () => postfix.stop() };
}
