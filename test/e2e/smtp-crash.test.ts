// A durable 250 over SMTP: a node process takes a pipelined load on its MX listener from several sessions
// and is killed with SIGKILL once some messages got their 250; restarted on the same data directory, it
// delivers to bob every message whose 250 named an id, each once. Messages that never got a 250 may or may
// not be there, but never twice. The node and the subscriber are real processes driven through the CLI;
// the SMTP client is a raw socket that pipelines (RFC 2920): each message's data, its final dot and the
// next message's MAIL, RCPT and DATA go in one write, so the next message is already on its way while
// the node makes the previous one durable.
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { CLI, NODE_BIN, runCli, startNodeProcess, tempDir, type RunningNode } from '../helpers.ts';
import { startDnsServer, type TestDnsServer } from '../dns-server.ts';

const DOMAIN = 'crash.test';
const MESSAGES = 300;
const SESSIONS = 6;
/** The node is killed when this many 250s have arrived: while every session still has messages in flight. */
const KILL_AT = 100;

interface Reply { code: number; text: string }

/** One SMTP client connection: replies in order (multi-line ones joined); every wait fails once the socket is gone. */
class SmtpClient {
  private readonly socket: Socket;
  private buffer = '';
  private lines: string[] = [];
  private readonly replies: Reply[] = [];
  private readonly waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  private closed?: Error;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.read(chunk));
    const end = (err?: Error) => {
      this.closed ??= err ?? new Error('connection closed');
      for (const w of this.waiting.splice(0)) w.reject(this.closed);
    };
    socket.on('error', end);
    socket.on('close', () => end());
  }

  static open(address: string): Promise<SmtpClient> {
    const at = address.lastIndexOf(':');
    return new Promise((resolve, reject) => {
      const socket = tcpConnect({ host: address.slice(0, at), port: Number(address.slice(at + 1)) });
      socket.once('connect', () => { socket.off('error', reject); resolve(new SmtpClient(socket)); });
      socket.once('error', reject);
    });
  }

  private read(chunk: string): void {
    this.buffer += chunk;
    let end: number;
    while ((end = this.buffer.indexOf('\r\n')) >= 0) {
      const line = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      this.lines.push(line.slice(4));
      if (line[3] === '-') continue;
      const reply = { code: Number(line.slice(0, 3)), text: this.lines.join('\n') };
      this.lines = [];
      const w = this.waiting.shift();
      if (w) w.resolve(reply);
      else this.replies.push(reply);
    }
  }

  reply(): Promise<Reply> {
    const ready = this.replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  async expect(code: number): Promise<Reply> {
    const r = await this.reply();
    if (r.code !== code) throw new Error(`expected ${code}, got ${r.code} ${r.text}`);
    return r;
  }

  write(text: string): void {
    this.socket.write(text, 'latin1');
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** The RFC 5322 message number `i`, about 2 KB, with its own Message-ID. */
function messageText(messageId: string, subject: string): string {
  const body = Array.from({ length: 25 }, (_, l) => `${subject} line ${l} ${'x'.repeat(60)}`).join('\r\n');
  return [
    'From: Load <load@sender.invalid>', `To: bob@${DOMAIN}`, `Subject: ${subject}`, `Message-ID: ${messageId}`,
    `Date: ${new Date().toUTCString()}`, '', body, '',
  ].join('\r\n');
}

const ENVELOPE = `MAIL FROM:<load@sender.invalid>\r\nRCPT TO:<bob@${DOMAIN}>\r\nDATA\r\n`;
const QUEUED_AS = /queued as ([0-9a-f]{32})/;

/** The id a 250 names, or undefined for any other reply. */
function acceptedId(r: Reply): string | undefined {
  return r.code === 250 ? QUEUED_AS.exec(r.text)?.[1] : undefined;
}

/**
 * One session sending messages `take()` hands out until it says none are left or the connection breaks;
 * `onReply` hears each message's final reply.
 */
async function session(address: string, take: () => number | undefined, messageIdOf: (i: number) => string, onReply: (i: number, r: Reply) => void): Promise<void> {
  const client = await SmtpClient.open(address);
  try {
    await client.expect(220);
    client.write('EHLO load.sender.invalid\r\n');
    const ehlo = await client.expect(250);
    expect(ehlo.text).toContain('PIPELINING');
    let current = take();
    if (current === undefined) return;
    client.write(ENVELOPE);
    for (;;) {
      for (const code of [250, 250, 354]) await client.expect(code);
      const next = take();
      client.write(`${messageText(messageIdOf(current), `load ${current}`)}.\r\n${next === undefined ? 'QUIT\r\n' : ENVELOPE}`);
      onReply(current, await client.reply());
      if (next === undefined) return;
      current = next;
    }
  } finally {
    client.destroy();
  }
}

/** Hands out the message numbers first..end-1 once each, to whichever session asks first. */
function counter(first: number, end: number): { take: () => number | undefined; taken: () => number } {
  let next = first;
  return { take: () => (next < end ? next++ : undefined), taken: () => next - first };
}

interface Delivery { messageId: string; seq: number; subject: string }

/**
 * `aftersmtp subscribe` for bob until the delivery of `lastId` (the node delivers in store order, so
 * everything stored before it has come by then); each bridged message is kept as <id>.eml in `saveDir`.
 */
function subscribeUntil(profile: string, grpc: string, saveDir: string, lastId: string): Promise<Delivery[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE_BIN, [CLI, 'subscribe', '--profile', profile, '--node', grpc, '--save-dir', saveDir, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const got: Delivery[] = [];
    let stderr = '';
    child.stderr!.on('data', (d) => { stderr += d; });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      const m = JSON.parse(line) as Delivery;
      got.push(m);
      if (m.messageId === lastId) child.kill('SIGTERM');
    });
    child.on('close', (code, signal) => {
      if (got.some((m) => m.messageId === lastId)) resolve(got);
      else reject(new Error(`subscribe ended (${code ?? signal}) before ${lastId}\n${stderr}`));
    });
  });
}

