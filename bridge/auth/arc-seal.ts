// ARC sealing (RFC 8617 §5.1): the node adds instance n+1 (ARC-Authentication-Results, an
// ARC-Message-Signature over the listed fields and the body, an ARC-Seal over the whole chain) when it
// passes a message on. Canonicalization is relaxed/relaxed, the tags are written in a fixed order with
// nothing extra, so a seal is reproducible: for RSA the same input gives the same signature, which is how
// the open ARC test suite checks a sealer.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { bodyHash, fieldValue, selectSigned, signingInput, splitMessage, type HeaderField } from './canon.ts';
import { AuthError, checkAuthservId, FIELD_NAME, HOST_NAME } from './errors.ts';
import { algorithmOfKey, signData, type SignatureAlgorithm } from './keys.ts';
import { parseTagList } from './tag-list.ts';
import type { ArcResult } from './arc-verify.ts';

/** RFC 8617 §4.2.1: instances run from 1 to 50. */
export const MAX_ARC_INSTANCE = 50;

/** Fields a forwarder's AMS signs by default: what a reader sees and what DKIM commonly covers. */
export const DEFAULT_ARC_SIGNED_HEADERS: readonly string[] = [
  'from', 'to', 'cc', 'subject', 'date', 'message-id', 'reply-to', 'in-reply-to', 'references',
  'mime-version', 'content-type', 'content-transfer-encoding', 'dkim-signature',
];

export interface ArcSealOptions {
  /** The message as it leaves the node: RFC 5322, CRLF line ends. */
  message: Buffer;
  /** d= of the AMS and the AS; the key record is at `selector._domainkey.domain`. */
  domain: string;
  selector: string;
  /** PKCS#8 or PKCS#1 PEM, RSA (rsa-sha256) or Ed25519 (ed25519-sha256). */
  privateKey: string | KeyObject;
  authservId: string;
  /** The results the AAR records after the authserv-id (AuthVerdicts.results). */
  authResults: string;
  /** h= of the AMS, in this order; ARC-Seal is never signed. */
  signHeaders?: readonly string[];
  /** t= of both signatures; default now. */
  time?: Date | number;
  /** This node's validation of the chain on the message (cv= of the new seal). */
  chainValidation: ArcResult;
}

export interface ArcSet {
  instance: number;
  /** Each a complete header field without its final CRLF. */
  aar: string;
  ams: string;
  as: string;
  /** The bytes to put on top of the message: the three fields, newest first, each ending in CRLF. */
  headers: Buffer;
}

interface ExistingSet { instance: number; aar?: HeaderField; ams?: HeaderField; as?: HeaderField }

/** RFC 8617 §4.1.1: an AAR value starts with "i=N;". */
function aarInstance(field: HeaderField): number {
  const m = /^[ \t\r\n]*i[ \t\r\n]*=[ \t\r\n]*([0-9]{1,2})[ \t\r\n]*;/.exec(fieldValue(field));
  return m ? Number(m[1]) : 0;
}

function tagInstance(field: HeaderField): { instance: number; cv?: string } {
  const parsed = parseTagList(fieldValue(field));
  if (!parsed.ok) return { instance: 0 };
  const i = parsed.tags.get('i') ?? '';
  const cv = parsed.tags.get('cv')?.toLowerCase();
  return { instance: /^[0-9]{1,2}$/.test(i) ? Number(i) : 0, ...(cv ? { cv } : {}) };
}

function existingSets(headers: HeaderField[]): { sets: ExistingSet[]; highest: number; newestCv?: string } {
  const byInstance = new Map<number, ExistingSet>();
  let highest = 0;
  let newestCv: string | undefined;
  for (const field of headers) {
    if (field.name !== 'arc-authentication-results' && field.name !== 'arc-message-signature' && field.name !== 'arc-seal') continue;
    const { instance, cv } = field.name === 'arc-authentication-results' ? { instance: aarInstance(field), cv: undefined } : tagInstance(field);
    if (instance === 0) continue;
    const set = byInstance.get(instance) ?? { instance };
    byInstance.set(instance, set);
    if (field.name === 'arc-authentication-results') set.aar = field;
    else if (field.name === 'arc-message-signature') set.ams = field;
    else set.as = field;
    if (instance > highest) { highest = instance; newestCv = undefined; }
    if (instance === highest && cv) newestCv = cv;
  }
  return { sets: [...byInstance.values()].sort((a, b) => a.instance - b.instance), highest, newestCv };
}

const DOMAIN = HOST_NAME;
const SELECTOR = HOST_NAME;

/** Tags joined "; " and folded at tag boundaries only: relaxed canonicalization reads both forms the same. */
function tagList(tags: [string, string][]): string {
  return tags.map(([k, v]) => `${k}=${v}`).join(';\r\n ');
}

function field(name: string, value: string): HeaderField {
  return { name: name.toLowerCase(), raw: `${name}: ${value}` };
}

/**
 * The new ARC set for the message, or null when the chain's newest seal already says cv=fail: a failed
 * chain is not sealed again (RFC 8617 §5.1 step 2), so nothing is added.
 */
