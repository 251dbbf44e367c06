// A small authoritative DNS server for tests: real UDP on 127.0.0.1, port 0, answers from a record map.
import { createSocket, type Socket } from 'node:dgram';
import * as dnsPacket from 'dns-packet';

export interface TestRecord { type: 'TXT' | 'A'; name: string; data: string }

export interface TestDnsServer { address: string; set(records: TestRecord[]): void; close(): Promise<void>; queries: string[] }

export async function startDnsServer(records: TestRecord[] = []): Promise<TestDnsServer> {
  let table = records;
  const queries: string[] = [];
  const socket: Socket = createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const q = query.questions?.[0];
    if (!q) return;
    queries.push(`${q.type} ${q.name}`);
    const answers = table
      .filter((r) => r.name.toLowerCase() === q.name.toLowerCase() && r.type === q.type)
      .map((r) => (r.type === 'TXT'
        ? { type: 'TXT' as const, name: r.name, ttl: 60, class: 'IN' as const, data: r.data.match(/.{1,255}/gs) ?? [''] } // strings of at most 255 octets
        : { type: 'A' as const, name: r.name, ttl: 60, class: 'IN' as const, data: r.data }));
    const known = table.some((r) => r.name.toLowerCase() === q.name.toLowerCase());
    const response = dnsPacket.encode({
      id: query.id,
      type: 'response',
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (known ? 0 : 3), // rcode 3 = NXDOMAIN
      questions: [q],
      answers,
    });
    socket.send(response, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  return {
    address: `127.0.0.1:${port}`,
    queries,
    set: (r) => { table = r; },
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}
