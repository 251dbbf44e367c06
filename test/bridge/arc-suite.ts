// Reads the open ARC test suite (/work/shared/conformance/arc, see its README.md): several YAML documents
// per file, read leniently (a repeated key: the last one wins), the txt-records of all documents merged
// into one DNS map, messages turned into CRLF, and serves that map through the bridge's resolver interface.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { BridgeDnsAnswer, BridgeMxRecord, BridgeResolver } from '../../bridge/index.ts';

export const SUITE_DIR = '/work/shared/conformance/arc';

export interface SuiteCase {
  id: string;
  message: Buffer;
  fields: Record<string, unknown>;
  /** The document's shared data (domain, sel, privatekey). */
  document: Record<string, unknown>;
}

export interface Suite {
  cases: SuiteCase[];
  txtRecords: Map<string, string>;
}

export function toCrlf(text: string): string {
  return text.replace(/\r?\n/g, '\r\n');
}

export function loadSuite(file: string): Suite {
  const docs = parseAllDocuments(readFileSync(`${SUITE_DIR}/${file}`, 'utf8'), { uniqueKeys: false });
  const cases: SuiteCase[] = [];
  const txtRecords = new Map<string, string>();
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
    const data = doc.toJS() as Record<string, unknown> | null;
    if (!data) continue;
    for (const [name, value] of Object.entries((data['txt-records'] ?? {}) as Record<string, string>)) {
      // A folded YAML block carries line breaks inside the record; a TXT record has none.
      txtRecords.set(name.toLowerCase(), String(value).replace(/\n/g, ''));
    }
    for (const [id, fields] of Object.entries((data.tests ?? {}) as Record<string, Record<string, unknown>>)) {
      cases.push({ id, message: Buffer.from(toCrlf(String(fields.message ?? '')), 'utf8'), fields, document: data });
    }
  }
  return { cases, txtRecords };
}

/** The suite's DNS: TXT records from the merged map; every other name and type does not exist. */
export class SuiteResolver implements BridgeResolver {
  readonly #txt: Map<string, string>;
  constructor(txt: Map<string, string>) {
    this.#txt = txt;
  }
  async txt(name: string): Promise<BridgeDnsAnswer<string>> {
    const record = this.#txt.get(name.toLowerCase().replace(/\.$/, ''));
    return record === undefined ? { status: 'NXDOMAIN', records: [] } : { status: 'NOERROR', records: [record] };
  }
  async a(): Promise<BridgeDnsAnswer<string>> { return { status: 'NXDOMAIN', records: [] }; }
  async aaaa(): Promise<BridgeDnsAnswer<string>> { return { status: 'NXDOMAIN', records: [] }; }
  async mx(): Promise<BridgeDnsAnswer<BridgeMxRecord>> { return { status: 'NXDOMAIN', records: [] }; }
  async ptr(): Promise<BridgeDnsAnswer<string>> { return { status: 'NXDOMAIN', records: [] }; }
}
