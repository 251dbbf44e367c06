// The `aftersmtp` command line. Every command prints JSON with --json; errors go to stderr with a code
// and a non-zero exit status.
import { parseArgs } from 'node:util';
import { readFileSync, writeFileSync, existsSync, rmSync, mkdirSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { initNode } from '../node-files.ts';
import { loadConfig, redactConfig } from '../config.ts';
import { addMailbox, listMailboxes, removeMailbox, renewMailboxToken, READY_FILE } from '../mailboxes.ts';
import { readProfile, connect, profileResolver, sealFor, submit, subscribe, type MailboxProfile } from '../client.ts';
import { GatewayError } from '../errors.ts';
import { unary } from '../client.ts';
import { verifyProofBundle, type ProofBundle, type AnchorChecker } from '../proof.ts';
import { fromB64u } from '../node-files.ts';
import { createDidResolver, decodeEnvelope, openEnvelope } from '../../identity/index.ts';
import { loadProto, type LedgerStatusReply__Output, type AdminClient, type StatusReply__Output } from '../../proto/index.ts';
import * as grpc from '@grpc/grpc-js';
import { openNodeFiles, ADMIN_TOKEN_FILE } from '../node-files.ts';
import { dataPath } from '../config.ts';
import { Store } from '../store/index.ts';
import { readReady } from '../mailboxes.ts';
import { parseEndpoint } from '../federation/routing.ts';
import type { ModeFix } from '../private-files.ts';

/** Chain checks, loaded only when a bundle carries an anchor (keeps @polkadot/api off other commands). */
const anchorChecker: AnchorChecker = async (args) => {
  const { checkAnchorOnChain } = await import('../anchoring.ts');
  return checkAnchorOnChain(args);
};

const USAGE = `usage: aftersmtp <command> [options]

  init --data DIR --domain DOMAIN [--did-method key|web] [--grpc-port N] [--http-port N] [--quic-port N] [--relay-port N]
  start --data DIR [--init-domain DOMAIN]   (creates the node first if DIR holds none)
  mailbox add ADDRESS --data DIR --profile FILE
  mailbox token ADDRESS --data DIR [--profile FILE]   (a new API token; the old one stops working)
  mailbox list --data DIR
  mailbox remove ADDRESS --data DIR [--force]         (deletes it and its mail; --force if some is unacknowledged)
  send --profile FILE [--node HOST:PORT] --to ADDR [--to ADDR ...] --subject S (--body TEXT | --eml FILE)
  subscribe --profile FILE [--node HOST:PORT] [--count N] [--from-cursor N] [--save-dir DIR]
  ledger status --profile FILE [--node HOST:PORT]
  proof MESSAGE_ID --profile FILE [--node HOST:PORT]          (prints a self-contained proof bundle)
  verify BUNDLE.json (--profile FILE | --node-did DID) [--witness DID ...] [--signed FILE | --envelope FILE]
         [--substrate ws://... --genesis 0x...] [--require-anchor] [--min-cosignatures N]
         (the log key comes from the node of --profile or from --node-did, the witnesses from --witness or
          that node, the chain from --substrate and --genesis: never from the bundle)
  config print --data DIR
  backup --data DIR --out NEWDIR                      (a consistent copy, also of a running node)
  status --data DIR                                   (node status through the Admin API)
  peers --data DIR                                    (known federation peers, transport, RTT, last error)
  route add DOMAIN --did DID --endpoint quic://HOST:PORT[,relay://HOST:PORT] --data DIR
  route list|remove DOMAIN --data DIR
  queue list [--state S] | retry|hold|release|purge (MESSAGE_ID [--recipient ADDR] | --domain D | --all)  --data DIR

  --json   print machine-readable JSON
`;

type Flags = Record<string, string | boolean | string[] | undefined>;

function parse(argv: string[]): { positionals: string[]; flags: Flags } {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      data: { type: 'string' },
      domain: { type: 'string' },
      'did-method': { type: 'string' },
      'grpc-port': { type: 'string' },
      'quic-port': { type: 'string' },
      'relay-port': { type: 'string' },
      'http-port': { type: 'string' },
      'init-domain': { type: 'string' },
      profile: { type: 'string' },
      node: { type: 'string' },
      to: { type: 'string', multiple: true },
      subject: { type: 'string' },
      body: { type: 'string' },
      eml: { type: 'string' },
      count: { type: 'string' },
      'from-cursor': { type: 'string' },
      json: { type: 'boolean' },
      'save-dir': { type: 'string' },
      signed: { type: 'string' },
      envelope: { type: 'string' },
      substrate: { type: 'string' },
      'require-anchor': { type: 'boolean' },
      'min-cosignatures': { type: 'string' },
      'node-did': { type: 'string' },
      witness: { type: 'string', multiple: true },
      genesis: { type: 'string' },
      did: { type: 'string' },
      endpoint: { type: 'string' },
      'admin-token': { type: 'string' },
      recipient: { type: 'string' },
      state: { type: 'string' },
      all: { type: 'boolean' },
      force: { type: 'boolean' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  return { positionals, flags: values as Flags };
}

function need(flags: Flags, name: string): string {
  const v = flags[name];
  if (typeof v !== 'string' || v === '') throw new GatewayError('INVALID_ARGUMENT', `--${name} is required`);
  return v;
}

function intFlag(flags: Flags, name: string): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new GatewayError('INVALID_ARGUMENT', `--${name} must be a non-negative integer`);
  return n;
}

function out(flags: Flags, value: unknown, human?: string): void {
  process.stdout.write(flags.json || human === undefined ? `${JSON.stringify(value)}\n` : `${human}\n`);
}

async function run(argv: string[]): Promise<number> {
  const { positionals, flags } = parse(argv);
  const [command, sub, ...rest] = positionals;
  if (!command || flags.help) {
    process.stdout.write(USAGE);
    return flags.help ? 0 : 2;
  }
  switch (command) {
    case 'init': {
      const method = (flags['did-method'] as string | undefined) ?? 'key';
      if (method !== 'key' && method !== 'web') throw new GatewayError('INVALID_ARGUMENT', '--did-method must be key or web');
      const result = await initNode({
        dataDir: resolvePath(need(flags, 'data')),
        domain: need(flags, 'domain'),
        didMethod: method,
        grpcPort: intFlag(flags, 'grpc-port'),
        httpPort: intFlag(flags, 'http-port'),
        quicPort: intFlag(flags, 'quic-port'),
        relayPort: intFlag(flags, 'relay-port'),
      });
      reportFixedModes(result.fixedModes);
      out(flags, { event: 'initialized', dataDir: result.dataDir, did: result.did, adminToken: result.adminToken },
        `node created in ${result.dataDir}\n  did: ${result.did}\n  admin token (shown once): ${result.adminToken}`);
      return 0;
    }
    case 'start': {
      const dataDir = resolvePath(need(flags, 'data'));
      // `npm start` passes --init-domain: a first start creates the node with working defaults.
      if (typeof flags['init-domain'] === 'string' && !existsSync(join(dataDir, 'config.yaml'))) {
        const created = await initNode({ dataDir, domain: flags['init-domain'] });
        reportFixedModes(created.fixedModes);
        process.stderr.write(`created a new node in ${dataDir} (admin token, shown once: ${created.adminToken})\n`);
      }
      return startNode(dataDir);
    }
    case 'mailbox': {
      if (sub === 'list') {
        const mailboxes = listMailboxes(resolvePath(need(flags, 'data'))).map((m) => ({ address: m.address, did: m.did, created: new Date(m.createdMs).toISOString() }));
        out(flags, mailboxes, mailboxes.map((m) => `${m.address} ${m.did} created ${m.created}`).join('\n') || '(no mailboxes)');
        return 0;
      }
      if (sub === 'token' && rest[0]) {
        const profileFile = typeof flags.profile === 'string' ? resolvePath(flags.profile) : undefined;
        const renewed = renewMailboxToken({ dataDir: resolvePath(need(flags, 'data')), address: rest[0], profileFile });
        out(flags, { event: 'mailbox-token', address: renewed.address, ...(profileFile ? { profile: profileFile } : { token: renewed.token }) },
          profileFile ? `new token for ${renewed.address} written to ${profileFile}; the old one stops working within seconds`
            : `new token for ${renewed.address} (shown once): ${renewed.token}\n  the old one stops working within seconds`);
        return 0;
      }
      if (sub === 'remove' && rest[0]) {
        const removed = await removeMailbox({ dataDir: resolvePath(need(flags, 'data')), address: rest[0], force: flags.force === true });
        out(flags, { event: 'mailbox-removed', ...removed },
          `mailbox ${removed.address} removed with ${removed.deleted} stored message(s) (${removed.unacknowledged} unacknowledged); a running node refuses its mail within seconds`);
        return 0;
      }
      if (sub !== 'add' || !rest[0]) throw new GatewayError('INVALID_ARGUMENT', 'usage: aftersmtp mailbox add ADDRESS --data DIR --profile FILE | mailbox list --data DIR | mailbox token ADDRESS --data DIR [--profile FILE] | mailbox remove ADDRESS --data DIR [--force]');
      const profileFile = resolvePath(need(flags, 'profile'));
      const profile = addMailbox({ dataDir: resolvePath(need(flags, 'data')), address: rest[0], profileFile });
      out(flags, { event: 'mailbox-added', address: profile.address, did: profile.did, profile: profileFile },
        `mailbox ${profile.address} created\n  did: ${profile.did}\n  profile (keep it secret): ${profileFile}`);
      return 0;
    }
    case 'send': {
      const profile = readProfile(need(flags, 'profile'));
      const to = (flags.to as string[] | undefined) ?? [];
      if (to.length === 0) throw new GatewayError('INVALID_ARGUMENT', '--to is required');
      if (flags.body === undefined && flags.eml === undefined) throw new GatewayError('INVALID_ARGUMENT', 'one of --body or --eml is required');
      const clients = connect(profile, flags.node as string | undefined);
      try {
        const sealed = await sealFor(profile, clients, profileResolver(profile), {
          to,
          subject: (flags.subject as string | undefined) ?? '',
          text: flags.body as string | undefined,
          eml: flags.eml ? new Uint8Array(readFileSync(flags.eml as string)) : undefined,
        });
        const reply = await submit(clients, sealed.envelope);
        const result = {
          event: 'sent',
          messageId: Buffer.from(reply.messageId).toString('hex'),
          messageHash: Buffer.from(reply.messageHash).toString('hex'),
          deliveredLocal: reply.deliveredLocal,
          queuedRemote: reply.queuedRemote,
        };
        out(flags, result, `sent ${result.messageId}\n  ledger hash: ${result.messageHash}`);
      } finally {
        clients.close();
      }
      return 0;
    }
    case 'subscribe': {
      const profile = readProfile(need(flags, 'profile'));
      const clients = connect(profile, flags.node as string | undefined);
      const controller = new AbortController();
      process.once('SIGINT', () => controller.abort());
      process.once('SIGTERM', () => controller.abort());
      try {
        await subscribe(profile, clients, profileResolver(profile), {
          fromCursor: intFlag(flags, 'from-cursor'),
          count: intFlag(flags, 'count'),
          signal: controller.signal,
          onMessage: (m) => {
            // --save-dir keeps what `aftersmtp verify --signed` checks: the signed inner message.
            if (typeof flags['save-dir'] === 'string' && m.signedMessage) {
              // Received mail is the mailbox owner's alone, whatever the umask.
              mkdirSync(flags['save-dir'], { recursive: true, mode: 0o700 });
              writeFileSync(join(flags['save-dir'], `${m.messageId}.signed`), m.signedMessage, { mode: 0o600 });
            }
            const line = { seq: m.seq, messageId: m.messageId, from: m.from, to: m.to, subject: m.subject, verified: m.verified, ...(m.reason ? { reason: m.reason } : {}), receivedAt: m.receivedAt, messageHash: m.messageHash };
            process.stdout.write(`${JSON.stringify(line)}\n`);
          },
        });
      } finally {
        clients.close();
      }
      return 0;
    }
    case 'ledger': {
      if (sub !== 'status') throw new GatewayError('INVALID_ARGUMENT', 'usage: aftersmtp ledger status --profile FILE [--node HOST:PORT]');
      const profile = readProfile(need(flags, 'profile'));
      const clients = connect(profile, flags.node as string | undefined);
      try {
        const r = await unary(clients.provenance.LedgerStatus.bind(clients.provenance), {}, clients.metadata) as LedgerStatusReply__Output;
        const status = {
          origin: r.origin,
          treeSize: r.treeSize,
          root: Buffer.from(r.root).toString('hex'),
          latestCheckpoint: r.latestCheckpoint ? { size: r.latestCheckpoint.size, root: Buffer.from(r.latestCheckpoint.root).toString('hex'), note: r.latestCheckpoint.note } : null,
          verifierKey: r.verifierKey,
          anchoring: r.anchoring,
          latestAnchor: r.latestAnchorJson ? JSON.parse(r.latestAnchorJson) : null,
          anchorLag: r.anchoring === 'off' ? null : { entries: r.anchorLagEntries, ms: r.anchorLagMs },
          ...(r.lastAnchorError ? { lastAnchorError: r.lastAnchorError } : {}),
        };
        out(flags, status, JSON.stringify(status, null, 2));
      } finally {
        clients.close();
      }
      return 0;
    }
    case 'proof': {
      if (!sub || !/^[0-9a-f]{32}$/i.test(sub)) throw new GatewayError('INVALID_ARGUMENT', 'usage: aftersmtp proof MESSAGE_ID (32 hex digits) --profile FILE');
      const profile = readProfile(need(flags, 'profile'));
      const clients = connect(profile, flags.node as string | undefined);
      try {
        const r = await unary(clients.provenance.GetProof.bind(clients.provenance), { messageId: Buffer.from(sub, 'hex') }, clients.metadata) as { json: string };
        process.stdout.write(`${flags.json ? r.json : JSON.stringify(JSON.parse(r.json), null, 2)}\n`);
      } finally {
        clients.close();
      }
      return 0;
    }
    case 'verify': {
      if (!sub) throw new GatewayError('INVALID_ARGUMENT', 'usage: aftersmtp verify BUNDLE.json (--profile FILE | --node-did DID) [--witness DID ...] [--signed FILE | --envelope FILE] [--substrate ws://... --genesis 0x...]');
      return verifyCommand(sub, flags);
    }
    case 'status': {
      const admin = adminClient(flags);
      try {
        const r = await unary(admin.client.Status.bind(admin.client), {}, admin.metadata) as StatusReply__Output;
        out(flags, r, JSON.stringify(r, null, 2));
      } finally {
        admin.close();
      }
      return 0;
    }
    case 'peers': {
      const admin = adminClient(flags);
      try {
        const r = await unary(admin.client.Peers.bind(admin.client), {}, admin.metadata) as { peers: unknown[] };
        out(flags, r.peers, JSON.stringify(r.peers, null, 2));
      } finally {
        admin.close();
      }
      return 0;
    }
    case 'route': {
      const dataDir = resolvePath(need(flags, 'data'));
      const { config } = openNodeFiles(dataDir);
      const storage = new Store(dataPath(dataDir, config.storage.file));
      try {
        if (sub === 'add') {
          const domain = rest[0]?.toLowerCase();
          if (!domain) throw new GatewayError('INVALID_ARGUMENT', 'usage: aftersmtp route add DOMAIN --did DID --endpoint quic://HOST:PORT --data DIR');
          const did = need(flags, 'did');
          if (!/^did:[a-z0-9]+:\S+$/.test(did)) throw new GatewayError('INVALID_ARGUMENT', `"${did}" is not a DID`);
          const endpoint = need(flags, 'endpoint');
          endpoint.split(',').forEach(parseEndpoint);
          await storage.routes.set({ domain, did, endpoint });
          out(flags, { event: 'route-added', domain, did, endpoint }, `route ${domain} -> ${did} at ${endpoint}`);
        } else if (sub === 'remove') {
          if (!rest[0]) throw new GatewayError('INVALID_ARGUMENT', 'usage: aftersmtp route remove DOMAIN --data DIR');
          await storage.routes.delete(rest[0].toLowerCase());
          out(flags, { event: 'route-removed', domain: rest[0] }, `route ${rest[0]} removed`);
        } else if (sub === 'list') {
          const routes = [...config.federation.routes.map((r) => ({ ...r, source: 'config' })), ...storage.routes.list().map((r) => ({ ...r, source: 'static' }))];
          out(flags, routes, JSON.stringify(routes, null, 2));
        } else {
          throw new GatewayError('INVALID_ARGUMENT', 'usage: aftersmtp route add|list|remove ...');
        }
      } finally {
        await storage.close();
      }
      return 0;
    }
    case 'queue': {
      const admin = adminClient(flags);
      try {
        if (sub === 'list') {
          const r = await unary(admin.client.QueueList.bind(admin.client), { state: (flags.state as string | undefined) ?? '' }, admin.metadata) as { items: { messageId: Buffer; recipient: string; state: string; attempts: number; nextAttemptMs: number; lastError: string }[] };
          // For a delivered or failed recipient the time is when it finished, not a next attempt.
          const items = r.items.map((i) => {
            const at = new Date(Number(i.nextAttemptMs)).toISOString();
            const finished = i.state === 'delivered' || i.state === 'failed';
            return { messageId: Buffer.from(i.messageId).toString('hex'), recipient: i.recipient, state: i.state, attempts: i.attempts, ...(finished ? { finishedAt: at } : { nextAttempt: at }), lastError: i.lastError };
          });
          out(flags, items, items.map((i) => `${i.messageId} ${i.recipient} ${i.state} attempts=${i.attempts} ${'finishedAt' in i ? `finished=${i.finishedAt}` : `next=${i.nextAttempt}`} ${i.lastError}`).join('\n') || '(queue empty)');
        } else if (sub === 'retry' || sub === 'hold' || sub === 'release' || sub === 'purge') {
          const id = rest[0];
          const domain = flags.all ? '*' : (flags.domain as string | undefined) ?? '';
          if (id ? !/^[0-9a-f]{32}$/i.test(id) || domain : !domain) {
            throw new GatewayError('INVALID_ARGUMENT', `usage: aftersmtp queue ${sub} (MESSAGE_ID [--recipient ADDR] | --domain DOMAIN | --all) --data DIR`);
          }
          const request = { action: sub, messageId: id ? Buffer.from(id, 'hex') : Buffer.alloc(0), recipient: (flags.recipient as string | undefined) ?? '', domain };
          const r = await unary(admin.client.QueueAction.bind(admin.client), request, admin.metadata) as { affected: number };
          out(flags, { event: `queue-${sub}`, ...(id ? { messageId: id } : { domain }), affected: r.affected }, `${sub}: ${r.affected} recipient(s)`);
        } else {
          throw new GatewayError('INVALID_ARGUMENT', 'usage: aftersmtp queue list|retry|hold|release|purge ...');
        }
      } finally {
        admin.close();
      }
      return 0;
    }
    case 'backup': {
      const { backupNode } = await import('../backup.ts');
      const result = backupNode({ dataDir: resolvePath(need(flags, 'data')), out: resolvePath(need(flags, 'out')) });
      out(flags, { event: 'backup', ...result }, `node copied to ${result.out}\n  databases (snapshots): ${result.databases.join(', ')}\n  other files: ${result.files}`);
      return 0;
    }
    case 'config': {
      if (sub !== 'print') throw new GatewayError('INVALID_ARGUMENT', 'usage: aftersmtp config print --data DIR');
      const config = loadConfig(resolvePath(need(flags, 'data')));
      process.stdout.write(`${JSON.stringify(redactConfig(config), null, flags.json ? undefined : 2)}\n`);
      return 0;
    }
    default:
      throw new GatewayError('INVALID_ARGUMENT', `unknown command "${command}"\n${USAGE}`);
  }
}

function reportFixedModes(fixed: ModeFix[]): void {
  for (const f of fixed) process.stderr.write(`aftersmtp: ${f.path} was open to other users (mode ${f.from}); changed it to ${f.to}\n`);
}

/** An Admin API client: token and address from the data directory, or --node/--admin-token. */
function adminClient(flags: Flags): { client: AdminClient; metadata: grpc.Metadata; close: () => void } {
  const dataDir = typeof flags.data === 'string' ? resolvePath(flags.data) : undefined;
  let token = flags['admin-token'] as string | undefined;
  let address = flags.node as string | undefined;
  let ca: Buffer | undefined;
  if (dataDir) {
    const { config } = openNodeFiles(dataDir);
    if (!token && existsSync(join(dataDir, ADMIN_TOKEN_FILE))) token = readFileSync(join(dataDir, ADMIN_TOKEN_FILE), 'utf8').trim();
    address ??= config.grpc.port !== 0 ? `${config.grpc.host}:${config.grpc.port}` : readReady(dataDir)?.grpc;
    ca = readFileSync(dataPath(dataDir, config.tls.caFile));
  }
  if (!token || !address || !ca) throw new GatewayError('INVALID_ARGUMENT', 'admin commands need --data DIR of a running node (or --node and --admin-token)');
  const { proto } = loadProto();
  const client = new proto.aftersmtp.v1.Admin(address, grpc.credentials.createSsl(ca), { 'grpc.ssl_target_name_override': 'localhost' }) as unknown as AdminClient;
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  return { client, metadata, close: () => (client as unknown as grpc.Client).close() };
}

async function verifyCommand(bundleFile: string, flags: Flags): Promise<number> {
  let bundle: ProofBundle;
  try {
    bundle = JSON.parse(readFileSync(bundleFile, 'utf8')) as ProofBundle;
  } catch (err) {
    throw new GatewayError('INVALID_ARGUMENT', `cannot read the proof bundle ${bundleFile}: ${(err as Error).message}`);
  }
  const profile = typeof flags.profile === 'string' ? readProfile(flags.profile) : undefined;
  const nodeDid = flags['node-did'] as string | undefined;
  const witnessFlags = (flags.witness as string[] | undefined) ?? [];
  for (const did of [nodeDid, ...witnessFlags]) {
    if (did !== undefined && !/^did:[a-z0-9]+:\S+$/.test(did)) throw new GatewayError('INVALID_ARGUMENT', `"${did}" is not a DID`);
  }
  const genesis = flags.genesis as string | undefined;
  if (genesis !== undefined && !/^0x[0-9a-f]{64}$/i.test(genesis)) throw new GatewayError('INVALID_ARGUMENT', '--genesis must be a 0x-prefixed 32-byte hex hash');
  // did:key verifies offline; did:web documents are fetched over HTTPS (the profile's CA and hosts apply).
  const resolver = profile ? profileResolver(profile) : createDidResolver({});
  // The trusted log: --node-did, else the profile's node. Its witnesses: --witness, else (for the
  // profile's node) the ones that node is configured to ask, read from it over the profile's TLS.
  const logDid = nodeDid ?? profile?.node.did;
  let witnesses: string[] | undefined = witnessFlags.length ? witnessFlags : undefined;
  if (!witnesses && profile && !nodeDid) {
    witnesses = await nodeWitnesses(profile, flags.node as string | undefined).catch((err: Error) => {
      process.stderr.write(`aftersmtp: the node's witness list could not be read (${err.message}); no witness counts\n`);
      return undefined;
    });
  }
  let signedMessage: Uint8Array | undefined;
  let statedMessageHash: Uint8Array | undefined;
  if (typeof flags.signed === 'string') signedMessage = new Uint8Array(readFileSync(flags.signed));
  if (typeof flags.envelope === 'string') {
    const envelope = decodeEnvelope(new Uint8Array(readFileSync(flags.envelope)));
    statedMessageHash = envelope.messageHash;
    if (profile) signedMessage = openEnvelope(envelope, { keyId: profile.agreement.keyId, privateKey: fromB64u(profile.agreement.privateKey) });
  }
  const report = await verifyProofBundle(bundle, {
    resolver,
    signedMessage,
    statedMessageHash,
    logDid,
    witnesses,
    substrateEndpoint: (flags.substrate as string | undefined) || undefined,
    genesisHash: genesis,
    requireAnchor: flags['require-anchor'] === true,
    minCosignatures: intFlag(flags, 'min-cosignatures') ?? 0,
    checkAnchor: anchorChecker,
    signal: AbortSignal.timeout(60_000),
  });
  if (flags.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else {
    for (const s of report.steps) process.stdout.write(`${s.status.padEnd(7)} ${s.name}: ${s.detail}\n`);
    process.stdout.write(`cosigned by ${report.cosigners.length} trusted witness(es)${report.cosigners.length ? `: ${report.cosigners.join(', ')}` : ''}\n`);
    for (const m of report.missing) process.stdout.write(`not checked, ${m}\n`);
    process.stdout.write(`result: ${report.result}${report.missing.length ? ` (${report.missing.length} trust input(s) missing)` : ''}\n`);
  }
  return report.ok ? 0 : 1;
}

/** The witnesses the profile's node asks to cosign its log (LedgerStatus, over the node's pinned CA). */
async function nodeWitnesses(profile: MailboxProfile, nodeAddress?: string): Promise<string[]> {
  const clients = connect(profile, nodeAddress);
  try {
    const r = await unary(clients.provenance.LedgerStatus.bind(clients.provenance), {}, clients.metadata) as LedgerStatusReply__Output;
    return r.witnesses;
  } finally {
    clients.close();
  }
}

async function startNode(dataDir: string): Promise<number> {
  // The server side is loaded only by `start`: client commands stay quick to launch.
  const { AfterSmtpNode } = await import('../node.ts');
  const node = new AfterSmtpNode({ dataDir });
  const ready = await node.start();
  const readyFile = join(dataDir, READY_FILE);
  writeFileSync(readyFile, JSON.stringify({ ...ready, pid: process.pid }), { mode: 0o644 });
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      node.log.info({ signal }, 'draining');
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await node.stop();
  if (existsSync(readyFile)) rmSync(readyFile);
  // Everything durable is flushed and closed. A QUIC dial still pending inside the native library (to
  // an unreachable peer) would keep the process alive until its own handshake timeout: do not wait.
  setTimeout(() => process.exit(), 1000).unref();
  return 0;
}

export async function main(argv: string[]): Promise<void> {
  try {
    process.exitCode = await run(argv);
  } catch (err) {
    const code = (err as GatewayError).code ?? 'ERROR';
    const message = (err as Error).message ?? String(err);
    if (argv.includes('--json')) process.stderr.write(`${JSON.stringify({ error: code, message })}\n`);
    else process.stderr.write(`aftersmtp: ${message}${code && code !== 'ERROR' ? ` [${code}]` : ''}\n`);
    process.exitCode = typeof (err as { code?: unknown }).code === 'number' ? 1 : code === 'INVALID_ARGUMENT' || code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? 2 : 1;
    // The error is reported: a handle a library failed to release must not keep the command alive.
    setTimeout(() => process.exit(), 1000).unref();
  }
}

if (import.meta.main) await main(process.argv.slice(2));
