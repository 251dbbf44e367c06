// Reading a received DMARC aggregate report, gzip, zip or plain XML, DMARCbis or RFC 7489: bounded before and while
// it is inflated, parsed without a DTD, and every element checked strictly before it is trusted.
import { isIP } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { isZip, readZipReport, ZipError } from './zip.ts';
import type { SpfResult } from '../auth/verify.ts';
import {
  DISPOSITIONS, DKIM_RESULTS, DMARC_XML_NAMESPACE, DmarcReportError, POLICY_ACTIONS, REASONS, SPF_RESULTS, type DmarcAggregateReport,
  type DmarcAlignmentMode, type DmarcDisposition, type DmarcDkimAuthResult, type DmarcOverrideReason, type DmarcPolicyAction,
  type DmarcPolicyPublished, type DmarcReportRecord,
} from './dmarc-types.ts';
import { parseXml, XmlSyntaxError, type XmlElement } from './xml.ts';

export interface DmarcParseLimits {
  /** The compressed (or plain) report as received. Default 10 MiB. */
  maxCompressedBytes?: number;
  /** The XML once inflated. Default 32 MiB. */
  maxXmlBytes?: number;
  /** Records in one report. Default 30,000 (it also bounds the elements the XML reader builds). */
  maxRecords?: number;
}

export const DEFAULT_LIMITS: Required<DmarcParseLimits> = { maxCompressedBytes: 10 * 2 ** 20, maxXmlBytes: 32 * 2 ** 20, maxRecords: 30_000 };
/** The schema nests six deep (feedback/record/auth_results/dkim/domain); a little room for extensions. */
const MAX_XML_DEPTH = 12;
/**
 * A record is about 20 elements, 4 more per DKIM result. The element bound keeps 32 MiB of tiny empty elements
 * from becoming millions of objects.
 */
const ELEMENTS_PER_RECORD = 32;

export function isGzip(body: Buffer): boolean {
  return body.length >= 2 && body[0] === 0x1f && body[1] === 0x8b;
}

function inflate(body: Buffer, maxXmlBytes: number): Buffer {
  try {
    // maxOutputLength makes zlib stop once the output passes the bound: a bomb costs that much, not its size.
    return gunzipSync(body, { maxOutputLength: maxXmlBytes });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new DmarcReportError('TOO_LARGE', `the report inflates past ${maxXmlBytes} bytes`);
    }
    throw new DmarcReportError('NOT_GZIP', `the gzip stream is damaged: ${(err as Error).message}`);
  }
}

/** The XML file of a zip archive (the form some reporters send): ZipError codes become the report's. */
function unzip(body: Buffer, maxXmlBytes: number): Buffer {
  try {
    return readZipReport(body, maxXmlBytes);
  } catch (err) {
    if (!(err instanceof ZipError)) throw err;
    throw new DmarcReportError(err.code === 'TOO_LARGE' ? 'TOO_LARGE' : err.code === 'UNSUPPORTED' ? 'UNSUPPORTED_FORMAT' : 'NOT_GZIP', `zip: ${err.message}`);
  }
}

function decodeText(xml: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(xml);
  } catch {
    // Some reporters declare windows-1252 or ISO-8859-1: Latin-1 reads their bytes close enough for the
    // report's ASCII values.
    return xml.toString('latin1');
  }
}

function child(parent: XmlElement, name: string): XmlElement | undefined {
  return parent.children.find((c) => c.name === name);
}

function childrenNamed(parent: XmlElement, name: string): XmlElement[] {
  return parent.children.filter((c) => c.name === name);
}

function invalid(message: string): never {
  throw new DmarcReportError('INVALID_REPORT', message);
}

function required(parent: XmlElement, name: string, where: string): XmlElement {
  return child(parent, name) ?? invalid(`${where} has no <${name}>`);
}

function text(parent: XmlElement, name: string, where: string): string {
  return required(parent, name, where).text.trim();
}

function optionalText(parent: XmlElement, name: string): string | undefined {
  const c = child(parent, name);
  const value = c?.text.trim();
  return value === undefined || value === '' ? undefined : value;
}

