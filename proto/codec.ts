// A direct protobuf codec for the messages on the node's hot paths (Submit, Subscribe, Relay).
//
// Why: @grpc/proto-loader decodes each message twice (protobufjs decode, then toObject into the
// mapped shape, allocating an empty Buffer for every bytes default) and encodes through fromObject
// plus a Writer that allocates one operation object per field. At 2 KB that is ~7% of each node's
// main thread in the V8 profiles and a good part of its garbage (docs/DECISIONS.md 27). This codec
// reads and writes the wire format in one pass, straight from and to the shapes proto-loader produces
// with protoLoaderOptions, so handlers cannot tell the difference
// (test/proto/codec.test.ts checks both directions against proto-loader for every message it takes over).
//
// It is built from protobufjs's reflection of the same .proto file, so it cannot drift from the
// schema. It handles the field types these messages use (uint32, uint64, bool, string, bytes, nested
// messages, repeated, oneofs); a message with any other type (enums, maps, doubles, ...) keeps
// proto-loader's codec. An input value of an unexpected JavaScript type (a Long, a base64 string for
// bytes) is handed to proto-loader's serializer, which accepts those.
import protobuf from 'protobufjs';

type Scalar = 'uint32' | 'uint64' | 'bool' | 'string' | 'bytes';
const SCALARS = new Set<string>(['uint32', 'uint64', 'bool', 'string', 'bytes']);

interface FieldPlan {
  name: string;
  id: number;
  /** Scalar type, or 'message'. */
  kind: Scalar | 'message';
  repeated: boolean;
  /** The oneof this field belongs to (proto-loader with oneofs:true names the member set in it). */
  oneof?: string;
  message?: MessagePlan;
  /** Wire type of one value: WIRE_LEN (messages, strings, bytes) or WIRE_VARINT (numbers, bools). */
  wire: number;
  /** The field's key as written (repeated numbers are packed: WIRE_LEN). */
  tag: number;
  /** Repeated fields: the most entries a message may carry (REPEATED_LIMITS). */
  maxEntries: number;
}

