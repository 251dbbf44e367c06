// kill -9 in the middle of an outbound SMTP delivery. The far end takes the whole message and holds its reply
// to the final dot; the node process is killed then. What is asserted (at-least-once): after a restart on
// the same data directory the message is delivered again (the node never saw a 250, so it must), exactly
// one more copy arrives, and the queue ends `delivered`. The held copy is the one duplicate no MTA can
// avoid (the remote had the message, the sender had no reply); nothing is lost. A second message, queued
// but not yet attempted when the node died (waiting for the only connection to that host), is delivered
// after the restart, once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Socket } from 'node:net';
import { startRawServer } from '../bridge/smtp-receiver.ts';
import { until } from '../helpers.ts';
import { OutboundLab } from './outbound-lab.ts';

interface Arrival { subject: string; connection: number; answered: boolean }

/**
 * A plain SMTP server (no STARTTLS: opportunistic delivery sends in clear) that records each message as it
 * arrives and answers its final dot only when `answer()` says so.
 */
async function holdingServer(answer: (subject: string) => boolean) {
  const arrivals: Arrival[] = [];
  let connections = 0;
  const server = await startRawServer((socket: Socket) => {
    const connection = ++connections;
    let inData = false;
    let data = '';
    let buffer = '';
    socket.write('220 mx.crash.test ESMTP\r\n');
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (;;) {
        if (inData) {
          const end = buffer.indexOf('\r\n.\r\n');
          if (end < 0) return;
          data += buffer.slice(0, end + 2);
          buffer = buffer.slice(end + 5);
          inData = false;
          const subject = /^Subject: (.*)$/m.exec(data)?.[1]?.trim() ?? '';
          data = '';
          const arrival: Arrival = { subject, connection, answered: answer(subject) };
          arrivals.push(arrival);
          if (arrival.answered) socket.write('250 2.0.0 queued\r\n');
          continue;
        }
        const at = buffer.indexOf('\r\n');
        if (at < 0) return;
        const line = buffer.slice(0, at);
        buffer = buffer.slice(at + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') socket.write('250-mx.crash.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n');
        else if (verb === 'DATA') { inData = true; socket.write('354 go ahead\r\n'); }
        else if (verb === 'QUIT') { socket.end('221 2.0.0 bye\r\n'); return; }
        else socket.write('250 2.0.0 ok\r\n'); // MAIL, RCPT, RSET, NOOP
      }
    });
  });
  return { ...server, arrivals, connections: () => connections };
}

describe('outbound SMTP and kill -9', () => {
  const lab = new OutboundLab();
  let server: Awaited<ReturnType<typeof holdingServer>>;
  /** Subjects whose reply to the final dot the server holds (the first copy of each). */
  const hold = new Set(['held reply', 'held at stop']);

  beforeAll(async () => {
    server = await holdingServer((subject) => !hold.delete(subject));
    await lab.init([{ name: 'crash.test', signed: true, records: ['@ IN MX 10 mx', 'mx IN A 127.0.0.1'] }], {
      AFTERSMTP_BRIDGE__SMTP__OUTBOUND__PORT_MAP: JSON.stringify({ 'mx.crash.test': server.port }),
      // One connection to the host: the second message waits for it, unattempted.
      AFTERSMTP_BRIDGE__SMTP__OUTBOUND__MAX_CONNECTIONS_PER_HOST: '1',
      AFTERSMTP_FEDERATION__RETRY__INITIAL_MS: '200',
      AFTERSMTP_FEDERATION__RETRY__MAX_MS: '1000',
    });
    await lab.start();
  }, 120_000);

  afterAll(async () => {
    lab.node?.child.kill('SIGKILL');
    await lab.close();
    await server?.close();
  });

  it('the message whose reply was held is delivered again after the restart, one duplicate at most; the waiting one once', async () => {
    const first = await lab.send('alice', ['gina@crash.test'], 'held reply');
    await until('the first message at the far end', async () => server.arrivals.find((a) => a.subject === 'held reply') ?? undefined);
    const second = await lab.send('alice', ['hank@crash.test'], 'waiting behind');
    // Queued and not attempted: its only connection is busy with the first.
    const waiting = await lab.queueRow(second.id, 'hank@crash.test', ['queued']);
    expect(waiting.attempts).toBe(0);
    expect((await lab.queue()).find((r) => r.messageId === first.id)).toMatchObject({ state: 'queued', attempts: 0 });

    const killed = lab.node!;
    killed.child.kill('SIGKILL');
    expect(await killed.exited).toBe('SIGKILL');
    lab.node = undefined;
    expect(server.arrivals.filter((a) => a.subject === 'waiting behind')).toHaveLength(0);

    await lab.start();
    for (const [m, r] of [[first, 'gina@crash.test'], [second, 'hank@crash.test']] as const) {
      expect(await lab.queueRow(m.id, r, ['delivered', 'failed'])).toMatchObject({ state: 'delivered' });
    }
    const copies = (subject: string) => server.arrivals.filter((a) => a.subject === subject);
    // The held copy (never answered) and the one the restarted node sent and got a 250 for: no loss, one duplicate.
    expect(copies('held reply')).toEqual([
      expect.objectContaining({ answered: false }),
      expect.objectContaining({ answered: true }),
    ]);
    expect(copies('waiting behind')).toEqual([expect.objectContaining({ answered: true })]);
  }, 60_000);

  it('a stop (SIGTERM) while the far end holds its reply ends that attempt at once; after the restart it is delivered', async () => {
    const { id } = await lab.send('alice', ['ivy@crash.test'], 'held at stop');
    await until('the message at the far end', async () => server.arrivals.find((a) => a.subject === 'held at stop'));
    const stopping = lab.node!;
    stopping.child.kill('SIGTERM');
    // The node's data timeout is ten minutes: a stop that waited for the reply would outlast this test.
    expect(await stopping.exited).toBe(0);
    lab.node = undefined;
    await lab.start();
    expect(await lab.queueRow(id, 'ivy@crash.test', ['delivered', 'failed'])).toMatchObject({ state: 'delivered' });
    expect(server.arrivals.filter((a) => a.subject === 'held at stop').map((a) => a.answered)).toEqual([false, true]);
  }, 60_000);
});
