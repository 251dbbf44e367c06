// The inbound listeners end to end over real sockets on 127.0.0.1: the greeting pause, the extensions each
// listener offers, MX delivery with the trace fields and the MX authentication policy over the real DNS lab
// (nsd + unbound), submission with AUTH over STARTTLS and implicit TLS (nodemailer), the durable 250 and the
// 4xx paths of the handler, duplicates, shutdown and the per-session logs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { dkimSign } from 'mailauth';
import nodemailer from 'nodemailer';
import { arcSeal, verifyMessage } from '../../bridge/index.ts';
import { dnsblName } from '../../bridge/inbound/server.ts';
import { DnsPacketResolver } from '../../gateway/dns/index.ts';
import { startDnsLab, type DnsLab } from '../dns-lab.ts';
import { HOSTNAME, RawSmtp, message, selfSignedCert, startBridge, transaction, type Bridge } from './inbound-harness.ts';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });

function publicKeyValue(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'der' }).toString('base64');
}
function txt(owner: string, value: string): string {
  return `${owner} IN TXT ${(value.match(/.{1,250}/g) ?? ['']).map((c) => `"${c}"`).join(' ')}`;
}

const cert = selfSignedCert();
let lab: DnsLab;
let dns: DnsPacketResolver;
let bridge: Bridge;

beforeAll(async () => {
  lab = await startDnsLab([
    // p=reject, SPF that never passes for 127.0.0.1, a DKIM key: only a signed message passes DMARC.
    { name: 'strict.test', signed: true, records: [txt('@', 'v=spf1 -all'), txt('_dmarc', 'v=DMARC1; p=reject'), txt('k._domainkey', `v=DKIM1; k=rsa; p=${publicKeyValue(rsa.publicKey)}`)] },
    { name: 'quar.test', signed: true, records: [txt('@', 'v=spf1 -all'), txt('_dmarc', 'v=DMARC1; p=quarantine')] },
    { name: 'open.test', signed: false, records: [txt('@', 'v=spf1 ip4:127.0.0.1 -all')] },
    // The ARC sealer (a forwarder or mailing list) and its key.
    { name: 'fwd.test', signed: true, records: [txt('@', 'v=spf1 ip4:127.0.0.1 -all'), txt('arc._domainkey', `v=DKIM1; k=rsa; p=${publicKeyValue(rsa.publicKey)}`)] },
    // The DMARC record changed after signing: the validating resolver answers SERVFAIL (a DNS temperror).
    { name: 'broken.test', signed: true, records: [txt('@', 'v=spf1 -all'), txt('_dmarc', 'v=DMARC1; p=reject')], tamper: (z) => z.replace('p=reject', 'p=none') },
    // A blocklist listing 127.0.0.1 (RFC 5782 test point style).
    { name: 'bl.test', signed: false, records: ['1.0.0.127 IN A 127.0.0.2'] },
  ]);
  dns = new DnsPacketResolver({ servers: [lab.resolver], timeoutMs: 2000 });
  bridge = await startBridge(cert, dns, { trustedArcSealers: ['fwd.test'] });
  bridge.handler.recipients.set('alice@node.test', 'local');
  bridge.handler.recipients.set('bob@node.test', 'local');
  bridge.handler.users.set('alice@node.test', 'alice-token');
}, 60_000);
afterAll(async () => {
  await bridge?.close();
  await lab?.close();
});

async function dkimSigned(msg: string, domain: string, selector: string): Promise<string> {
  const { signatures } = await dkimSign(Buffer.from(msg), {
    canonicalization: 'relaxed/relaxed',
    signatureData: [{ signingDomain: domain, selector, privateKey: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string }],
  } as Parameters<typeof dkimSign>[1]);
  return signatures + msg;
}

async function mx(from: string, to: string[], data: string, b: Bridge = bridge): Promise<(string | null)[]> {
  const c = await RawSmtp.open(b.port('mx'));
  try {
    expect(await c.read()).toMatch(/^220 /);
    return await transaction(c, from, to, data);
  } finally {
    c.close();
  }
}

function queuedId(reply: string | null | undefined): string {
  const m = /^250 2\.0\.0 Ok: queued as (\S+)$/.exec(reply ?? '');
  expect(m, `expected a queued reply, got ${reply}`).not.toBeNull();
  return m![1]!;
}

/** Time from connect to the first byte of the greeting. */
async function greetingLatency(port: number): Promise<number> {
  const started = performance.now();
  const c = await RawSmtp.open(port);
  const greeting = await c.read();
  const took = performance.now() - started;
  c.close();
  expect(greeting).toMatch(/^220 mx\.node\.test ESMTP/);
  return took;
}

