// The outbound SMTP client on the wire: against smtp-server instances (what a real MTA accepts) and scripted
// raw servers (what a broken or hostile one sends), all on 127.0.0.1:0, through a static next hop so no DNS
// is involved; the resolver given points at a port nothing answers on and must never be needed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Socket } from 'node:net';
import { DnsPacketResolver } from '../../gateway/dns/index.ts';
import {
  createSmtpOutbound, dotStuff, InMemoryStsPolicyCache, SmtpClientError, SmtpSession, type OutboundMessage, type SmtpOutbound,
  type SmtpOutboundOptions,
} from '../../bridge/index.ts';
import { until } from '../helpers.ts';
import { closedPort, lineServer, startRawServer, startReceiver, type Receiver } from './smtp-receiver.ts';

let deadDns: DnsPacketResolver;
const closers: (() => Promise<void>)[] = [];
const outbounds: SmtpOutbound[] = [];

beforeAll(async () => {
  deadDns = new DnsPacketResolver({ servers: [`127.0.0.1:${await closedPort()}`], timeoutMs: 200, tries: 1 });
});
afterAll(async () => {
  await Promise.all(outbounds.map((o) => o.close()));
  await Promise.all(closers.map((c) => c()));
});

function outbound(extra: Partial<SmtpOutboundOptions> = {}): SmtpOutbound {
  const o = createSmtpOutbound({
    hostname: 'out.node.test', resolver: deadDns, stsCache: new InMemoryStsPolicyCache(), stsFetch: { fetchTimeoutMs: 1000 },
    connectTimeoutMs: 5000, commandTimeoutMs: 10_000, dataTimeoutMs: 10_000, ...extra,
  });
  outbounds.push(o);
  return o;
}

function message(to: string[], body = 'Subject: hi\r\n\r\nhello\r\n', envelope: Partial<OutboundMessage['envelope']> = {}): OutboundMessage {
  return {
    envelope: { mailFrom: 'alice@node.test', recipients: to.map((address) => ({ address })), requireTls: false, smtputf8: false, eightBit: false, ...envelope },
    data: Buffer.from(body),
  };
}

async function receiver(opts: Parameters<typeof startReceiver>[0] = {}): Promise<Receiver> {
  const r = await startReceiver(opts);
  closers.push(r.close);
  return r;
}

async function raw(script: (socket: Socket) => void): Promise<number> {
  const server = await startRawServer(script);
  closers.push(server.close);
  return server.port;
}

const hop = (port: number) => ({ nextHop: { host: '127.0.0.1', port, tls: 'none' as const } });

/**
 * A scripted MTA: EHLO with `ehlo` extension lines, then MAIL/RCPT/DATA/RSET/QUIT. With `holdUntilData`, no
 * reply is written before the DATA command arrived: a client that waits for each reply before the next
 * command never gets one.
 */
function scripted(opts: { ehlo: string[]; holdUntilData?: boolean; dataReply?: string; seen?: string[]; refuseEhlo?: boolean; brokenTls?: boolean }) {
  return lineServer('220 mta.example ESMTP\r\n', (() => {
    let inData = false;
    let held = '';
    return (line: string, socket: Socket) => {
      opts.seen?.push(line);
      if (inData) {
        if (line === '.') { inData = false; return opts.dataReply ?? '250 2.0.0 queued\r\n'; }
        return undefined;
      }
      const verb = line.split(/[ :]/)[0]!.toUpperCase();
      const hold = (reply: string) => {
        if (!opts.holdUntilData) return reply;
        held += reply;
        if (verb !== 'DATA') return undefined;
        const out = held;
        held = '';
        return out;
      };
      switch (verb) {
        case 'EHLO':
          if (opts.refuseEhlo) return '502 5.5.1 EHLO not implemented\r\n';
          return ['mta.example', ...opts.ehlo].map((l, i, all) => `250${i === all.length - 1 ? ' ' : '-'}${l}\r\n`).join('');
        case 'HELO': return '250 mta.example\r\n';
        case 'MAIL': case 'RCPT': case 'RSET': return hold('250 2.1.0 ok\r\n');
        case 'DATA': inData = true; return hold('354 go ahead\r\n');
        case 'QUIT': socket.end('221 bye\r\n'); return undefined;
        // Says yes, then answers the TLS ClientHello with something that is not TLS.
        case 'STARTTLS': if (opts.brokenTls) { socket.write('220 go ahead\r\n'); socket.once('data', () => socket.end('not TLS\r\n')); } return undefined;
        default: return '500 5.5.2 what\r\n';
      }
    };
  })());
}

