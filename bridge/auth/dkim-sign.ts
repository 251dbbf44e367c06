// DKIM signing of outbound mail (RFC 6376; RSA-SHA256 and Ed25519-SHA256 per RFC 8463) by mailauth's signer,
// relaxed/relaxed, one signature per signing key (a domain usually publishes one key of each kind, and a
// verifier that knows only RSA still finds one it can check). Also the keys and their DNS records.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { dkimSign as mailauthDkimSign } from 'mailauth';
import { splitMessage } from './canon.ts';
import { AuthError, FIELD_NAME, HOST_NAME } from './errors.ts';
import { MIN_RSA_BITS, publicKeyDnsValue, publicKeyFromDns } from './keys.ts';

export type DkimKeyAlgorithm = 'rsa' | 'ed25519';

/** RSA keys the node generates: RFC 8301 §3.2 wants at least 1024 bits, 2048 is what receivers expect today. */
export const DKIM_RSA_BITS = 2048;

/**
 * The fields a signature covers, in this order. RFC 6376 §5.4.1's list of what a reader sees or what threads
 * a message; Sender and the List-* fields are not here because the bridge never writes them.
 */
export const DEFAULT_DKIM_SIGNED_HEADERS: readonly string[] = [
  'from', 'to', 'cc', 'subject', 'date', 'message-id', 'mime-version', 'content-type', 'in-reply-to', 'references', 'reply-to',
];

export interface DkimKey {
  algorithm: DkimKeyAlgorithm;
  /** PKCS#8 PEM. */
  privateKeyPem: string;
  /** The p= of the key record (base64; RFC 8463 §4.2's 32 raw bytes for Ed25519). */
  publicKeyDnsValue: string;
}

export interface DkimSigner {
  /** d=: the sender's domain, or one it aligns with under DMARC. */
  domain: string;
  /** s=: the key record is at `selector._domainkey.domain`. */
  selector: string;
  algorithm: DkimKeyAlgorithm;
  /** PKCS#8 or PKCS#1 PEM of the same kind as `algorithm`. */
  privateKeyPem: string;
}

export interface DkimSignOptions {
  /** t=; default now. */
  time?: Date;
  /** h= field names; default DEFAULT_DKIM_SIGNED_HEADERS. Must name From. */
  headers?: readonly string[];
}

export function generateDkimKey(algorithm: DkimKeyAlgorithm): DkimKey {
  const { privateKey } = algorithm === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: DKIM_RSA_BITS })
    : generateKeyPairSync('ed25519');
  return {
    algorithm,
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    publicKeyDnsValue: publicKeyDnsValue(privateKey),
  };
}

export interface DkimDnsRecordOptions {
  selector: string;
  domain: string;
  algorithm: DkimKeyAlgorithm;
  /** The p= value (DkimKey.publicKeyDnsValue), a public or private key PEM, or a KeyObject. */
  publicKey: string | KeyObject;
  /** The service types the key is for (s=, RFC 6376 §3.6.1); none: all of them. */
  services?: readonly string[];
}

/**
 * The TXT record that publishes a key. The value is one string: an RSA-2048 record is longer than the 255
 * octets of one TXT character-string, so whoever writes the zone splits it into several (verifiers join them).
 */
export function dkimDnsRecord(opts: DkimDnsRecordOptions): { name: string; value: string } {
  if (!HOST_NAME.test(opts.domain) || opts.domain.length > 253) throw new AuthError('BAD_ARGUMENT', `"${opts.domain}" is not a signing domain`);
  if (!HOST_NAME.test(opts.selector)) throw new AuthError('BAD_ARGUMENT', `"${opts.selector}" is not a selector`);
  const key = readPublicKey(opts.publicKey, opts.algorithm);
  return {
    name: `${opts.selector}._domainkey.${opts.domain}`,
    value: `v=DKIM1; k=${opts.algorithm}; ${opts.services?.length ? `s=${opts.services.join(':')}; ` : ''}p=${publicKeyDnsValue(key)}`,
  };
}

