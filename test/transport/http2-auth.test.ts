/**
 * HTTP/2 peer authentication (docs/TRANSPORT.md §4): the PeerAuth exchange bound to the TLS session
 * by an exporter, tested directly and against a man in the middle that terminates TLS on both sides.
 */
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { createCertificateAuthority, generateSigningKeyPair, issueServerCertificate, randomBytes } from '../../identity/index.ts';
import { Http2Transport } from '../../gateway/transport/index.ts';
import type { PeerConnection, TransportError } from '../../gateway/transport/index.ts';
import {
  PEER_AUTH_PATH,
  ROLE_CLIENT,
  ROLE_SERVER,
  buildPeerAuth,
  peerAuthSignedData,
  verifyPeerAuth,
} from '../../gateway/transport/peer-auth.ts';
import { FrameType, encodeFrame } from '../../gateway/transport/framing.ts';

async function certificate(): Promise<{ certPem: string; keyPem: string }> {
  const ca = await createCertificateAuthority({ commonName: 'untrusted', validDays: 1 });
  return issueServerCertificate(ca, { ipAddresses: ['127.0.0.1'], validDays: 1 });
}

describe('PeerAuth messages', () => {
  const keys = generateSigningKeyPair();
  const exporter = randomBytes(32);

  it('signs "AfterSMTP-v1 peer-auth" || role || exporter and verifies to the signer\'s key', () => {
    expect(Buffer.from(peerAuthSignedData(ROLE_CLIENT, exporter)).subarray(0, 23).toString('latin1')).toBe('AfterSMTP-v1 peer-auth\x01');
    const msg = buildPeerAuth(ROLE_CLIENT, exporter, keys.privateKey, keys.publicKey);
    expect(msg.length).toBe(98);
    expect(msg[0]).toBe(1);
    expect(msg[1]).toBe(ROLE_CLIENT);
    expect(Buffer.from(verifyPeerAuth(msg, ROLE_CLIENT, exporter))).toEqual(Buffer.from(keys.publicKey));
  });

  it('rejects another session\'s exporter, a reflected role, a swapped key, a flipped bit', () => {
    const msg = buildPeerAuth(ROLE_CLIENT, exporter, keys.privateKey, keys.publicKey);
    const code = { code: 'AUTH_FAILED' };
    expect(() => verifyPeerAuth(msg, ROLE_CLIENT, randomBytes(32))).toThrow(expect.objectContaining(code));
    expect(() => verifyPeerAuth(msg, ROLE_SERVER, exporter)).toThrow(expect.objectContaining(code));
    const reflected = Uint8Array.from(msg);
    reflected[1] = ROLE_SERVER;
    expect(() => verifyPeerAuth(reflected, ROLE_SERVER, exporter)).toThrow(expect.objectContaining(code));
    const swapped = Uint8Array.from(msg);
    swapped.set(generateSigningKeyPair().publicKey, 2);
    expect(() => verifyPeerAuth(swapped, ROLE_CLIENT, exporter)).toThrow(expect.objectContaining(code));
    const flipped = Uint8Array.from(msg);
    flipped[97]! ^= 1;
    expect(() => verifyPeerAuth(flipped, ROLE_CLIENT, exporter)).toThrow(expect.objectContaining(code));
    expect(() => verifyPeerAuth(msg.subarray(0, 97), ROLE_CLIENT, exporter)).toThrow(expect.objectContaining(code));
  });
});

