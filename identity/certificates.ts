/**
 * TLS identity of a node: a private CA and server certificates (ECDSA P-256, SHA-256), made with
 * @peculiar/x509 on WebCrypto. PEM output works with node:tls/https and @grpc/grpc-js.
 *
 * @peculiar/x509 depends on tsyringe, which needs the Reflect metadata polyfill (`reflect-metadata`)
 * loaded first. Both are loaded lazily: only processes that make certificates pay for them.
 */
import crypto from 'node:crypto';
import type { webcrypto as wc } from 'node:crypto';
import net from 'node:net';
import type * as X509 from '@peculiar/x509';
import { IdentityError } from './errors.ts';

let x509Promise: Promise<typeof X509> | undefined;
function loadX509(): Promise<typeof X509> {
  x509Promise ??= import('reflect-metadata').then(() => import('@peculiar/x509'));
  return x509Promise;
}

export interface PemKeyPair {
  /** PEM certificate ("-----BEGIN CERTIFICATE-----"). */
  certPem: string;
  /** PEM PKCS#8 private key ("-----BEGIN PRIVATE KEY-----"). */
  keyPem: string;
}

export interface CertificateAuthorityOptions {
  commonName: string;
  validDays: number;
  /**
   * Names the CA may issue for, as a critical NameConstraints extension (RFC 5280 §4.2.1.10): DNS names
   * (each also covers its subdomains) and single IP addresses. A verifier that enforces it (OpenSSL, so
   * Node's TLS) then rejects any certificate from this CA for another name, should its key leak.
   * Absent: the CA is unconstrained.
   */
  permitted?: { dnsNames?: string[]; ipAddresses?: string[] };
}

export interface ServerCertificateOptions {
  dnsNames?: string[];
  ipAddresses?: string[];
  validDays: number;
  /** Default: the first DNS name or IP address. */
  commonName?: string;
  /** Also allow use as a TLS client certificate (node-to-node mTLS). Default true. */
  clientAuth?: boolean;
}

const webcrypto: wc.Crypto = crypto.webcrypto;
const EC_ALG: wc.EcKeyGenParams & wc.EcKeyImportParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING_ALG: wc.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const DAY_MS = 24 * 60 * 60 * 1000;

function validity(validDays: number): { notBefore: Date; notAfter: Date } {
  if (!Number.isFinite(validDays) || validDays <= 0) throw new IdentityError('INVALID_ARGUMENT', 'validDays must be positive');
  const now = Date.now();
  // Back-date a little so peers with a slightly slow clock accept a fresh certificate.
  return { notBefore: new Date(now - 5 * 60_000), notAfter: new Date(now + validDays * DAY_MS) };
}

function serialNumber(): string {
  const b = crypto.randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive INTEGER
  if (b[0] === 0) b[0] = 1;
  return b.toString('hex');
}

function escapeDnValue(v: string): string {
  return v.replace(/([,+"\\<>;=#])/g, '\\$1');
}

async function exportKeyPem(x509: typeof X509, key: wc.CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function generateKeys(): Promise<wc.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_ALG, true, ['sign', 'verify']);
}

/** DER type-length-value. */
function der(tag: number, content: Uint8Array): Uint8Array {
  const n = content.length;
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...length]), content]);
}

/** OID 2.5.29.30, id-ce-nameConstraints. */
const NAME_CONSTRAINTS_OID = '2.5.29.30';

/**
 * NameConstraints ::= SEQUENCE { permittedSubtrees [0] GeneralSubtrees }, each GeneralSubtree a SEQUENCE
 * holding only its base GeneralName: dNSName [2] as @peculiar/x509 encodes it, iPAddress [7] as the
 * address followed by an all-ones mask (one host). @peculiar/x509 has no class for this extension.
 */
function nameConstraintsValue(x509: typeof X509, permitted: { dnsNames?: string[]; ipAddresses?: string[] }): Uint8Array {
  const subtrees: Uint8Array[] = [];
  for (const name of permitted.dnsNames ?? []) {
    subtrees.push(der(0x30, new Uint8Array(new x509.GeneralName('dns', name).rawData)));
  }
  for (const ip of permitted.ipAddresses ?? []) {
    if (net.isIP(ip) === 0) throw new IdentityError('INVALID_ARGUMENT', `not an IP address: ${ip}`);
    const encoded = new Uint8Array(new x509.GeneralName('ip', ip).rawData); // [7] length address
    const address = encoded.subarray(2);
    subtrees.push(der(0x30, der(0x87, Buffer.concat([address, Buffer.alloc(address.length, 0xff)]))));
  }
  if (subtrees.length === 0) throw new IdentityError('INVALID_ARGUMENT', 'name constraints need at least one DNS name or IP address');
  return der(0x30, der(0xa0, Buffer.concat(subtrees)));
}

/** A self-signed CA certificate (basicConstraints cA, keyCertSign/cRLSign), optionally name-constrained. */
export async function createCertificateAuthority(opts: CertificateAuthorityOptions): Promise<PemKeyPair> {
  const x509 = await loadX509();
  const keys = await generateKeys();
  const name = `CN=${escapeDnValue(opts.commonName)}`;
  const constraints = opts.permitted ? [new x509.Extension(NAME_CONSTRAINTS_OID, true, nameConstraintsValue(x509, opts.permitted))] : [];
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serialNumber(),
      name,
      ...validity(opts.validDays),
      keys,
      signingAlgorithm: SIGNING_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
        ...constraints,
      ],
    },
    webcrypto,
  );
  return { certPem: cert.toString('pem'), keyPem: await exportKeyPem(x509, keys.privateKey) };
}

/** A server (and by default client) certificate for the given names, signed by `ca`. */
export async function issueServerCertificate(ca: PemKeyPair, opts: ServerCertificateOptions): Promise<PemKeyPair> {
  const dnsNames = opts.dnsNames ?? [];
  const ipAddresses = opts.ipAddresses ?? [];
  if (dnsNames.length === 0 && ipAddresses.length === 0) {
    throw new IdentityError('INVALID_ARGUMENT', 'a server certificate needs at least one DNS name or IP address');
  }
  for (const ip of ipAddresses) {
    if (net.isIP(ip) === 0) throw new IdentityError('INVALID_ARGUMENT', `not an IP address: ${ip}`);
  }
  const x509 = await loadX509();
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(ca.keyPem), EC_ALG, false, ['sign']);
  const keys = await generateKeys();
  const commonName = opts.commonName ?? dnsNames[0] ?? ipAddresses[0]!;
  const usages = [x509.ExtendedKeyUsage.serverAuth as string];
  if (opts.clientAuth !== false) usages.push(x509.ExtendedKeyUsage.clientAuth);
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(),
      subject: `CN=${escapeDnValue(commonName)}`,
      issuer: caCert.subject,
      ...validity(opts.validDays),
      publicKey: keys.publicKey,
      signingKey: caKey,
      signingAlgorithm: SIGNING_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension(usages, false),
        new x509.SubjectAlternativeNameExtension(
          [...dnsNames.map((value) => ({ type: 'dns' as const, value })), ...ipAddresses.map((value) => ({ type: 'ip' as const, value }))],
          false,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
        await x509.AuthorityKeyIdentifierExtension.create(caCert, false, webcrypto),
      ],
    },
    webcrypto,
  );
  return { certPem: cert.toString('pem'), keyPem: await exportKeyPem(x509, keys.privateKey) };
}