function readPublicKey(given: string | KeyObject, algorithm: DkimKeyAlgorithm): KeyObject {
  let key: KeyObject;
  try {
    if (typeof given !== 'string') key = given.type === 'public' ? given : createPublicKey(given);
    else if (given.trimStart().startsWith('-----BEGIN')) key = createPublicKey(given);
    else if (/^[A-Za-z0-9+/]+={0,2}$/.test(given.replace(/\s+/g, ''))) key = publicKeyFromDns(algorithm, given.replace(/\s+/g, ''));
    else throw new Error('neither PEM nor base64');
  } catch (err) {
    throw new AuthError('BAD_KEY', `the DKIM public key is not usable: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  checkKey(key, algorithm);
  return key;
}

function checkKey(key: KeyObject, algorithm: DkimKeyAlgorithm): void {
  if (key.asymmetricKeyType !== algorithm) throw new AuthError('BAD_KEY', `the key is ${key.asymmetricKeyType}, not ${algorithm}`);
  if (algorithm === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
    throw new AuthError('BAD_KEY', `RSA keys under ${MIN_RSA_BITS} bits are refused by verifiers (RFC 8301 §3.2)`);
  }
}

/** Private keys already found usable for their algorithm (by PEM text): a handful per node. */
const checkedKeys = new Map<string, DkimKeyAlgorithm>();
const MAX_CHECKED_KEYS = 64;

/**
 * The message with one DKIM-Signature per signer on top, the first signer's first. Every argument is checked
 * before anything is signed, and any signature mailauth could not make is an error: a message goes out with
 * all the signatures asked for or not at all.
 *
 * From is listed once in h=, not oversigned (RFC 6376 §8.15): mailauth 7.1.0's signer writes into h= only
 * the fields the message has. A From added on the way therefore leaves the signature valid; RFC 5322 forbids
 * the second From, and a receiver must refuse such a message rather than rely on the signature (mailauth's
 * DMARC answers "none", multiple-from-fields).
 */
export async function dkimSign(message: Buffer, signers: readonly DkimSigner[], opts: DkimSignOptions = {}): Promise<Buffer> {
  if (signers.length === 0) throw new AuthError('BAD_ARGUMENT', 'no DKIM signer given');
  const headers = (opts.headers ?? DEFAULT_DKIM_SIGNED_HEADERS).map((name) => name.trim().toLowerCase());
  if (headers.some((name) => !FIELD_NAME.test(name))) throw new AuthError('BAD_ARGUMENT', 'the header list holds something that is not a field name');
  if (!headers.includes('from')) throw new AuthError('BAD_ARGUMENT', 'a DKIM signature must cover From (RFC 6376 §5.4)');
  if (headers.includes('dkim-signature')) throw new AuthError('BAD_ARGUMENT', 'the header list must not name DKIM-Signature');
  // RFC 5322 §3.6: exactly one From. With two, which one a reader is shown is up to its software.
  const fromFields = splitMessage(message).headers.filter((h) => h.name === 'from').length;
  if (fromFields !== 1) throw new AuthError('BAD_ARGUMENT', `the message has ${fromFields} From fields; exactly one can be signed`);
  const time = opts.time ?? new Date();
  if (!Number.isFinite(time.getTime()) || time.getTime() < 0) throw new AuthError('BAD_ARGUMENT', 'the signing time is not a time');
  for (const signer of signers) {
    if (!HOST_NAME.test(signer.domain) || signer.domain.length > 253) throw new AuthError('BAD_ARGUMENT', `"${signer.domain}" is not a signing domain`);
    if (!HOST_NAME.test(signer.selector)) throw new AuthError('BAD_ARGUMENT', `"${signer.selector}" is not a selector`);
    // A node signs every message with the same few keys: each is parsed and checked once (mailauth parses
    // it again to sign; that it does per message).
    if (checkedKeys.get(signer.privateKeyPem) === signer.algorithm) continue;
    let key: KeyObject;
    try {
      key = createPrivateKey(signer.privateKeyPem);
    } catch (err) {
      throw new AuthError('BAD_KEY', `the DKIM private key for ${signer.selector}._domainkey.${signer.domain} is not usable`, { cause: err });
    }
    checkKey(key, signer.algorithm);
    if (checkedKeys.size >= MAX_CHECKED_KEYS) checkedKeys.clear();
    checkedKeys.set(signer.privateKeyPem, signer.algorithm);
  }

  const result = await mailauthDkimSign(message, {
    canonicalization: 'relaxed/relaxed',
    // Refuse what RFC 6376 and RFC 8301 forbid instead of signing it with a warning.
    strict: true,
    signTime: time,
    headerList: headers,
    signatureData: signers.map((signer) => ({
      signingDomain: signer.domain,
      selector: signer.selector,
      privateKey: signer.privateKeyPem,
      algorithm: `${signer.algorithm}-sha256`,
      canonicalization: 'relaxed/relaxed',
    })),
  } as Parameters<typeof mailauthDkimSign>[1]);
  if (result.errors.length > 0) {
    const first = result.errors[0]!;
    const code = first.err.code === 'ENOFROM' || first.err.code === 'EINVALIDDOMAIN' || first.err.code === 'EINVALIDSELECTOR' || first.err.code === 'EINVALIDTIME'
      ? 'BAD_ARGUMENT' : 'BAD_KEY';
    throw new AuthError(code, `DKIM signing for ${first.selector ?? '?'}._domainkey.${first.signingDomain ?? '?'} failed: ${first.err.message}`, { cause: first.err });
  }
  const signatures = Buffer.from(result.signatures, 'latin1');
  const count = (result.signatures.match(/^DKIM-Signature:/gm) ?? []).length;
  if (count !== signers.length) throw new AuthError('BAD_ARGUMENT', `mailauth made ${count} of ${signers.length} DKIM signatures`);
  return Buffer.concat([signatures, message]);
}
