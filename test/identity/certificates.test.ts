import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { createCertificateAuthority, issueServerCertificate } from '../../identity/index.ts';

const servers: tls.Server[] = [];
afterAll(async () => {
  for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
});

async function serve(cert: { certPem: string; keyPem: string }): Promise<number> {
  const server = tls.createServer({ key: cert.keyPem, cert: cert.certPem }, (socket) => socket.end('ok'));
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

function connect(port: number, opts: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...opts }, () => {
      let data = '';
      socket.on('data', (d) => (data += d));
      socket.on('end', () => resolve(data));
    });
    socket.on('error', reject);
  });
}

describe('certificates', () => {
  it('a CA and a server certificate with DNS and IP names work with node:tls', async () => {
    const ca = await createCertificateAuthority({ commonName: 'Node CA', validDays: 2 });
    const leaf = await issueServerCertificate(ca, { dnsNames: ['node.test'], ipAddresses: ['127.0.0.1'], validDays: 1 });
    expect(ca.certPem).toMatch(/^-----BEGIN CERTIFICATE-----\n/);
    expect(leaf.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);

    const caCert = new X509Certificate(ca.certPem);
    const leafCert = new X509Certificate(leaf.certPem);
    expect(caCert.ca).toBe(true);
    expect(leafCert.ca).toBe(false);
    expect(leafCert.checkIssued(caCert)).toBe(true);
    expect(leafCert.verify(caCert.publicKey)).toBe(true);
    expect(leafCert.subjectAltName).toBe('DNS:node.test, IP Address:127.0.0.1');
    expect(leafCert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(new Date(leafCert.validTo).getTime() - Date.now()).toBeLessThanOrEqual(24 * 3600_000 + 1000);

    const port = await serve(leaf);
    expect(await connect(port, { ca: ca.certPem, servername: 'node.test' })).toBe('ok');
    expect(await connect(port, { ca: ca.certPem })).toBe('ok'); // by IP SAN
    await expect(connect(port, { ca: ca.certPem, servername: 'other.test' })).rejects.toThrow(/altnames/);
    const stranger = await createCertificateAuthority({ commonName: 'Other CA', validDays: 1 });
    await expect(connect(port, { ca: stranger.certPem, servername: 'node.test' })).rejects.toThrow(/certificate/);
  });

  it('refuses certificates without names and non-IP addresses', async () => {
    const ca = await createCertificateAuthority({ commonName: 'Node CA', validDays: 1 });
    await expect(issueServerCertificate(ca, { validDays: 1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(issueServerCertificate(ca, { ipAddresses: ['node.test'], validDays: 1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(createCertificateAuthority({ commonName: 'x', validDays: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
