// A real DNS world for tests: nsd serves a DNSSEC-signed parent zone `test.` and the child zones a test
// asks for (signed with a DS in the parent, signed and tampered with, or unsigned), and unbound validates
// with the parent's key as its only trust anchor. Both listen on a random 127.x.y.z address, so parallel
// test files never share a port, and run as children of the test process (no daemons left behind).
// Needs the Debian packages nsd, unbound and bind9-utils (.ci/run installs them).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import { DnsPacketResolver } from '../gateway/dns/index.ts';

export interface LabZone {
  /** A child of the lab's parent zone, e.g. `secure.test`. */
  name: string;
  /** Signed, with its DS in the parent (a secure delegation), or unsigned (an insecure one). */
  signed: boolean;
  /** Zone-file lines after the SOA and NS the lab adds, e.g. `@ IN MX 10 mx` or `mx IN A 127.0.0.1`. */
  records: string[];
  /** Edits the signed zone file before nsd loads it (to make a bogus answer). */
  tamper?: (signedZone: string) => string;
}

export interface DnsLab {
  /** The validating resolver, `host:port`. */
  resolver: string;
  /** The authoritative server, `host:port` (answers without validation). */
  authority: string;
  dir: string;
  close(): Promise<void>;
}

const PARENT = 'test';
const AUTH_PORT = 5300;
const RESOLVER_PORT = 5353;

function run(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function zoneText(name: string, lines: string[]): string {
  return [
    '$TTL 300',
    `@ IN SOA ns.${PARENT}. hostmaster.${PARENT}. 1 3600 600 86400 30`,
    `@ IN NS ns.${PARENT}.`,
    ...lines,
    '',
  ].join('\n');
}

function sign(dir: string, zone: string, file: string): string {
  run('dnssec-keygen', ['-q', '-K', 'keys', '-a', 'ECDSAP256SHA256', '-f', 'KSK', zone], dir);
  run('dnssec-keygen', ['-q', '-K', 'keys', '-a', 'ECDSAP256SHA256', zone], dir);
  // NSEC3 without opt-out: with opt-out (-A) the denial proofs of an unsigned name would be insecure.
  run('dnssec-signzone', ['-q', '-O', 'full', '-3', '-', '-K', 'keys', '-S', '-o', zone, '-f', `${file}.signed`, file], dir);
  return `${file}.signed`;
}

function startDaemon(cmd: string, args: string[], logFile: string): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  child.on('exit', (code) => { if (code) writeFileSync(logFile, stderr, { flag: 'a' }); });
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** Starts the lab; retries on another address if one is taken. */
export async function startDnsLab(zones: LabZone[]): Promise<DnsLab> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const host = `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
    try {
      return await startOn(host, zones);
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

async function startOn(host: string, zones: LabZone[]): Promise<DnsLab> {
  const dir = mkdtempSync(join(tmpdir(), 'aftersmtp-dnslab-'));
  mkdirSync(join(dir, 'keys'));
  const children: ChildProcess[] = [];
  const close = async () => {
    await Promise.all(children.map(stop));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const loaded: { name: string; file: string }[] = [];
    const delegations: string[] = [`ns IN A ${host}`];
    const dsSets: string[] = [];
    for (const zone of zones) {
      if (!zone.name.endsWith(`.${PARENT}`)) throw new Error(`lab zones live under .${PARENT}: ${zone.name}`);
      const file = `db.${zone.name}`;
      writeFileSync(join(dir, file), zoneText(zone.name, zone.records));
      delegations.push(`${zone.name}. IN NS ns.${PARENT}.`);
      if (zone.signed) {
        const signed = sign(dir, zone.name, file);
        if (zone.tamper) writeFileSync(join(dir, signed), zone.tamper(readFileSync(join(dir, signed), 'utf8')));
        dsSets.push(readFileSync(join(dir, `dsset-${zone.name}.`), 'utf8'));
        loaded.push({ name: zone.name, file: signed });
      } else {
        loaded.push({ name: zone.name, file });
      }
    }
    writeFileSync(join(dir, `db.${PARENT}`), zoneText(PARENT, [...delegations, ...dsSets]));
    loaded.push({ name: PARENT, file: sign(dir, PARENT, `db.${PARENT}`) });

    writeFileSync(join(dir, 'nsd.conf'), [
      'server:',
      `  ip-address: ${host}@${AUTH_PORT}`,
      '  username: ""',
      '  chroot: ""',
      `  zonesdir: "${dir}"`,
      '  database: ""',
      `  pidfile: "${dir}/nsd.pid"`,
      `  xfrdfile: "${dir}/xfrd.state"`,
      `  zonelistfile: "${dir}/zone.list"`,
      '  do-ip6: no',
      '  verbosity: 1',
      'remote-control:',
      '  control-enable: no',
      ...loaded.flatMap((z) => ['zone:', `  name: ${z.name}`, `  zonefile: ${z.file}`]),
      '',
    ].join('\n'));
    writeFileSync(join(dir, 'unbound.conf'), [
      'server:',
      `  interface: ${host}@${RESOLVER_PORT}`,
      '  do-ip6: no',
      '  do-daemonize: no',
      '  username: ""',
      '  chroot: ""',
      `  directory: "${dir}"`,
      '  pidfile: ""',
      '  use-syslog: no',
      '  logfile: ""',
      '  access-control: 127.0.0.0/8 allow',
      '  do-not-query-localhost: no',
      '  module-config: "validator iterator"',
      `  trust-anchor-file: "${dir}/dsset-${PARENT}."`,
      `  local-zone: "${PARENT}." nodefault`,
      '  qname-minimisation: no',
      '  cache-max-ttl: 5',
      '  cache-max-negative-ttl: 5',
      '  num-threads: 1',
      'remote-control:',
      '  control-enable: no',
      `stub-zone:`,
      `  name: "${PARENT}."`,
      `  stub-addr: ${host}@${AUTH_PORT}`,
      ...zones.flatMap((z) => ['stub-zone:', `  name: "${z.name}."`, `  stub-addr: ${host}@${AUTH_PORT}`]),
      '',
    ].join('\n'));
    run('nsd-checkconf', ['nsd.conf'], dir);
    children.push(startDaemon('nsd', ['-d', '-c', join(dir, 'nsd.conf')], join(dir, 'nsd.err')));
    children.push(startDaemon('unbound', ['-d', '-c', join(dir, 'unbound.conf')], join(dir, 'unbound.err')));
    const resolver = `${host}:${RESOLVER_PORT}`;
    await ready(resolver, children);
    return { resolver, authority: `${host}:${AUTH_PORT}`, dir, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Waits until the resolver answers a validated name through the authority, or a daemon died. */
async function ready(resolver: string, children: ChildProcess[]): Promise<void> {
  const probe = new DnsPacketResolver({ servers: [resolver], timeoutMs: 250, tries: 1, maxTtlSeconds: 0 });
  for (let i = 0; i < 200; i++) {
    const dead = children.find((c) => c.exitCode !== null || c.signalCode !== null);
    if (dead) throw new Error(`${dead.spawnargs[0]} exited (${dead.exitCode ?? dead.signalCode}) while the DNS lab started`);
    try {
      const answer = await probe.a(`ns.${PARENT}`);
      if (answer.records.length > 0 && answer.secure) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the DNS lab did not answer');
}