interface MessagePlan {
  name: string;
  fields: FieldPlan[];
  byId: (FieldPlan | undefined)[];
  /** proto-loader's defaults (arrays excepted), copied by spread: same hidden class for every decode. */
  template: Record<string, unknown>;
  /** Repeated fields: each decoded message needs its own array. */
  lists: string[];
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_START_GROUP = 3;
const WIRE_END_GROUP = 4;
const WIRE_FIXED32 = 5;
const EMPTY = Buffer.alloc(0);
const MAX_DEPTH = 64;

/**
 * The most entries a repeated field may hold, by "package.Message.fieldName". Decoding allocates an
 * object per entry (an empty entry costs 2 wire bytes and ~30x that in memory), so a field past its cap
 * is refused as soon as the cap is passed, before the rest is built: the protocol's own limits
 * (PROTOCOL.md §7: 1,000 recipients per list), a Merkle path's height, a subscriber's window.
 */
export const REPEATED_LIMITS: Readonly<Record<string, number>> = {
  'aftersmtp.v1.Envelope.recipientAddresses': 1000,
  'aftersmtp.v1.Envelope.recipients': 1000,
  'aftersmtp.v1.SubmitReply.deliveredLocal': 1000,
  'aftersmtp.v1.SubmitReply.queuedRemote': 1000,
  'aftersmtp.v1.Receipt.batchPath': 64,
  'aftersmtp.v1.CosignRequest.consistency': 64,
  'aftersmtp.v1.Ack.seqs': 10_000,
  'aftersmtp.v1.Delivery.confirmedAcks': 10_000,
  'aftersmtp.v1.Delivery.labels': 100,
  'aftersmtp.v1.RelayHello.domains': 1000,
  'aftersmtp.v1.StatusReply.domains': 1000,
  // The operator's own queue listing (admin token): as long as the queue is.
  'aftersmtp.v1.QueueListReply.items': Number.MAX_SAFE_INTEGER,
};
/** Any other repeated field. */
export const DEFAULT_MAX_ENTRIES = 100_000;

/** A message that breaks a decoding limit (REPEATED_LIMITS): refused, not malformed (code LIMIT). */
export class DecodeLimitError extends RangeError {
  readonly code = 'LIMIT';
}

/** Thrown by the encoder for an input it does not map itself; the caller falls back to proto-loader. */
class Unmapped extends Error {}

/** Builds plans for `type` and every message it reaches; undefined if any field type is not handled. */
function planFor(type: protobuf.Type, plans: Map<string, MessagePlan | null>): MessagePlan | undefined {
  const key = type.fullName;
  if (plans.has(key)) return plans.get(key) ?? undefined;
  const plan: MessagePlan = { name: key.replace(/^\./, ''), fields: [], byId: [], template: {}, lists: [] };
  plans.set(key, plan); // set first: a self-referencing message resolves to this plan
  for (const field of type.fieldsArray) {
    const planned = fieldPlan(field, plans);
    if (!planned) {
      plans.set(key, null);
      return undefined;
    }
    plan.fields.push(planned);
    plan.byId[field.id] = planned;
  }
  plan.template = defaults(plan);
  plan.lists = plan.fields.filter((f) => f.repeated && !f.oneof).map((f) => f.name);
  return plan;
}

function fieldPlan(field: protobuf.Field, plans: Map<string, MessagePlan | null>): FieldPlan | undefined {
  field.resolve();
  // Maps, and proto3 `optional` fields (synthetic oneofs), map differently in proto-loader: left to it.
  if (field.map || field.options?.proto3_optional) return undefined;
  let kind: FieldPlan['kind'];
  let message: MessagePlan | undefined;
  if (field.resolvedType instanceof protobuf.Type) {
    message = planFor(field.resolvedType, plans);
    if (!message) return undefined;
    kind = 'message';
  } else if (!field.resolvedType && SCALARS.has(field.type)) {
    kind = field.type as Scalar;
  } else {
    return undefined; // enums, doubles, signed and fixed-width integers
  }
  const wire = kind === 'uint32' || kind === 'uint64' || kind === 'bool' ? WIRE_VARINT : WIRE_LEN;
  const tag = (field.id << 3) | (field.repeated ? WIRE_LEN : wire); // proto3 packs repeated numbers
  const maxEntries = REPEATED_LIMITS[`${field.parent!.fullName.replace(/^\./, '')}.${field.name}`] ?? DEFAULT_MAX_ENTRIES;
  return { name: field.name, id: field.id, kind, repeated: field.repeated, oneof: field.partOf?.name, message, wire, tag, maxEntries };
}

// ------------------------------------------------------------------------------------------------
// Decoding

class Reader {
  pos: number;
  readonly buf: Buffer;
  readonly end: number;
  constructor(buf: Buffer, pos: number, end: number) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  outOfRange(need: number): never {
    throw new RangeError(`index out of range: ${this.pos} + ${need} > ${this.end}`);
  }

  /** A varint as a Number (exact up to 2^53, like proto-loader's longs: Number). */
  varint(): number {
    const buf = this.buf;
    let pos = this.pos;
    let lo = 0;
    let shift = 0;
    // The low 28 bits fast; the rest (up to 10 bytes) with multiplication to stay exact past 2^31.
    for (; shift < 28; shift += 7) {
      if (pos >= this.end) this.outOfRange(1);
      const b = buf[pos++]!;
      lo |= (b & 0x7f) << shift;
      if (b < 0x80) { this.pos = pos; return lo; }
    }
    let value = lo;
    let scale = 2 ** 28;
    for (let i = 4; i < 10; i++) {
      if (pos >= this.end) this.outOfRange(1);
      const b = buf[pos++]!;
      if (i === 9) value += (b & 0x01) * scale; // bit 63
      else value += (b & 0x7f) * scale;
      scale *= 128;
      if (b < 0x80) { this.pos = pos; return value; }
    }
    throw new Error(`invalid varint encoding at offset ${pos}`);
  }

  /** A varint truncated to its low 32 bits (what protobuf readers do for uint32 fields and keys). */
  uint32(): number {
    const buf = this.buf;
    let pos = this.pos;
    let value = 0;
    for (let i = 0; i < 10; i++) {
      if (pos >= this.end) this.outOfRange(1);
      const b = buf[pos++]!;
      if (i < 5) value |= (b & 0x7f) << (7 * i); // bits past 31 shift out
      if (b < 0x80) { this.pos = pos; return value >>> 0; }
    }
    throw new Error(`invalid varint encoding at offset ${pos}`);
  }

  length(): number {
    const n = this.uint32();
    if (this.pos + n > this.end) this.outOfRange(n);
    return n;
  }