function oneOf<T extends string>(value: string | undefined, allowed: readonly string[], what: string): T | undefined {
  if (value === undefined) return undefined;
  const lower = value.toLowerCase();
  if (!allowed.includes(lower)) invalid(`${what} "${value.slice(0, 40)}" is not one of ${allowed.join(', ')}`);
  return lower as T;
}

function integer(value: string, what: string): number {
  if (!/^[0-9]{1,15}$/.test(value)) invalid(`${what} "${value.slice(0, 40)}" is not a non-negative integer`);
  return Number(value);
}

function readRecord(record: XmlElement, index: number): DmarcReportRecord {
  const where = `record ${index + 1}`;
  const row = required(record, 'row', where);
  const sourceIp = text(row, 'source_ip', where);
  if (isIP(sourceIp) === 0) invalid(`${where}: source_ip "${sourceIp.slice(0, 60)}" is not an IP address`);
  const pe = required(row, 'policy_evaluated', where);
  const identifiers = required(record, 'identifiers', where);
  const auth = required(record, 'auth_results', where);
  const spf = child(auth, 'spf');
  const envelopeFrom = optionalText(identifiers, 'envelope_from');
  const envelopeTo = optionalText(identifiers, 'envelope_to');
  return {
    sourceIp,
    count: integer(text(row, 'count', where), `${where}: count`),
    policyEvaluated: {
      disposition: oneOf<DmarcDisposition>(text(pe, 'disposition', where), DISPOSITIONS, 'disposition')!,
      dkim: oneOf<'pass' | 'fail'>(text(pe, 'dkim', where), ['pass', 'fail'], 'policy_evaluated dkim')!,
      spf: oneOf<'pass' | 'fail'>(text(pe, 'spf', where), ['pass', 'fail'], 'policy_evaluated spf')!,
      reasons: childrenNamed(pe, 'reason').map((r) => {
        const comment = optionalText(r, 'comment');
        return { type: oneOf<DmarcOverrideReason>(text(r, 'type', where), REASONS, 'reason')!, ...(comment !== undefined ? { comment } : {}) };
      }),
    },
    identifiers: {
      headerFrom: text(identifiers, 'header_from', where),
      ...(envelopeFrom !== undefined ? { envelopeFrom } : {}),
      ...(envelopeTo !== undefined ? { envelopeTo } : {}),
    },
    authResults: {
      dkim: childrenNamed(auth, 'dkim').map((d) => {
        const selector = optionalText(d, 'selector');
        const humanResult = optionalText(d, 'human_result');
        return {
          domain: text(d, 'domain', where),
          ...(selector !== undefined ? { selector } : {}),
          result: oneOf<DmarcDkimAuthResult>(text(d, 'result', where), DKIM_RESULTS, 'DKIM result')!,
          ...(humanResult !== undefined ? { humanResult } : {}),
        };
      }),
      ...(spf ? {
        spf: (() => {
          const scope = oneOf<'mfrom' | 'helo'>(optionalText(spf, 'scope'), ['mfrom', 'helo'], 'SPF scope');
          const humanResult = optionalText(spf, 'human_result');
          return {
            domain: text(spf, 'domain', where),
            ...(scope !== undefined ? { scope } : {}),
            result: oneOf<SpfResult>(text(spf, 'result', where), SPF_RESULTS, 'SPF result')!,
            ...(humanResult !== undefined ? { humanResult } : {}),
          };
        })(),
      } : {}),
    },
  };
}

/**
 * A received aggregate report: gzip, zip or plain XML, DMARCbis or RFC 7489. Throws DmarcReportError: TOO_LARGE
 * (over the bounds, checked before and while inflating), NOT_GZIP (a damaged gzip or zip), UNSUPPORTED_FORMAT
 * (zip features a report does not use: encryption, zip64, other methods), BAD_XML,
 * INVALID_REPORT.
 */
