// The TLS report by HTTPS POST (RFC 8460 §5.2). A record names the URL, so the post goes only to public
// addresses (checked on what is connected to), follows no redirect and reads a bounded answer.
import { request } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { lookup as dnsLookup } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { TlsRptError } from './errors.ts';
import { TLSRPT_GZIP_TYPE } from './tlsrpt-mail.ts';

export interface TlsReportPostOptions {
  /** One deadline for connecting, sending and the answer. */
  timeoutMs: number;
  /** Trust anchors instead of the system's (tests pass their own CA). */
  ca?: string | string[];
  /**
   * Test-only: URL host -> `host:port` to connect to; the name checked and sent stays the URL's. A mapped
   * host skips the public-address check (the test servers are on loopback).
   */
  hostMap?: Record<string, string>;
}

/** Addresses a report is never posted to: a record names the URL, and it must not reach inside the network. */
const NOT_PUBLIC = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.0.0.0', 24],
  ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) NOT_PUBLIC.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) NOT_PUBLIC.addSubnet(net, prefix, 'ipv6');

export function isPublicAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return isPublicAddress(mapped[1]!);
  const family = isIP(address);
  return family !== 0 && !NOT_PUBLIC.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** The system resolver, refusing a name with any address that is not public (DNS rebinding included: it is what is connected to). */
const publicLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, options, (err, address, family) => {
    if (err) return callback(err, address, family);
    const addresses = Array.isArray(address) ? address.map((a) => a.address) : [address];
    const bad = addresses.find((a) => !isPublicAddress(a));
    if (bad !== undefined) {
      return callback(new TlsRptError('FORBIDDEN_ADDRESS', `${hostname} resolves to ${bad}, which is not a public address`), address, family);
    }
    callback(null, address, family);
  });
};

/** The largest report posted, and the most of an answer read (its status is what counts). */
export const MAX_TLS_REPORT_BYTES = 5 * 1024 * 1024;
const MAX_ANSWER_BYTES = 64 * 1024;

function postFailure(err: unknown): TlsRptError {
  if (err instanceof TlsRptError) return err;
  const text = err instanceof Error ? err.message : String(err);
  return new TlsRptError('UNREACHABLE', `report POST: ${text}`, { cause: err });
}

/**
 * POSTs a gzipped report to an https: URL from a TLSRPT record, as `application/tlsrpt+gzip`. Resolves with
 * the status on 2xx; a redirect is not followed (RFC 8460 §5.2 gives none) and fails like any other status
 * (HTTP_STATUS). Throws TlsRptError: FORBIDDEN_ADDRESS for a host that is or resolves to a non-public
 * address, UNREACHABLE (connection or certificate), TIMEOUT, BAD_ARGUMENT (not an https URL, too large).
 */
export async function postTlsReport(url: string, gzipped: Buffer, opts: TlsReportPostOptions): Promise<{ status: number }> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw new TlsRptError('BAD_ARGUMENT', `"${url.slice(0, 200)}" is not a URL`);
  }
  if (target.protocol !== 'https:' || target.username || target.password) throw new TlsRptError('BAD_ARGUMENT', `"${url.slice(0, 200)}" is not an https URL a report can go to`);
  if (gzipped.length > MAX_TLS_REPORT_BYTES) throw new TlsRptError('BAD_ARGUMENT', `a report of ${gzipped.length} bytes is over ${MAX_TLS_REPORT_BYTES}`);
  const name = target.hostname.replace(/^\[|\]$/g, '');
  const mapped = opts.hostMap?.[name];
  let host = name;
  let port = Number(target.port || 443);
  if (mapped) {
    const colon = mapped.lastIndexOf(':');
    host = mapped.slice(0, colon);
    port = Number(mapped.slice(colon + 1));
  } else if (isIP(name) !== 0 && !isPublicAddress(name)) {
    throw new TlsRptError('FORBIDDEN_ADDRESS', `${name} is not a public address`);
  }

  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new TlsRptError('TIMEOUT', `report POST: no complete answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
  try {
    return await new Promise<{ status: number }>((resolve, reject) => {
      const fail = (err: unknown) => reject(postFailure(controller.signal.aborted ? controller.signal.reason : err));
      const req = request({
        host, port, ...(isIP(name) === 0 ? { servername: name } : {}), path: `${target.pathname}${target.search}`, method: 'POST',
        headers: { host: target.host, 'content-type': TLSRPT_GZIP_TYPE, 'content-length': gzipped.length },
        ca: opts.ca, rejectUnauthorized: true, agent: false, signal: controller.signal, ...(mapped ? {} : { lookup: publicLookup }),
      }, (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 299) {
          const where = res.headers.location ? ` (redirect to ${JSON.stringify(res.headers.location.slice(0, 200))} not followed)` : '';
          reject(new TlsRptError('HTTP_STATUS', `report POST: HTTP ${status}${where}`, { status }));
          res.destroy();
          return;
        }
        // The answer's body says nothing that matters: read a bounded amount so the connection ends cleanly.
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER_BYTES) { resolve({ status }); res.destroy(); }
        });
        res.on('end', () => resolve({ status }));
        res.on('error', () => resolve({ status }));
        res.on('aborted', () => resolve({ status }));
      });
      req.on('error', fail);
      req.end(gzipped);
    });
  } finally {
    clearTimeout(timer);
  }
}
