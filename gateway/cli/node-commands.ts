// The node itself: create it, run it, ask it how it is, print its configuration, copy it.
import { writeFileSync, existsSync, rmSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { backupNode, initNode, READY_FILE } from '../datadir/index.ts';
import { loadConfig, redactConfig, GatewayError } from '../core/index.ts';
import type { StatusReply__Output } from '../../proto/index.ts';
import { intFlag, need, out, reportFixedModes, str, type Command } from './command.ts';
import { ADMIN_FLAGS, ADMIN_USAGE, DATA_FLAGS, dataDirOf, withAdmin } from './reach.ts';

export const nodeCommands: Command[] = [
  {
    name: 'init',
    flags: {
      ...DATA_FLAGS,
      domain: { type: 'string', required: true },
      'did-method': { type: 'string' },
      'grpc-port': { type: 'string' },
      'http-port': { type: 'string' },
      'quic-port': { type: 'string' },
      'relay-port': { type: 'string' },
      'smtp-port': { type: 'string' },
      'submission-port': { type: 'string' },
      'smtps-port': { type: 'string' },
    },
    usage: [
      'init --data DIR --domain DOMAIN [--did-method key|web] [--grpc-port N] [--http-port N] [--quic-port N] [--relay-port N] [--smtp-port N] [--submission-port N] [--smtps-port N]',
      '(ports 0 = any free port; SMTP on 127.0.0.1 until bridge.smtp.*.host is changed; implicit TLS only with --smtps-port)',
    ],
    async run({ flags }) {
      const method = str(flags, 'did-method') ?? 'key';
      if (method !== 'key' && method !== 'web') throw new GatewayError('INVALID_ARGUMENT', '--did-method must be key or web');
      const result = await initNode({
        dataDir: dataDirOf(flags),
        domain: need(flags, 'domain'),
        didMethod: method,
        grpcPort: intFlag(flags, 'grpc-port'),
        httpPort: intFlag(flags, 'http-port'),
        quicPort: intFlag(flags, 'quic-port'),
        relayPort: intFlag(flags, 'relay-port'),
        smtpPort: intFlag(flags, 'smtp-port'),
        submissionPort: intFlag(flags, 'submission-port'),
        smtpsPort: intFlag(flags, 'smtps-port'),
      });
      reportFixedModes(result.fixedModes);
      out(flags, { event: 'initialized', dataDir: result.dataDir, did: result.did, adminToken: result.adminToken },
        `node created in ${result.dataDir}\n  did: ${result.did}\n  admin token (shown once): ${result.adminToken}`);
      return 0;
    },
  },
  {
    name: 'start',
    flags: { ...DATA_FLAGS, 'init-domain': { type: 'string' } },
    usage: ['start --data DIR [--init-domain DOMAIN]', '(creates the node first if DIR holds none)'],
    async run({ flags }) {
      const dataDir = dataDirOf(flags);
      // `npm start` passes --init-domain: a first start creates the node with working defaults.
      const initDomain = str(flags, 'init-domain');
      if (initDomain !== undefined && !existsSync(join(dataDir, 'config.yaml'))) {
        const created = await initNode({ dataDir, domain: initDomain });
        reportFixedModes(created.fixedModes);
        process.stderr.write(`created a new node in ${dataDir} (admin token, shown once: ${created.adminToken})\n`);
      }
      return startNode(dataDir);
    },
  },
  {
    name: 'status',
    flags: ADMIN_FLAGS,
    usage: [`status ${ADMIN_USAGE}`, '(node status through the Admin API)'],
    run: ({ flags }) => withAdmin(flags, async (admin) => {
      const r = await admin.call<StatusReply__Output>('Status', {});
      out(flags, r, JSON.stringify(r, null, 2));
      return 0;
    }),
  },
  {
    name: 'config print',
    flags: DATA_FLAGS,
    usage: ['config print --data DIR'],
    run({ flags }) {
      const config = loadConfig(dataDirOf(flags));
      process.stdout.write(`${JSON.stringify(redactConfig(config), null, flags.json ? undefined : 2)}\n`);
      return 0;
    },
  },
  {
    name: 'backup',
    flags: { ...DATA_FLAGS, out: { type: 'string', required: true } },
    usage: ['backup --data DIR --out NEWDIR', '(a consistent copy, also of a running node)'],
    async run({ flags }) {
      const result = backupNode({ dataDir: dataDirOf(flags), out: resolvePath(need(flags, 'out')) });
      out(flags, { event: 'backup', ...result }, `node copied to ${result.out}\n  databases (snapshots): ${result.databases.join(', ')}\n  other files: ${result.files}`);
      return 0;
    },
  },
];

/** Runs the node until SIGINT or SIGTERM, then drains it. */
async function startNode(dataDir: string): Promise<number> {
  // The server side is loaded only by `start`: client commands stay quick to launch.
  const { AfterSmtpNode } = await import('../node/index.ts');
  const node = new AfterSmtpNode({ dataDir });
  // The handlers are in place before anyone can learn that the node is ready: a supervisor that sends
  // SIGTERM the moment it reads the ready line must get a drain, not the signal's default (instant death).
  const stopped = new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  const ready = await node.start();
  const readyFile = join(dataDir, READY_FILE);
  writeFileSync(readyFile, JSON.stringify({ ...ready, pid: process.pid }), { mode: 0o644 });
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  node.log.info({ signal: await stopped }, 'draining');
  await node.stop();
  if (existsSync(readyFile)) rmSync(readyFile);
  // Everything durable is flushed and closed. A QUIC dial still pending inside the native library (to
  // an unreachable peer) would keep the process alive until its own handshake timeout: do not wait.
  setTimeout(() => process.exit(), 1000).unref();
  return 0;
}
