// The RFC 5322 message the bridge sends for a message an app wrote to a legacy address: either the app's own
// RFC 5322 message (content type message/rfc822), completed, or one built around the app's body. Every value
// that becomes a header field is checked here, so nothing a sender controls can add a field or a line.
import { splitMessage, type HeaderField } from '../auth/canon.ts';
import { FIELD_NAME } from '../auth/errors.ts';
import { headerFrom, rfc5322Date } from '../inbound/message.ts';
import { crlfLines, foldList, HEADER_CONTROL, hasEightBit, longestLine, mailboxProblem, MAX_LINE_OCTETS, transferEncoding, unstructuredValue } from './mime.ts';

export type ComposeErrorCode =
  /** A value for a header field holds CR, LF or another control character. */
  | 'HEADER_INJECTION'
  /** An address is not a mailbox (addr-spec) the bridge can write into a header and an envelope. */
  | 'BAD_ADDRESS'
  /** The RFC 5322 body's From names someone other than the authenticated sender. */
  | 'SENDER_MISMATCH'
  /** The RFC 5322 body is not a message (a header line without a field name) or cannot be sent as it is. */
  | 'BAD_MESSAGE'
  /** A line is over 998 octets where re-encoding would change the sender's MIME structure. */
  | 'LINE_TOO_LONG'
  /** Another argument is not usable (Message-ID, content type, receipt, an extra header's name or value). */
  | 'BAD_ARGUMENT';

export class ComposeError extends Error {
  readonly code: ComposeErrorCode;
  constructor(code: ComposeErrorCode, message: string) {
    super(message);
    this.name = 'ComposeError';
    this.code = code;
  }
}

/** The header field that ties the mail to the sender's log entry (origin of the log, index of the leaf). */
export const RECEIPT_FIELD = 'AfterSMTP-Receipt';

export interface ComposeInput {
  /** The authenticated sender's address (addr-spec). */
  from: string;
  to: readonly string[];
  cc?: readonly string[];
  subject?: string;
  date: Date;
  /** The Message-ID value without angle brackets. */
  messageId: string;
  /** The AfterSMTP message's content type; '' = text/plain; charset=utf-8. */
  contentType: string;
  body: Uint8Array;
  receipt: { origin: string; leafIndex: number | bigint };
  /** Further fields, ASCII, one line each; the fields this module writes are refused. A message/rfc822 body gets those it lacks. */
  extraHeaders?: readonly { name: string; value: string }[];
}

export interface ComposedMessage {
  /** RFC 5322, CRLF lines, not dot-stuffed: OutboundMessage.data once DKIM-signed. */
  data: Buffer;
  /** 8-bit octets anywhere: BODY=8BITMIME. */
  eightBit: boolean;
  /** An address or a header field is UTF-8 (RFC 6531/6532): the transaction needs SMTPUTF8. */
  smtputf8: boolean;
}

const DEFAULT_CONTENT_TYPE = 'text/plain; charset=utf-8';
/** Fields this module writes itself; an extra header may not set them. */
const OWN_FIELDS = new Set([
  'from', 'to', 'cc', 'bcc', 'subject', 'date', 'message-id', 'mime-version', 'content-type', 'content-transfer-encoding',
  RECEIPT_FIELD.toLowerCase(), 'dkim-signature',
]);
/** RFC 5322 §3.6.4 msg-id contents: dot-atom-text "@" (dot-atom-text / no-fold-literal). */
const MSG_ID = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+|\[[\x21-\x5a\x5e-\x7e]*\])$/;
/** type "/" subtype, then parameters; printable ASCII and spaces only. */
const CONTENT_TYPE = /^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+[ \t]*(?:;[\x20-\x7e\t]*)?$/;
/** A C2SP checkpoint origin as the receipt carries it: printable ASCII without spaces or the field's separator. */
const ORIGIN = /^[\x21-\x3a\x3c-\x7e]+$/;

