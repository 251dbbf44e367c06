// ARC chain validation (RFC 8617 §5.2): mailauth does the chain, the seals and the newest
// ARC-Message-Signature; the bridge adds the two checks where mailauth's reading differs from the RFC.
//
// 1. Every ARC-Seal's tag-list is read strictly (RFC 6376 §3.2, RFC 8617 §4.1.3): an invalid tag name, a
//    duplicate tag, a stray ";" or a required tag missing in its exact (case-sensitive) spelling makes the
//    seal invalid, and so the chain fails. mailauth reads seals leniently and would let such a seal vouch.
// 2. mailauth applies DKIM's "From field not signed" rule (RFC 6376 §6.1.1) to the AMS and ignores an AMS
//    whose h= does not list From. That rule protects DKIM's claim about the author; an AMS makes none (its
//    d= counts for no DMARC alignment, RFC 8617 §4.1.2 and §7.2): it vouches that the message, as the
//    sealer passed it on, had this body (bh=, in the AMS itself) and these listed fields. So an AMS
//    without From, down to an empty h= that signs the AMS field alone, is verified on its own merits here:
//    body hash, the listed fields, the key, the signature.
import type { ARCResult } from 'mailauth';
import { bodyHash, fieldValue, selectSigned, signingInput, splitMessage, type HeaderField } from './canon.ts';
import { lookupKey, verifyData, type SignatureAlgorithm } from './keys.ts';
import { parseTagList } from './tag-list.ts';
import type { BridgeResolver } from './dns.ts';

export type ArcResult = 'pass' | 'fail' | 'none';

export interface ArcVerdict {
  result: ArcResult;
  /** The newest instance of the chain (0 when there is none). */
  instance: number;
  /** Why the chain fails, in words. */
  reason?: string;
  /** The d= of each ARC-Seal, oldest first (only when the chain passes). */
  sealers: string[];
  /** The chain passes and its newest sealer is one the node trusts (its AAR may be believed). */
  trustedSealer: boolean;
}

/** RFC 8617 §4.1.3: the tags an ARC-Seal cannot do without. */
const SEAL_REQUIRED = ['i', 'a', 'b', 'd', 's', 'cv'];
/** RFC 8617 §4.1.2 with RFC 6376 §3.5: the tags of an AMS. */
const AMS_REQUIRED = ['i', 'a', 'b', 'bh', 'd', 'h', 's'];

const fail = (instance: number, reason: string): ArcVerdict => ({ result: 'fail', instance, reason, sealers: [], trustedSealer: false });

function instanceOf(tags: Map<string, string>): number {
  const i = tags.get('i') ?? '';
  return /^[0-9]{1,2}$/.test(i) ? Number(i) : 0;
}

/** Check 1: the first ARC-Seal whose tag-list is not valid, if any. */
function invalidSeal(headers: HeaderField[]): string | undefined {
  for (const field of headers.filter((h) => h.name === 'arc-seal')) {
    const parsed = parseTagList(fieldValue(field));
    if (!parsed.ok) return `ARC-Seal tag-list: ${parsed.detail}`;
    const missing = SEAL_REQUIRED.find((tag) => !parsed.tags.has(tag));
    if (missing) return `ARC-Seal i=${parsed.tags.get('i') ?? '?'} has no ${missing}= tag`;
  }
  return undefined;
}

/** The newest AMS failed only for not signing From: mailauth validated the seals before looking at it. */
function failedOnlyForFrom(arc: ARCResult): boolean {
  return arc.status.result === 'fail' && arc.signature !== false && arc.signature?.status?.comment === 'From field not signed';
}

