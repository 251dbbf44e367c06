// The link form of a webhook (docs/APPS.md "Webhooks"): instead of the sealed envelope, the POST names
// https://<node>/aftersmtp/mailboxes/<address>/deliveries/<seq>, and the mailbox's app GETs the envelope
// there from the node's public HTTPS listener with the mailbox's own token, as it would take it through
// Subscribe. The answer to a token that is not that mailbox's is the same 401 whatever the path names,
// so the path is no probe of which mailboxes exist. A request costs one token check and one read of
// the delivery by its key; its body is never read.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { GatewayError } from '../core/index.ts';
import type { MailboxRecord, Store } from '../store/index.ts';

const PREFIX = '/aftersmtp/mailboxes/';
/** `<address>/deliveries/<seq>`: one path segment for the address (percent-encoded), a canonical decimal seq. */
const DELIVERY_PATH = /^([^/]{3,1000})\/deliveries\/([1-9][0-9]{0,15})$/;
/** What the decoded address must look like: one @, nothing that a mailbox address never holds. */
const ADDRESS_SHAPE = /^[^@\s\\]+@[^@\s/\\]+$/;

/** The link to a delivery's sealed envelope, at the node's public HTTPS origin (nodeHttpsOrigin). */
export function envelopeUrl(origin: string, mailbox: string, seq: number): string {
  return `${origin}${PREFIX}${encodeURIComponent(mailbox)}/deliveries/${seq}`;
}

/** True when a request's path is under the envelope links' prefix (whatever its method): serveEnvelope answers it. */
export function isEnvelopePath(url: string | undefined): boolean {
  return (url ?? '').startsWith(PREFIX);
}

export interface EnvelopeFetchDeps {
  storage: Pick<Store, 'deliveries'>;
  /** The node's token check: the mailbox whose token an Authorization value carries; throws UNAUTHENTICATED otherwise. */
  mailboxOf(authorization: string | undefined): MailboxRecord;
  log: Logger;
}

/** The mailbox (lower case) and seq a path names; undefined when it is not a delivery's path. */
function parseDeliveryPath(path: string): { mailbox: string; seq: number } | undefined {
  const m = DELIVERY_PATH.exec(path.slice(PREFIX.length));
  if (!m) return undefined;
  const seq = Number(m[2]);
  if (!Number.isSafeInteger(seq)) return undefined;
  let mailbox: string;
  try {
    mailbox = decodeURIComponent(m[1]!);
  } catch {
    return undefined;
  }
  return ADDRESS_SHAPE.test(mailbox) ? { mailbox: mailbox.toLowerCase(), seq } : undefined;
}

/**
 * Answers a request under the envelope links' prefix: GET (or HEAD) with the mailbox's token gets the
 * sealed envelope (its identity encoding); 405 for another method, 400 for a path that names no
 * delivery, 401 for any token that is not the named mailbox's, 404 for a seq the mailbox does not hold
 * (never stored, or acknowledged and pruned since).
 */
export function serveEnvelope(deps: EnvelopeFetchDeps, req: IncomingMessage, res: ServerResponse): void {
  // A request that carries a body ends its connection: the body is not read, so nothing may follow it.
  const carriesBody = (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding'] !== undefined;
  const plain = (status: number, text: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'text/plain', 'cache-control': 'no-store', ...(carriesBody ? { connection: 'close' } : {}), ...headers });
    res.end(req.method === 'HEAD' ? undefined : `${text}\n`);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') return plain(405, 'a delivery\'s envelope is fetched with GET', { allow: 'GET, HEAD' });
  const target = parseDeliveryPath((req.url ?? '').split('?')[0]!);
  if (!target) return plain(400, `not a delivery's link: ${PREFIX}<address>/deliveries/<seq>`);
  const unauthorized = () => plain(401, 'the token of the mailbox is needed ("authorization: Bearer <token>")', { 'www-authenticate': 'Bearer' });
  let mailbox: MailboxRecord;
  try {
    mailbox = deps.mailboxOf(req.headers.authorization);
  } catch (err) {
    if ((err as GatewayError).code === 'UNAUTHENTICATED') return unauthorized();
    return failed(deps, res, plain, err);
  }
  if (mailbox.address !== target.mailbox) return unauthorized();
  let held: ReturnType<Store['deliveries']['get']>;
  try {
    held = deps.storage.deliveries.get(mailbox.address, target.seq);
  } catch (err) {
    return failed(deps, res, plain, err);
  }
  if (!held) return plain(404, `${mailbox.address} holds no delivery ${target.seq}`);
  const envelope = held.delivery.envelope;
  res.writeHead(200, {
    'content-type': 'application/octet-stream', 'content-length': String(envelope.length),
    'cache-control': 'private, no-store', 'x-content-type-options': 'nosniff', ...(carriesBody ? { connection: 'close' } : {}),
  });
  res.end(req.method === 'HEAD' ? undefined : envelope);
}

function failed(deps: EnvelopeFetchDeps, res: ServerResponse, plain: (status: number, text: string) => void, err: unknown): void {
  deps.log.warn({ err: (err as Error).message }, 'serving an envelope link failed');
  if (!res.headersSent) plain(503, 'the envelope cannot be read now, try again later');
}
