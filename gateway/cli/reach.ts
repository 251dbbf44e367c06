// How a command reaches a node, in one place: the node of --data (its files and store, or its Admin
// API when it runs), or the node of --profile (the Mailbox and Provenance API a mailbox's app uses).
// Each way opens what it needs, hands it to the command and closes it after, whatever happens.
import { readFileSync, existsSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { connect, profileResolver, readProfile, unary, type Clients, type MailboxProfile } from '../client/index.ts';
import { dataPath, type NodeConfig } from '../core/index.ts';
import { openNodeFiles, ADMIN_TOKEN_FILE, readReady } from '../datadir/index.ts';
import { Store } from '../store/index.ts';
import { loadProto, type AdminClient } from '../../proto/index.ts';
import type { DidResolver } from '../../identity/index.ts';
import { need, str, UsageError, type Flags, type FlagSpecs } from './command.ts';

/** Flags of a command on the node's data directory (running or not). */
export const DATA_FLAGS: FlagSpecs = { data: { type: 'string', required: true } };

/** Flags of a command on a running node's Admin API: --node and --admin-token override what --data says. */
export const ADMIN_FLAGS: FlagSpecs = { data: { type: 'string' }, node: { type: 'string' }, 'admin-token': { type: 'string' } };
export const ADMIN_USAGE = '--data DIR [--node HOST:PORT] [--admin-token TOKEN]';

/** Flags of a command that speaks to the node of a mailbox profile, as the mailbox's app does. */
export const APP_FLAGS: FlagSpecs = { profile: { type: 'string', required: true }, node: { type: 'string' } };
export const APP_USAGE = '--profile FILE [--node HOST:PORT]';

/** The data directory of --data, absolute. */
export function dataDirOf(flags: Flags): string {
  return resolvePath(need(flags, 'data'));
}

/** Calls one unary method of a generated client. */
function call<R>(client: object, method: string, request: object, metadata: grpc.Metadata): Promise<R> {
  const fn = (client as Record<string, (req: object, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: R) => void) => unknown>)[method]!;
  return unary(fn.bind(client), request, metadata);
}

export interface StoreReach {
  dataDir: string;
  config: NodeConfig;
  storage: Store;
}

/** The store of the node of --data, opened for `use` and closed after. */
export async function withStore<T>(flags: Flags, use: (node: StoreReach) => Promise<T>): Promise<T> {
  const dataDir = dataDirOf(flags);
  const { config } = openNodeFiles(dataDir);
  const storage = new Store(dataPath(dataDir, config.storage.file));
  storage.rules.configure(config.rules);
  try {
    return await use({ dataDir, config, storage });
  } finally {
    await storage.close();
  }
}

export interface AdminReach {
  call<R>(method: keyof AdminClient & string, request: object): Promise<R>;
}

/** The Admin API of the running node of --data: token and address from its files, or --admin-token and --node. */
export async function withAdmin<T>(flags: Flags, use: (admin: AdminReach) => Promise<T>): Promise<T> {
  const data = str(flags, 'data');
  const dataDir = data === undefined ? undefined : resolvePath(data);
  let token = str(flags, 'admin-token');
  let address = str(flags, 'node');
  let ca: Buffer | undefined;
  if (dataDir) {
    const { config } = openNodeFiles(dataDir);
    if (!token && existsSync(join(dataDir, ADMIN_TOKEN_FILE))) token = readFileSync(join(dataDir, ADMIN_TOKEN_FILE), 'utf8').trim();
    address ??= config.grpc.port !== 0 ? `${config.grpc.host}:${config.grpc.port}` : readReady(dataDir)?.grpc;
    ca = readFileSync(dataPath(dataDir, config.tls.caFile));
  }
  if (!token || !address || !ca) throw new UsageError('admin commands need --data DIR of a running node (or --node and --admin-token)');
  const { proto } = loadProto();
  const client = new proto.aftersmtp.v1.Admin(address, grpc.credentials.createSsl(ca), { 'grpc.ssl_target_name_override': 'localhost' }) as unknown as AdminClient;
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  try {
    return await use({ call: (method, request) => call(client, method, request, metadata) });
  } finally {
    (client as unknown as grpc.Client).close();
  }
}

export interface AppReach {
  profile: MailboxProfile;
  clients: Clients;
  /** did:web resolution as the app does it (the node's CA for the node's own names only). */
  resolver: DidResolver;
  provenance<R>(method: string, request: object): Promise<R>;
}

/**
 * The node of a mailbox profile (--profile, or `profile` when the command read it already), at the
 * profile's address or --node, with the mailbox's token.
 */
export async function withApp<T>(flags: Flags, use: (app: AppReach) => Promise<T>, profile: MailboxProfile = readProfile(need(flags, 'profile'))): Promise<T> {
  const clients = connect(profile, str(flags, 'node'));
  try {
    return await use({
      profile,
      clients,
      resolver: profileResolver(profile),
      provenance: (method, request) => call(clients.provenance, method, request, clients.metadata),
    });
  } finally {
    clients.close();
  }
}
