// Certificates for the outbound TLS tests (DANE, MTA-STS): a test CA and leaves it signs, made fresh per run
// with @peculiar/x509 over WebCrypto, plus TLS servers on 127.0.0.1:0 presenting a given chain.
// @peculiar/x509 depends on tsyringe, which needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { KeyObject, X509Certificate, webcrypto } from 'node:crypto';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import type { AddressInfo } from 'node:net';

/** Key usage bits for `caKeyUsage` (re-exported here, after the polyfill @peculiar/x509 needs). */
export const { KeyUsageFlags } = x509;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

export interface Issued {
  cert: X509Certificate;
  pem: string;
  keyPem: string;
  keys: webcrypto.CryptoKeyPair;
  subject: string;
}

let serial = 1;

function keyPem(keys: webcrypto.CryptoKeyPair): string {
  return KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string;
}

async function issued(cert: x509.X509Certificate, keys: webcrypto.CryptoKeyPair): Promise<Issued> {
  const pem = `${cert.toString('pem').trim()}\n`;
  return { cert: new X509Certificate(pem), pem, keyPem: keyPem(keys), keys, subject: cert.subject };
}

async function newKeys(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
}

/** A self-signed certificate: a CA when `ca`, else an impostor leaf naming `names`; `expired` puts its validity in the past. */
export async function selfSigned(commonName: string, opts: { ca?: boolean; names?: string[]; expired?: boolean } = {}): Promise<Issued> {
  const keys = await newKeys();
  const extensions: x509.Extension[] = opts.ca
    ? [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)]
    : [new x509.SubjectAlternativeNameExtension((opts.names ?? [commonName]).map((value) => ({ type: 'dns' as const, value })))];
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: (serial++).toString(16).padStart(2, '0'), name: `CN=${commonName}`, keys, signingAlgorithm: ALG, extensions,
    notBefore: new Date(Date.now() - (opts.expired ? 30 : 1) * DAY), notAfter: new Date(Date.now() + (opts.expired ? -2 : 30) * DAY),
  });
  return issued(cert, keys);
}

/**
 * A certificate signed by `issuer`: an intermediate CA when `ca` (key usage `keyCertSign` unless `caKeyUsage` says
 * otherwise), else a leaf for `names` (with `extendedKeyUsage` OIDs when given); `expired` puts its validity in the past.
 */
export async function signedBy(
  issuer: Issued, commonName: string,
  opts: { ca?: boolean; names?: string[]; expired?: boolean; caKeyUsage?: x509.KeyUsageFlags; extendedKeyUsage?: string[] } = {},
): Promise<Issued> {
  const keys = await newKeys();
  const now = Date.now();
  const extensions: x509.Extension[] = opts.ca
    ? [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(opts.caKeyUsage ?? x509.KeyUsageFlags.keyCertSign, true)]
    : [
      new x509.SubjectAlternativeNameExtension((opts.names ?? [commonName]).map((value) => ({ type: 'dns' as const, value }))),
      ...(opts.extendedKeyUsage ? [new x509.ExtendedKeyUsageExtension(opts.extendedKeyUsage)] : []),
    ];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(2, '0'), subject: `CN=${commonName}`, issuer: issuer.subject,
    notBefore: new Date(opts.expired ? now - 30 * DAY : now - DAY), notAfter: new Date(opts.expired ? now - 2 * DAY : now + 30 * DAY),
    signingKey: issuer.keys.privateKey, publicKey: keys.publicKey, signingAlgorithm: ALG, extensions,
  });
  return issued(cert, keys);
}

/** A TLS server on 127.0.0.1:0 presenting `leaf` and then `chain` (as given, leaf first). */
export async function tlsServer(leaf: Issued, chain: Issued[]): Promise<{ port: number; close(): Promise<void> }> {
  const server: TlsServer = createTlsServer({ key: leaf.keyPem, cert: [leaf.pem, ...chain.map((c) => c.pem)].join('') }, (socket) => {
    socket.on('error', () => {});
    socket.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