  skip(wireType: number, depth: number): void {
    switch (wireType) {
      case WIRE_VARINT: this.varint(); break;
      case WIRE_FIXED64: if (this.pos + 8 > this.end) this.outOfRange(8); this.pos += 8; break;
      case WIRE_LEN: this.pos += this.length(); break;
      case WIRE_START_GROUP: {
        if (depth > MAX_DEPTH) throw new Error('maximum nesting depth exceeded');
        for (;;) {
          const t = this.uint32() & 7;
          if (t === WIRE_END_GROUP) break;
          this.skip(t, depth + 1);
        }
        break;
      }
      case WIRE_FIXED32: if (this.pos + 4 > this.end) this.outOfRange(4); this.pos += 4; break;
      default: throw new Error(`invalid wire type ${wireType} at offset ${this.pos}`);
    }
  }
}

function defaults(plan: MessagePlan): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of plan.fields) {
    if (f.oneof) continue; // proto-loader leaves unset oneof members out
    if (f.repeated) out[f.name] = [];
    else if (f.kind === 'message') out[f.name] = null;
    else if (f.kind === 'string') out[f.name] = '';
    else if (f.kind === 'bytes') out[f.name] = EMPTY;
    else if (f.kind === 'bool') out[f.name] = false;
    else out[f.name] = 0;
  }
  return out;
}

function readScalar(r: Reader, kind: Scalar): unknown {
  switch (kind) {
    case 'uint64': return r.varint();
    case 'uint32': return r.uint32();
    case 'bool': return r.varint() !== 0;
    case 'string': { const n = r.length(); const s = r.buf.toString('utf8', r.pos, r.pos + n); r.pos += n; return s; }
    case 'bytes': { const n = r.length(); const b = n === 0 ? Buffer.alloc(0) : r.buf.subarray(r.pos, r.pos + n); r.pos += n; return b; }
  }
}

function decodeMessage(plan: MessagePlan, r: Reader, depth: number): Record<string, unknown> {
  if (depth > MAX_DEPTH) throw new Error('maximum nesting depth exceeded');
  const out = { ...plan.template };
  for (const name of plan.lists) out[name] = [];
  while (r.pos < r.end) {
    const key = r.uint32();
    const id = key >>> 3;
    const wireType = key & 7;
    const f = plan.byId[id];
    if (!f || id === 0) { r.skip(wireType, 0); continue; }
    if (f.repeated && f.wire === WIRE_VARINT && wireType === WIRE_LEN) {
      const n = r.length(); // packed numbers
      const end = r.pos + n;
      const list = out[f.name] as unknown[];
      const inner = new Reader(r.buf, r.pos, end);
      while (inner.pos < end) {
        if (list.length >= f.maxEntries) tooMany(plan, f);
        list.push(readScalar(inner, f.kind as Scalar));
      }
      r.pos = end;
      continue;
    }
    if (wireType !== f.wire) throw new Error(`${plan.name}.${f.name}: wire type ${wireType}, expected ${f.wire}`);
    if (f.repeated && (out[f.name] as unknown[]).length >= f.maxEntries) tooMany(plan, f);
    let value: unknown;
    if (f.kind === 'message') {
      const n = r.length();
      value = decodeMessage(f.message!, new Reader(r.buf, r.pos, r.pos + n), depth + 1);
      r.pos += n;
    } else {
      value = readScalar(r, f.kind);
    }
    if (f.repeated) (out[f.name] as unknown[]).push(value);
    else out[f.name] = value;
    if (f.oneof) out[f.oneof] = f.name;
  }
  return out;
}

function tooMany(plan: MessagePlan, f: FieldPlan): never {
  throw new DecodeLimitError(`${plan.name}.${f.name}: more than ${f.maxEntries} entries`);
}

// ------------------------------------------------------------------------------------------------
// Encoding: one pass to size (nested lengths and string byte lengths in visiting order), one to write.

function varintSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  let n = 4;
  v = Math.floor(v / 0x10000000);
  while (v > 0) { n++; v = Math.floor(v / 128); }
  return n;
}

function toUint(v: unknown, bits: 32 | 64): number {
  let n: number;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'bigint') n = Number(v);
  else if (typeof v === 'string' && /^\d+$/.test(v)) n = Number(v);
  else throw new Unmapped();
  if (!Number.isInteger(n) || n < 0 || n > (bits === 32 ? 0xffffffff : Number.MAX_SAFE_INTEGER)) throw new Unmapped();
  return n;
}

