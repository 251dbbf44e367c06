// verifyMessage over real DNS: nsd + unbound (test/dns-lab.ts) serve the SPF, DKIM and DMARC records, and
// the node's own DNS client (gateway/dns) is the injected resolver, so the bridge's adapter from it to
// mailauth is what the verdicts depend on. Messages are built and DKIM-signed here with fresh keys.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { dkimSign } from 'mailauth';
import { arcSeal, verifyMessage, type AuthVerdicts, type BridgeResolver, type VerifyOptions } from '../../bridge/index.ts';
import { DnsError, DnsPacketResolver } from '../../gateway/dns/index.ts';
import { startDnsLab, type DnsLab } from '../dns-lab.ts';

const ALLOWED_IP = '192.0.2.10';
const OTHER_IP = '198.51.100.7';
const AUTHSERV_ID = 'mx.bridge.test';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');

/** The p= of a key record: SPKI for RSA, the 32 raw bytes for Ed25519 (RFC 8463 §4.2). */
function publicKeyValue(key: KeyObject): string {
  const spki = key.export({ type: 'spki', format: 'der' });
  return (key.asymmetricKeyType === 'ed25519' ? spki.subarray(spki.length - 32) : spki).toString('base64');
}

/** A zone-file TXT with the value cut into character-strings of at most 255 bytes. */
function txt(owner: string, value: string): string {
  const chunks = value.match(/.{1,250}/g) ?? [''];
  return `${owner} IN TXT ${chunks.map((c) => `"${c}"`).join(' ')}`;
}

let lab: DnsLab;
let dns: DnsPacketResolver;
beforeAll(async () => {
  lab = await startDnsLab([
    {
      name: 'mail.test', signed: true, records: [
        txt('@', `v=spf1 ip4:${ALLOWED_IP} -all`),
        txt('soft', 'v=spf1 ~all'),
        'soft IN A 192.0.2.99',
        txt('rsa._domainkey', `v=DKIM1; k=rsa; p=${publicKeyValue(rsa.publicKey)}`),
        txt('ed._domainkey', `v=DKIM1; k=ed25519; p=${publicKeyValue(ed.publicKey)}`),
        txt('_dmarc', 'v=DMARC1; p=reject'),
      ],
    },
    // No SPF and no DMARC record: only an address, so the names exist.
    { name: 'plain.test', signed: false, records: ['@ IN A 192.0.2.20'] },
    {
      name: 'bogus.test', signed: true, records: [txt('rsa._domainkey', `v=DKIM1; k=rsa; p=${publicKeyValue(rsa.publicKey)}`)],
      // The key record changed after signing: the validating resolver answers SERVFAIL for it.
      tamper: (zone) => zone.replace('k=rsa;', 'k=RSA;'),
    },
  ]);
  dns = new DnsPacketResolver({ servers: [lab.resolver], timeoutMs: 2000 });
}, 60_000);
afterAll(async () => { await lab?.close(); });

