import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReceiveQueue } from '../../gateway/transport/common.ts';
import { TransportError } from '../../gateway/transport/errors.ts';
import { FrameDecoder, FrameType, encodeFrame, frameHeader } from '../../gateway/transport/framing.ts';
import type { Frame } from '../../gateway/transport/framing.ts';
import { ed25519KeyFromPeerId } from '../../gateway/transport/quic.ts';
import { base58btcEncode, generateSigningKeyPair } from '../../identity/index.ts';

function decodeAll(decoder: FrameDecoder, chunks: Uint8Array[]): Frame[] {
  const out: Frame[] = [];
  for (const c of chunks) decoder.push(c, (f) => out.push(f));
  return out;
}

function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(bytes.subarray(prev, p));
    prev = p;
  }
  out.push(bytes.subarray(prev));
  return out;
}

const messagesOnly = (max = 1 << 20): FrameDecoder => new FrameDecoder({ maxMessageBytes: max, allowedControl: new Set(), allowMessages: true });

describe('gRPC length-prefixed framing', () => {
  it('encodes the 5-byte prefix: flag 0, u32 big-endian length', () => {
    expect([...encodeFrame(FrameType.MESSAGE, new Uint8Array([0xaa, 0xbb]))]).toEqual([0, 0, 0, 0, 2, 0xaa, 0xbb]);
    expect([...frameHeader(FrameType.MESSAGE, 0x01020304)]).toEqual([0, 1, 2, 3, 4]);
  });

  it('decodes any sequence of messages, however the bytes are split (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (messages, cuts) => {
          const wire = Buffer.concat(messages.map((m) => encodeFrame(FrameType.MESSAGE, m)));
          const frames = decodeAll(messagesOnly(), splitAt(wire, cuts));
          expect(frames.map((f) => Buffer.from(f.payload).toString('hex'))).toEqual(messages.map((m) => Buffer.from(m).toString('hex')));
          // flow-control positions count every message byte, header included
          let pos = 0;
          frames.forEach((f, i) => {
            pos += 5 + messages[i]!.length;
            expect(f.endPos).toBe(pos);
          });
        },
      ),
    );
  });

  it('rejects an oversized message from its header, before buffering the payload', () => {
    const d = messagesOnly(1000);
    const header = frameHeader(FrameType.MESSAGE, 1001);
    let err: unknown;
    try {
      d.push(header, () => {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).code).toBe('MESSAGE_TOO_LARGE');
    // exactly the limit is fine
    const ok = messagesOnly(1000);
    expect(decodeAll(ok, [encodeFrame(FrameType.MESSAGE, new Uint8Array(1000))])[0]!.payload.length).toBe(1000);
  });

  it('rejects compressed messages and unknown frame types', () => {
    expect(() => messagesOnly().push(frameHeader(FrameType.COMPRESSED, 1), () => {})).toThrow(/compressed/);
    expect(() => messagesOnly().push(frameHeader(0x7f, 1), () => {})).toThrow(/unexpected frame type/);
    const control = new FrameDecoder({ maxMessageBytes: 10, allowedControl: new Set([FrameType.PING]), allowMessages: false });
    expect(() => control.push(frameHeader(FrameType.MESSAGE, 1), () => {})).toThrow(/not allowed/);
    expect(() => control.push(frameHeader(FrameType.PING, 5000), () => {})).toThrow(/control frame/);
  });

  it('hands out plain Uint8Array payloads (no Buffer subclass leaks through)', () => {
    const frames = decodeAll(messagesOnly(), [Buffer.from(encodeFrame(FrameType.MESSAGE, new Uint8Array([1, 2, 3])))]);
    expect(frames[0]!.payload.constructor).toBe(Uint8Array);
  });

  it('knows when a stream stopped inside a frame', () => {
    const d = messagesOnly();
    const wire = encodeFrame(FrameType.MESSAGE, new Uint8Array(4));
    d.push(wire.subarray(0, 3), () => {});
    expect(d.midFrame).toBe(true);
    d.push(wire.subarray(3, 7), () => {});
    expect(d.midFrame).toBe(true);
    d.push(wire.subarray(7), () => {});
    expect(d.midFrame).toBe(false);
  });
});

describe('receive queue flow accounting', () => {
  it('releases a queued message only when the reader takes it, and partial bytes only while it waits', async () => {
    const releases: number[] = [];
    const q = new ReceiveQueue((upTo) => releases.push(upTo));
    q.push(new Uint8Array(10), 15);
    q.push(new Uint8Array(10), 30);
    q.progress(40); // 10 bytes of a third message
    expect(q.held).toBe(40);
    expect(releases).toEqual([]);
    expect((await q.next()).value!.length).toBe(10);
    expect(releases).toEqual([15]);
    await q.next();
    expect(releases).toEqual([15, 30]);
    const waiting = q.next(); // queue empty: the partial message is released for the waiting reader
    expect(releases).toEqual([15, 30, 40]);
    q.progress(50);
    expect(releases).toEqual([15, 30, 40, 50]);
    q.push(new Uint8Array(45), 50);
    expect((await waiting).value!.length).toBe(45);
    expect(q.held).toBe(0);
  });

  it('after the reader leaves, discards and releases whatever arrives', async () => {
    const releases: number[] = [];
    const q = new ReceiveQueue((upTo) => releases.push(upTo));
    q.push(new Uint8Array(1), 6);
    await q.return();
    expect(releases).toEqual([6]);
    q.push(new Uint8Array(1), 12);
    expect(releases).toEqual([6, 12]);
    expect(await q.next()).toEqual({ value: undefined, done: true });
  });

  it('keeps messages that arrived before a clean end even if the connection fails later', async () => {
    const q = new ReceiveQueue(() => {});
    q.push(new Uint8Array([1]), 6);
    q.end();
    q.fail(new TransportError('CONNECTION_CLOSED', 'gone'));
    expect((await q.next()).value).toEqual(new Uint8Array([1]));
    expect((await q.next()).done).toBe(true);
  });
});

describe('QUIC peer identity from the libp2p peer id', () => {
  it('extracts the raw Ed25519 key from an identity-multihash peer id', () => {
    const { publicKey } = generateSigningKeyPair();
    const peerId = base58btcEncode(Uint8Array.from([0x00, 0x24, 0x08, 0x01, 0x12, 0x20, ...publicKey]));
    expect(peerId.startsWith('12D3KooW')).toBe(true);
    expect(Buffer.from(ed25519KeyFromPeerId(peerId))).toEqual(Buffer.from(publicKey));
  });

  it('refuses peers authenticated by other key types', () => {
    // secp256k1 (KeyType 2) public key protobuf in an identity multihash
    const secp = base58btcEncode(Uint8Array.from([0x00, 0x25, 0x08, 0x02, 0x12, 0x21, 0x02, ...new Uint8Array(32).fill(1)]));
    expect(() => ed25519KeyFromPeerId(secp)).toThrow(expect.objectContaining({ code: 'AUTH_FAILED' }));
    expect(() => ed25519KeyFromPeerId('not-base58-0OIl')).toThrow(expect.objectContaining({ code: 'AUTH_FAILED' }));
  });
});