function checkHeaderText(what: string, value: string): void {
  if (HEADER_CONTROL.test(value)) throw new ComposeError('HEADER_INJECTION', `${what} holds a line break or a control character`);
}

function checkAddress(what: string, address: string): void {
  const problem = mailboxProblem(address);
  if (problem === 'control') throw new ComposeError('HEADER_INJECTION', `${what} holds a line break or a control character`);
  if (problem === 'syntax') throw new ComposeError('BAD_ADDRESS', `${what} "${address}" is not a mailbox address`);
}

function receiptValue(receipt: ComposeInput['receipt']): string {
  checkHeaderText('the receipt origin', receipt.origin);
  if (!ORIGIN.test(receipt.origin)) throw new ComposeError('BAD_ARGUMENT', `"${receipt.origin}" is not a log origin the receipt can carry`);
  const leaf = receipt.leafIndex;
  if ((typeof leaf === 'number' && !Number.isSafeInteger(leaf)) || leaf < 0) {
    throw new ComposeError('BAD_ARGUMENT', `${String(leaf)} is not a leaf index`);
  }
  return `origin=${receipt.origin}; leaf=${String(leaf)}`;
}

function checkMessageId(messageId: string): void {
  checkHeaderText('the Message-ID', messageId);
  if (!MSG_ID.test(messageId) || messageId.length > 900) throw new ComposeError('BAD_ARGUMENT', `"${messageId}" is not a Message-ID (id-left@id-right)`);
}

function checkDate(date: Date): void {
  if (!Number.isFinite(date.getTime())) throw new ComposeError('BAD_ARGUMENT', 'the date is not a time');
}

