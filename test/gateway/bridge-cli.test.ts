// The bridge's commands and configuration through the real CLI: `aftersmtp auth` checks a message file
// offline over a JSON file of TXT records, `aftersmtp arc seal` adds an ARC set that `aftersmtp auth` then
// verifies, and `aftersmtp init` writes SMTP listeners an unprivileged node can open.
import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dkimSign } from 'mailauth';
import { tempDir, runCli } from '../helpers.ts';
import { dnsServersOf, parseConfig } from '../../gateway/core/index.ts';

const dir = tempDir();
afterAll(() => dir.cleanup());

const dkimKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const arcKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pem = (key: KeyObject) => key.export({ type: 'pkcs8', format: 'pem' }) as string;
const record = (key: KeyObject) => `v=DKIM1; k=rsa; p=${key.export({ type: 'spki', format: 'der' }).toString('base64')}`;

const DNS: Record<string, string | string[]> = {
  'mail.test': 'v=spf1 ip4:192.0.2.10 -all',
  'rsa._domainkey.mail.test': record(dkimKey.publicKey),
  '_dmarc.mail.test': 'v=DMARC1; p=reject',
  'arc._domainkey.forwarder.test': record(arcKey.publicKey),
};

async function signedMessage(): Promise<Buffer> {
  const message = Buffer.from([
    'From: Carol <carol@mail.test>', 'To: <bob@example.test>', 'Subject: offline check', 'Date: Mon, 07 Dec 2026 01:00:00 +0000',
    'Message-ID: <cli-1@mail.test>', 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '', 'Checked offline.', '',
  ].join('\r\n'));
  const { signatures } = await dkimSign(message, {
    canonicalization: 'relaxed/relaxed',
    signatureData: [{ signingDomain: 'mail.test', selector: 'rsa', privateKey: pem(dkimKey.privateKey) }],
  } as Parameters<typeof dkimSign>[1]);
  return Buffer.concat([Buffer.from(signatures), message]);
}

