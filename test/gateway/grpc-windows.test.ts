// HTTP/2 flow-control windows on the app-facing gRPC connection (DECISIONS 16): the node advertises the
// configured per-stream and per-connection receive windows to every app, and the client library
// advertises its own, instead of HTTP/2's 64 KiB that made bulk submits and subscriptions wait on
// WINDOW_UPDATE round trips.
import { describe, it, expect, afterAll } from 'vitest';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { tempDir, until } from '../helpers.ts';
import { initNode, addMailbox } from '../../gateway/datadir/index.ts';
import { AfterSmtpNode } from '../../gateway/node/index.ts';
import { connect, unary } from '../../gateway/client/index.ts';
import { CLIENT_FLOW_CONTROL_WINDOW } from '../../gateway/core/index.ts';

describe('gRPC HTTP/2 flow-control windows', () => {
  const dir = tempDir();
  const data = join(dir.path, 'node');
  const nodes: AfterSmtpNode[] = [];
  afterAll(async () => { for (const n of nodes) await n.stop(500); dir.cleanup(); });

  /** What an HTTP/2 client sees of the node: the stream window it advertises and the connection window it grants. */
  async function windowsSeenByClient(grpcAddress: string): Promise<{ stream: number; connection: number }> {
    const session = http2.connect(`https://${grpcAddress}`, { ca: readFileSync(join(data, 'tls/ca.crt')), servername: 'localhost' });
    try {
      // The first SETTINGS carries grpc-js's defaults; the node's own follow on the same connection.
      return await until('the node\'s windows', async () => {
        const stream = session.remoteSettings?.initialWindowSize;
        const connection = session.state?.remoteWindowSize;
        return stream !== undefined && connection !== undefined && stream !== 65_535 && connection !== 65_535 ? { stream, connection } : undefined;
      }, 5000);
    } finally {
      session.destroy();
    }
  }

  it('the node advertises its configured windows on app connections, 1 MiB / 4 MiB by default', async () => {
    await initNode({ dataDir: data, domain: 'win.test', grpcPort: 0 });
    const byDefault = new AfterSmtpNode({ dataDir: data, logger: pino({ level: 'silent' }) });
    nodes.push(byDefault);
    const ready = await byDefault.start();
    expect(await windowsSeenByClient(ready.grpc)).toEqual({ stream: 1024 * 1024, connection: 4 * 1024 * 1024 });
    await byDefault.stop(500);

    const configured = new AfterSmtpNode({
      dataDir: data,
      logger: pino({ level: 'silent' }),
      env: { AFTERSMTP_GRPC__STREAM_WINDOW_BYTES: String(3 * 1024 * 1024), AFTERSMTP_GRPC__CONNECTION_WINDOW_BYTES: String(12 * 1024 * 1024) },
    });
    nodes.push(configured);
    const again = await configured.start();
    expect(await windowsSeenByClient(again.grpc)).toEqual({ stream: 3 * 1024 * 1024, connection: 12 * 1024 * 1024 });

    // Clients that connect and vanish at once (before or while their session is set up) leave the node
    // serving, with its windows.
    const ca = readFileSync(join(data, 'tls/ca.crt'));
    for (let i = 0; i < 20; i++) {
      const s = http2.connect(`https://${again.grpc}`, { ca, servername: 'localhost' });
      s.on('error', () => {});
      if (i % 2) s.destroy();
      else s.once('connect', () => s.destroy());
    }
    expect(await windowsSeenByClient(again.grpc)).toEqual({ stream: 3 * 1024 * 1024, connection: 12 * 1024 * 1024 });
  });

  it('the client library advertises its receive window to the node', async () => {
    const profile = addMailbox({ dataDir: data, address: 'alice@win.test', profileFile: join(dir.path, 'alice.json') });
    // A bare HTTP/2 server with the node's certificate stands in for the node: it records what the
    // client's SETTINGS say and answers every call with UNIMPLEMENTED.
    const server = http2.createSecureServer({ cert: readFileSync(join(data, 'tls/server.crt')), key: readFileSync(join(data, 'tls/server.key')) });
    const seen: number[] = [];
    server.on('session', (session) => session.on('remoteSettings', (s) => { if (s.initialWindowSize !== undefined) seen.push(s.initialWindowSize); }));
    server.on('stream', (stream) => stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12' }, { endStream: true }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const clients = connect(profile, `127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      await expect(unary(clients.mailbox.WhoAmI.bind(clients.mailbox), {}, clients.metadata)).rejects.toThrow(/UNIMPLEMENTED|12/);
      expect(seen).toContain(CLIENT_FLOW_CONTROL_WINDOW);
    } finally {
      clients.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