describe('SMTP client protocol', () => {
  it('pipelines MAIL, every RCPT and DATA in one go when the server offers PIPELINING (RFC 2920)', async () => {
    const seen: string[] = [];
    const port = await raw(scripted({ ehlo: ['PIPELINING', '8BITMIME'], holdUntilData: true, seen }));
    const results = await outbound().deliver('legacy.test', message(['a@legacy.test', 'b@legacy.test', 'c@legacy.test']), hop(port));
    expect(results.map((r) => r.status)).toEqual(['delivered', 'delivered', 'delivered']);
    const start = seen.findIndex((l) => l.startsWith('MAIL'));
    expect(seen.slice(start, start + 5).map((l) => l.split(':')[0])).toEqual(['MAIL FROM', 'RCPT TO', 'RCPT TO', 'RCPT TO', 'DATA']);
  });

  it('dot-stuffs lines starting with "." and makes every line end in CRLF', async () => {
    const r = await receiver();
    const body = 'Subject: dots\r\n\r\n.\r\n..two\r\n.leading\r\nbare\nlf\r\n. \r\nend';
    const [result] = await outbound().deliver('legacy.test', message(['a@legacy.test'], body), hop(r.port));
    expect(result).toMatchObject({ status: 'delivered', reply: { code: 250 } });
    expect(r.messages.at(-1)!.data.toString()).toBe('Subject: dots\r\n\r\n.\r\n..two\r\n.leading\r\nbare\r\nlf\r\n. \r\nend\r\n');
    expect(dotStuff(Buffer.from('.\r\n')).toString()).toBe('..\r\n.\r\n');
    expect(dotStuff(Buffer.from('a\r\r\n.b')).toString()).toBe('a\r\n\r\n..b\r\n.\r\n');
  });

  it('reads multi-line replies whole, with the enhanced status code split off', async () => {
    const port = await raw(scripted({ ehlo: ['SIZE 1000', 'ENHANCEDSTATUSCODES'], dataReply: '250-2.0.0 first line\r\n250-2.0.0 second line\r\n250 2.0.0 queued as X1\r\n' }));
    const [result] = await outbound().deliver('legacy.test', message(['a@legacy.test']), hop(port));
    expect(result).toMatchObject({ status: 'delivered', mx: '127.0.0.1', reply: { code: 250, enhanced: '2.0.0', text: 'first line second line queued as X1' } });
  });

  it('gives each recipient its own status from its own RCPT reply', async () => {
    const r = await receiver({ refuseRcpt: { 'gone@legacy.test': [550, '5.1.1 no such user'], 'full@legacy.test': [452, '4.2.2 mailbox full'] } });
    const results = await outbound().deliver('legacy.test', message(['gone@legacy.test', 'ok@legacy.test', 'full@legacy.test']), hop(r.port));
    expect(results).toMatchObject([
      { address: 'gone@legacy.test', status: 'failed', reply: { code: 550, enhanced: '5.1.1', text: 'no such user' } },
      { address: 'ok@legacy.test', status: 'delivered', reply: { code: 250 } },
      { address: 'full@legacy.test', status: 'deferred', reply: { code: 452, enhanced: '4.2.2' } },
    ]);
    expect(r.messages.at(-1)!.rcpts.map((x) => x.address)).toEqual(['ok@legacy.test']);
  });

  it('reuses one connection with RSET for three messages, then QUITs after maxMessagesPerConnection', async () => {
    const r = await receiver();
    const o = outbound({ maxMessagesPerConnection: 3 });
    for (let i = 0; i < 3; i++) {
      const [result] = await o.deliver('legacy.test', message(['a@legacy.test'], `Subject: ${i}\r\n\r\nbody ${i}\r\n`), hop(r.port));
      expect(result!.status).toBe('delivered');
    }
    expect(r.messages.map((m) => m.connection)).toEqual([1, 1, 1]);
    expect(r.connections).toBe(1);
    await o.deliver('legacy.test', message(['a@legacy.test']), hop(r.port));
    expect(r.connections).toBe(2);
  });

  it('sends SIZE, BODY=8BITMIME, SMTPUTF8, RET, ENVID, NOTIFY and ORCPT when the server offers them', async () => {
    const r = await receiver();
    const msg = message(['ü@legacy.test'], 'Subject: 8bit\r\n\r\nüber\r\n', { smtputf8: true, eightBit: true, dsn: { ret: 'HDRS', envid: 'id 1+x' } });
    msg.envelope.recipients[0] = { address: 'ü@legacy.test', notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;u@legacy.test' };
    const [result] = await outbound().deliver('legacy.test', msg, hop(r.port));
    expect(result!.status).toBe('delivered');
    const got = r.messages.at(-1)!;
    expect(got.mailArgs).toMatchObject({ SIZE: String(msg.data.length), BODY: '8BITMIME', SMTPUTF8: true });
    // smtp-server decodes xtext: the ENVID arrives as it was given.
    expect(got.dsn).toMatchObject({ ret: 'HDRS', envid: 'id 1+x' });
    expect(got.rcpts[0]!.dsn).toMatchObject({ notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;u@legacy.test' });
  });

  it('fails the recipients with 5.6.7 when the message needs SMTPUTF8 and the server lacks it, and 5.3.4 over SIZE', async () => {
    const port = await raw(scripted({ ehlo: ['SIZE 100'] }));
    const [utf8] = await outbound().deliver('legacy.test', message(['a@legacy.test'], 'x\r\n', { smtputf8: true }), hop(port));
    expect(utf8).toMatchObject({ status: 'failed', reply: { code: 553, enhanced: '5.6.7' } });
    const [big] = await outbound().deliver('legacy.test', message(['a@legacy.test'], 'y'.repeat(200)), hop(port));
    expect(big).toMatchObject({ status: 'failed', reply: { code: 552, enhanced: '5.3.4' } });
  });

  it('falls back to HELO when EHLO is refused permanently', async () => {
    const seen: string[] = [];
    const port = await raw(scripted({ ehlo: [], refuseEhlo: true, seen }));
    const [result] = await outbound().deliver('legacy.test', message(['a@legacy.test']), hop(port));
    expect(result!.status).toBe('delivered');
    expect(seen.slice(0, 3)).toEqual(['EHLO out.node.test', 'HELO out.node.test', 'MAIL FROM:<alice@node.test>']);
  });

  it('drops an ORCPT that is not one xtext word instead of putting it on the command line', async () => {
    const r = await receiver();
    const msg = message(['a@legacy.test']);
    msg.envelope.recipients[0] = { address: 'a@legacy.test', orcpt: 'rfc822;a@legacy.test\r\nRCPT TO:<evil@elsewhere.example>' };
    expect((await outbound().deliver('legacy.test', msg, hop(r.port)))[0]!.status).toBe('delivered');
    expect(r.messages.at(-1)!.rcpts).toEqual([expect.objectContaining({ address: 'a@legacy.test' })]);
    expect(r.messages.at(-1)!.rcpts[0]!.dsn?.orcpt).toBeUndefined();
  });

  it('refuses an address that would break the command line, without connecting', async () => {
    const r = await receiver();
    const results = await outbound().deliver('legacy.test', message(['a@legacy.test>\r\nRCPT TO:<b@x', 'ok@legacy.test']), hop(r.port));
    expect(results).toMatchObject([{ status: 'failed', reply: { enhanced: '5.1.3' } }, { status: 'delivered' }]);
    expect(r.messages.at(-1)!.rcpts.map((x) => x.address)).toEqual(['ok@legacy.test']);
  });
});

describe('connection pool', () => {
  it('keeps to maxConnectionsPerHost: concurrent deliveries share one connection in turn', async () => {
    const r = await receiver();
    const o = outbound({ maxConnectionsPerHost: 1 });
    const results = await Promise.all([1, 2, 3].map((i) => o.deliver('legacy.test', message(['a@legacy.test'], `Subject: ${i}\r\n\r\n${i}\r\n`), hop(r.port))));
    expect(results.map(([x]) => x!.status)).toEqual(['delivered', 'delivered', 'delivered']);
    expect(r.connections).toBe(1);
  });

  it('many deliveries waiting for few connections are each served once, in turn', async () => {
    const r = await receiver();
    const o = outbound({ maxConnectionsPerHost: 2 });
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => o.deliver('legacy.test', message(['a@legacy.test'], `Subject: ${i}\r\n\r\n${i}\r\n`), hop(r.port))));
    expect(results.every(([x]) => x!.status === 'delivered')).toBe(true);
    expect(r.connections).toBeLessThanOrEqual(2);
    expect(new Set(r.messages.map((m) => m.data.toString())).size).toBe(r.messages.length);
  });

  it('a waiting delivery that is aborted gives up its turn: the one behind it still gets the connection', async () => {
    const r = await receiver();
    const o = outbound({ maxConnectionsPerHost: 1 });
    const controller = new AbortController();
    const first = o.deliver('legacy.test', message(['a@legacy.test'], 'Subject: 1\r\n\r\n1\r\n'), hop(r.port));
    const aborted = o.deliver('legacy.test', message(['a@legacy.test'], 'Subject: 2\r\n\r\n2\r\n'), { ...hop(r.port), signal: controller.signal });
    const third = o.deliver('legacy.test', message(['a@legacy.test'], 'Subject: 3\r\n\r\n3\r\n'), hop(r.port));
    controller.abort();
    expect((await aborted)[0]).toMatchObject({ status: 'deferred', reply: { code: 451 } });
    expect((await first)[0]!.status).toBe('delivered');
    expect((await third)[0]!.status).toBe('delivered');
    expect(r.connections).toBe(1);
  });

  it('QUITs a connection idle for idleTimeoutMs', async () => {
    const r = await receiver();
    await outbound({ idleTimeoutMs: 50 }).deliver('legacy.test', message(['a@legacy.test']), hop(r.port));
    await until('the idle connection closed', async () => (r.closed === 1 ? true : undefined), 10_000);
  });

  it('close() ends a delivery in progress as deferred', async () => {
    const port = await raw(() => {});
    const o = outbound();
    const pending = o.deliver('legacy.test', message(['a@legacy.test']), hop(port));
    setImmediate(() => void o.close());
    expect((await pending)[0]).toMatchObject({ status: 'deferred', reply: { code: 451, text: expect.stringContaining('aborted') } });
  });
});

describe('SMTP client against broken and hostile servers', () => {
  it('opportunistic TLS whose handshake fails is retried once in clear on the same host', async () => {
    const seen: string[] = [];
    const port = await raw(scripted({ ehlo: ['STARTTLS'], brokenTls: true, seen }));
    const [result] = await outbound().deliver('legacy.test', message(['a@legacy.test']), { nextHop: { host: '127.0.0.1', port, tls: 'may' } });
    expect(result).toMatchObject({ status: 'delivered' });
    expect(result!.tls).toBeUndefined();
    expect(seen.filter((l) => l.startsWith('EHLO'))).toHaveLength(2);
    expect(seen.filter((l) => l === 'STARTTLS')).toHaveLength(1);
  });

  it('verify does not fall back to clear when the handshake fails', async () => {
    const port = await raw(scripted({ ehlo: ['STARTTLS'], brokenTls: true }));
    const [result] = await outbound().deliver('legacy.test', message(['a@legacy.test']), { nextHop: { host: '127.0.0.1', port, tls: 'verify' } });
    expect(result).toMatchObject({ status: 'deferred', reply: { text: expect.stringContaining('TLS handshake') } });
  });

  it('an endless reply line is a protocol error (bounded buffering) and the recipients are deferred', async () => {
    const port = await raw((socket) => {
      socket.write('220-');
      const chunk = 'x'.repeat(64 * 1024);
      const pump = () => { while (!socket.destroyed && socket.write(chunk)); };
      socket.on('drain', pump);
      pump();
    });
    const session = SmtpSession.open({ address: '127.0.0.1', port, serverName: 'babble.test', clientName: 'c', connectTimeoutMs: 5000, commandTimeoutMs: 10_000, dataTimeoutMs: 10_000 });
    await expect(session).rejects.toMatchObject({ code: 'line-too-long' });
    const [result] = await outbound().deliver('legacy.test', message(['a@legacy.test']), hop(port));
    expect(result).toMatchObject({ status: 'deferred', mx: '', reply: { code: 451, enhanced: '4.4.1', text: expect.stringContaining('longer than 2048') } });
  });

  it('a reply of more lines than the bound is a protocol error', async () => {
    const port = await raw(lineServer('220 ok\r\n', () => `${'250-x\r\n'.repeat(500)}250 end\r\n`));
    const [result] = await outbound().deliver('legacy.test', message(['a@legacy.test']), hop(port));
    expect(result).toMatchObject({ status: 'deferred', reply: { text: expect.stringContaining('more than 100 lines') } });
  });

  it('a server that never greets is given up at the command deadline', async () => {
    const port = await raw(() => {});
    const [result] = await outbound({ commandTimeoutMs: 300 }).deliver('legacy.test', message(['a@legacy.test']), hop(port));
    expect(result).toMatchObject({ status: 'deferred', reply: { code: 451, text: expect.stringContaining('no reply from 127.0.0.1 within 300 ms') } });
  });

  it('garbage instead of a reply, and a server that closes mid-transaction, defer the recipients', async () => {
    const garbage = await raw(lineServer('HTTP/1.1 400 Bad Request\r\n', () => undefined));
    expect((await outbound().deliver('legacy.test', message(['a@legacy.test']), hop(garbage)))[0]).toMatchObject({ status: 'deferred', reply: { text: expect.stringContaining('not an SMTP reply') } });
    const closing = await raw(lineServer('220 ok\r\n', (line, socket) => (line.startsWith('EHLO') ? '250 ok\r\n' : (socket.destroy(), undefined))));
    expect((await outbound().deliver('legacy.test', message(['a@legacy.test']), hop(closing)))[0]).toMatchObject({ status: 'deferred', reply: { text: expect.stringContaining('closed') } });
  });

  it('plaintext sent after the 220 to STARTTLS is refused (no command injection into the TLS session)', async () => {
    const port = await raw(lineServer('220 ok\r\n', (line) => (line.startsWith('EHLO') ? '250-ok\r\n250 STARTTLS\r\n' : line === 'STARTTLS' ? '220 go\r\n250 injected\r\n' : undefined)));
    const session = await SmtpSession.open({ address: '127.0.0.1', port, serverName: 'inject.test', clientName: 'c', connectTimeoutMs: 5000, commandTimeoutMs: 5000, dataTimeoutMs: 5000 });
    await session.hello();
    const err = await session.startTls(undefined).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(SmtpClientError);
    expect(err).toMatchObject({ code: 'bad-reply', message: expect.stringContaining('after its STARTTLS reply') });
    expect(session.usable).toBe(false);
  });

  it('an abort signal ends the delivery deferred', async () => {
    const port = await raw(() => {});
    const controller = new AbortController();
    const pending = outbound().deliver('legacy.test', message(['a@legacy.test']), { ...hop(port), signal: controller.signal });
    setImmediate(() => controller.abort());
    expect((await pending)[0]).toMatchObject({ status: 'deferred', reply: { code: 451 } });
  });

  it('still delivers normally after all of the above', async () => {
    const r = await receiver();
    expect((await outbound().deliver('legacy.test', message(['a@legacy.test']), hop(r.port)))[0]!.status).toBe('delivered');
  });
});
