// The node's DNS client against a real validating resolver (unbound) in front of a real authoritative
// server (nsd) with DNSSEC-signed zones, and against hostile servers on loopback.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSocket, type Socket } from 'node:dgram';
import * as dnsPacket from 'dns-packet';
import { DnsError, DnsPacketResolver, isLoopback, parseServer } from '../../gateway/dns/index.ts';
import { startDnsLab, type DnsLab } from '../dns-lab.ts';

const TLSA_EE = 'a'.repeat(64);
const LONG_TXT = Array.from({ length: 8 }, (_, i) => `"${String(i).repeat(250)}"`);

function zone(name: string): string[] {
  return [
    '@ IN MX 20 mx2',
    '@ IN MX 10 mx1',
    '@ IN TXT "v=spf1 ip4:127.0.0.0/8 -all"',
    'mx1 IN A 127.0.0.1',
    'mx2 IN A 127.0.0.2',
    'mx1 IN AAAA ::1',
    'alias IN CNAME mx1',
    `_25._tcp.mx1 IN TLSA 3 1 1 ${TLSA_EE}`,
    ...LONG_TXT.map((t) => `big IN TXT ${t}`),
    `nullmx IN MX 0 .`,
    `split IN TXT "v=DMARC1; " "p=reject"`,
    `; ${name}`,
  ];
}

let lab: DnsLab;
beforeAll(async () => {
  lab = await startDnsLab([
    { name: 'secure.test', signed: true, records: zone('secure') },
    { name: 'insecure.test', signed: false, records: zone('insecure') },
    {
      name: 'bogus.test', signed: true, records: zone('bogus'),
      // Change the TLSA data after signing: its signature no longer verifies.
      tamper: (text) => text.replace(/(_25\._tcp\.mx1\.bogus\.test\.\s+\d+\s+IN\s+TLSA\s+3 1 1 )AAAAAAAA/, '$1BBBBBBBB'),
    },
  ]);
}, 60_000);
afterAll(async () => { await lab?.close(); });

function resolver(extra: Partial<ConstructorParameters<typeof DnsPacketResolver>[0]> = {}): DnsPacketResolver {
  return new DnsPacketResolver({ servers: [lab.resolver], timeoutMs: 2000, ...extra });
}

describe('DNS through a validating resolver (unbound + nsd, DNSSEC)', () => {
  it('reports a signed zone as secure, with its records', async () => {
    const dns = resolver();
    const txt = await dns.txt('secure.test');
    expect(txt).toMatchObject({ status: 'NOERROR', secure: true, records: ['v=spf1 ip4:127.0.0.0/8 -all'] });
    const mx = await dns.mx('SECURE.test.');
    expect(mx.secure).toBe(true);
    expect(mx.records.sort((a, b) => a.priority - b.priority)).toEqual([
      { priority: 10, exchange: 'mx1.secure.test' }, { priority: 20, exchange: 'mx2.secure.test' },
    ]);
    expect((await dns.a('mx1.secure.test')).records).toEqual(['127.0.0.1']);
    expect((await dns.aaaa('mx1.secure.test')).records).toEqual(['::1']);
    const tlsa = await dns.tlsa('_25._tcp.mx1.secure.test');
    expect(tlsa.secure).toBe(true);
    expect(tlsa.records).toHaveLength(1);
    expect(tlsa.records[0]).toMatchObject({ usage: 3, selector: 1, matchingType: 1 });
    expect(Buffer.from(tlsa.records[0]!.data).toString('hex')).toBe(TLSA_EE);
  });

  it('joins the strings of one TXT record and follows CNAMEs', async () => {
    const dns = resolver();
    expect((await dns.txt('split.secure.test')).records).toEqual(['v=DMARC1; p=reject']);
    const viaAlias = await dns.a('alias.secure.test');
    expect(viaAlias.records).toEqual(['127.0.0.1']);
    expect(viaAlias.secure).toBe(true);
    expect(viaAlias.canonicalName).toBe('mx1.secure.test');
    expect((await dns.a('mx1.secure.test')).canonicalName).toBe('mx1.secure.test');
  });

  it('reports an unsigned delegation as not secure, with its records', async () => {
    const dns = resolver();
    const txt = await dns.txt('insecure.test');
    expect(txt).toMatchObject({ status: 'NOERROR', secure: false, records: ['v=spf1 ip4:127.0.0.0/8 -all'] });
    expect((await dns.tlsa('_25._tcp.mx1.insecure.test')).secure).toBe(false);
  });

  it('fails a bogus answer (broken signature) with SERVFAIL instead of returning its data', async () => {
    const dns = resolver();
    await expect(dns.tlsa('_25._tcp.mx1.bogus.test')).rejects.toMatchObject({ name: 'DnsError', code: 'SERVFAIL' });
    // The rest of that zone still validates.
    expect((await dns.txt('bogus.test')).secure).toBe(true);
  });

  it('answers NXDOMAIN and no-data as answers (validated), not errors', async () => {
    const dns = resolver();
    const nx = await dns.txt('_dmarc.nowhere.secure.test');
    expect(nx).toMatchObject({ status: 'NXDOMAIN', records: [], secure: true });
    const nodata = await dns.mx('mx1.secure.test');
    expect(nodata).toMatchObject({ status: 'NOERROR', records: [], secure: true });
  });

  it('reads a null MX (RFC 7505) as one record with an empty exchange', async () => {
    const mx = await resolver().mx('nullmx.secure.test');
    expect(mx.records).toEqual([{ priority: 0, exchange: '' }]);
  });

  it('retries over TCP when the UDP answer is truncated, and keeps the AD bit', async () => {
    const big = await resolver().txt('big.secure.test');
    expect(big.secure).toBe(true);
    expect(big.records.sort()).toEqual(LONG_TXT.map((t) => t.slice(1, -1)).sort());
  });
});

