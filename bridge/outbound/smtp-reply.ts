// Reading SMTP replies off a socket, bounded: a peer decides how much it sends, so every reply line and every
// multi-line reply has a ceiling, and whatever breaks the grammar ends the session instead of being buffered.
import type { SmtpReplyText } from './types.ts';

/** RFC 5321 §4.5.3.1.5 allows 512 octets per reply line; real servers exceed it a little, never by this much. */
export const MAX_REPLY_LINE = 2048;
export const MAX_REPLY_LINES = 100;
const MAX_TEXT = 512;

export type SmtpClientErrorCode =
  | 'connect' | 'timeout' | 'closed' | 'line-too-long' | 'too-many-lines' | 'bad-reply' | 'tls' | 'aborted';

/** A session-level failure: the connection is unusable afterwards. */
export class SmtpClientError extends Error {
  readonly code: SmtpClientErrorCode;
  constructor(code: SmtpClientErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SmtpClientError';
    this.code = code;
  }
}

/** One complete reply: all its lines, the code, and the enhanced status when the first line carries one. */
export interface SmtpReply extends SmtpReplyText {
  lines: string[];
}

const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)/;

/** The reply as results carry it: one line of text, enhanced code split off when the class agrees with the code. */
export function replyFromLines(lines: string[]): SmtpReply {
  const code = Number(lines[0]!.slice(0, 3));
  const texts = lines.map((line) => line.slice(4));
  let enhanced: string | undefined;
  const first = ENHANCED.exec(texts[0] ?? '');
  if (first && Number(first[1]) === Math.floor(code / 100)) {
    enhanced = `${first[1]}.${first[2]}.${first[3]}`;
    const prefix = new RegExp(`^${enhanced.replace(/\./g, '\\.')} ?`);
    for (let i = 0; i < texts.length; i++) texts[i] = texts[i]!.replace(prefix, '');
  }
  const text = texts.join(' ').replace(/[\x00-\x1f\x7f]/g, ' ').trim().slice(0, MAX_TEXT);
  return { code, ...(enhanced ? { enhanced } : {}), text, lines };
}

/** The bridge's own reply, in the same shape as a server's. */
export function localReply(code: number, enhanced: string, text: string): SmtpReply {
  const line = text.replace(/[\r\n]+/g, ' ').slice(0, MAX_TEXT);
  return { code, enhanced, text: line, lines: [`${code} ${enhanced} ${line}`] };
}

const REPLY_LINE = /^([2-5][0-9][0-9])([ -])/;

/**
 * Splits the byte stream into replies, in order. Lines end with CRLF (a bare LF is accepted: some servers send
 * it). Feed it whatever arrives; it throws SmtpClientError when the peer breaks a bound or the grammar.
 */
export class ReplyParser {
  #pending = Buffer.alloc(0);
  #lines: string[] = [];
  readonly #replies: SmtpReply[] = [];

  /** Bytes received but not yet part of a complete line (STARTTLS must find none). */
  get buffered(): number {
    return this.#pending.length + this.#lines.length + this.#replies.length;
  }

  feed(chunk: Buffer): void {
    let data = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : chunk;
    for (;;) {
      const lf = data.indexOf(0x0a);
      if (lf < 0) break;
      const end = lf > 0 && data[lf - 1] === 0x0d ? lf - 1 : lf;
      if (end > MAX_REPLY_LINE) throw new SmtpClientError('line-too-long', `a reply line longer than ${MAX_REPLY_LINE} bytes`);
      this.#line(data.subarray(0, end).toString('utf8'));
      data = data.subarray(lf + 1);
    }
    if (data.length > MAX_REPLY_LINE) throw new SmtpClientError('line-too-long', `a reply line longer than ${MAX_REPLY_LINE} bytes`);
    this.#pending = Buffer.from(data);
  }

  #line(line: string): void {
    const m = REPLY_LINE.exec(line) ?? (/^[2-5][0-9][0-9]$/.test(line) ? [line, line, ' '] : null);
    if (!m) throw new SmtpClientError('bad-reply', `not an SMTP reply line: ${JSON.stringify(line.slice(0, 80))}`);
    if (this.#lines.length > 0 && this.#lines[0]!.slice(0, 3) !== m[1]) {
      throw new SmtpClientError('bad-reply', `a multi-line reply changed its code: ${JSON.stringify(line.slice(0, 80))}`);
    }
    this.#lines.push(line.length === 3 ? `${line} ` : line);
    if (this.#lines.length > MAX_REPLY_LINES) throw new SmtpClientError('too-many-lines', `a reply of more than ${MAX_REPLY_LINES} lines`);
    if (m[2] === ' ') {
      this.#replies.push(replyFromLines(this.#lines));
      this.#lines = [];
    }
  }

  /** The next complete reply, if one has arrived. */
  shift(): SmtpReply | undefined {
    return this.#replies.shift();
  }
}

/** ESMTP service extensions the client acts on, from an EHLO reply. */
export interface SmtpExtensions {
  starttls: boolean;
  pipelining: boolean;
  /** The SIZE limit; 0 when offered without one (no fixed limit); undefined when SIZE is not offered. */
  size?: number;
  eightBitMime: boolean;
  smtputf8: boolean;
  dsn: boolean;
  requireTls: boolean;
  enhancedStatusCodes: boolean;
}

export const NO_EXTENSIONS: SmtpExtensions = {
  starttls: false, pipelining: false, eightBitMime: false, smtputf8: false, dsn: false, requireTls: false, enhancedStatusCodes: false,
};

export function parseExtensions(reply: SmtpReply): SmtpExtensions {
  const ext: SmtpExtensions = { ...NO_EXTENSIONS };
  // The first line is the greeting (domain and text); each following line names one extension.
  for (const line of reply.lines.slice(1)) {
    const [keyword = '', ...params] = line.slice(4).trim().split(/\s+/);
    switch (keyword.toUpperCase()) {
      case 'STARTTLS': ext.starttls = true; break;
      case 'PIPELINING': ext.pipelining = true; break;
      case '8BITMIME': ext.eightBitMime = true; break;
      case 'SMTPUTF8': ext.smtputf8 = true; break;
      case 'DSN': ext.dsn = true; break;
      case 'REQUIRETLS': ext.requireTls = true; break;
      case 'ENHANCEDSTATUSCODES': ext.enhancedStatusCodes = true; break;
      case 'SIZE': {
        const limit = Number(params[0] ?? '0');
        ext.size = Number.isSafeInteger(limit) && limit >= 0 ? limit : 0;
        break;
      }
    }
  }
  return ext;
}