describe('aftersmtp auth and aftersmtp arc seal', () => {
  const dnsFile = join(dir.path, 'dns.json');
  const emlFile = join(dir.path, 'in.eml');
  const keyFile = join(dir.path, 'arc.pem');

  it('aftersmtp auth prints SPF, DKIM, DMARC, ARC and the Authentication-Results of a message, over --dns records only', async () => {
    writeFileSync(dnsFile, JSON.stringify(DNS));
    writeFileSync(emlFile, await signedMessage());
    const r = await runCli(['auth', emlFile, '--dns', dnsFile, '--ip', '192.0.2.10', '--helo', 'mta.mail.test', '--mail-from', 'bounce@mail.test', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.spf).toMatchObject({ result: 'pass', domain: 'mail.test' });
    expect(out.dkim).toEqual([expect.objectContaining({ result: 'pass', domain: 'mail.test', selector: 'rsa', aligned: true })]);
    expect(out.dmarc).toMatchObject({ result: 'pass', domain: 'mail.test' });
    expect(out.arc).toMatchObject({ result: 'none' });
    expect(out.authenticationResults).toMatch(/^localhost;/);
    expect(out.authenticationResults).toMatch(/dmarc=pass/);

    const spoofed = await runCli(['auth', emlFile, '--dns', dnsFile, '--ip', '198.51.100.7', '--mail-from', 'bounce@mail.test', '--json']);
    expect(JSON.parse(spoofed.stdout).spf.result).toBe('fail');
  });

  it('aftersmtp arc seal prints an ARC set that aftersmtp auth verifies as arc=pass with the sealing key in --dns', async () => {
    writeFileSync(keyFile, pem(arcKey.privateKey), { mode: 0o600 });
    const r = await runCli(['arc', 'seal', emlFile, '--domain', 'forwarder.test', '--selector', 'arc', '--key', keyFile, '--srv-id', 'mx.forwarder.test',
      '--time', '1780000000', '--headers', 'from:to:subject:date:message-id', '--dns', dnsFile, '--ip', '192.0.2.10', '--mail-from', 'bounce@mail.test', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const set = JSON.parse(r.stdout);
    expect(set.instance).toBe(1);
    // Folded fields, compared unfolded.
    for (const field of ['aar', 'ams', 'as'] as const) set[field] = set[field].replace(/\r\n[ \t]+/g, ' ');
    expect(set.aar).toMatch(/^ARC-Authentication-Results: i=1; mx\.forwarder\.test; .*dmarc=pass/s);
    const tags = (field: string) => Object.fromEntries(field.slice(field.indexOf(':') + 1).split(';').map((t) => t.trim().split(/=(.*)/s).slice(0, 2)));
    expect(set.ams).toMatch(/^ARC-Message-Signature: /);
    expect(tags(set.ams)).toMatchObject({ i: '1', a: 'rsa-sha256', d: 'forwarder.test', s: 'arc', t: '1780000000', h: 'from:to:subject:date:message-id' });
    expect(set.as).toMatch(/^ARC-Seal: /);
    expect(tags(set.as)).toMatchObject({ i: '1', a: 'rsa-sha256', cv: 'none', d: 'forwarder.test', s: 'arc', t: '1780000000' });

    const sealed = join(dir.path, 'sealed.eml');
    writeFileSync(sealed, Buffer.concat([Buffer.from(set.headers, 'latin1'), readFileSync(emlFile)]));
    const check = await runCli(['auth', sealed, '--dns', dnsFile, '--ip', '203.0.113.5', '--mail-from', 'forwarder@forwarder.test', '--json']);
    expect(check.code, check.stderr).toBe(0);
    expect(JSON.parse(check.stdout).arc).toMatchObject({ result: 'pass', instance: 1, sealers: ['forwarder.test'] });
  });

  it('aftersmtp auth refuses a --dns file that is not an object of TXT strings', async () => {
    const bad = join(dir.path, 'bad.json');
    writeFileSync(bad, JSON.stringify({ 'mail.test': 5 }));
    const r = await runCli(['auth', emlFile, '--dns', bad, '--json']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stderr).message).toMatch(/must hold an object of name -> TXT string/);
  });
});

describe('SMTP bridge configuration', () => {
  it('defaults to the standard ports on loopback, implicit TLS off, the node certificate, and the node\'s first domain as host name', () => {
    const config = parseConfig({ node: { domains: ['example.test'] } });
    expect(config.bridge.smtp.enabled).toBe(true);
    expect(config.bridge.smtp.mx).toEqual({ enabled: true, host: '127.0.0.1', port: 25, greetingDelayMs: 0 });
    expect(config.bridge.smtp.submission).toMatchObject({ enabled: true, host: '127.0.0.1', port: 587 });
    expect(config.bridge.smtp.smtps).toMatchObject({ enabled: false, port: 465 });
    expect(config.bridge.smtp.hostname).toBeUndefined();
    expect(config.bridge.smtp.tls).toEqual({});
    expect(config.bridge.smtp.limits).toMatchObject({ maxMessageBytes: 24 * 1024 * 1024, maxRecipients: 100, maxSessions: 100, maxSessionsPerIp: 10 });
    expect(config.bridge.smtp.limits.maxMessageBytes).toBeLessThan(config.limits.maxEnvelopeBytes);
    expect(config.dns).toEqual({ servers: [], timeoutMs: 2000 });
  });

  it('keeps the deprecated federation.dnsServers working by adding it to dns.servers', () => {
    expect(dnsServersOf(parseConfig({ federation: { dnsServers: ['127.0.0.1:5353'] } }))).toEqual(['127.0.0.1:5353']);
    expect(dnsServersOf(parseConfig({ dns: { servers: ['127.0.0.2:53'] }, federation: { dnsServers: ['127.0.0.1:5353'] } }))).toEqual(['127.0.0.2:53', '127.0.0.1:5353']);
  });

  it('aftersmtp init writes SMTP ports an unprivileged node can open (0 unless given), implicit TLS only with --smtps-port', async () => {
    const plain = join(dir.path, 'plain');
    expect((await runCli(['init', '--data', plain, '--domain', 'example.test', '--grpc-port', '0', '--json'])).code).toBe(0);
    const printed = JSON.parse((await runCli(['config', 'print', '--data', plain, '--json'])).stdout);
    expect(printed.bridge.smtp.mx).toMatchObject({ enabled: true, host: '127.0.0.1', port: 0 });
    expect(printed.bridge.smtp.submission).toMatchObject({ enabled: true, port: 0 });
    expect(printed.bridge.smtp.smtps.enabled).toBe(false);

    const ports = join(dir.path, 'ports');
    const r = await runCli(['init', '--data', ports, '--domain', 'example.test', '--smtp-port', '2525', '--submission-port', '2587', '--smtps-port', '0', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const config = JSON.parse((await runCli(['config', 'print', '--data', ports, '--json'])).stdout);
    expect(config.bridge.smtp.mx.port).toBe(2525);
    expect(config.bridge.smtp.submission.port).toBe(2587);
    expect(config.bridge.smtp.smtps).toMatchObject({ enabled: true, port: 0 });
  });
});