/**
 * Whether field `f` holding `v` goes on the wire. proto3 leaves off unset fields, empty lists and
 * scalars at their default; a message field and a set oneof member are written even when empty.
 */
function present(f: FieldPlan, v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (f.repeated) {
    if (!Array.isArray(v)) throw new Unmapped();
    return v.length > 0;
  }
  if (f.oneof || f.kind === 'message') return true;
  switch (f.kind) {
    case 'string': return v !== '';
    case 'bytes': return !(v instanceof Uint8Array && v.length === 0);
    case 'bool': return v !== false;
    default: return v !== 0;
  }
}

/** Collects sizes: for each length-delimited item in write order, its payload size. */
function sizeMessage(plan: MessagePlan, obj: Record<string, unknown>, sizes: number[]): number {
  let total = 0;
  for (const f of plan.fields) {
    const v = obj[f.name];
    if (!present(f, v)) continue;
    const keySize = varintSize(f.tag);
    if (f.wire === WIRE_LEN) {
      if (!f.repeated) total += keySize + sizeLenItem(f, v, sizes);
      else for (const item of v as unknown[]) total += keySize + sizeLenItem(f, item, sizes);
    } else if (f.repeated) {
      const at = sizes.length;
      sizes.push(0);
      let packed = 0;
      for (const item of v as unknown[]) packed += scalarVarintSize(f.kind as Scalar, item);
      sizes[at] = packed;
      total += keySize + varintSize(packed) + packed;
    } else {
      total += keySize + scalarVarintSize(f.kind as Scalar, v);
    }
  }
  return total;
}

function scalarVarintSize(kind: Scalar, v: unknown): number {
  if (kind === 'bool') return 1;
  return varintSize(toUint(v, kind === 'uint32' ? 32 : 64));
}

function sizeLenItem(f: FieldPlan, v: unknown, sizes: number[]): number {
  const at = sizes.length;
  sizes.push(0);
  let n: number;
  if (f.kind === 'message') {
    if (typeof v !== 'object' || v === null || v instanceof Uint8Array || Array.isArray(v)) throw new Unmapped();
    n = sizeMessage(f.message!, v as Record<string, unknown>, sizes);
  } else if (f.kind === 'string') {
    if (typeof v !== 'string') throw new Unmapped();
    n = utf8Length(v);
  } else {
    if (!(v instanceof Uint8Array)) throw new Unmapped();
    n = v.length;
  }
  sizes[at] = n;
  return varintSize(n) + n;
}

class Writer {
  pos = 0;
  next = 0;
  readonly buf: Buffer;
  readonly sizes: number[];
  constructor(buf: Buffer, sizes: number[]) {
    this.buf = buf;
    this.sizes = sizes;
  }

