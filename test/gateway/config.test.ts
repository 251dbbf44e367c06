// Configuration: one schema, defaults that start a node, env overrides, unknown keys rejected, and a
// clear startup error naming the key when the file is corrupt.
import { describe, it, expect } from 'vitest';
import { join } from 'node:path';
import { writeFileSync, mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { parseConfig, loadConfig, envOverrides, redactConfig } from '../../gateway/core/index.ts';
import { nodeHttpsOrigin } from '../../gateway/datadir/index.ts';
import { tempDir, runCli, startNodeProcess, freePorts } from '../helpers.ts';

describe('config', () => {
  it('fills defaults that describe a working loopback node', () => {
    const c = parseConfig({});
    expect(c.grpc).toEqual({ host: '127.0.0.1', port: 7443, streamWindowBytes: 1024 * 1024, connectionWindowBytes: 4 * 1024 * 1024, maxConcurrentStreams: 1000 });
    expect(c.node.didMethod).toBe('key');
    expect(c.limits.maxEnvelopeBytes).toBe(25 * 1024 * 1024);
    expect(c.memory).toEqual({ heapGrowthPercent: 100, idleTrim: true });
  });

  it('names the node\'s public HTTPS origin as others reach it: a did:web node\'s DID host, else its first domain', () => {
    const config = parseConfig({ node: { domains: ['Mail.Example.org', 'other.test'] } });
    expect(nodeHttpsOrigin('did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK', config)).toBe('https://mail.example.org');
    expect(nodeHttpsOrigin('did:web:node.example.org', config)).toBe('https://node.example.org');
    expect(nodeHttpsOrigin('did:web:node.example.org%3A8443', config)).toBe('https://node.example.org:8443');
  });

  it('rejects unknown keys, naming them', () => {
    expect(() => parseConfig({ grpc: { prot: 1 } })).toThrow(/grpc\.prot: unknown key/);
    expect(() => parseConfig({ limits: { maxEnvelopeBytes: 'big' } })).toThrow(/limits\.maxEnvelopeBytes/);
    expect(() => parseConfig({ memory: { heapGrowthPercent: 1000 } })).toThrow(/memory\.heapGrowthPercent/);
    expect(() => parseConfig({ grpc: { streamWindowBytes: 1000 } })).toThrow(/grpc\.streamWindowBytes/);
    expect(() => parseConfig({ grpc: { connectionWindowBytes: 2 ** 31 } })).toThrow(/grpc\.connectionWindowBytes/);
  });

  it('applies AFTERSMTP_* overrides over the file', () => {
    const dir = tempDir();
    writeFileSync(join(dir.path, 'config.yaml'), 'grpc:\n  port: 9000\nlog:\n  level: warn\n');
    const c = loadConfig(dir.path, { AFTERSMTP_GRPC__PORT: '9100', AFTERSMTP_LIMITS__MAX_ENVELOPE_BYTES: '4096' });
    expect(c.grpc.port).toBe(9100);
    expect(c.limits.maxEnvelopeBytes).toBe(4096);
    expect(c.log.level).toBe('warn');
    expect(envOverrides({ AFTERSMTP_NODE__DID_METHOD: 'web' })).toEqual({ node: { didMethod: 'web' } });
    dir.cleanup();
  });

  it('redacts secrets', () => {
    expect(redactConfig({ admin: { tokenSha256: 'ab' }, grpc: { port: 1 } })).toEqual({ admin: { tokenSha256: '[redacted]' }, grpc: { port: 1 } });
  });

  it('start fails with a clear error naming the bad key of a corrupted config file', async () => {
    const dir = tempDir();
    const data = join(dir.path, 'node');
    expect((await runCli(['init', '--data', data, '--domain', 'cfg.test', '--grpc-port', '0'])).code).toBe(0);
    writeFileSync(join(data, 'config.yaml'), 'grpc:\n  port: "not a port"\n  colour: blue\n');
    const r = await runCli(['start', '--data', data]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/grpc\.port/);
    expect(r.stderr).toMatch(/grpc\.colour: unknown key/);
    writeFileSync(join(data, 'config.yaml'), 'grpc: [unclosed\n');
    const r2 = await runCli(['start', '--data', data]);
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).toMatch(/not valid YAML/);
    mkdirSync(join(dir.path, 'empty'));
    const r3 = await runCli(['start', '--data', join(dir.path, 'empty')]);
    expect(r3.stderr).toMatch(/no AfterSMTP node/);
    dir.cleanup();
  });

  it('start fails with a clear error naming the store file when it is not a database', async () => {
    const dir = tempDir();
    const data = join(dir.path, 'node');
    expect((await runCli(['init', '--data', data, '--domain', 'cfg.test', '--grpc-port', '0'])).code).toBe(0);
    writeFileSync(join(data, 'node.db'), randomBytes(64 * 1024));
    const r = await runCli(['start', '--data', data]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot open the store .*node\.db: file is not a database/);
    dir.cleanup();
  });

  it('start fails and exits, naming the address and its config keys, when a port is taken', async () => {
    const dir = tempDir();
    const data = join(dir.path, 'node');
    expect((await runCli(['init', '--data', data, '--domain', 'cfg.test', '--grpc-port', '0'])).code).toBe(0);
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', () => resolve()));
    const port = (taken.address() as { port: number }).port;
    try {
      // runCli rejects if the process is still alive after 15 s: the failed start must release the
      // listeners and workers it had already opened.
      const grpcTaken = await runCli(['start', '--data', data], { env: { AFTERSMTP_GRPC__PORT: String(port) }, timeoutMs: 15_000 });
      expect(grpcTaken.code).toBe(1);
      expect(grpcTaken.stderr).toMatch(new RegExp(`cannot listen for gRPC on 127\\.0\\.0\\.1:${port} \\(config grpc\\.host, grpc\\.port\\).*EADDRINUSE`));
      const httpTaken = await runCli(['start', '--data', data], { env: { AFTERSMTP_HTTP__PORT: String(port), AFTERSMTP_GRPC__PORT: '0' }, timeoutMs: 15_000 });
      expect(httpTaken.code).toBe(1);
      expect(httpTaken.stderr).toMatch(new RegExp(`cannot listen for HTTPS on 127\\.0\\.0\\.1:${port} \\(config http\\.host, http\\.port\\).*EADDRINUSE`));
      const relayTaken = await runCli(['start', '--data', data], { env: { AFTERSMTP_FEDERATION__RELAY__PORT: String(port), AFTERSMTP_GRPC__PORT: '0' }, timeoutMs: 15_000 });
      expect(relayTaken.code).toBe(1);
      expect(relayTaken.stderr).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}.*EADDRINUSE.*config federation\\.relay\\.host, federation\\.relay\\.port`));
    } finally {
      taken.close();
      dir.cleanup();
    }
  });

  it('init --quic-port/--relay-port fix the federation ports; the node listens there and reports them', async () => {
    const dir = tempDir();
    const data = join(dir.path, 'node');
    const { quic: quicPort, relay: relayPort } = await freePorts();
    expect((await runCli(['init', '--data', data, '--domain', 'ports.test', '--grpc-port', '0', '--quic-port', String(quicPort), '--relay-port', String(relayPort)])).code).toBe(0);
    expect((await runCli(['init', '--data', join(dir.path, 'bad'), '--domain', 'p.test', '--quic-port', 'x1'])).stderr).toMatch(/--quic-port must be a non-negative integer/);
    const node = await startNodeProcess(data, { AFTERSMTP_LOG__LEVEL: 'warn' });
    try {
      expect(node.ready.quic).toBe(`127.0.0.1:${quicPort}`);
      expect(node.ready.relay).toBe(`127.0.0.1:${relayPort}`);
      const status = JSON.parse((await runCli(['status', '--data', data, '--json'])).stdout);
      expect(status.quic).toBe(`127.0.0.1:${quicPort}`);
    } finally {
      node.child.kill('SIGTERM');
      await node.exited;
      dir.cleanup();
    }
  });
});