function messageIdHeader(eml: Buffer): string | undefined {
  const head = eml.toString('latin1').split('\r\n\r\n')[0]!;
  return /^Message-ID:\s*(\S+)/im.exec(head)?.[1];
}

describe('SMTP crash safety (SIGKILL under a pipelined load)', () => {
  const dir = tempDir('aftersmtp-smtpcrash-');
  const data = join(dir.path, 'node');
  const bobProfile = join(dir.path, 'bob.json');
  let node: RunningNode | undefined;
  let dns: TestDnsServer | undefined;
  afterAll(async () => {
    node?.child.kill('SIGKILL');
    await dns?.close();
    dir.cleanup();
  });

  it('delivers every message that got a 250 after the node is killed mid-load and restarted, none twice', async () => {
    // The node's DNS is a local server that knows nothing: sender.invalid has no SPF or DMARC (not verified, still taken).
    dns = await startDnsServer([]);
    const env = { AFTERSMTP_DNS__SERVERS: JSON.stringify([dns.address]), AFTERSMTP_LOG__LEVEL: 'warn' };
    const init = await runCli(['init', '--data', data, '--domain', DOMAIN, '--grpc-port', '0', '--smtp-port', '0', '--submission-port', '0', '--json']);
    expect(init.code, init.stderr).toBe(0);
    const bob = await runCli(['mailbox', 'add', `bob@${DOMAIN}`, '--data', data, '--profile', bobProfile, '--json']);
    expect(bob.code, bob.stderr).toBe(0);
    node = await startNodeProcess(data, env);
    const mx = (node.ready as { smtp?: string }).smtp!;
    expect(mx).toMatch(/^127\.0\.0\.1:\d+$/);

    const run = Math.random().toString(36).slice(2, 10);
    const messageIdOf = (i: number) => `<load-${i}-${run}@sender.invalid>`;
    const acked = new Map<number, string>(); // message -> the id its 250 named
    const refused: string[] = [];
    const load = counter(0, MESSAGES);
    const killed = node;
    const onReply = (i: number, r: Reply) => {
      const id = acceptedId(r);
      if (!id) { refused.push(`${i}: ${r.code} ${r.text}`); return; }
      acked.set(i, id);
      if (acked.size === KILL_AT) killed.child.kill('SIGKILL');
    };
    // Sessions end when the node dies under them (their waits fail): that is expected here.
    const outcomes = await Promise.allSettled(Array.from({ length: SESSIONS }, () => session(mx, load.take, messageIdOf, onReply)));
    if (acked.size < KILL_AT) {
      killed.child.kill('SIGKILL');
      const why = outcomes.flatMap((o) => (o.status === 'rejected' ? [String(o.reason)] : []));
      throw new Error(`the load ended after ${acked.size} 250s, before the kill: ${[...refused, ...why].join('; ')}`);
    }
    await killed.exited;
    expect(killed.child.signalCode).toBe('SIGKILL');
    // A temporary refusal (e.g. a DNS answer late on a busy machine) is a message without a 250; nothing is refused for good.
    expect(refused.filter((r) => !/^\d+: 4\d\d /.test(r))).toEqual([]);
    expect(acked.size).toBeGreaterThanOrEqual(KILL_AT);
    expect(acked.size).toBeLessThan(MESSAGES); // the kill came while messages were still in flight
    const sent = load.taken(); // messages whose data may have reached the node

    // Restart on the same data; one last message marks the end of what the store holds.
    node = await startNodeProcess(data, env);
    let markerId: string | undefined;
    const lastReplies: string[] = [];
    for (let attempt = 0; attempt < 3 && !markerId; attempt++) { // again only after a temporary refusal
      await session((node.ready as { smtp?: string }).smtp!, counter(MESSAGES, MESSAGES + 1).take, messageIdOf, (_i, r) => { markerId = acceptedId(r); lastReplies.push(`${r.code} ${r.text}`); });
    }
    expect(markerId, lastReplies.join('; ')).toBeDefined();
    const saveDir = join(dir.path, 'bob-mail');
    const deliveries = (await subscribeUntil(bobProfile, node.ready.grpc, saveDir, markerId!)).filter((d) => d.messageId !== markerId);

    // Each delivery's Message-ID, from the bridged RFC 5322 message the subscriber saved.
    const headerOf = new Map(deliveries.map((d) => [d.messageId, messageIdHeader(readFileSync(join(saveDir, `${d.messageId}.eml`)))]));
    const ids = deliveries.map((d) => d.messageId);
    const headers = deliveries.map((d) => headerOf.get(d.messageId));
    expect(new Set(ids).size).toBe(ids.length);
    expect(new Set(headers).size).toBe(headers.length);
    const sentHeaders = new Set(Array.from({ length: sent }, (_, i) => messageIdOf(i)));
    for (const h of headers) expect(sentHeaders.has(h!), `${h} was never sent`).toBe(true);
    const lost = [...acked].filter(([, id]) => !headerOf.has(id)).map(([i, id]) => `message ${i} (250 queued as ${id})`);
    expect(lost, `${lost.length} of ${acked.size} messages got 250 but were not delivered`).toEqual([]);
    for (const [i, id] of acked) expect(headerOf.get(id)).toBe(messageIdOf(i));
    console.log(`smtp crash: ${sent} sent, ${acked.size} got 250 before the kill, ${deliveries.length} delivered after the restart (${deliveries.length - acked.size} without a 250), 0 twice`);
  }, 180_000);
});
