// Each protection of the inbound listeners, attacked over raw sockets on 127.0.0.1: no open relay, address
// hacks, sender binding, SMTP smuggling (bare CR/LF in DATA, bare LF commands), line length, SIZE, recipient
// and session limits, slowloris timeouts, the AUTH failure budget, submission rate limits and pipelining.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DnsPacketResolver } from '../../gateway/dns/index.ts';
import { startDnsLab, type DnsLab } from '../dns-lab.ts';
import { RawSmtp, login, message, selfSignedCert, startBridge, transaction, type Bridge } from './inbound-harness.ts';

const cert = selfSignedCert();
let lab: DnsLab;
let dns: DnsPacketResolver;
let bridge: Bridge;

beforeAll(async () => {
  lab = await startDnsLab([{ name: 'open.test', signed: false, records: ['@ IN TXT "v=spf1 ip4:127.0.0.1 -all"'] }]);
  dns = new DnsPacketResolver({ servers: [lab.resolver], timeoutMs: 2000 });
  bridge = await startBridge(cert, dns);
  bridge.handler.recipients.set('alice@node.test', 'local');
  bridge.handler.users.set('alice@node.test', 'alice-token');
}, 60_000);
afterAll(async () => {
  await bridge?.close();
  await lab?.close();
});

async function mxSession(b: Bridge = bridge, localAddress?: string): Promise<RawSmtp> {
  const c = await RawSmtp.open(b.port('mx'), localAddress ? { localAddress } : {});
  expect(await c.read()).toMatch(/^220 /);
  expect(await c.cmd('EHLO client.test')).toMatch(/^250/);
  return c;
}

async function submissionSession(user = 'alice@node.test', password = 'alice-token', b: Bridge = bridge): Promise<RawSmtp> {
  const c = await RawSmtp.open(b.port('submission'));
  expect(await login(c, user, password)).toMatch(/^235 /);
  return c;
}

describe('no open relay', () => {
  it('mx refuses peer and legacy recipients with 550 5.7.1 and unknown mailboxes with 550 5.1.1', async () => {
    const c = await mxSession();
    expect(await c.cmd('MAIL FROM:<carol@open.test>')).toMatch(/^250 /);
    expect(await c.cmd('RCPT TO:<dave@peer.test>')).toMatch(/^550 5\.7\.1 relay access denied/);
    expect(await c.cmd('RCPT TO:<erin@legacy.example>')).toMatch(/^550 5\.7\.1 relay access denied/);
    expect(await c.cmd('RCPT TO:<nobody@node.test>')).toMatch(/^550 5\.1\.1 /);
    expect(await c.cmd('RCPT TO:<alice@node.test>')).toMatch(/^250 2\.1\.5 /);
    c.close();
  });

  it('submission with AUTH takes local, peer and legacy recipients, and refuses a domain the node cannot send to', async () => {
    const c = await submissionSession();
    expect(await c.cmd('MAIL FROM:<alice@node.test>')).toMatch(/^250 /);
    expect(await c.cmd('RCPT TO:<alice@node.test>')).toMatch(/^250 /);
    expect(await c.cmd('RCPT TO:<dave@peer.test>')).toMatch(/^250 /);
    expect(await c.cmd('RCPT TO:<erin@legacy.example>')).toMatch(/^250 /);
    expect(await c.cmd('RCPT TO:<fred@nowhere.example>')).toBe('550 5.7.1 this node does not send to nowhere.example (no AfterSMTP node there, and its SMTP sending is off)');
    expect(await c.cmd('RCPT TO:<nobody@node.test>')).toMatch(/^550 5\.1\.1 /);
    c.close();
  });

  it('submission without AUTH gets 530 5.7.0 at MAIL FROM', async () => {
    const c = await RawSmtp.open(bridge.port('submission'));
    await c.read();
    await c.cmd('EHLO client.test');
    await c.starttls();
    await c.cmd('EHLO client.test');
    expect(await c.cmd('MAIL FROM:<alice@node.test>')).toMatch(/^530 5\.7\.0 /);
    c.close();
  });
});

