// Typed errors of the bridge's TLS reporting (RFC 8460): a caller's value the report or its mail will not
// carry, an incoming report that is refused, and a report the HTTPS endpoint did not take.

export type TlsRptErrorCode =
  /** A value for a header field or the report's text holds a line break or a control character. */
  | 'HEADER_INJECTION'
  /** Another argument is not usable (domain, address, count, date, report id, URL). */
  | 'BAD_ARGUMENT'
  /** An incoming report, compressed or inflated, or a mail carrying one, is over the bounds. */
  | 'TOO_LARGE'
  /** A body said or looked to be gzip and is not a readable gzip stream. */
  | 'NOT_GZIP'
  /** The inflated report is not UTF-8 JSON. */
  | 'BAD_JSON'
  /** The JSON does not follow RFC 8460 §4 (a field missing, of the wrong type, or an unknown result type). */
  | 'INVALID_REPORT'
  /** A mail without an application/tlsrpt+gzip or +json part, or a body of another content type. */
  | 'NOT_REPORT'
  /** The report URL's host is, or resolves to, an address that is not public (loopback, private, link-local). */
  | 'FORBIDDEN_ADDRESS'
  /** The HTTPS endpoint could not be reached or its certificate is not valid for its name. */
  | 'UNREACHABLE'
  /** The HTTPS endpoint gave no complete answer in time. */
  | 'TIMEOUT'
  /** The HTTPS endpoint answered with a status other than 2xx (a redirect included: it is not followed). */
  | 'HTTP_STATUS';

export class TlsRptError extends Error {
  readonly code: TlsRptErrorCode;
  /** The HTTP status, for HTTP_STATUS. */
  readonly status?: number;
  constructor(code: TlsRptErrorCode, message: string, options?: { cause?: unknown; status?: number }) {
    super(message, options);
    this.name = 'TlsRptError';
    this.code = code;
    if (options?.status !== undefined) this.status = options.status;
  }
}