/** A UDP server on loopback that hands each query to `reply` (which may answer nothing). */
async function hostileServer(reply: (query: dnsPacket.DecodedPacket, send: (p: dnsPacket.Packet) => void) => void): Promise<{ address: string; queries: number; close(): Promise<void> }> {
  const socket: Socket = createSocket('udp4');
  const state = { address: '', queries: 0, close: () => new Promise<void>((r) => socket.close(() => r())) };
  socket.on('message', (msg, rinfo) => {
    state.queries++;
    const query = dnsPacket.decode(msg);
    reply(query, (p) => socket.send(dnsPacket.encode(p), rinfo.port, rinfo.address));
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  state.address = `127.0.0.1:${socket.address().port}`;
  return state;
}

function answerFor(query: dnsPacket.DecodedPacket, text: string, id = query.id): dnsPacket.Packet {
  const q = query.questions![0]!;
  return {
    type: 'response', id, flags: dnsPacket.RECURSION_AVAILABLE | dnsPacket.AUTHENTIC_DATA, questions: [q],
    answers: [{ type: 'TXT', name: q.name, ttl: 60, class: 'IN', data: [text] }],
  };
}

describe('DNS against hostile or broken servers', () => {
  it('ignores answers with another id or question (off-path spoofing) and takes the real one', async () => {
    const server = await hostileServer((query, send) => {
      send(answerFor(query, 'forged: wrong id', (query.id! + 1) % 65536));
      send({ ...answerFor(query, 'forged: other name'), questions: [{ type: 'TXT', name: 'other.test', class: 'IN' }] });
      send(answerFor(query, 'genuine'));
    });
    try {
      const answer = await new DnsPacketResolver({ servers: [server.address] }).txt('x.test');
      expect(answer.records).toEqual(['genuine']);
    } finally {
      await server.close();
    }
  });

  it('times out on a silent server with a typed error, and remembers the failure instead of asking again', async () => {
    const server = await hostileServer(() => {});
    try {
      const dns = new DnsPacketResolver({ servers: [server.address], timeoutMs: 200, tries: 2 });
      await expect(dns.txt('x.test')).rejects.toMatchObject({ code: 'TIMEOUT' });
      expect(server.queries).toBe(2);
      await expect(dns.txt('x.test')).rejects.toBeInstanceOf(DnsError);
      expect(server.queries).toBe(2);
    } finally {
      await server.close();
    }
  });

  it('shares one query between concurrent lookups of a name and keeps its cache bounded', async () => {
    let n = 0;
    const server = await hostileServer((query, send) => { n++; send(answerFor(query, 'ok')); });
    try {
      const dns = new DnsPacketResolver({ servers: [server.address], cacheEntries: 10 });
      await Promise.all(Array.from({ length: 20 }, () => dns.txt('same.test')));
      expect(n).toBe(1);
      for (let i = 0; i < 50; i++) await dns.txt(`name${i}.test`);
      expect(dns.cachedAnswers).toBeLessThanOrEqual(10);
    } finally {
      await server.close();
    }
  });

  it('believes the AD bit only from a resolver on loopback', () => {
    expect(isLoopback('127.0.0.1')).toBe(true);
    expect(isLoopback('127.53.1.9')).toBe(true);
    expect(isLoopback('::1')).toBe(true);
    expect(isLoopback('10.0.0.1')).toBe(false);
    expect(isLoopback('192.0.2.53')).toBe(false);
  });

  it('refuses servers that are not an address and port, and names that are not domain names', async () => {
    expect(parseServer('127.0.0.1:5353')).toEqual({ host: '127.0.0.1', port: 5353 });
    expect(parseServer('[::1]:53')).toEqual({ host: '::1', port: 53 });
    expect(() => parseServer('resolver.example:53')).toThrow(DnsError);
    await expect(new DnsPacketResolver({ servers: ['127.0.0.1:9'] }).txt('a..b')).rejects.toMatchObject({ code: 'BAD_NAME' });
  });
});
