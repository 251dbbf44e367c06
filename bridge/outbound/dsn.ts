// Delivery status notifications (RFC 3464, in the multipart/report container of RFC 6522): the node's bounce
// or delay notice to a sender, and the reading of one (the node reverses SRS bounces and maps per-recipient
// results). What came from a remote server (its reply text, its host name) is sanitised into the report's
// fields, never trusted to be one line of ASCII.
import { splitMessage } from '../auth/canon.ts';
import { HOST_NAME } from '../auth/errors.ts';
import { rfc5322Date } from '../inbound/message.ts';
import {
  boundaryFor, contentType, crlfLines, decodeBody, foldList, HEADER_CONTROL, hasEightBit, mailboxProblem, multipartMessage, multipartParts, toCrlf, transferEncoding,
} from './mime.ts';

export type DsnErrorCode =
  /** A caller's value for a header field holds a line break or a control character. */
  | 'HEADER_INJECTION'
  /** Another argument of buildDsn is not usable (address, host name, status, action, date, message id). */
  | 'BAD_ARGUMENT'
  /** parseDsn: not a multipart/report of report-type delivery-status with a delivery-status part. */
  | 'NOT_DSN'
  /** parseDsn: a report whose fields cannot be read, or that is over the bounds. */
  | 'MALFORMED';

export class DsnError extends Error {
  readonly code: DsnErrorCode;
  constructor(code: DsnErrorCode, message: string) {
    super(message);
    this.name = 'DsnError';
    this.code = code;
  }
}

export type DsnAction = 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded';

export interface DsnRecipient {
  /** The recipient as the node last tried it (Final-Recipient). */
  address: string;
  /** ORCPT (RFC 3461) as received (`rfc822;addr`, xtext), or the address the sender first gave. */
  originalRecipient?: string;
  action: DsnAction;
  /** RFC 3463 status; its class must fit the action (5 failed, 4 delayed, 2 otherwise). */
  status: string;
  /** The host that gave the answer. */
  remoteMta?: string;
  /** The remote server's reply (or the node's own); any text: it is made one ASCII line, cut and folded. */
  diagnostic?: { type: 'smtp'; text: string };
  lastAttemptDate?: Date;
  willRetryUntil?: Date;
}

export interface DsnInput {
  /** The node's host name (Reporting-MTA). */
  reportingMta: string;
  /** When the node accepted the message. */
  arrivalDate: Date;
  /** ENVID (RFC 3461) as received, xtext. */
  originalEnvid?: string;
  /** The postmaster address the notice comes from (its envelope sender is the null path). */
  from: string;
  /** The original message's envelope sender. */
  to: string;
  recipients: readonly DsnRecipient[];
  /**
   * The message as the node queued it; absent when the node cannot read it (mail it relayed sealed to the
   * recipients' keys): the report then has no third part (RFC 6522 makes it optional).
   */
  original?: Buffer;
  /** RET (RFC 3461): the whole message, or its header section only. */
  returnContent: 'FULL' | 'HDRS';
  /** The human-readable part; default a sentence per recipient. */
  humanText?: string;
  /** The notice's Message-ID value without angle brackets. */
  messageId: string;
  date: Date;
}

/** A returned message over this size comes back as its header section only (text/rfc822-headers). */
export const MAX_RETURNED_MESSAGE = 256 * 1024;
/** A diagnostic is cut to this many characters: with its field name it stays within one 998-octet line. */
const MAX_DIAGNOSTIC = 900;
const ACTIONS: readonly DsnAction[] = ['failed', 'delayed', 'delivered', 'relayed', 'expanded'];
const STATUS = /^([245])\.[0-9]{1,3}\.[0-9]{1,3}$/;
const MSG_ID = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9!#$%&'*+/=?^_`{|}~.[\]-]+$/;
/** RFC 3461 §4 xtext: printable ASCII except "+" and "=", and "+" HEX HEX. */
const XTEXT = /^(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})+$/;

function refuse(what: string, value: string): never {
  if (HEADER_CONTROL.test(value)) throw new DsnError('HEADER_INJECTION', `${what} holds a line break or a control character`);
  throw new DsnError('BAD_ARGUMENT', `${what} "${value}" is not usable`);
}

function checkMailbox(what: string, address: string): void {
  if (mailboxProblem(address) !== null) refuse(what, address);
}

function checkDate(what: string, date: Date): void {
  if (!Number.isFinite(date.getTime())) throw new DsnError('BAD_ARGUMENT', `${what} is not a time`);
}

/**
 * Text from elsewhere as a one-line ASCII field value: line breaks and controls become spaces, other
 * non-ASCII characters "?", runs of spaces one, and the result is cut to `max` characters.
 */