  varint(v: number): void {
    const buf = this.buf;
    while (v >= 0x80000000) {
      buf[this.pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    while (v >= 0x80) {
      buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[this.pos++] = v;
  }
}

/** UTF-8 length; short ASCII strings (addresses, DIDs, key ids) without a call into C++. */
function utf8Length(s: string): number {
  if (s.length > 256) return Buffer.byteLength(s, 'utf8');
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s, 'utf8');
  return s.length;
}

function writeString(s: string, n: number, w: Writer): void {
  if (n === s.length && n <= 256) {
    const buf = w.buf;
    let pos = w.pos;
    for (let i = 0; i < n; i++) buf[pos++] = s.charCodeAt(i);
    w.pos = pos;
  } else {
    w.pos += w.buf.write(s, w.pos, n, 'utf8');
  }
}

/** Writes what sizeMessage sized, in the same order (it consumes `w.sizes` as it goes). */
function writeMessage(plan: MessagePlan, obj: Record<string, unknown>, w: Writer): void {
  for (const f of plan.fields) {
    const v = obj[f.name];
    if (!present(f, v)) continue;
    if (f.wire === WIRE_LEN) {
      if (!f.repeated) { w.varint(f.tag); writeLenItem(f, v, w); } else for (const item of v as unknown[]) { w.varint(f.tag); writeLenItem(f, item, w); }
    } else if (f.repeated) {
      w.varint(f.tag);
      w.varint(w.sizes[w.next++]!);
      for (const item of v as unknown[]) writeScalar(f.kind as Scalar, item, w);
    } else {
      w.varint(f.tag);
      writeScalar(f.kind as Scalar, v, w);
    }
  }
}

function writeScalar(kind: Scalar, v: unknown, w: Writer): void {
  if (kind === 'bool') w.varint(v ? 1 : 0);
  else w.varint(toUint(v, kind === 'uint32' ? 32 : 64));
}

function writeLenItem(f: FieldPlan, v: unknown, w: Writer): void {
  const n = w.sizes[w.next++]!;
  w.varint(n);
  if (f.kind === 'message') writeMessage(f.message!, v as Record<string, unknown>, w);
  else if (f.kind === 'string') writeString(v as string, n, w);
  else { w.buf.set(v as Uint8Array, w.pos); w.pos += n; }
}

// ------------------------------------------------------------------------------------------------

export interface MessageCodec {
  encode(message: object): Buffer;
  decode(bytes: Uint8Array): Record<string, unknown>;
}

function codecFor(plan: MessagePlan, fallback?: (message: object) => Buffer): MessageCodec {
  return {
    encode(message: object): Buffer {
      const sizes: number[] = [];
      let size: number;
      try {
        size = sizeMessage(plan, message as Record<string, unknown>, sizes);
      } catch (err) {
        if (err instanceof Unmapped && fallback) return fallback(message);
        if (err instanceof Unmapped) throw new TypeError(`${plan.name}: a field value of an unexpected type`);
        throw err;
      }
      const buf = Buffer.allocUnsafe(size);
      const w = new Writer(buf, sizes);
      writeMessage(plan, message as Record<string, unknown>, w);
      if (w.pos !== size) throw new Error(`${plan.name}: encoded ${w.pos} bytes, sized ${size}`);
      return buf;
    },
    decode(bytes: Uint8Array): Record<string, unknown> {
      const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      return decodeMessage(plan, new Reader(buf, 0, buf.length), 0);
    },
  };
}

/** Loads `protoFile` the way proto-loader does (camelCase names) and returns its reflection root. */
export function loadRoot(protoFile: string): protobuf.Root {
  const root = new protobuf.Root();
  root.loadSync(protoFile, { keepCase: false });
  root.resolveAll();
  return root;
}

/** A codec for the message `fullName` (no leading dot), or undefined when it uses a type not handled here. */
export function messageCodec(root: protobuf.Root, fullName: string, fallback?: (message: object) => Buffer): MessageCodec | undefined {
  const type = root.lookup(fullName);
  if (!(type instanceof protobuf.Type)) return undefined;
  const plan = planFor(type, new Map());
  return plan ? codecFor(plan, fallback) : undefined;
}

interface MethodDefinitionLike {
  requestSerialize(v: unknown): Buffer;
  requestDeserialize(b: Buffer): unknown;
  responseSerialize(v: unknown): Buffer;
  responseDeserialize(b: Buffer): unknown;
  requestType: { type: { name: string } };
  responseType: { type: { name: string } };
}

/**
 * Puts the direct codec on every method of `packageDefinition` (a proto-loader package definition,
 * before grpc.loadPackageDefinition) whose request and response messages it handles. Returns the
 * names of the methods it took over.
 */
export function installCodecs(packageDefinition: Record<string, unknown>, root: protobuf.Root): string[] {
  const installed: string[] = [];
  const codecs = new Map<string, MessageCodec | undefined>();
  const codec = (typeName: string, fallback: (m: object) => Buffer) => {
    if (!codecs.has(typeName)) codecs.set(typeName, messageCodec(root, typeName, fallback));
    return codecs.get(typeName);
  };
  for (const [serviceName, service] of Object.entries(packageDefinition)) {
    if (!service || typeof service !== 'object' || 'format' in service) continue; // a message or enum entry
    const pkg = serviceName.slice(0, serviceName.lastIndexOf('.'));
    for (const [methodName, method] of Object.entries(service as Record<string, MethodDefinitionLike>)) {
      const request = codec(`${pkg}.${method.requestType.type.name}`, method.requestSerialize);
      const response = codec(`${pkg}.${method.responseType.type.name}`, method.responseSerialize);
      if (!request || !response) continue;
      method.requestSerialize = request.encode;
      method.requestDeserialize = request.decode;
      method.responseSerialize = response.encode;
      method.responseDeserialize = response.decode;
      installed.push(`${serviceName}/${methodName}`);
    }
  }
  return installed;
}