describe('address hacks', () => {
  it('refuses the %-hack, source routes, quoted @, bang paths and trailing dots before the handler sees them', async () => {
    const c = await mxSession();
    expect(await c.cmd('MAIL FROM:<carol@open.test>')).toMatch(/^250 /);
    const asked = bridge.handler.asked.length;
    for (const path of ['alice%peer.test@node.test', '@relay.test,@node.test:alice@node.test', '"alice@peer.test"@node.test', 'peer.test!alice@node.test', 'alice@node.test.']) {
      expect(await c.cmd(`RCPT TO:<${path}>`), path).toMatch(/^553 5\.1\.3 .*not accepted/);
    }
    expect(bridge.handler.asked.length).toBe(asked);
    expect(await c.cmd('MAIL FROM:<@relay.test:carol@open.test>')).toMatch(/^553 5\.1\.7 source routes/);
    c.close();
  });

  it('lower-cases a case variant before the handler sees it', async () => {
    const c = await mxSession();
    await c.cmd('MAIL FROM:<Carol@OPEN.test>');
    expect(await c.cmd('RCPT TO:<ALICE@Node.TEST>')).toMatch(/^250 /);
    expect(bridge.handler.asked.at(-1)).toBe('alice@node.test');
    c.close();
  });
});

describe('sender binding on submission', () => {
  it('refuses a MAIL FROM other than the authenticated mailbox with 553 5.7.1', async () => {
    const c = await submissionSession();
    expect(await c.cmd('MAIL FROM:<bob@node.test>')).toMatch(/^553 5\.7\.1 sender must be alice@node\.test/);
    c.close();
  });

  it('refuses a header From other than the authenticated mailbox with 553 5.7.1 after DATA', async () => {
    const c = await submissionSession();
    const replies = await transaction(c, 'alice@node.test', ['alice@node.test'], message({ from: 'Boss <boss@node.test>' }), false);
    expect(replies.at(-1)).toMatch(/^553 5\.7\.1 header From must be alice@node\.test/);
    // The same with the right From goes through on the same session.
    const ok = await transaction(c, 'alice@node.test', ['alice@node.test'], message({ from: 'Alice <alice@node.test>' }), false);
    expect(ok.at(-1)).toMatch(/^250 2\.0\.0 Ok: queued as /);
    c.close();
  });
});

describe('SMTP smuggling', () => {
  // smtp-server ends DATA only at CRLF.CRLF; these check that, and that the bridge refuses the message whole.
  for (const [name, end] of [['\\n.\\n', '\n.\n'], ['\\r.\\r', '\r.\r'], ['\\n.\\r\\n', '\n.\r\n'], ['a bare CR inside a line', 'x\ry\r\n']] as const) {
    it(`refuses DATA holding ${name} with 550 5.5.2 and runs none of the commands smuggled after it`, async () => {
      const c = await mxSession();
      expect(await c.cmd('MAIL FROM:<carol@open.test>')).toMatch(/^250 /);
      expect(await c.cmd('RCPT TO:<alice@node.test>')).toMatch(/^250 /);
      expect(await c.cmd('DATA')).toMatch(/^354 /);
      const calls = bridge.handler.acceptCalls;
      c.write(`${message({ from: 'carol@open.test' })}${end}MAIL FROM:<evil@open.test>\r\nRCPT TO:<alice@node.test>\r\nDATA\r\nFrom: evil@open.test\r\n\r\nsmuggled\r\n.\r\n`);
      expect(await c.read()).toMatch(/^550 5\.5\.2 bare CR or LF/);
      // One reply only: had DATA ended early, MAIL, RCPT and DATA would each have been answered.
      expect(await c.cmd('NOOP')).toMatch(/^250 /);
      expect(bridge.handler.acceptCalls).toBe(calls);
      c.close();
    });
  }

  it('refuses a command line that ends in a bare LF with 500 5.5.2 and closes', async () => {
    const c = await RawSmtp.open(bridge.port('mx'));
    await c.read();
    c.write('EHLO client.test\n');
    expect(await c.read()).toMatch(/^500 5\.5\.2 .*bare LF/);
    await c.ended();
  });
});

