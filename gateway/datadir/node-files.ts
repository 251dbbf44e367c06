// Creating and reading a node's data directory: config, identity keys, DID document, TLS material, store.
import { existsSync, mkdirSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { randomBytes } from 'node:crypto';
import YAML from 'yaml';
import {
  generateSigningKeyPair,
  generateAgreementKeyPair,
  x25519PrivateFromEd25519Seed,
  x25519PublicKeyFromPrivate,
  didKeySigningKeyId,
  didKeyAgreementKeyId,
  didKeyFromEd25519,
  didKeyDocument,
  didWebFromDomain,
  didWebUrl,
  buildDidWebDocument,
  createCertificateAuthority,
  issueServerCertificate,
  type DidDocument,
} from '../../identity/index.ts';
import { newDkimKeys } from './dkim-keys.ts';
import { CONFIG_FILE, dataPath, loadConfig, parseConfig, GatewayError, b64u, tightenModes, writeSecretFile, type ConfigInput, type NodeConfig, type KeyMaterial, type ModeFix } from '../core/index.ts';
import { Store } from '../store/index.ts';
import { tokenSha256 } from '../services/index.ts';

export const ADMIN_TOKEN_FILE = 'admin.token';

/** What keys/node.json holds (mode 0600). */
export interface NodeKeys {
  did: string;
  signing: KeyMaterial;
  agreement: KeyMaterial;
  document: DidDocument;
}

export interface InitOptions {
  dataDir: string;
  domain: string;
  didMethod?: 'key' | 'web';
  grpcPort?: number;
  httpPort?: number;
  /** Federation listen ports (0 = any free port, the default). */
  quicPort?: number;
  relayPort?: number;
  /** SMTP bridge ports (0 = any free port, the default): MX, submission, and implicit TLS (off unless given). */
  smtpPort?: number;
  submissionPort?: number;
  smtpsPort?: number;
  logLevel?: NodeConfig['log']['level'];
}

export interface InitResult {
  dataDir: string;
  did: string;
  config: NodeConfig;
  adminToken: string;
  /** Modes narrowed in a data directory that existed before (e.g. made 0755 by the operator). */
  fixedModes: ModeFix[];
}

/**
 * The names the node's TLS certificates are for, and the only ones its CA may issue for (the CA's
 * NameConstraints) and is trusted for when fetching did:web documents: "localhost", the node's domains
 * (without a port) and the loopback addresses.
 */
export function nodeTlsNames(config: NodeConfig): { dnsNames: string[]; ipAddresses: string[] } {
  const domains = config.node.domains.map((d) => d.toLowerCase().replace(/:[0-9]+$/, ''));
  return { dnsNames: [...new Set(['localhost', ...domains])], ipAddresses: ['127.0.0.1', '::1'] };
}

/**
 * The origin others reach the node's HTTPS listener at (http.port, behind 443): a did:web node's DID
 * host, where its document is fetched; else the node's first domain. Links the node hands out to its
 * HTTPS resources (a webhook's envelope link) name it.
 */
export function nodeHttpsOrigin(did: string, config: NodeConfig): string {
  return did.startsWith('did:web:') ? didWebUrl(did).origin : new URL(`https://${config.node.domains[0]!.toLowerCase()}`).origin;
}

/**
 * What the node keeps from other users: the data directory and the directories of its keys (those
 * inside the data directory), its configuration, private keys, admin token, and the databases with
 * their side files. Certificates and node.ready.json are public.
 */
export function nodePrivatePaths(dataDir: string, config: NodeConfig): string[] {
  const keyFile = dataPath(dataDir, config.node.keyFile);
  const tlsKey = dataPath(dataDir, config.tls.keyFile);
  const caKey = join(dataDir, 'tls', 'ca.key');
  const inside = (dir: string) => {
    const r = relative(dataDir, dir);
    return r === '' || (!r.startsWith('..') && !isAbsolute(r));
  };
  const database = (file: string) => [file, `${file}-wal`, `${file}-shm`, `${file}-journal`];
  return [
    dataDir,
    ...[dirname(keyFile), dirname(tlsKey), dirname(caKey)].filter(inside),
    join(dataDir, CONFIG_FILE),
    keyFile,
    tlsKey,
    caKey,
    join(dataDir, ADMIN_TOKEN_FILE),
    ...config.bridge.smtp.outbound.dkim.map((k) => dataPath(dataDir, k.keyFile)),
    dataPath(dataDir, config.bridge.smtp.outbound.srsSecretFile),
    ...database(dataPath(dataDir, config.storage.file)),
    ...database(dataPath(dataDir, config.ledger.file)),
  ];
}

/** Narrows the modes of the node's private files that group or others may access (see nodePrivatePaths). */
export function secureNodeFiles(dataDir: string, config: NodeConfig): ReturnType<typeof tightenModes> {
  return tightenModes(nodePrivatePaths(dataDir, config));
}

/** Generates a mailbox or node identity: a did:key (X25519 derived from the seed) or a did:web. */
export function generateIdentity(opts: { method: 'key' | 'web'; domain: string; path?: string[]; service?: { grpc?: string; quic?: string } }): NodeKeys {
  const signing = generateSigningKeyPair();
  if (opts.method === 'key') {
    const did = didKeyFromEd25519(signing.publicKey);
    const document = didKeyDocument(did);
    const agreementPrivate = x25519PrivateFromEd25519Seed(signing.privateKey);
    const signingKeyId = didKeySigningKeyId(did);
    const agreementKeyId = didKeyAgreementKeyId(did);
    return {
      did,
      signing: { keyId: signingKeyId, publicKey: b64u(signing.publicKey), privateKey: b64u(signing.privateKey) },
      agreement: { keyId: agreementKeyId, publicKey: b64u(x25519PublicKeyFromPrivate(agreementPrivate)), privateKey: b64u(agreementPrivate) },
      document,
    };
  }
  const agreement = generateAgreementKeyPair();
  const did = didWebFromDomain(opts.domain, opts.path);
  const document = buildDidWebDocument({ did, signingPublicKey: signing.publicKey, agreementPublicKey: agreement.publicKey, service: opts.service });
  return {
    did,
    signing: { keyId: `${did}#sig-1`, publicKey: b64u(signing.publicKey), privateKey: b64u(signing.privateKey) },
    agreement: { keyId: `${did}#ka-1`, publicKey: b64u(agreement.publicKey), privateKey: b64u(agreement.privateKey) },
    document,
  };
}

/** Creates a new node in dataDir; refuses to touch an existing one. */
export async function initNode(opts: InitOptions): Promise<InitResult> {
  const { dataDir } = opts;
  if (existsSync(join(dataDir, CONFIG_FILE)) || (existsSync(dataDir) && readdirSync(dataDir).some((f) => f === 'keys' || f === 'node.db'))) {
    throw new GatewayError('NODE_EXISTS', `${dataDir} already holds an AfterSMTP node; refusing to overwrite it (use another --data directory)`);
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // mkdir's mode does not apply to a directory that exists already.
  const { fixed: fixedModes } = tightenModes([dataDir]);
  const adminToken = `asmtp_admin_${b64u(randomBytes(32))}`;
  const domain = opts.domain.toLowerCase();
  // DKIM: an RSA-2048 key (what every verifier reads) and an Ed25519 one (RFC 8463), each under its own
  // selector dated by its creation, so a later rotation adds a selector beside them.
  const input: ConfigInput = {
    node: { domains: [domain], didMethod: opts.didMethod ?? 'key' },
    grpc: { host: '127.0.0.1', port: opts.grpcPort ?? 7443 },
    http: { host: '127.0.0.1', port: opts.httpPort ?? 0, enabled: true },
    federation: { quic: { port: opts.quicPort ?? 0 }, relay: { port: opts.relayPort ?? 0 } },
    bridge: {
      smtp: {
        mx: { port: opts.smtpPort ?? 0 },
        submission: { port: opts.submissionPort ?? 0 },
        smtps: { enabled: opts.smtpsPort !== undefined, port: opts.smtpsPort ?? 0 },
        outbound: { dkim: newDkimKeys(dataDir, domain, new Set()) },
      },
    },
    admin: { tokenSha256: tokenSha256(adminToken) },
    log: { level: opts.logLevel ?? 'info' },
  };
  const config = parseConfig(input);
  const keys = generateIdentity({ method: config.node.didMethod, domain: config.node.domains[0]! });
  writeSecretFile(dataPath(dataDir, config.node.keyFile), JSON.stringify(keys, null, 2));

  const names = nodeTlsNames(config);
  const ca = await createCertificateAuthority({ commonName: `AfterSMTP node CA ${config.node.domains[0]}`, validDays: 3650, permitted: names });
  // The server certificate also names mta-sts.<domain>: the node serves its domains' MTA-STS policies there
  // (inside the CA's permitted subtrees, which cover each domain's subdomains).
  const mtaStsNames = config.node.domains.map((d) => `mta-sts.${d.toLowerCase().replace(/:[0-9]+$/, '')}`);
  const server = await issueServerCertificate(ca, { ...names, dnsNames: [...names.dnsNames, ...mtaStsNames], validDays: 825 });
  writeSecretFile(dataPath(dataDir, config.tls.keyFile), server.keyPem);
  // The served chain: leaf then CA (PEM blocks each end with a newline).
  // Certificates are public, but only the owner may change them (0644 whatever the umask).
  writeFileSync(dataPath(dataDir, config.tls.certFile), [server.certPem, ca.certPem].map((p) => p.trimEnd()).join('\n') + '\n', { mode: 0o644 });
  writeFileSync(dataPath(dataDir, config.tls.caFile), ca.certPem, { mode: 0o644 });
  writeSecretFile(join(dataDir, 'tls', 'ca.key'), ca.keyPem);

  // The admin token also stays in the data directory (0600) so the CLI on this host can use the Admin API.
  writeSecretFile(join(dataDir, ADMIN_TOKEN_FILE), `${adminToken}\n`);
  writeSecretFile(dataPath(dataDir, config.bridge.smtp.outbound.srsSecretFile), `${b64u(randomBytes(32))}\n`);
  writeSecretFile(join(dataDir, CONFIG_FILE), `# AfterSMTP node configuration (see docs/OPERATIONS.md)\n${YAML.stringify(input)}`);
  new Store(dataPath(dataDir, config.storage.file)).close();
  return { dataDir, did: keys.did, config, adminToken, fixedModes };
}

function readNodeKeys(dataDir: string, config: NodeConfig): NodeKeys {
  const file = dataPath(dataDir, config.node.keyFile);
  if (!existsSync(file)) throw new GatewayError('NODE_MISSING', `no node keys at ${file}; run "aftersmtp init --data ${dataDir}" first`);
  return JSON.parse(readFileSync(file, 'utf8')) as NodeKeys;
}

export function openNodeFiles(dataDir: string, env: NodeJS.ProcessEnv = process.env): { config: NodeConfig; keys: NodeKeys } {
  if (!existsSync(join(dataDir, CONFIG_FILE))) {
    throw new GatewayError('NODE_MISSING', `no AfterSMTP node in ${dataDir}; run "aftersmtp init --data ${dataDir} --domain <domain>" first`);
  }
  const config = loadConfig(dataDir, env);
  return { config, keys: readNodeKeys(dataDir, config) };
}