function message(from: string, body = 'Hello from the bridge tests.\r\n'): Buffer {
  return Buffer.from([
    `From: Sender <${from}>`,
    'To: Recipient <rcpt@example.net>',
    'Subject: bridge authentication',
    'Date: Mon, 07 Dec 2026 01:00:00 +0000',
    `Message-ID: <${Math.random().toString(36).slice(2)}@bridge.test>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    body,
  ].join('\r\n'));
}

async function dkimSigned(msg: Buffer, selector: 'rsa' | 'ed', domain = 'mail.test'): Promise<Buffer> {
  const { signatures, errors } = await dkimSign(msg, {
    canonicalization: 'relaxed/relaxed',
    signatureData: [{
      signingDomain: domain, selector, privateKey: (selector === 'rsa' ? rsa : ed).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    }],
  } as Parameters<typeof dkimSign>[1]);
  expect(signatures).toMatch(/^DKIM-Signature: /);
  expect(errors).toEqual([]);
  return Buffer.concat([Buffer.from(signatures), msg]);
}

function verify(msg: Buffer, opts: Partial<VerifyOptions> = {}): Promise<AuthVerdicts> {
  return verifyMessage({ message: msg, ip: OTHER_IP, helo: 'client.example', mailFrom: 'bounce@mail.test', resolver: dns, authservId: AUTHSERV_ID, ...opts });
}

describe('DKIM over real DNS', () => {
  it('passes an RSA-SHA256 signature whose key is in DNS', async () => {
    const v = await verify(await dkimSigned(message('alice@mail.test'), 'rsa'));
    expect(v.dkim).toEqual([expect.objectContaining({ result: 'pass', domain: 'mail.test', selector: 'rsa', algo: 'rsa-sha256', aligned: true })]);
  });

  it('passes an Ed25519-SHA256 signature (RFC 8463)', async () => {
    const v = await verify(await dkimSigned(message('alice@mail.test'), 'ed'));
    expect(v.dkim).toEqual([expect.objectContaining({ result: 'pass', domain: 'mail.test', selector: 'ed', algo: 'ed25519-sha256' })]);
  });

  it('fails a signature over a body changed after signing', async () => {
    const signed = await dkimSigned(message('alice@mail.test'), 'rsa');
    const tampered = Buffer.from(signed.toString('latin1').replace('Hello from', 'Hullo from'), 'latin1');
    const v = await verify(tampered);
    expect(v.dkim).toEqual([expect.objectContaining({ result: 'fail', domain: 'mail.test' })]);
  });

  it('is temperror when the key lookup fails (DNSSEC-bogus answer, SERVFAIL)', async () => {
    const v = await verify(await dkimSigned(message('alice@bogus.test'), 'rsa', 'bogus.test'));
    expect(v.dkim).toEqual([expect.objectContaining({ result: 'temperror', domain: 'bogus.test' })]);
  });
});

describe('SPF over real DNS', () => {
  it('passes a client the domain lists', async () => {
    const v = await verify(message('alice@mail.test'), { ip: ALLOWED_IP });
    expect(v.spf).toMatchObject({ result: 'pass', domain: 'mail.test' });
  });

  it('fails a client a -all record does not list', async () => {
    expect((await verify(message('alice@mail.test'), { ip: OTHER_IP })).spf).toMatchObject({ result: 'fail', domain: 'mail.test' });
  });

  it('softfails under ~all', async () => {
    expect((await verify(message('alice@mail.test'), { mailFrom: 'x@soft.mail.test' })).spf).toMatchObject({ result: 'softfail', domain: 'soft.mail.test' });
  });

  it('is none for a domain without an SPF record, and for a name that does not exist', async () => {
    expect((await verify(message('alice@plain.test'), { mailFrom: 'x@plain.test' })).spf.result).toBe('none');
    expect((await verify(message('alice@plain.test'), { mailFrom: 'x@nowhere.plain.test' })).spf.result).toBe('none');
  });

  it('is temperror when the resolver times out', async () => {
    // Injected fault: the node's resolver raises its own TIMEOUT error for the SPF record.
    const timingOut: BridgeResolver = {
      txt: async (name) => { if (name === 'mail.test') throw new DnsError('TIMEOUT', 'no answer'); return dns.txt(name); },
      a: (name) => dns.a(name), aaaa: (name) => dns.aaaa(name), mx: (name) => dns.mx(name), ptr: (name) => dns.ptr(name),
    };
    const v = await verify(message('alice@mail.test'), { ip: ALLOWED_IP, resolver: timingOut });
    expect(v.spf.result).toBe('temperror');
  });
});

describe('DMARC over real DNS', () => {
  it('passes with an aligned DKIM signature although SPF fails', async () => {
    const v = await verify(await dkimSigned(message('alice@mail.test'), 'rsa'), { ip: OTHER_IP });
    expect(v.spf.result).toBe('fail');
    expect(v.dmarc).toMatchObject({ result: 'pass', domain: 'mail.test', alignment: { dkim: true, spf: false }, policy: 'none' });
  });

  it('fails with p=reject when neither SPF nor DKIM pass aligned', async () => {
    const v = await verify(message('alice@mail.test'), { ip: OTHER_IP });
    // The record that applied comes with the verdict: DMARC aggregate reports are built from it.
    expect(v.dmarc).toMatchObject({ result: 'fail', policy: 'reject', domain: 'mail.test', record: 'v=DMARC1; p=reject' });
  });

  it('is none when the author domain has no record', async () => {
    const v = await verify(message('alice@plain.test'), { mailFrom: 'x@plain.test' });
    expect(v.dmarc).toMatchObject({ result: 'none', policy: 'none', domain: 'plain.test' });
  });
});

describe('Authentication-Results', () => {
  it('is well formed: the authserv-id, then one method=result per line, comments balanced', async () => {
    const v = await verify(await dkimSigned(message('alice@mail.test'), 'ed'), { ip: ALLOWED_IP, mailFrom: 'bounce@mail.test' });
    const [authservId, ...rows] = v.authenticationResults.split(';\r\n ');
    expect(authservId).toBe(AUTHSERV_ID);
    expect(rows.map((r) => r.split('=')[0])).toEqual(['dkim', 'spf', 'arc', 'dmarc']);
    for (const row of rows) {
      // method=result [ (comment) ] { ptype.property=value }, no line breaks inside (RFC 8601 §2.2).
      expect(row).toMatch(/^[a-z]+=[a-z]+(?: \([^()\\\r\n]*\))?(?: [a-z]+\.[a-z-]+=[^\s;]+)*$/);
    }
    expect(rows).toEqual([
      expect.stringMatching(/^dkim=pass .*header\.d=mail\.test/),
      expect.stringMatching(/^spf=pass .*smtp\.mailfrom=bounce@mail\.test/),
      expect.stringMatching(/^arc=none smtp\.remote-ip=192\.0\.2\.10$/),
      expect.stringMatching(/^dmarc=pass .*header\.from=mail\.test$/),
    ]);
    expect(v.authenticationResults).toBe(`${AUTHSERV_ID};\r\n ${v.results}`);
  });

  it('refuses an authserv-id that is not a host name', async () => {
    await expect(verify(message('alice@mail.test'), { authservId: 'mx; dkim=pass' })).rejects.toMatchObject({ code: 'BAD_AUTHSERV_ID' });
  });
});

describe('ARC sealed by the bridge, validated over real DNS', () => {
  async function hop(msg: Buffer, selector: 'rsa' | 'ed', time: number): Promise<Buffer> {
    const v = await verify(msg, { ip: ALLOWED_IP });
    const set = arcSeal({
      message: msg, domain: 'mail.test', selector, privateKey: (selector === 'rsa' ? rsa : ed).privateKey,
      authservId: AUTHSERV_ID, authResults: v.results, time, chainValidation: v.arc.result,
    });
    expect(set).not.toBeNull();
    return Buffer.concat([set!.headers, msg]);
  }

  it('a chain of an RSA seal then an Ed25519 seal passes, and names its sealers', async () => {
    const original = await dkimSigned(message('alice@mail.test'), 'rsa');
    const once = await hop(original, 'rsa', 1_780_000_000);
    const first = await verify(once, { trustedArcSealers: ['mail.test'] });
    expect(first.arc).toEqual({ result: 'pass', instance: 1, sealers: ['mail.test'], trustedSealer: true });
    const twice = await hop(once, 'ed', 1_780_000_100);
    expect(twice.toString('latin1')).toMatch(/^ARC-Seal: a=ed25519-sha256;\r\n b=[^;]+;\r\n cv=pass;\r\n d=mail\.test;\r\n i=2;/);
    const second = await verify(twice);
    expect(second.arc).toEqual({ result: 'pass', instance: 2, sealers: ['mail.test', 'mail.test'], trustedSealer: false });
    expect(second.authenticationResults).toContain('arc=pass (i=2)');
  });

  it('a body changed after sealing fails the chain', async () => {
    const sealed = await hop(await dkimSigned(message('alice@mail.test'), 'rsa'), 'ed', 1_780_000_000);
    const tampered = Buffer.from(sealed.toString('latin1').replace('Hello from', 'Hullo from'), 'latin1');
    const v = await verify(tampered, { trustedArcSealers: ['mail.test'] });
    expect(v.arc).toMatchObject({ result: 'fail', instance: 1, trustedSealer: false });
    expect(v.authenticationResults).toMatch(/arc=fail \(i=1 [^)]*\)/);
  });

  it('a chain whose newest seal says cv=fail is not sealed again', async () => {
    const original = await dkimSigned(message('alice@mail.test'), 'rsa');
    const failed = arcSeal({
      message: await hop(original, 'rsa', 1_780_000_000), domain: 'mail.test', selector: 'rsa', privateKey: rsa.privateKey,
      authservId: AUTHSERV_ID, authResults: 'arc=fail', time: 1_780_000_050, chainValidation: 'fail',
    });
    expect(failed?.as).toMatch(/cv=fail/);
    const withFail = Buffer.concat([failed!.headers, await hop(original, 'rsa', 1_780_000_000)]);
    expect(arcSeal({
      message: withFail, domain: 'mail.test', selector: 'rsa', privateKey: rsa.privateKey,
      authservId: AUTHSERV_ID, authResults: 'arc=fail', chainValidation: 'fail',
    })).toBeNull();
  });

  it('refuses a cv that does not fit the instance, and a key that cannot sign ARC', () => {
    const msg = message('alice@mail.test');
    const base = { message: msg, domain: 'mail.test', selector: 'rsa', authservId: AUTHSERV_ID, authResults: 'spf=pass' };
    expect(() => arcSeal({ ...base, privateKey: rsa.privateKey, chainValidation: 'pass' })).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(() => arcSeal({ ...base, privateKey: ec.privateKey, chainValidation: 'none' })).toThrow(expect.objectContaining({ code: 'BAD_KEY' }));
  });
});