describe('greeting pause', () => {
  it('greets at once with greetingDelayMs 0 (smtp-server alone waits 100 ms)', async () => {
    // The fastest of a few connections: one slow scheduling turn on a busy machine says nothing.
    const times = [];
    for (let i = 0; i < 5; i++) times.push(await greetingLatency(bridge.port('submission')));
    expect(Math.min(...times)).toBeLessThan(80);
  });

  it('waits at least the configured pause, and refuses a client that talks first', async () => {
    const slow = await startBridge(cert, dns, { greetingDelayMs: { mx: 300 } });
    try {
      expect(await greetingLatency(slow.port('mx'))).toBeGreaterThanOrEqual(295);
      const early = await RawSmtp.open(slow.port('mx'));
      early.write('EHLO early.test\r\nMAIL FROM:<spam@early.test>\r\n');
      expect(await early.read()).toMatch(/^421 .*talk too soon/);
      await early.ended();
      expect(slow.handler.acceptCalls).toBe(0);
    } finally {
      await slow.close();
    }
  });
});

describe('extensions', () => {
  it('mx offers STARTTLS, SIZE, PIPELINING, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, DSN, no AUTH; REQUIRETLS only after STARTTLS', async () => {
    const c = await RawSmtp.open(bridge.port('mx'));
    await c.read();
    const plain = (await c.cmd('EHLO client.test'))!;
    for (const ext of ['STARTTLS', 'SIZE 65536', 'PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'DSN']) expect(plain).toMatch(new RegExp(`^250[- ]${ext}$`, 'm'));
    expect(plain).not.toMatch(/AUTH|REQUIRETLS/);
    expect(await c.starttls()).toMatch(/^220 /);
    const secure = (await c.cmd('EHLO client.test'))!;
    expect(secure).toMatch(/REQUIRETLS/);
    expect(secure).not.toMatch(/AUTH|STARTTLS/);
    c.close();
  });

  it('submission offers AUTH PLAIN LOGIN only after STARTTLS, and refuses AUTH before it', async () => {
    const c = await RawSmtp.open(bridge.port('submission'));
    await c.read();
    expect(await c.cmd('EHLO client.test')).not.toMatch(/AUTH/);
    expect(await c.cmd(`AUTH PLAIN ${Buffer.from('\0alice@node.test\0alice-token').toString('base64')}`)).toMatch(/^530 5\.7\.0 /);
    expect(await c.cmd('MAIL FROM:<alice@node.test>')).toMatch(/^530 5\.7\.0 /);
    await c.starttls();
    expect(await c.cmd('EHLO client.test')).toMatch(/AUTH PLAIN LOGIN/);
    c.close();
  });

  it('smtps speaks TLS from the first byte and offers AUTH', async () => {
    const c = await RawSmtp.open(bridge.port('smtps'), { tls: true });
    expect(await c.read()).toMatch(/^220 /);
    expect(await c.cmd('EHLO client.test')).toMatch(/AUTH PLAIN LOGIN/);
    c.close();
  });
});

describe('MX delivery', () => {
  it('replies 250 naming the id only once the message is on disk, with Received and Authentication-Results on top', async () => {
    const forged = 'Authentication-Results: mx.node.test; dkim=pass header.d=strict.test';
    const other = 'Authentication-Results: elsewhere.test; spf=pass';
    const mark = 'X-AfterSMTP-Quarantine: none';
    const data = message({ from: 'carol@open.test', extra: [forged, other, mark] });
    const c = await RawSmtp.open(bridge.port('mx'));
    await c.read();
    await c.cmd('EHLO client.test');
    await c.starttls();
    const replies = [
      await c.cmd('EHLO client.test'),
      await c.cmd('MAIL FROM:<Carol@Open.test> RET=HDRS ENVID=env-1 REQUIRETLS'),
      await c.cmd('RCPT TO:<Alice@Node.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@node.test'),
      await c.cmd('DATA'),
    ];
    expect(replies.slice(1)).toEqual(['250 2.1.0 Accepted', '250 2.1.5 Accepted', expect.stringMatching(/^354 /)]);
    c.write(`${data}.\r\n`);
    const id = queuedId(await c.read());
    c.close();
    const stored = bridge.handler.stored(id).toString('latin1');
    const got = bridge.handler.accepted.at(-1)!;
    expect(got).toMatchObject({
      listener: 'mx', mailFrom: 'carol@open.test', recipients: [{ address: 'alice@node.test', notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;alice@node.test' }],
      dsn: { ret: 'HDRS', envid: 'env-1' }, requireTls: true, tls: true, headerFrom: 'carol@open.test', clientIp: '127.0.0.1', helo: 'client.test',
    });
    expect(got.verdicts?.spf.result).toBe('pass');
    expect(stored).toMatch(new RegExp(`^Authentication-Results: ${HOSTNAME};\r\n`));
    expect(stored).toMatch(/\r\nReceived: from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby mx\.node\.test with ESMTPS \(TLS[^)]*\)\r\n\tid [0-9a-v]+\r\n\tfor <alice@node\.test>;\r\n\t\w{3}, \d\d \w{3} \d{4} [\d:]{8} \+0000\r\n/);
    // RFC 8601 §5: a field that claims the node's authserv-id came from outside and is removed; others stay.
    expect(stored).not.toContain(forged);
    expect(stored).not.toContain(mark);
    expect(stored).toContain(other);
  });

  it('refuses a DMARC p=reject failure with 550 5.7.1, and takes the same domain DKIM-signed', async () => {
    const forged = await mx('ceo@strict.test', ['alice@node.test'], message({ from: 'ceo@strict.test' }));
    expect(forged.at(-1)).toMatch(/^550 5\.7\.1 .*DMARC.*strict\.test/);
    const signed = await mx('ceo@strict.test', ['alice@node.test'], await dkimSigned(message({ from: 'ceo@strict.test' }), 'strict.test', 'k'));
    const id = queuedId(signed.at(-1));
    expect(bridge.handler.stored(id).toString()).toMatch(/dkim=pass[^;]*header\.d=strict\.test[\s\S]*dmarc=pass/);
  });

  it('takes a p=reject failure whose passing ARC chain was sealed by a trusted sealer, with arc=pass', async () => {
    // A mailing list at fwd.test changed the subject (DKIM breaks) and sealed what it had verified.
    const original = await dkimSigned(message({ from: 'ceo@strict.test', subject: 'news' }), 'strict.test', 'k');
    const listed = Buffer.from(original.replace('Subject: news', 'Subject: [list] news'));
    const atList = await verifyMessage({ message: Buffer.from(original), ip: '127.0.0.1', helo: 'mta.strict.test', mailFrom: 'ceo@strict.test', resolver: dns, authservId: 'lists.fwd.test' });
    const set = arcSeal({ message: listed, domain: 'fwd.test', selector: 'arc', privateKey: rsa.privateKey, authservId: 'lists.fwd.test', authResults: atList.results, chainValidation: 'none' });
    const sealed = Buffer.concat([set!.headers, listed]).toString();
    const replies = await mx('list-bounces@fwd.test', ['alice@node.test'], sealed);
    const id = queuedId(replies.at(-1));
    const stored = bridge.handler.stored(id).toString();
    expect(stored).toMatch(/^Authentication-Results: mx\.node\.test;[\s\S]*arc=pass[\s\S]*dmarc=fail/);
    expect(bridge.handler.accepted.at(-1)!.verdicts!.arc).toMatchObject({ result: 'pass', trustedSealer: true });
  });

  it('marks a p=quarantine failure with X-AfterSMTP-Quarantine: dmarc and takes it', async () => {
    const id = queuedId((await mx('x@quar.test', ['alice@node.test'], message({ from: 'x@quar.test' }))).at(-1));
    expect(bridge.handler.stored(id).toString()).toMatch(/^X-AfterSMTP-Quarantine: dmarc\r\nAuthentication-Results: /);
  });

  it('defers with 451 when the DMARC record cannot be had (DNS temperror)', async () => {
    const replies = await mx('x@broken.test', ['alice@node.test'], message({ from: 'x@broken.test' }));
    expect(replies.at(-1)).toMatch(/^451 4\.7\.0 /);
  });

  it('asks a DNSBL zone by reversed octets (IPv4) and nibbles (IPv6), as RFC 5782 2.1 and 2.4 show', () => {
    expect(dnsblName('192.0.2.99', 'bl.test')).toBe('99.2.0.192.bl.test');
    expect(dnsblName('2001:db8:1:2:3:4:567:89ab', 'bl.test')).toBe('b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test');
    expect(dnsblName('2001:db8::1', 'bl.test')).toBe(`1.${'0.'.repeat(23)}8.b.d.0.1.0.0.2.bl.test`);
  });

  it('refuses a client listed on a DNSBL zone with 554 5.7.1 naming the zone, asked once per session', async () => {
    const listed = await startBridge(cert, dns, { dnsbl: ['bl.test'] });
    listed.handler.recipients.set('alice@node.test', 'local');
    try {
      const c = await RawSmtp.open(listed.port('mx'));
      await c.read();
      await c.cmd('EHLO client.test');
      expect(await c.cmd('MAIL FROM:<x@open.test>')).toMatch(/^554 5\.7\.1 .*127\.0\.0\.1 is listed on bl\.test/);
      expect(await c.cmd('MAIL FROM:<y@open.test>')).toMatch(/^554 5\.7\.1 .*bl\.test/);
      c.close();
      expect(listed.handler.acceptCalls).toBe(0);
    } finally {
      await listed.close();
    }
  });
});

describe('submission', () => {
  it('nodemailer sends with AUTH over STARTTLS (587) and over implicit TLS (465); Received only, ESMTPSA', async () => {
    for (const [kind, secure] of [['submission', false], ['smtps', true]] as const) {
      const transport = nodemailer.createTransport({
        host: '127.0.0.1', port: bridge.port(kind), secure, requireTLS: !secure, tls: { rejectUnauthorized: false },
        auth: { user: 'alice@node.test', pass: 'alice-token' },
      });
      const info = await transport.sendMail({ from: 'alice@node.test', to: 'bob@node.test, dave@peer.test', subject: `via ${kind}`, text: 'hi' });
      transport.close();
      const id = /queued as (\S+)/.exec(info.response)![1]!;
      const stored = bridge.handler.stored(id).toString();
      expect(stored).toMatch(/^Received: from \S+ \(\[127\.0\.0\.1\]\)\r\n\tby mx\.node\.test with ESMTPSA /);
      expect(stored).not.toMatch(/Authentication-Results/);
      expect(bridge.handler.accepted.at(-1)).toMatchObject({ listener: kind, authenticated: 'alice@node.test', recipients: [{ address: 'bob@node.test' }, { address: 'dave@peer.test' }] });
    }
  });
});

describe('durable 250', () => {
  it('never says 250 when the handler fails: STORE_FULL and SHUTTING_DOWN give 421 4.3.2, TEMPORARY 451 4.3.0', async () => {
    const cases = [['STORE_FULL', /^421 4\.3\.2 /], ['SHUTTING_DOWN', /^421 4\.3\.2 /], ['TEMPORARY', /^451 4\.3\.0 /]] as const;
    for (const [fault, expected] of cases) {
      bridge.handler.fault = fault;
      const before = bridge.handler.accepted.length;
      const replies = await mx('carol@open.test', ['alice@node.test'], message({ from: 'carol@open.test' }));
      expect(replies.at(-1)).toMatch(expected);
      expect(bridge.handler.accepted.length).toBe(before);
    }
    bridge.handler.fault = null;
  });

  it('does not answer before accept() resolves', async () => {
    let release!: () => void;
    bridge.handler.gate = new Promise((r) => { release = r; });
    const c = await RawSmtp.open(bridge.port('mx'));
    await c.read();
    const calls = bridge.handler.acceptCalls;
    const pending = transaction(c, 'carol@open.test', ['alice@node.test'], message({ from: 'carol@open.test' }));
    await expect.poll(() => bridge.handler.acceptCalls).toBe(calls + 1);
    let answered = false;
    void pending.then(() => { answered = true; });
    await new Promise((r) => setTimeout(r, 50));
    expect(answered).toBe(false);
    bridge.handler.gate = null;
    release();
    queuedId((await pending).at(-1));
    c.close();
  });

  it('accepts a copy it already accepted once: same id, not handed over again (per recipient)', async () => {
    const data = message({ from: 'carol@open.test', messageId: 'dup-1' });
    const first = queuedId((await mx('carol@open.test', ['alice@node.test'], data)).at(-1));
    const calls = bridge.handler.acceptCalls;
    expect(queuedId((await mx('carol@open.test', ['alice@node.test'], data)).at(-1))).toBe(first);
    expect(bridge.handler.acceptCalls).toBe(calls);
    // A new recipient for the same message is delivered, to that recipient only.
    const third = queuedId((await mx('carol@open.test', ['alice@node.test', 'bob@node.test'], data)).at(-1));
    expect(third).not.toBe(first);
    expect(bridge.handler.accepted.at(-1)!.recipients).toEqual([{ address: 'bob@node.test' }]);
  });
});

describe('shutdown and logs', () => {
  it('close() gives open sessions 421 4.3.2 and refuses new connections', async () => {
    const b = await startBridge(cert, dns);
    const c = await RawSmtp.open(b.port('mx'));
    await c.read();
    await c.cmd('EHLO client.test');
    const port = b.port('mx');
    const closed = b.close();
    expect(await c.read()).toMatch(/^421 4\.3\.2 /);
    await closed;
    await expect(RawSmtp.open(port)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('every log line of a session carries its session id; the verdicts and the final reply are logged', async () => {
    const replies = await mx('carol@open.test', ['alice@node.test'], message({ from: 'carol@open.test' }));
    const id = queuedId(replies.at(-1));
    const lines = bridge.logger.lines.filter((l) => l.bindings.session !== undefined);
    const session = lines.find((l) => l.msg === `250 2.0.0 Ok: queued as ${id}`)!.bindings.session;
    const own = lines.filter((l) => l.bindings.session === session);
    expect(own.map((l) => l.msg)).toEqual(expect.arrayContaining(['connect', 'verdicts', `250 2.0.0 Ok: queued as ${id}`]));
    expect(bridge.logger.lines.filter((l) => l.bindings.session === undefined && l.level !== 'warn')).toEqual([]);
  });
});
