// Creating mailboxes: keys are generated for the client and written to its profile; the node keeps
// only the public keys, the DID document and a hash of the API token.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { dataPath, b64u, fromB64u, refuseSharedFile, writeSecretFile, GatewayError, type NodeConfig } from '../core/index.ts';
import { openNodeFiles, generateIdentity, nodeTlsNames } from './node-files.ts';
import { Store, MAILBOX_REREAD_MS } from '../store/index.ts';
import { tokenSha256 } from '../services/index.ts';
import { readProfile, type MailboxProfile } from '../client/index.ts';

export const READY_FILE = 'node.ready.json';

/** What the node's start reports, and what the ready file holds. */
export interface ReadyInfo {
  event: 'ready';
  did: string;
  grpc: string;
  http: string | null;
  /** The metrics listener (plain HTTP, /metrics), loopback unless configured otherwise. */
  metrics: string | null;
  quic: string | null;
  relay: string | null;
  /** The SMTP bridge's listeners, "host:port" (absent when not listening). */
  smtp?: string;
  submission?: string;
  smtps?: string;
  domains: string[];
  version: string;
}

const ADDRESS = /^[a-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[a-z0-9.-]{1,253}$/;

export function addMailbox(args: { dataDir: string; address: string; profileFile: string; env?: NodeJS.ProcessEnv }): MailboxProfile {
  const { dataDir } = args;
  const address = args.address.trim().toLowerCase();
  if (!ADDRESS.test(address)) throw new GatewayError('INVALID_ARGUMENT', `"${args.address}" is not a mailbox address`);
  const { config, keys: nodeKeys } = openNodeFiles(dataDir, args.env);
  const [local, domain] = address.split('@') as [string, string];
  if (!config.node.domains.includes(domain)) {
    throw new GatewayError('INVALID_ARGUMENT', `${domain} is not a domain of this node (${config.node.domains.join(', ')})`);
  }
  refuseSharedFile(args.profileFile); // before the mailbox exists: a refusal changes nothing
  const identity = generateIdentity({ method: config.node.didMethod, domain: nodeKeys.did.startsWith('did:web:') ? nodeKeys.did.slice('did:web:'.length) : domain, path: ['users', local] });
  const token = newToken();
  withStore(dataDir, config, (storage) => {
    storage.mailboxes.add({
      address,
      did: identity.did,
      signingKeyId: identity.signing.keyId,
      signingPublicKey: fromB64u(identity.signing.publicKey),
      agreementKeyId: identity.agreement.keyId,
      agreementPublicKey: fromB64u(identity.agreement.publicKey),
      tokenSha256: tokenSha256(token),
      documentJson: JSON.stringify(identity.document),
      createdMs: Date.now(),
    });
  });
  const ready = readReady(dataDir);
  const grpcAddress = config.grpc.port !== 0 ? `${config.grpc.host}:${config.grpc.port}` : (ready?.grpc ?? `${config.grpc.host}:0`);
  const didWebHosts: Record<string, string> = {};
  const httpAddress = config.http.port !== 0 ? `${config.http.host}:${config.http.port}` : ready?.http;
  if (config.node.didMethod === 'web' && httpAddress) {
    for (const d of config.node.domains) didWebHosts[d] = httpAddress;
  }
  const names = nodeTlsNames(config);
  const profile: MailboxProfile = {
    version: 1,
    address,
    did: identity.did,
    signing: identity.signing,
    agreement: identity.agreement,
    token,
    node: { grpc: grpcAddress, did: nodeKeys.did, ca: readFileSync(dataPath(dataDir, config.tls.caFile), 'utf8'), names: [...names.dnsNames, ...names.ipAddresses] },
    didWebHosts,
  };
  writeSecretFile(args.profileFile, JSON.stringify(profile, null, 2));
  return profile;
}

function newToken(): string {
  return `asmtp_${b64u(randomBytes(32))}`;
}

/** Runs `use` on the node's store, opened for this one command (the CLI's own connection). */
function withStore<T>(dataDir: string, config: NodeConfig, use: (storage: Store) => T): T {
  const storage = new Store(dataPath(dataDir, config.storage.file));
  try {
    return use(storage);
  } finally {
    storage.close();
  }
}

/** The node's mailboxes, by address. */
export function listMailboxes(dataDir: string, env?: NodeJS.ProcessEnv): { address: string; did: string; createdMs: number }[] {
  const { config } = openNodeFiles(dataDir, env);
  return withStore(dataDir, config, (storage) => storage.mailboxes.list().map((m) => ({ address: m.address, did: m.did, createdMs: m.createdMs })));
}

/**
 * Gives a mailbox a new API token, for a token that leaked or an app that changes hands: the old token
 * stops working within seconds (a running node re-reads a token's mailbox every TOKEN_CACHE_MS). With
 * `profileFile` (the mailbox's existing profile) the new token is written into it; the keys stay.
 */
export function renewMailboxToken(args: { dataDir: string; address: string; profileFile?: string; env?: NodeJS.ProcessEnv }): { address: string; token: string } {
  const { config } = openNodeFiles(args.dataDir, args.env);
  const address = args.address.trim().toLowerCase();
  const profile = args.profileFile ? readProfile(args.profileFile) : undefined;
  if (profile && profile.address !== address) throw new GatewayError('INVALID_ARGUMENT', `${args.profileFile} is the profile of ${profile.address}, not ${address}`);
  if (args.profileFile) refuseSharedFile(args.profileFile); // before the old token stops working
  const token = newToken();
  withStore(args.dataDir, config, (storage) => storage.mailboxes.setToken(address, tokenSha256(token)));
  if (profile && args.profileFile) writeSecretFile(args.profileFile, JSON.stringify({ ...profile, token }, null, 2));
  return { address, token };
}

/**
 * Removes a mailbox and its stored mail (an operator offboarding a user). Refuses while the mailbox
 * holds mail its app has not acknowledged, unless `force`. Works while the node runs: within seconds the
 * node refuses new mail for the address (NOT_FOUND; a peer's mail bounces to its sender), the token stops
 * working, and the mailbox's DID document is no longer served. The mail is deleted only once a running
 * node can no longer have taken any for the address, so none arriving meanwhile stays behind.
 */
export async function removeMailbox(args: { dataDir: string; address: string; force?: boolean; env?: NodeJS.ProcessEnv }): Promise<{ address: string; deleted: number; unacknowledged: number }> {
  const { config } = openNodeFiles(args.dataDir, args.env);
  const address = args.address.trim().toLowerCase();
  const { unacknowledged } = withStore(args.dataDir, config, (storage) => storage.removeMailbox(address, { force: args.force }));
  if (nodeRunning(args.dataDir)) await new Promise((resolve) => setTimeout(resolve, MAILBOX_REREAD_MS + 1000));
  const deleted = withStore(args.dataDir, config, (storage) => storage.deliveries.deleteMailboxMail(address));
  return { address, deleted, unacknowledged };
}

/** A node process serves this data directory (its ready file names a live process). */
function nodeRunning(dataDir: string): boolean {
  const pid = (readReady(dataDir) as { pid?: number } | undefined)?.pid;
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function readReady(dataDir: string): ReadyInfo | undefined {
  const file = join(dataDir, READY_FILE);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ReadyInfo;
  } catch {
    return undefined;
  }
}
