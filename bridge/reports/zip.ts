// Reading the one file of a received report's zip archive (the form some large reporters send DMARC
// aggregate reports in), from the archive's own index, as PKWARE's APPNOTE lays it out: the end record,
// then the central directory, then the entry's local header and its data, stored or deflated. Nothing of
// it is trusted: every offset is checked against the archive's length, the declared size against the bound
// before inflating, the inflated size while inflating (zlib stops at the bound), and the CRC-32 after.
import { crc32, inflateRawSync } from 'node:zlib';

export type ZipErrorCode =
  /** The entry inflates, or says it inflates, past the bound. */
  | 'TOO_LARGE'
  /** Not a zip archive the reader can follow: a broken index, a short entry, a CRC mismatch. */
  | 'DAMAGED'
  /** A zip feature a report never needs: encryption, zip64, a method other than stored or deflate. */
  | 'UNSUPPORTED';

export class ZipError extends Error {
  readonly code: ZipErrorCode;
  constructor(code: ZipErrorCode, message: string) {
    super(message);
    this.name = 'ZipError';
    this.code = code;
  }
}

const END_RECORD = 0x06054b50;
const CENTRAL_ENTRY = 0x02014b50;
const LOCAL_ENTRY = 0x04034b50;
const END_RECORD_LENGTH = 22;
const CENTRAL_ENTRY_LENGTH = 46;
const LOCAL_ENTRY_LENGTH = 30;
/** A report archive holds one file; an index longer than this is not a report's. */
const MAX_ENTRIES = 16;

export function isZip(body: Buffer): boolean {
  return body.length >= 4 && body.readUInt32LE(0) === LOCAL_ENTRY;
}

interface Entry { name: string; method: number; flags: number; crc: number; compressedSize: number; size: number; localOffset: number }

/**
 * The bytes of the archive's report file: its first entry named `*.xml`, else its only entry. Throws
 * ZipError (TOO_LARGE past `maxBytes`, DAMAGED, UNSUPPORTED).
 */
export function readZipReport(body: Buffer, maxBytes: number): Buffer {
  const entries = centralDirectory(body);
  const entry = entries.find((e) => /\.xml$/i.test(e.name)) ?? (entries.length === 1 ? entries[0] : undefined);
  if (!entry) throw new ZipError('DAMAGED', `the archive holds ${entries.length} files and none is named *.xml`);
  if (entry.flags & 0x1) throw new ZipError('UNSUPPORTED', 'the report file is encrypted');
  if (entry.size > maxBytes) throw new ZipError('TOO_LARGE', `the report file says it is ${entry.size} bytes, over ${maxBytes}`);
  const data = entryData(body, entry);
  let out: Buffer;
  if (entry.method === 0) {
    out = data;
  } else if (entry.method === 8) {
    try {
      out = inflateRawSync(data, { maxOutputLength: maxBytes });
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
        throw new ZipError('TOO_LARGE', `the report file inflates past ${maxBytes} bytes`);
      }
      throw new ZipError('DAMAGED', `the report file's deflate stream is damaged: ${(err as Error).message}`);
    }
  } else {
    throw new ZipError('UNSUPPORTED', `the report file is compressed with method ${entry.method} (stored and deflate are read)`);
  }
  if (out.length !== entry.size || (crc32(out) >>> 0) !== entry.crc) throw new ZipError('DAMAGED', 'the report file does not match its size and CRC-32');
  return out;
}

/** The entries the end record's central directory lists. */
function centralDirectory(body: Buffer): Entry[] {
  const end = findEndRecord(body);
  const count = body.readUInt16LE(end + 10);
  const size = body.readUInt32LE(end + 12);
  const offset = body.readUInt32LE(end + 16);
  if (count === 0xffff || size === 0xffffffff || offset === 0xffffffff) throw new ZipError('UNSUPPORTED', 'zip64 archives are not read');
  if (count > MAX_ENTRIES) throw new ZipError('DAMAGED', `the archive lists ${count} files; a report's holds one`);
  if (offset + size > end) throw new ZipError('DAMAGED', 'the central directory lies outside the archive');
  const entries: Entry[] = [];
  let at = offset;
  for (let i = 0; i < count; i++) {
    if (at + CENTRAL_ENTRY_LENGTH > offset + size || body.readUInt32LE(at) !== CENTRAL_ENTRY) throw new ZipError('DAMAGED', 'a central directory entry is broken');
    const nameLength = body.readUInt16LE(at + 28);
    const next = at + CENTRAL_ENTRY_LENGTH + nameLength + body.readUInt16LE(at + 30) + body.readUInt16LE(at + 32);
    if (next > offset + size) throw new ZipError('DAMAGED', 'a central directory entry runs past the directory');
    entries.push({
      flags: body.readUInt16LE(at + 8),
      method: body.readUInt16LE(at + 10),
      crc: body.readUInt32LE(at + 16),
      compressedSize: body.readUInt32LE(at + 20),
      size: body.readUInt32LE(at + 24),
      localOffset: body.readUInt32LE(at + 42),
      name: body.subarray(at + CENTRAL_ENTRY_LENGTH, at + CENTRAL_ENTRY_LENGTH + nameLength).toString('latin1'),
    });
    at = next;
  }
  return entries;
}

/** The end record: last in the archive, before a comment of at most 65535 bytes. */
function findEndRecord(body: Buffer): number {
  const last = body.length - END_RECORD_LENGTH;
  for (let at = last; at >= 0 && at >= last - 0xffff; at--) {
    if (body.readUInt32LE(at) === END_RECORD && at + END_RECORD_LENGTH + body.readUInt16LE(at + 20) === body.length) return at;
  }
  throw new ZipError('DAMAGED', 'no end of central directory record');
}

/** The entry's stored bytes, after its local header (whose name and extra field may differ in length from the directory's). */
function entryData(body: Buffer, entry: Entry): Buffer {
  const at = entry.localOffset;
  if (at + LOCAL_ENTRY_LENGTH > body.length || body.readUInt32LE(at) !== LOCAL_ENTRY) throw new ZipError('DAMAGED', 'the report file\'s local header is missing');
  const start = at + LOCAL_ENTRY_LENGTH + body.readUInt16LE(at + 26) + body.readUInt16LE(at + 28);
  if (start + entry.compressedSize > body.length) throw new ZipError('DAMAGED', 'the report file runs past the archive');
  return body.subarray(start, start + entry.compressedSize);
}