function bytes(body: Uint8Array): Buffer {
  return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

/** The caller's extra fields, checked: ASCII, one line, a field name, and none of the fields written here. */
function extraFields(input: ComposeInput): readonly { name: string; value: string }[] {
  const extra = input.extraHeaders ?? [];
  for (const { name, value } of extra) {
    checkHeaderText(`the ${name} value`, name + value);
    if (!FIELD_NAME.test(name) || OWN_FIELDS.has(name.toLowerCase())) throw new ComposeError('BAD_ARGUMENT', `"${name}" cannot be set as an extra header`);
    if (hasEightBit(value) || name.length + 2 + value.length > MAX_LINE_OCTETS) throw new ComposeError('BAD_ARGUMENT', `the ${name} value must be ASCII and fit on one line`);
  }
  return extra;
}

function field(name: string, value: string): string {
  return `${name}: ${value}\r\n`;
}

/**
 * The message to send, with what the SMTP transaction needs to know about it. Throws a ComposeError for
 * anything it will not write (see ComposeErrorCode); nothing is written from an unchecked value.
 */
export function composeMessage(input: ComposeInput): ComposedMessage {
  checkAddress('the sender', input.from);
  if (input.to.length + (input.cc?.length ?? 0) === 0) throw new ComposeError('BAD_ADDRESS', 'a message needs at least one recipient');
  for (const address of input.to) checkAddress('a To address', address);
  for (const address of input.cc ?? []) checkAddress('a Cc address', address);
  checkMessageId(input.messageId);
  checkDate(input.date);
  const receipt = receiptValue(input.receipt);
  const smtputf8 = [input.from, ...input.to, ...(input.cc ?? [])].some((a) => hasEightBit(a));
  const contentType = input.contentType.trim() === '' ? DEFAULT_CONTENT_TYPE : input.contentType.trim();
  checkHeaderText('the content type', contentType);
  if (/^message\/rfc822[ \t]*(?:;|$)/i.test(contentType)) return completeMessage(input, receipt, smtputf8);
  return buildMessage(input, contentType, receipt, smtputf8);
}

function buildMessage(input: ComposeInput, contentType: string, receipt: string, smtputf8: boolean): ComposedMessage {
  if (!CONTENT_TYPE.test(contentType) || contentType.length > MAX_LINE_OCTETS - 20) throw new ComposeError('BAD_ARGUMENT', `"${contentType}" is not a content type`);
  if (input.subject !== undefined) checkHeaderText('the subject', input.subject);
  const extra = extraFields(input).map(({ name, value }) => field(name, value));

  const { body, encoding } = transferEncoding(crlfLines(bytes(input.body)));
  // RFC 2045 §6.4: a composite type's own encoding must be 7bit, 8bit or binary; its parts carry their own.
  if (encoding === 'quoted-printable' && /^(?:multipart|message)\//i.test(contentType)) {
    throw new ComposeError('LINE_TOO_LONG', `a ${contentType.split(';')[0]} body with a line over ${MAX_LINE_OCTETS} octets (or a NUL) cannot be re-encoded`);
  }

  const headers = [
    field('From', input.from),
    input.to.length > 0 ? field('To', foldList('To', input.to, ', ')) : '',
    input.cc && input.cc.length > 0 ? field('Cc', foldList('Cc', input.cc, ', ')) : '',
    input.subject !== undefined ? field('Subject', unstructuredValue('Subject', input.subject)) : '',
    field('Date', rfc5322Date(input.date)),
    field('Message-ID', `<${input.messageId}>`),
    field(RECEIPT_FIELD, receipt),
    ...extra,
    field('MIME-Version', '1.0'),
    field('Content-Type', contentType),
    encoding === '7bit' ? '' : field('Content-Transfer-Encoding', encoding),
    '\r\n',
  ].join('');
  const data = Buffer.concat([Buffer.from(headers, 'utf8'), body]);
  return { data, eightBit: encoding === '8bit' || smtputf8, smtputf8 };
}

/**
 * The app's own RFC 5322 message: its fields and body kept as they are, the missing From, To, Date,
 * Message-ID and extra fields added, and the receipt field added (one the app wrote itself is dropped: only the node states
 * the receipt). Its From must be the authenticated sender.
 */
function completeMessage(input: ComposeInput, receipt: string, addressesUtf8: boolean): ComposedMessage {
  const message = crlfLines(bytes(input.body));
  const { headers, body } = splitMessage(message);
  for (const header of headers) {
    if (!FIELD_NAME.test(header.raw.slice(0, Math.max(0, header.raw.indexOf(':'))))) {
      throw new ComposeError('BAD_MESSAGE', 'the message/rfc822 body has a header line that is not a field');
    }
  }
  if (longestLine(message) > MAX_LINE_OCTETS) {
    throw new ComposeError('LINE_TOO_LONG', `the message/rfc822 body has a line over ${MAX_LINE_OCTETS} octets`);
  }
  const has = (name: string) => headers.some((h) => h.name === name);
  if (has('from')) {
    const author = headerFrom(headers);
    // Header bytes are read as latin1: compare the sender's UTF-8 octets the same way.
    if (author !== Buffer.from(input.from, 'utf8').toString('latin1').toLowerCase()) {
      throw new ComposeError('SENDER_MISMATCH', `the message's From is not ${input.from}`);
    }
  }
  const added = [
    has('from') ? '' : field('From', input.from),
    has('to') || input.to.length === 0 ? '' : field('To', foldList('To', input.to, ', ')),
    has('date') ? '' : field('Date', rfc5322Date(input.date)),
    has('message-id') ? '' : field('Message-ID', `<${input.messageId}>`),
    field(RECEIPT_FIELD, receipt),
    ...extraFields(input).filter(({ name }) => !has(name.toLowerCase())).map(({ name, value }) => field(name, value)),
  ].join('');
  const kept = headers.filter((h: HeaderField) => h.name !== RECEIPT_FIELD.toLowerCase()).map((h) => `${h.raw}\r\n`).join('');
  const headerBytes = Buffer.concat([Buffer.from(added, 'utf8'), Buffer.from(kept, 'latin1')]);
  const data = Buffer.concat([headerBytes, Buffer.from('\r\n'), body]);
  return { data, eightBit: hasEightBit(data), smtputf8: addressesUtf8 || hasEightBit(headerBytes) };
}
