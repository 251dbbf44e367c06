import { createHash, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { PeerTransport } from '../../gateway/transport/index.ts';
import { transportConformance } from './conformance.ts';
import { quicFactory } from './factories.ts';

transportConformance('quic', quicFactory);

describe('QUIC native reads (DECISIONS 31)', () => {
  const open: PeerTransport[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.close()));
  });

  it('a 50 KB message reaches the receiver in a few native reads, not 4 KiB at a time', async () => {
    const server = await quicFactory.create();
    const client = await quicFactory.create();
    open.push(server, client);
    const received: Uint8Array[] = [];
    server.onConnection((conn) =>
      conn.onStream((_method, stream) => {
        void (async () => {
          for await (const m of stream) received.push(m);
          await stream.send(new Uint8Array([1]));
          await stream.end();
        })();
      }),
    );
    const addr = await server.listen({ host: '127.0.0.1', port: 0 });
    const conn = await client.dial(addr, { expectedPeerKey: server.publicKey });

    // Count every native read of this process (both ends, control streams included) from here on.
    const binding = (await import(new URL('./napi.js', import.meta.resolve('@chainsafe/libp2p-quic')).href)) as {
      Stream: { prototype: { read: (n: number) => Promise<Uint8Array | null> } };
    };
    const proto = binding.Stream.prototype;
    const read = proto.read;
    let reads = 0;
    proto.read = function (this: unknown, n: number) {
      reads++;
      return read.call(this, n);
    };
    const messages = Array.from({ length: 20 }, () => new Uint8Array(randomBytes(52_201)));
    try {
      const stream = await conn.openStream('/test.Sink/Reads');
      for (const m of messages) await stream.send(m);
      await stream.end();
      for await (const _reply of stream);
    } finally {
      proto.read = read;
    }

    const digest = (m: Uint8Array) => createHash('sha256').update(m).digest('hex');
    expect(received.map(digest)).toEqual(messages.map(digest));
    // 4 KiB reads take 13 per message (260 here); whole-message reads about one.
    expect(reads).toBeLessThan(messages.length * 3);
  });
});