describe('lengths and sizes', () => {
  it('refuses a DATA line over 998 octets with 500 5.5.2 (RFC 5321 4.5.3.1.6)', async () => {
    const c = await mxSession();
    const replies = await transaction(c, 'carol@open.test', ['alice@node.test'], message({ from: 'carol@open.test', body: 'x'.repeat(999) }), false);
    expect(replies.at(-1)).toMatch(/^500 5\.5\.2 line too long/);
    c.close();
  });

  it('takes a 60 KB message whose CRLFs straddle TCP segments (no false bare CR or LF)', async () => {
    const c = await mxSession();
    c.socket.setNoDelay(true);
    expect(await c.cmd('MAIL FROM:<carol@open.test>')).toMatch(/^250 /);
    expect(await c.cmd('RCPT TO:<alice@node.test>')).toMatch(/^250 /);
    expect(await c.cmd('DATA')).toMatch(/^354 /);
    const data = `${message({ from: 'carol@open.test', body: `${'z'.repeat(700)}\r\n.dot-stuffed line\r\n`.replace(/\r\n\./g, '\r\n..').repeat(80) })}.\r\n`;
    // Cut right after every CR, so that each CRLF is split between two writes.
    for (const piece of data.split(/(?<=\r)/)) {
      c.write(piece);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const id = /^250 2\.0\.0 Ok: queued as (\S+)$/.exec((await c.read()) ?? '')![1]!;
    expect(bridge.handler.stored(id).toString()).toContain('\r\n.dot-stuffed line\r\n');
    c.close();
  });

  it('refuses a command line over 998 octets with 500 5.5.2', async () => {
    const c = await mxSession();
    expect(await c.cmd(`MAIL FROM:<${'a'.repeat(1000)}@open.test>`)).toMatch(/^500 5\.5\.2 line too long/);
    c.close();
  });

  it('refuses SIZE= over the limit at MAIL FROM, and a message over it whatever SIZE= said, with 552 5.3.4', async () => {
    const c = await mxSession();
    expect(await c.cmd('MAIL FROM:<carol@open.test> SIZE=70000')).toMatch(/^552 5\.3\.4 /);
    const body = `${'y'.repeat(900)}\r\n`.repeat(80);
    const calls = bridge.handler.acceptCalls;
    c.write('MAIL FROM:<carol@open.test> SIZE=100\r\n');
    expect(await c.read()).toMatch(/^250 /);
    expect(await c.cmd('RCPT TO:<alice@node.test>')).toMatch(/^250 /);
    expect(await c.cmd('DATA')).toMatch(/^354 /);
    c.write(`${message({ from: 'carol@open.test', body })}.\r\n`);
    expect(await c.read()).toMatch(/^552 5\.3\.4 message exceeds fixed maximum message size 65536/);
    expect(bridge.handler.acceptCalls).toBe(calls);
    c.close();
  });

  it('answers recipients past the limit with 452 4.5.3 and delivers to the ones accepted', async () => {
    const c = await mxSession();
    await c.cmd('MAIL FROM:<carol@open.test>');
    for (let i = 0; i < 5; i++) {
      bridge.handler.recipients.set(`r${i}@node.test`, 'local');
      expect(await c.cmd(`RCPT TO:<r${i}@node.test>`)).toMatch(/^250 /);
    }
    expect(await c.cmd('RCPT TO:<alice@node.test>')).toMatch(/^452 4\.5\.3 /);
    c.close();
  });
});

describe('pipelining', () => {
  it('answers a pipelined MAIL, RCPT, RCPT, DATA batch in order', async () => {
    const c = await mxSession();
    c.write('MAIL FROM:<carol@open.test>\r\nRCPT TO:<alice@node.test>\r\nRCPT TO:<dave@peer.test>\r\nDATA\r\n');
    expect([await c.read(), await c.read(), await c.read(), await c.read()]).toEqual([
      '250 2.1.0 Accepted', '250 2.1.5 Accepted', expect.stringMatching(/^550 5\.7\.1 /), expect.stringMatching(/^354 /),
    ]);
    c.write(`${message({ from: 'carol@open.test' })}.\r\nQUIT\r\n`);
    expect(await c.read()).toMatch(/^250 2\.0\.0 Ok: queued as /);
    expect(await c.read()).toMatch(/^221 /);
    c.close();
  });
});

describe('session limits', () => {
  it('refuses sessions past the per-IP and the total limit with 421 4.7.0', async () => {
    const b = await startBridge(cert, dns, { limits: { maxSessions: 3, maxSessionsPerIp: 2 } });
    const open: RawSmtp[] = [];
    try {
      for (const ip of ['127.0.0.1', '127.0.0.1']) open.push(await mxSession(b, ip));
      const third = await RawSmtp.open(b.port('mx'), { localAddress: '127.0.0.1' });
      expect(await third.read()).toMatch(/^421 4\.7\.0 .*too many sessions from 127\.0\.0\.1/);
      await third.ended();
      open.push(await mxSession(b, '127.0.0.2'));
      const fourth = await RawSmtp.open(b.port('mx'), { localAddress: '127.0.0.3' });
      expect(await fourth.read()).toMatch(/^421 4\.7\.0 .*too many sessions/);
      await fourth.ended();
    } finally {
      for (const c of open) c.close();
      await b.close();
    }
  });
});

describe('timeouts (slowloris)', () => {
  /** Sends one byte every `everyMs` until the server closes; resolves with the replies seen. */
  async function trickle(c: RawSmtp, bytes: string, everyMs: number): Promise<{ replies: (string | null)[] }> {
    let i = 0;
    const timer = setInterval(() => { if (!c.closed) c.write(bytes[i++ % bytes.length]!); }, everyMs);
    const replies = [];
    for (;;) {
      const r = await c.read();
      replies.push(r);
      if (r === null) break;
    }
    clearInterval(timer);
    return { replies };
  }

  it('cuts off a client that sends a command one byte at a time after commandTimeoutMs', async () => {
    const b = await startBridge(cert, dns, { limits: { commandTimeoutMs: 1000, dataTimeoutMs: 1500 } });
    try {
      // Timed from before the connection: the deadline starts with the greeting, which comes later.
      const started = performance.now();
      const c = await RawSmtp.open(b.port('mx'));
      await c.read();
      const { replies } = await trickle(c, 'EHLO slow.client.test and more and more and more', 100);
      expect(replies[0]).toMatch(/^421 4\.4\.2 .*timeout/);
      expect(performance.now() - started).toBeGreaterThanOrEqual(995);
    } finally {
      await b.close();
    }
  });

  it('cuts off a client that sends the message one byte at a time after dataTimeoutMs', async () => {
    const b = await startBridge(cert, dns, { limits: { commandTimeoutMs: 1000, dataTimeoutMs: 1500 } });
    b.handler.recipients.set('alice@node.test', 'local');
    try {
      const c = await mxSession(b);
      await c.cmd('MAIL FROM:<carol@open.test>');
      await c.cmd('RCPT TO:<alice@node.test>');
      const started = performance.now();
      expect(await c.cmd('DATA')).toMatch(/^354 /);
      const { replies } = await trickle(c, 'Subject: slow\r\n', 100);
      expect(replies[0]).toMatch(/^421 4\.4\.2 .*timeout/);
      expect(performance.now() - started).toBeGreaterThanOrEqual(1495);
      expect(b.handler.acceptCalls).toBe(0);
    } finally {
      await b.close();
    }
  });
});

describe('AUTH and submission budgets', () => {
  it('closes a session after 3 failed AUTH, and refuses AUTH from an IP past its failure budget with 421 4.7.0', async () => {
    const auth = (user: string, pass: string) => `AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString('base64')}`;
    const first = await RawSmtp.open(bridge.port('submission'), { localAddress: '127.0.0.9' });
    expect(await login(first, 'alice@node.test', 'wrong-1')).toMatch(/^535 5\.7\.8 /);
    expect(await first.cmd(auth('alice@node.test', 'wrong-2'))).toMatch(/^535 5\.7\.8 /);
    expect(await first.cmd(auth('alice@node.test', 'wrong-3'))).toMatch(/^421 4\.7\.0 /);
    await first.ended();
    const second = await RawSmtp.open(bridge.port('submission'), { localAddress: '127.0.0.9' });
    expect(await login(second, 'alice@node.test', 'wrong-4')).toMatch(/^535 /);
    expect(await second.cmd(auth('alice@node.test', 'wrong-5'))).toMatch(/^535 /);
    // The budget (5 a minute) is spent: even the right token is not tried.
    expect(await second.cmd(auth('alice@node.test', 'alice-token'))).toMatch(/^421 4\.7\.0 too many authentication failures/);
    await second.ended();
    // Another address is not affected.
    const other = await RawSmtp.open(bridge.port('submission'), { localAddress: '127.0.0.10' });
    expect(await login(other, 'alice@node.test', 'alice-token')).toMatch(/^235 /);
    other.close();
  });

  it('refuses AUTH PLAIN whose authorization identity is another mailbox (RFC 4616)', async () => {
    bridge.handler.users.set('mallory@node.test', 'mallory-token');
    const d = await RawSmtp.open(bridge.port('submission'), { localAddress: '127.0.0.11' });
    await d.read();
    await d.cmd('EHLO client.test');
    await d.starttls();
    await d.cmd('EHLO client.test');
    expect(await d.cmd(`AUTH PLAIN ${Buffer.from('alice@node.test\0mallory@node.test\0mallory-token').toString('base64')}`)).toMatch(/^535 5\.7\.8 authorization identity/);
    d.close();
  });

  it('refuses submissions past the per-minute limit of the mailbox with 451 4.7.1', async () => {
    const b = await startBridge(cert, dns, { limits: { submissionsPerMinute: 2 } });
    b.handler.recipients.set('alice@node.test', 'local');
    b.handler.users.set('alice@node.test', 'alice-token');
    try {
      const c = await submissionSession('alice@node.test', 'alice-token', b);
      for (let i = 0; i < 2; i++) {
        const replies = await transaction(c, 'alice@node.test', ['alice@node.test'], message({ from: 'alice@node.test' }), false);
        expect(replies.at(-1)).toMatch(/^250 /);
      }
      expect(await c.cmd('MAIL FROM:<alice@node.test>')).toMatch(/^451 4\.7\.1 sending limit per minute reached/);
      c.close();
    } finally {
      await b.close();
    }
  });
});