function oneLine(text: string, max: number): string {
  return text.replace(/[\x00-\x1f\x7f]+/g, ' ').replace(/[^\x00-\x7f]/g, '?').replace(/ {2,}/g, ' ').trim().slice(0, max);
}

/**
 * An address as RFC 3464 writes it: `rfc822; addr` for ASCII, RFC 6533's `utf-8; ` with \x{HEX} escapes for
 * a UTF-8 address (so the report stays 7-bit).
 */
function typedAddress(address: string): string {
  if (!hasEightBit(address)) return `rfc822; ${address}`;
  const escaped = [...address].map((ch) => {
    const cp = ch.codePointAt(0)!;
    return cp > 0x7e || cp < 0x21 || ch === '+' || ch === '=' || ch === '\\' ? `\\x{${cp.toString(16).toUpperCase()}}` : ch;
  }).join('');
  return `utf-8; ${escaped}`;
}

/** ORCPT as received is "type;xtext": the field carries it xtext-decoded (RFC 3461 §6.3); a bare address is rfc822. */
function originalRecipient(value: string): string {
  const m = /^([A-Za-z0-9-]{1,32});(.*)$/s.exec(value);
  if (!m) return typedAddress(oneLine(value, 500).replace(/ /g, ''));
  const decoded = m[2]!.replace(/\+([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  return `${m[1]!.toLowerCase()}; ${oneLine(decoded, 500).replace(/ /g, '')}`;
}

function statusField(name: string, value: string): string {
  return `${name}: ${value}\r\n`;
}

function subjectFor(recipients: readonly DsnRecipient[]): string {
  if (recipients.some((r) => r.action === 'failed')) return 'Undelivered Mail Returned to Sender';
  if (recipients.some((r) => r.action === 'delayed')) return 'Delayed Mail (still being retried)';
  return 'Successful Mail Delivery Report';
}

function defaultHumanText(input: DsnInput): string {
  const phrase: Record<DsnAction, string> = {
    failed: 'could not be delivered to', delayed: 'has not yet been delivered to', delivered: 'was delivered to',
    relayed: 'was relayed, without further notification, towards', expanded: 'was delivered to and forwarded from',
  };
  return [
    `This is the mail system at ${input.reportingMta}.`,
    '',
    ...input.recipients.map((r) => {
      const why = r.diagnostic ? ` The server said: ${oneLine(r.diagnostic.text, 300)}` : '';
      const retry = r.action === 'delayed' && r.willRetryUntil ? ` Delivery will be retried until ${rfc5322Date(r.willRetryUntil)}.` : '';
      return `Your message ${phrase[r.action]} ${r.address} (${r.status}).${why}${retry}`;
    }),
    '',
  ].join('\r\n');
}

/** The header section of a message (through its last field's CRLF), cut at a field boundary to `max` octets. */
function headerSection(message: Buffer, max: number): Buffer {
  const { headers } = splitMessage(message);
  const kept: Buffer[] = [];
  let size = 0;
  for (const field of headers) {
    const bytes = Buffer.from(`${field.raw}\r\n`, 'latin1');
    if (size + bytes.length > max) break;
    kept.push(bytes);
    size += bytes.length;
  }
  return Buffer.concat(kept);
}

function part(headers: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${headers}\r\n`, 'latin1'), body]);
}

/** The notice as RFC 5322 bytes (CRLF), to be sent with the null reverse-path. Throws a DsnError for a bad argument. */
export function buildDsn(input: DsnInput): Buffer {
  if (!HOST_NAME.test(input.reportingMta)) refuse('the reporting MTA', input.reportingMta);
  checkMailbox('the From address', input.from);
  checkMailbox('the To address', input.to);
  if (!MSG_ID.test(input.messageId)) refuse('the Message-ID', input.messageId);
  if (input.originalEnvid !== undefined && (!XTEXT.test(input.originalEnvid) || input.originalEnvid.length > 100)) refuse('the ENVID', input.originalEnvid);
  checkDate('the arrival date', input.arrivalDate);
  checkDate('the date', input.date);
  if (input.recipients.length === 0) throw new DsnError('BAD_ARGUMENT', 'a DSN reports on at least one recipient');
  for (const r of input.recipients) {
    checkMailbox('a recipient', r.address);
    if (!ACTIONS.includes(r.action)) throw new DsnError('BAD_ARGUMENT', `"${String(r.action)}" is not a DSN action`);
    const cls = STATUS.exec(r.status)?.[1];
    const expected = r.action === 'failed' ? '5' : r.action === 'delayed' ? '4' : '2';
    if (cls !== expected) throw new DsnError('BAD_ARGUMENT', `status "${r.status}" does not fit action ${r.action} (RFC 3464 §2.3.4: class ${expected})`);
    if (r.lastAttemptDate) checkDate('a last attempt date', r.lastAttemptDate);
    if (r.willRetryUntil) checkDate('a retry limit', r.willRetryUntil);
  }

  const perMessage = [
    statusField('Reporting-MTA', `dns; ${input.reportingMta}`),
    input.originalEnvid !== undefined ? statusField('Original-Envelope-Id', input.originalEnvid) : '',
    statusField('Arrival-Date', rfc5322Date(input.arrivalDate)),
  ].join('');
  const perRecipient = input.recipients.map((r) => [
    r.originalRecipient !== undefined ? statusField('Original-Recipient', originalRecipient(r.originalRecipient)) : '',
    statusField('Final-Recipient', typedAddress(r.address)),
    statusField('Action', r.action),
    statusField('Status', r.status),
    // A host name from DNS (an MX target): kept to the characters a host name may have.
    r.remoteMta ? statusField('Remote-MTA', `dns; ${r.remoteMta.replace(/[^A-Za-z0-9.:[\]-]/g, '?').slice(0, 255)}`) : '',
    r.diagnostic ? statusField('Diagnostic-Code', foldList('Diagnostic-Code', ['smtp;', ...oneLine(r.diagnostic.text, MAX_DIAGNOSTIC).split(' ')], ' ')) : '',
    r.lastAttemptDate ? statusField('Last-Attempt-Date', rfc5322Date(r.lastAttemptDate)) : '',
    r.willRetryUntil ? statusField('Will-Retry-Until', rfc5322Date(r.willRetryUntil)) : '',
  ].join(''));
  const status = Buffer.from([perMessage, ...perRecipient].join('\r\n'), 'latin1');

  const human = transferEncoding(crlfLines(Buffer.from(input.humanText ?? defaultHumanText(input), 'utf8')));
  const eightBit = (data: Buffer) => (hasEightBit(data) ? 'Content-Transfer-Encoding: 8bit\r\n' : '');
  const parts = [
    part(`Content-Type: text/plain; charset=utf-8\r\n${human.encoding === '7bit' ? '' : `Content-Transfer-Encoding: ${human.encoding}\r\n`}`, human.body),
    part('Content-Type: message/delivery-status\r\n', status),
  ];
  if (input.original) {
    const original = crlfLines(input.original);
    // message/rfc822 allows only 7bit, 8bit or binary (RFC 2046 §5.2.1): an original that would need more
    // (or is too big) comes back as its header section.
    const full = input.returnContent === 'FULL' && original.length <= MAX_RETURNED_MESSAGE && transferEncoding(original).encoding !== 'quoted-printable';
    const returned = full ? original : headerSection(toCrlf(input.original), MAX_RETURNED_MESSAGE);
    parts.push(part(`Content-Type: ${full ? 'message/rfc822' : 'text/rfc822-headers'}\r\n${eightBit(returned)}`, returned));
  }
  const boundary = boundaryFor(parts);
  const anyEightBit = parts.some((p) => hasEightBit(p));
  const head = [
    `From: Mail Delivery System <${input.from}>`,
    `To: <${input.to}>`,
    `Subject: ${subjectFor(input.recipients)}`,
    `Date: ${rfc5322Date(input.date)}`,
    `Message-ID: <${input.messageId}>`,
    // RFC 3834 §5: a DSN is an automatic response; nothing should answer it automatically.
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status;\r\n boundary="${boundary}"`,
    ...(anyEightBit ? ['Content-Transfer-Encoding: 8bit'] : []),
    '',
    'This is a MIME-encapsulated delivery status notification.',
    '',
  ].join('\r\n');
  // Each part keeps its last line end: the CRLF multipartMessage adds belongs to the delimiter.
  return multipartMessage(head, boundary, parts.map(crlfLines));
}

export interface ParsedDsnRecipient {
  /** Final-Recipient's address (RFC 6533 \x{HEX} escapes decoded). */
  finalRecipient: string;
  originalRecipient?: string;
  action: DsnAction;
  /** RFC 3463 status, e.g. "5.1.1". */
  status: string;
  remoteMta?: string;
  /** Diagnostic-Code unfolded, e.g. "smtp; 550 5.1.1 no such user". */
  diagnostic?: string;
}

export interface ParsedDsn {
  reportingMta?: string;
  originalEnvid?: string;
  arrivalDate?: string;
  recipients: ParsedDsnRecipient[];
}

/** Bounds on a report read from outside (a bounce from any server). */
const MAX_STATUS_PART = 64 * 1024;
const MAX_RECIPIENTS = 1000;
const MAX_DSN_BYTES = 16 * 1024 * 1024;

/** RFC 3464 §2.1: groups of fields separated by blank lines, each a map of lower-case name to unfolded value. */
function fieldGroups(text: string): Map<string, string>[] {
  return text.split(/\r\n(?:[ \t]*\r\n)+/).map((group) => {
    const fields = new Map<string, string>();
    for (const line of group.split(/\r\n(?![ \t])/)) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      if (!fields.has(name)) fields.set(name, line.slice(colon + 1).replace(/\r\n/g, '').trim());
    }
    return fields;
  }).filter((g) => g.size > 0);
}

/** "type; address" to the address (RFC 6533 \x{HEX} escapes decoded), comments dropped. */
function addressOf(value: string): string {
  const withoutComments = value.replace(/\((?:[^()\\]|\\.)*\)/g, '').trim();
  const semi = withoutComments.indexOf(';');
  const address = (semi < 0 ? withoutComments : withoutComments.slice(semi + 1)).trim();
  return address.replace(/\\x\{([0-9A-Fa-f]{1,6})\}/g, (_, h: string) => {
    const cp = parseInt(h, 16);
    return cp <= 0x10ffff ? String.fromCodePoint(cp) : '?';
  });
}

/**
 * The recipients' results of a delivery status notification (RFC 3464), this node's or another MTA's.
 * Throws NOT_DSN for anything else, MALFORMED for a report it cannot read or one over its bounds.
 */
export function parseDsn(message: Buffer): ParsedDsn {
  if (message.length > MAX_DSN_BYTES) throw new DsnError('MALFORMED', `a DSN over ${MAX_DSN_BYTES} bytes is not read`);
  const { headers, body } = splitMessage(toCrlf(message));
  const top = contentType(headers);
  const boundary = top.params.get('boundary');
  if (top.type !== 'multipart/report' || top.params.get('report-type')?.toLowerCase() !== 'delivery-status' || !boundary) {
    throw new DsnError('NOT_DSN', `a ${top.type || 'message without a content type'} is not a delivery status notification`);
  }
  if (boundary.length > 200) throw new DsnError('MALFORMED', 'the boundary is longer than RFC 2046 allows');
  const statusPart = multipartParts(body, boundary)
    .map((p) => splitMessage(p))
    .find((p) => ['message/delivery-status', 'message/global-delivery-status'].includes(contentType(p.headers).type));
  if (!statusPart) throw new DsnError('NOT_DSN', 'the report has no delivery-status part');
  if (statusPart.body.length > MAX_STATUS_PART) throw new DsnError('MALFORMED', `the delivery-status part is over ${MAX_STATUS_PART} bytes`);
  const groups = fieldGroups(decodeBody(statusPart.headers, statusPart.body).toString('utf8'));
  const perMessage = groups[0];
  if (!perMessage || groups.length < 2) throw new DsnError('MALFORMED', 'the delivery-status part has no per-recipient fields');
  if (groups.length - 1 > MAX_RECIPIENTS) throw new DsnError('MALFORMED', `the report names more than ${MAX_RECIPIENTS} recipients`);
  const recipients = groups.slice(1).map((g, i): ParsedDsnRecipient => {
    const final = g.get('final-recipient');
    const action = g.get('action')?.replace(/\(.*\)/g, '').trim().toLowerCase();
    const status = /^([245]\.[0-9]{1,3}\.[0-9]{1,3})\b/.exec(g.get('status') ?? '')?.[1];
    if (!final || !action || !(ACTIONS as readonly string[]).includes(action) || !status) {
      throw new DsnError('MALFORMED', `recipient ${i + 1} of the report lacks Final-Recipient, a known Action or a Status`);
    }
    const remote = g.get('remote-mta');
    const original = g.get('original-recipient');
    const diagnostic = g.get('diagnostic-code');
    return {
      finalRecipient: addressOf(final),
      ...(original ? { originalRecipient: addressOf(original) } : {}),
      action: action as DsnAction,
      status,
      ...(remote ? { remoteMta: addressOf(remote) } : {}),
      ...(diagnostic ? { diagnostic } : {}),
    };
  });
  const reportingMta = perMessage.get('reporting-mta');
  const envid = perMessage.get('original-envelope-id');
  const arrival = perMessage.get('arrival-date');
  return {
    ...(reportingMta ? { reportingMta: addressOf(reportingMta) } : {}),
    ...(envid ? { originalEnvid: envid } : {}),
    ...(arrival ? { arrivalDate: arrival } : {}),
    recipients,
  };
}
