// Security issue #20, items 10 and 11: the node's files are its user's alone, whatever existed before
// and whatever the umask; and the node's own CA vouches for the node's own names only.
import { describe, it, expect, afterAll } from 'vitest';
import { join } from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import pino from 'pino';
import { tempDir, runCli, startNodeProcess, freePorts, NODE_BIN, CLI, jsonLines, type CliResult } from '../helpers.ts';
import { AfterSmtpNode } from '../../gateway/node/index.ts';
import { readProfile, profileResolver } from '../../gateway/client/index.ts';
import {
  buildDidWebDocument,
  createCertificateAuthority,
  generateAgreementKeyPair,
  generateSigningKeyPair,
  issueServerCertificate,
} from '../../identity/index.ts';

const mode = (path: string) => statSync(path).mode & 0o777;

/** `aftersmtp ARGS` run by a shell with umask 000, as a careless service manager would start it. */
function spawnWithUmask000(args: string[]) {
  return spawn('/bin/sh', ['-c', 'umask 000; exec "$@"', 'sh', NODE_BIN, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

function runCliWithUmask000(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawnWithUmask000(args);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Every directory and file under `root` (itself included). */
function walk(root: string): { path: string; dir: boolean }[] {
  const found = [{ path: root, dir: true }];
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    const path = join(root, entry.name);
    if (entry.isDirectory()) found.push(...walk(path));
    else found.push({ path, dir: false });
  }
  return found;
}

describe('10 the node\'s files are private', { timeout: 120_000 }, () => {
  const dir = tempDir();
  afterAll(() => dir.cleanup());

  it('10.1 init into an existing 0755 directory leaves it 0700; start narrows what was widened since (store, its -wal/-shm, keys, config) and says so, never widening', async () => {
    const data = join(dir.path, 'existing');
    mkdirSync(data);
    chmodSync(data, 0o755);
    const init = await runCli(['init', '--data', data, '--domain', 'a.test', '--grpc-port', '0']);
    expect(init.code, init.stderr).toBe(0);
    expect(mode(data)).toBe(0o700);
    expect(mode(join(data, 'node.db'))).toBe(0o600);
    expect(init.stderr).toContain(`${data} was open to other users (mode 0755); changed it to 0700`);

    // An operator (or an older version) left things open; one key file was made narrower than 0600.
    chmodSync(data, 0o755);
    for (const file of ['node.db', 'config.yaml', 'tls/ca.key', 'tls/server.key']) chmodSync(join(data, file), 0o644);
    chmodSync(join(data, 'admin.token'), 0o640);
    writeFileSync(join(data, 'node.db-wal'), ''); // an empty WAL, as an interrupted older run could leave
    chmodSync(join(data, 'node.db-wal'), 0o644);
    chmodSync(join(data, 'keys', 'node.json'), 0o400);

    const node = await startNodeProcess(data);
    try {
      expect(mode(data)).toBe(0o700);
      for (const file of ['node.db', 'node.db-wal', 'node.db-shm', 'ledger.db', 'ledger.db-wal', 'ledger.db-shm', 'config.yaml', 'tls/ca.key', 'tls/server.key', 'admin.token']) {
        expect(existsSync(join(data, file)), file).toBe(true);
        expect(mode(join(data, file)), file).toBe(0o600);
      }
      expect(mode(join(data, 'keys', 'node.json'))).toBe(0o400); // narrower than 0600: left as it was
      expect(mode(join(data, 'tls', 'ca.crt'))).toBe(0o644); // public
      const line = jsonLines(node.stderr()).find((l) => Array.isArray(l.fixed));
      expect(line?.msg).toMatch(/open to other users/);
      expect(line.fixed).toEqual(expect.arrayContaining([
        { path: data, from: '0755', to: '0700' },
        { path: join(data, 'node.db'), from: '0644', to: '0600' },
        { path: join(data, 'node.db-wal'), from: '0644', to: '0600' },
        { path: join(data, 'tls', 'ca.key'), from: '0644', to: '0600' },
        { path: join(data, 'admin.token'), from: '0640', to: '0600' },
      ]));
      expect(line.fixed.map((f: { path: string }) => f.path)).not.toContain(join(data, 'keys', 'node.json'));
    } finally {
      node.child.kill('SIGTERM');
      expect(await node.exited).toBe(0);
    }
  });

  it('10.2 mailbox add and mailbox token refuse to write a profile over a file others can read: error names the file and the fix, nothing changes', async () => {
    const data = join(dir.path, 'profiles');
    expect((await runCli(['init', '--data', data, '--domain', 'a.test', '--grpc-port', '0'])).code).toBe(0);
    const open = join(dir.path, 'open.json');
    writeFileSync(open, 'an unrelated file\n');
    chmodSync(open, 0o644);
    const add = await runCli(['mailbox', 'add', 'alice@a.test', '--data', data, '--profile', open]);
    expect(add.code).not.toBe(0);
    expect(add.stderr).toContain(open);
    expect(add.stderr).toContain(`chmod 600 ${open}`);
    expect(readFileSync(open, 'utf8')).toBe('an unrelated file\n');
    expect(mode(open)).toBe(0o644);
    expect(JSON.parse((await runCli(['mailbox', 'list', '--data', data, '--json'])).stdout)).toEqual([]); // no mailbox half made

    // A profile that became readable by others: a new token is not written into it (the old one keeps working).
    const profile = join(dir.path, 'bob.json');
    expect((await runCli(['mailbox', 'add', 'bob@a.test', '--data', data, '--profile', profile])).code).toBe(0);
    const before = readFileSync(profile, 'utf8');
    chmodSync(profile, 0o644);
    const renew = await runCli(['mailbox', 'token', 'bob@a.test', '--data', data, '--profile', profile]);
    expect(renew.code).not.toBe(0);
    expect(renew.stderr).toContain(`chmod 600 ${profile}`);
    expect(readFileSync(profile, 'utf8')).toBe(before);
    // Once the owner made it private, the same command works and keeps it private.
    chmodSync(profile, 0o600);
    expect((await runCli(['mailbox', 'token', 'bob@a.test', '--data', data, '--profile', profile])).code).toBe(0);
    expect(readFileSync(profile, 'utf8')).not.toBe(before);
    expect(mode(profile)).toBe(0o600);
  });

  it('10.3 with umask 000 a new node, its store and a new profile are still private', async () => {
    const data = join(dir.path, 'umask');
    const profile = join(dir.path, 'umask-profiles', 'carol.json'); // its directory is new as well
    const init = await runCliWithUmask000(['init', '--data', data, '--domain', 'a.test', '--grpc-port', '0']);
    expect(init.code, init.stderr).toBe(0);
    const add = await runCliWithUmask000(['mailbox', 'add', 'carol@a.test', '--data', data, '--profile', profile]);
    expect(add.code, add.stderr).toBe(0);
    expect(mode(profile)).toBe(0o600);
    expect(mode(join(dir.path, 'umask-profiles'))).toBe(0o700);
    expect(mode(data)).toBe(0o700);
    for (const file of ['node.db', 'config.yaml', 'admin.token', 'keys/node.json', 'tls/ca.key', 'tls/server.key']) {
      expect(mode(join(data, file)), file).toBe(0o600);
    }
    // The node started the same way creates its transparency log and the databases' side files private.
    const node = spawnWithUmask000(['start', '--data', data]);
    const exited = new Promise((r) => node.on('exit', r));
    try {
      await new Promise<void>((resolve, reject) => {
        node.once('exit', (code) => reject(new Error(`node exited with ${code}`)));
        createInterface({ input: node.stdout! }).on('line', (line) => { if (line.includes('"event":"ready"')) resolve(); });
      });
      for (const file of ['ledger.db', 'ledger.db-wal', 'ledger.db-shm', 'node.db-wal', 'node.db-shm']) {
        expect(mode(join(data, file)), file).toBe(0o600);
      }
      // No file of the node is writable by others, not even the public certificates and the ready file.
      for (const { path } of walk(data)) expect(statSync(path).mode & 0o022, path).toBe(0);
    } finally {
      node.kill('SIGTERM');
      await exited;
    }
  });

  it('10.4 backup output is private: the directory (even if it existed, 0755) 0700, every file 0600', async () => {
    const data = join(dir.path, 'backed-up');
    expect((await runCli(['init', '--data', data, '--domain', 'a.test', '--grpc-port', '0'])).code).toBe(0);
    const out = join(dir.path, 'backup-out');
    mkdirSync(out);
    chmodSync(out, 0o755);
    const backup = await runCli(['backup', '--data', data, '--out', out]);
    expect(backup.code, backup.stderr).toBe(0);
    const entries = walk(out);
    expect(entries.some((e) => e.path.endsWith('node.db'))).toBe(true);
    expect(entries.some((e) => e.path.endsWith('ca.crt'))).toBe(true);
    for (const { path, dir: isDir } of entries) expect(mode(path), path).toBe(isDir ? 0o700 : 0o600);
  });
});

describe('11 the node\'s own CA is trusted for the node\'s own names only', { timeout: 120_000 }, () => {
  const dir = tempDir();
  const servers: Server[] = [];
  const nodes: AfterSmtpNode[] = [];
  afterAll(async () => {
    for (const node of nodes) await node.stop();
    for (const server of servers) await new Promise((r) => server.close(r));
    dir.cleanup();
  });

  /** An HTTPS server on 127.0.0.1 serving a valid did:web document for evil.test, with the given certificate. */
  async function evilServer(tls: { certPem: string; keyPem: string }): Promise<string> {
    const did = 'did:web:evil.test';
    const document = buildDidWebDocument({ did, signingPublicKey: generateSigningKeyPair().publicKey, agreementPublicKey: generateAgreementKeyPair().publicKey });
    const server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
      if (req.url === '/.well-known/did.json') res.writeHead(200, { 'content-type': 'application/did+json' }).end(JSON.stringify(document));
      else res.writeHead(404).end();
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return `127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** A did:web node for a.test (CLI init) with mailbox alice, and a leaf for evil.test made with its CA's key. */
  async function nodeAndAttacker(name: string, replaceCa?: (data: string) => Promise<void>) {
    const data = join(dir.path, name);
    expect((await runCli(['init', '--data', data, '--domain', 'a.test', '--did-method', 'web', '--grpc-port', '0'])).code).toBe(0);
    await replaceCa?.(data);
    const httpPort = (await freePorts()).relay;
    const profileFile = join(dir.path, `${name}-alice.json`);
    expect((await runCli(['mailbox', 'add', 'alice@a.test', '--data', data, '--profile', profileFile], { env: { AFTERSMTP_HTTP__PORT: String(httpPort) } })).code).toBe(0);
    // What an attacker holding the CA's key (or any leaf it signed) can present for another host.
    const ca = { certPem: readFileSync(join(data, 'tls', 'ca.crt'), 'utf8'), keyPem: readFileSync(join(data, 'tls', 'ca.key'), 'utf8') };
    const evil = await evilServer(await issueServerCertificate(ca, { dnsNames: ['evil.test'], validDays: 1 }));
    const hosts = { 'a.test': `127.0.0.1:${httpPort}`, 'evil.test': evil };
    const node = new AfterSmtpNode({ dataDir: data, logger: pino({ level: 'silent' }), env: { AFTERSMTP_HTTP__PORT: String(httpPort) }, didWebHosts: hosts });
    nodes.push(node);
    await node.start();
    const profile = readProfile(profileFile);
    profile.didWebHosts = { ...profile.didWebHosts, ...hosts };
    return { data, node, profile };
  }

  it('11.1 a did:web server for evil.test with a certificate from the node\'s CA is refused, by the node and by an app; the node\'s own did:web resolves', async () => {
    const { node, profile } = await nodeAndAttacker('constrained');
    await expect(node.resolver.resolveKeys('did:web:evil.test')).rejects.toThrow(/certificate|subtree/i);
    await expect(profileResolver(profile).resolveKeys('did:web:evil.test')).rejects.toThrow(/certificate|subtree/i);
    // Fetched over HTTPS from the node's own server (the mailbox has sent nothing, so nothing is registered).
    expect((await node.resolver.resolveKeys('did:web:a.test:users:alice')).did).toBe('did:web:a.test:users:alice');
    expect((await profileResolver(profile).resolveKeys('did:web:a.test')).did).toBe('did:web:a.test');
  });

  it('11.2 a node whose CA predates name constraints: the CA is still not trusted for evil.test', async () => {
    // Such a node's CA and server certificate, as init made them before (no NameConstraints).
    const { node, profile } = await nodeAndAttacker('unconstrained', async (data) => {
      const ca = await createCertificateAuthority({ commonName: 'AfterSMTP node CA a.test', validDays: 30 });
      const server = await issueServerCertificate(ca, { dnsNames: ['localhost', 'a.test'], ipAddresses: ['127.0.0.1', '::1'], validDays: 30 });
      writeFileSync(join(data, 'tls', 'ca.crt'), ca.certPem);
      writeFileSync(join(data, 'tls', 'ca.key'), ca.keyPem);
      writeFileSync(join(data, 'tls', 'server.crt'), `${server.certPem.trimEnd()}\n${ca.certPem}`);
      writeFileSync(join(data, 'tls', 'server.key'), server.keyPem);
    });
    expect(execFileSync('openssl', ['x509', '-noout', '-text', '-in', join(node.dataDir, 'tls', 'ca.crt')], { encoding: 'utf8' })).not.toContain('Name Constraints');
    await expect(node.resolver.resolveKeys('did:web:evil.test')).rejects.toThrow(/certificate/i);
    await expect(profileResolver(profile).resolveKeys('did:web:evil.test')).rejects.toThrow(/certificate/i);
    expect((await node.resolver.resolveKeys('did:web:a.test:users:alice')).did).toBe('did:web:a.test:users:alice');
  });

  it('11.3 init makes a CA with a critical NameConstraints extension permitting only the node\'s names', async () => {
    const data = join(dir.path, 'names');
    expect((await runCli(['init', '--data', data, '--domain', 'Mail.B.test', '--grpc-port', '0'])).code).toBe(0);
    const text = execFileSync('openssl', ['x509', '-noout', '-text', '-in', join(data, 'tls', 'ca.crt')], { encoding: 'utf8' });
    const section = /X509v3 Name Constraints: critical\n\s+Permitted:\n((?:\s+(?:DNS|IP):.*\n)+)/.exec(text);
    expect(section, text).not.toBeNull();
    expect(section![1]!.trim().split(/\n\s*/)).toEqual([
      'DNS:localhost',
      'DNS:mail.b.test',
      'IP:127.0.0.1/255.255.255.255',
      'IP:0:0:0:0:0:0:0:1/FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF',
    ]);
    expect(text).not.toContain('Excluded:');
    // The node's own server certificate verifies under it; one for another name, made with its key, does not.
    const verify = (cert: string) => execFileSync('openssl', ['verify', '-CAfile', join(data, 'tls', 'ca.crt'), cert], { encoding: 'utf8', stdio: 'pipe' });
    expect(verify(join(data, 'tls', 'server.crt'))).toContain(': OK');
    const ca = { certPem: readFileSync(join(data, 'tls', 'ca.crt'), 'utf8'), keyPem: readFileSync(join(data, 'tls', 'ca.key'), 'utf8') };
    const evil = join(dir.path, 'evil.crt');
    writeFileSync(evil, (await issueServerCertificate(ca, { dnsNames: ['evil.test'], validDays: 1 })).certPem);
    expect(() => verify(evil)).toThrow(/permitted subtree violation/);
  });
});