export function parseDmarcReport(body: Buffer, limits: DmarcParseLimits = {}): DmarcAggregateReport {
  const bounds = { ...DEFAULT_LIMITS, ...limits };
  if (body.length > bounds.maxCompressedBytes) throw new DmarcReportError('TOO_LARGE', `a report of ${body.length} bytes is over ${bounds.maxCompressedBytes}`);
  const xml = isZip(body) ? unzip(body, bounds.maxXmlBytes) : isGzip(body) ? inflate(body, bounds.maxXmlBytes) : body;
  if (xml.length > bounds.maxXmlBytes) throw new DmarcReportError('TOO_LARGE', `the report's XML is over ${bounds.maxXmlBytes} bytes`);
  let root: XmlElement;
  try {
    root = parseXml(decodeText(xml), { maxDepth: MAX_XML_DEPTH, maxElements: bounds.maxRecords * ELEMENTS_PER_RECORD + 1024 });
  } catch (err) {
    if (err instanceof XmlSyntaxError) throw new DmarcReportError('BAD_XML', err.message);
    throw err;
  }
  if (root.name !== 'feedback') invalid(`the root element is <${root.name.slice(0, 40)}>, not <feedback>`);
  const xmlns = root.attributes.get('xmlns');
  if (xmlns !== undefined && xmlns !== DMARC_XML_NAMESPACE && !xmlns.startsWith('http://dmarc.org/dmarc-xml/')) {
    invalid(`the namespace "${xmlns.slice(0, 80)}" is not DMARC's`);
  }
  const meta = required(root, 'report_metadata', 'the report');
  const range = required(meta, 'date_range', 'report_metadata');
  const pp = required(root, 'policy_published', 'the report');
  const records = childrenNamed(root, 'record');
  if (records.length > bounds.maxRecords) throw new DmarcReportError('TOO_LARGE', `more than ${bounds.maxRecords} records`);
  const extraContactInfo = optionalText(meta, 'extra_contact_info');
  const generator = optionalText(meta, 'generator');
  const errors = childrenNamed(meta, 'error').map((e) => e.text.trim());
  const pct = optionalText(pp, 'pct');
  const fo = optionalText(pp, 'fo');
  const begin = integer(text(range, 'begin', 'date_range'), 'begin');
  const end = integer(text(range, 'end', 'date_range'), 'end');
  if (end < begin) invalid(`the date range ends (${end}) before it begins (${begin})`);
  const policyPublished: DmarcPolicyPublished = {
    domain: text(pp, 'domain', 'policy_published').toLowerCase(),
    p: oneOf<DmarcPolicyAction>(text(pp, 'p', 'policy_published'), POLICY_ACTIONS, 'p')!,
  };
  const optional = {
    sp: oneOf<DmarcPolicyAction>(optionalText(pp, 'sp'), POLICY_ACTIONS, 'sp'),
    np: oneOf<DmarcPolicyAction>(optionalText(pp, 'np'), POLICY_ACTIONS, 'np'),
    adkim: oneOf<DmarcAlignmentMode>(optionalText(pp, 'adkim'), ['r', 's'], 'adkim'),
    aspf: oneOf<DmarcAlignmentMode>(optionalText(pp, 'aspf'), ['r', 's'], 'aspf'),
    discoveryMethod: oneOf<'psl' | 'treewalk'>(optionalText(pp, 'discovery_method'), ['psl', 'treewalk'], 'discovery_method'),
    fo,
    testing: oneOf<'n' | 'y'>(optionalText(pp, 'testing'), ['n', 'y'], 'testing'),
    pct: pct !== undefined ? integer(pct, 'pct') : undefined,
  };
  for (const [key, value] of Object.entries(optional)) if (value !== undefined) Object.assign(policyPublished, { [key]: value });
  return {
    orgName: text(meta, 'org_name', 'report_metadata'),
    email: text(meta, 'email', 'report_metadata'),
    ...(extraContactInfo !== undefined ? { extraContactInfo } : {}),
    reportId: text(meta, 'report_id', 'report_metadata'),
    dateRange: { begin, end },
    ...(errors.length > 0 ? { errors } : {}),
    ...(generator !== undefined ? { generator } : {}),
    policyPublished,
    records: records.map(readRecord),
  };
}