/** Check 2: verifies the AMS of instance `instance`, which need not sign From. */
async function verifyAms(headers: HeaderField[], body: Buffer, instance: number, resolver: BridgeResolver): Promise<string | undefined> {
  const fields = headers.filter((h) => h.name === 'arc-message-signature');
  const candidates = fields.flatMap((field) => {
    const parsed = parseTagList(fieldValue(field));
    return parsed.ok && instanceOf(parsed.tags) === instance ? [{ field, tags: parsed.tags }] : [];
  });
  if (candidates.length !== 1) return `no single valid AMS for i=${instance}`;
  const { field, tags } = candidates[0]!;
  const missing = AMS_REQUIRED.find((tag) => !tags.has(tag));
  if (missing) return `AMS i=${instance} has no ${missing}= tag`;
  const algorithm = tags.get('a')!.toLowerCase();
  if (algorithm !== 'rsa-sha256' && algorithm !== 'ed25519-sha256') return `AMS i=${instance} algorithm ${algorithm} is not allowed`;
  const [headerCanon = 'simple', bodyCanon = 'simple'] = (tags.get('c') ?? 'simple/simple').toLowerCase().split('/');
  if (!['simple', 'relaxed'].includes(headerCanon) || !['simple', 'relaxed'].includes(bodyCanon)) return `AMS i=${instance} canonicalization is unknown`;
  const lengthTag = tags.get('l');
  if (lengthTag !== undefined && !/^[0-9]{1,76}$/.test(lengthTag)) return `AMS i=${instance} l= is not a number`;
  const signed = tags.get('h')!.split(':').map((name) => name.replace(/[ \t\r\n]+/g, '')).filter((name) => name !== '');
  if (signed.some((name) => name.toLowerCase() === 'arc-seal')) return `AMS i=${instance} signs ARC-Seal`;
  const hash = bodyHash(body, bodyCanon as 'simple' | 'relaxed', lengthTag === undefined ? undefined : Number(lengthTag));
  if (hash !== tags.get('bh')!.replace(/[ \t\r\n]+/g, '')) return `AMS i=${instance} body hash does not match`;
  const key = await lookupKey(resolver, tags.get('d')!, tags.get('s')!, algorithm as SignatureAlgorithm);
  if (!key.ok) return `AMS i=${instance}: ${key.reason}`;
  const data = signingInput(selectSigned(headers, signed), field, headerCanon as 'simple' | 'relaxed');
  const signature = Buffer.from(tags.get('b')!.replace(/[ \t\r\n]+/g, ''), 'base64');
  return verifyData(algorithm as SignatureAlgorithm, data, key.key, signature) ? undefined : `AMS i=${instance} signature does not verify`;
}

function sealersOf(headers: HeaderField[]): string[] {
  return headers.filter((h) => h.name === 'arc-seal')
    .map((field) => parseTagList(fieldValue(field)))
    .flatMap((parsed) => (parsed.ok ? [{ i: instanceOf(parsed.tags), d: (parsed.tags.get('d') ?? '').toLowerCase() }] : []))
    .sort((x, y) => x.i - y.i)
    .map((seal) => seal.d);
}

/** The bridge's ARC verdict from mailauth's result and the two checks above. */
export async function arcVerdict(message: Buffer, arc: ARCResult | false, resolver: BridgeResolver, trustedSealers: readonly string[]): Promise<ArcVerdict> {
  if (!arc || arc.status.result === 'none') return { result: 'none', instance: 0, sealers: [], trustedSealer: false };
  const instance = typeof arc.i === 'number' ? arc.i : 0;
  const { headers, body } = splitMessage(message);
  const badSeal = invalidSeal(headers);
  if (badSeal) return fail(instance, badSeal);
  if (arc.status.result !== 'pass') {
    if (!failedOnlyForFrom(arc)) return fail(instance, arc.status.comment ?? 'the chain does not validate');
    const amsProblem = await verifyAms(headers, body, instance, resolver);
    if (amsProblem) return fail(instance, amsProblem);
  }
  const sealers = sealersOf(headers);
  const trusted = new Set(trustedSealers.map((d) => d.toLowerCase().replace(/\.$/, '')));
  return { result: 'pass', instance, sealers, trustedSealer: trusted.has(sealers[sealers.length - 1] ?? '') };
}
