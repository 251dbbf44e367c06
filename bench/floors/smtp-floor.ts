// The floor of bench:smtp, as its own process (`node bench/floors/smtp-floor.ts DIR`): a bare smtp-server on
// 127.0.0.1 (port 0) that takes any recipient and answers each DATA with 250 once the message is durable,
// through the node's own group-commit store mechanism (FloorStore: one SQLite commit per event-loop turn,
// fdatasync of the WAL off the event loop). No TLS, no authentication checks, no signing, sealing, ledger
// or receipts: what any SMTP server built on these parts must at least spend per message. It prints
// {"event":"ready","smtp":"127.0.0.1:PORT"} and stops on SIGTERM.
//
// smtp-server always waits 100 ms before its greeting (no option); the node's MX does not (its listener
// subclasses the library's connection, bridge/inbound/connection.ts). A floor with that pause would be
// capped at ~10 one-message sessions per second per concurrent connection, below the node, so this one
// greets at once the same way: the library's timer then calls into a no-op.
import type { Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerDataStream } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import { FloorStore } from './floor-store.ts';

class PromptConnection extends SMTPConnection {
  private greeted = false;

  override init(): void {
    super.init();
    this.greeted = true;
    super.connectionReady();
  }

  /** Only the library's 100 ms timer calls this after init(): the greeting has been sent already. */
  override connectionReady(next?: () => void): void {
    if (!this.greeted) super.connectionReady(next);
  }
}

class PromptServer extends SMTPServer {
  override connect(socket: Socket, socketOptions?: SMTPConnectionOptions | null): void {
    const connection = new PromptConnection(this, socket, socketOptions);
    this.connections.add(connection);
    connection.on('error', (err: Error) => this.emit('error', err));
    connection.on('connect', (data: unknown) => this.emit('connect', data));
    connection.init();
  }
}

const dir = process.argv[2];
if (!dir) throw new Error('usage: smtp-floor.ts DIR');
const store = new FloorStore(dir, 'smtp-floor.db');
let ref = 0;

const server = new PromptServer({
  logger: false,
  disabledCommands: ['STARTTLS', 'AUTH'],
  authOptional: true,
  disableReverseLookup: true,
  size: 24 * 1024 * 1024,
  maxClients: 1000,
  onData(stream: SMTPServerDataStream, _session, callback) {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      store.store(++ref, Buffer.concat(chunks)).then((seq) => callback(null, `Ok: queued as ${seq}`), (err: Error) => callback(err));
    });
  },
});
server.on('error', (err) => process.stderr.write(`smtp floor: ${err.message}\n`));
server.listen(0, '127.0.0.1', () => {
  const { port } = server.server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ event: 'ready', smtp: `127.0.0.1:${port}` })}\n`);
});
process.once('SIGTERM', () => {
  server.close(() => { void store.close().then(() => process.exit(0)); });
});