describe('HTTP/2 peer authentication on real sockets', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function listener(limits: { handshakeTimeoutMs?: number } = {}): Promise<{ t: Http2Transport; port: number; inbound: PeerConnection[] }> {
    const keys = generateSigningKeyPair();
    const t = new Http2Transport({ ...keys, ...(await certificate()), ...limits });
    cleanup.push(() => t.close());
    const inbound: PeerConnection[] = [];
    t.onConnection((c) => inbound.push(c));
    const { port } = await t.listen({ host: '127.0.0.1', port: 0 });
    return { t, port, inbound };
  }

  it('a man in the middle that terminates TLS on both sides cannot relay the proofs', async () => {
    const server = await listener();
    // The MITM: its own certificate towards the dialer, a separate TLS session towards the server,
    // HTTP/2 bytes relayed verbatim in both directions.
    const mitmCert = await certificate();
    const mitm = tls.createServer({ cert: mitmCert.certPem, key: mitmCert.keyPem, ALPNProtocols: ['h2'], minVersion: 'TLSv1.3' });
    const sockets = new Set<net.Socket>();
    let relayed = 0;
    mitm.on('secureConnection', (down) => {
      relayed++;
      const up = tls.connect({ host: '127.0.0.1', port: server.port, ALPNProtocols: ['h2'], rejectUnauthorized: false, minVersion: 'TLSv1.3' });
      sockets.add(down).add(up);
      down.on('error', () => up.destroy());
      up.on('error', () => down.destroy());
      down.on('close', () => up.destroy());
      up.on('close', () => down.destroy());
      down.pipe(up);
      up.pipe(down);
    });
    await new Promise<void>((resolve) => mitm.listen(0, '127.0.0.1', resolve));
    cleanup.push(
      () =>
        new Promise<void>((resolve) => {
          for (const s of sockets) s.destroy();
          mitm.close(() => resolve());
        }),
    );
    const mitmPort = (mitm.address() as net.AddressInfo).port;

    const client = new Http2Transport(generateSigningKeyPair());
    cleanup.push(() => client.close());
    let err: TransportError | undefined;
    try {
      await client.dial({ host: '127.0.0.1', port: mitmPort }, { timeoutMs: 3000 });
    } catch (e) {
      err = e as TransportError;
    }
    expect(relayed).toBe(1);
    expect(err?.code).toBe('AUTH_FAILED');
    expect(server.inbound).toHaveLength(0);

    // Direct, the same client is fine.
    const conn = await client.dial({ host: '127.0.0.1', port: server.port }, { expectedPeerKey: server.t.publicKey });
    expect(Buffer.from(conn.remotePublicKey)).toEqual(Buffer.from(server.t.publicKey));
  });

  it('refuses application streams before the peer authenticated, and signatures from a relayed session', async () => {
    const server = await listener();
    const session = http2.connect(`https://127.0.0.1:${server.port}`, { rejectUnauthorized: false });
    session.on('error', () => {});
    cleanup.push(() => void session.destroy());
    const refused = await new Promise<number | undefined>((resolve) => {
      const req = session.request({ ':method': 'POST', ':path': '/aftersmtp.v1.Relay/Stream', 'content-type': 'application/grpc' });
      req.on('error', () => {});
      req.on('close', () => resolve(req.rstCode));
      req.end();
    });
    expect(refused).toBe(http2.constants.NGHTTP2_REFUSED_STREAM);

    // A proof signed over some other session's exporter: UNAUTHENTICATED, no connection.
    const keys = generateSigningKeyPair();
    const status = await new Promise<string | undefined>((resolve) => {
      const req = session.request({ ':method': 'POST', ':path': PEER_AUTH_PATH, 'content-type': 'application/grpc', te: 'trailers' });
      req.on('error', () => {});
      let headers: http2.IncomingHttpHeaders = {};
      req.on('response', (h) => {
        headers = h;
      });
      req.on('trailers', (h) => {
        headers = { ...headers, ...h };
      });
      req.on('close', () => resolve(headers['grpc-status'] as string | undefined));
      req.on('data', () => {});
      req.end(encodeFrame(FrameType.MESSAGE, buildPeerAuth(ROLE_CLIENT, randomBytes(32), keys.privateKey, keys.publicKey)));
    });
    expect(status).toBe('16');
    expect(server.inbound).toHaveLength(0);
  });

  it('drops a session that does not authenticate within handshakeTimeoutMs', async () => {
    const server = await listener({ handshakeTimeoutMs: 300 });
    const session = http2.connect(`https://127.0.0.1:${server.port}`, { rejectUnauthorized: false });
    session.on('error', () => {});
    cleanup.push(() => void session.destroy());
    const t0 = performance.now();
    await new Promise<void>((resolve) => session.once('close', () => resolve()));
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(server.inbound).toHaveLength(0);
  });
});