export function arcSeal(opts: ArcSealOptions): ArcSet | null {
  checkAuthservId(opts.authservId);
  if (!DOMAIN.test(opts.domain)) throw new AuthError('BAD_ARGUMENT', `"${opts.domain}" is not a signing domain`);
  if (!SELECTOR.test(opts.selector)) throw new AuthError('BAD_ARGUMENT', `"${opts.selector}" is not a selector`);
  const signHeaders = (opts.signHeaders ?? DEFAULT_ARC_SIGNED_HEADERS).map((name) => name.trim().toLowerCase());
  if (signHeaders.some((name) => !FIELD_NAME.test(name))) throw new AuthError('BAD_ARGUMENT', 'signHeaders holds something that is not a header field name');
  if (signHeaders.includes('arc-seal')) throw new AuthError('BAD_ARGUMENT', 'the AMS must not sign ARC-Seal (RFC 8617 §4.1.2)');
  const seconds = opts.time === undefined ? Math.floor(Date.now() / 1000) : typeof opts.time === 'number' ? Math.floor(opts.time) : Math.floor(opts.time.getTime() / 1000);
  if (!Number.isSafeInteger(seconds) || seconds < 0) throw new AuthError('BAD_ARGUMENT', 'the seal time is not a time');

  let key: KeyObject;
  let algorithm: SignatureAlgorithm;
  try {
    key = typeof opts.privateKey === 'string' ? createPrivateKey(opts.privateKey) : opts.privateKey;
    algorithm = algorithmOfKey(key);
  } catch (err) {
    throw new AuthError('BAD_KEY', `the ARC private key is not usable: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }

  const { headers, body } = splitMessage(opts.message);
  const { sets, highest, newestCv } = existingSets(headers);
  if (newestCv === 'fail') return null;
  const instance = highest + 1;
  if (instance > MAX_ARC_INSTANCE) throw new AuthError('CHAIN_FULL', `the chain already has ${highest} ARC sets`);
  // RFC 8617 §5.1.1: cv=none only starts a chain; a later seal says whether the chain it found passed.
  const cv = opts.chainValidation;
  if ((instance === 1) !== (cv === 'none')) {
    throw new AuthError('BAD_ARGUMENT', `cv=${cv} does not fit instance ${instance} (none for the first set, pass or fail after)`);
  }

  // Signed as the bytes that go out: UTF-8 (RFC 8601 values may carry SMTPUTF8 addresses), held as latin1
  // like the message's own fields. No results at all is RFC 8601's "none".
  const results = Buffer.from(opts.authResults.trim() || 'none', 'utf8').toString('latin1');
  const aar = field('ARC-Authentication-Results', `i=${instance}; ${opts.authservId};\r\n ${results}`);
  // The new AAR is on top of the message when the AMS is checked, so it is selectable like any field.
  const signedFields = selectSigned([aar, ...headers], signHeaders);
  const amsTags: [string, string][] = [
    ['a', algorithm], ['b', ''], ['bh', bodyHash(body, 'relaxed')], ['c', 'relaxed/relaxed'], ['d', opts.domain.toLowerCase()],
    ['h', signHeaders.join(':')], ['i', String(instance)], ['s', opts.selector], ['t', String(seconds)],
  ];
  const amsUnsigned = field('ARC-Message-Signature', tagList(amsTags));
  amsTags[1]![1] = signData(algorithm, signingInput(signedFields, amsUnsigned, 'relaxed'), key).toString('base64');
  const ams = field('ARC-Message-Signature', tagList(amsTags));

  // RFC 8617 §5.1.1: a seal signs every ARC set in instance order, AAR, AMS, AS, then the new one. A seal
  // with cv=fail signs its own set only (§5.1.2): it vouches for nothing before it.
  const chained: HeaderField[] = [];
  for (const set of cv === 'fail' ? [] : sets) {
    if (!set.aar || !set.ams || !set.as) throw new AuthError('BAD_ARGUMENT', `ARC set i=${set.instance} on the message is incomplete`);
    chained.push(set.aar, set.ams, set.as);
  }
  chained.push(aar, ams);
  const asTags: [string, string][] = [
    ['a', algorithm], ['b', ''], ['cv', cv], ['d', opts.domain.toLowerCase()], ['i', String(instance)], ['s', opts.selector], ['t', String(seconds)],
  ];
  const asUnsigned = field('ARC-Seal', tagList(asTags));
  asTags[1]![1] = signData(algorithm, signingInput(chained, asUnsigned, 'relaxed'), key).toString('base64');
  const seal = field('ARC-Seal', tagList(asTags));

  const text = (raw: string) => Buffer.from(raw, 'latin1').toString('utf8');
  return {
    instance, aar: text(aar.raw), ams: text(ams.raw), as: text(seal.raw),
    headers: Buffer.from(`${seal.raw}\r\n${ams.raw}\r\n${aar.raw}\r\n`, 'latin1'),
  };
}
