// Other nodes: static routes to them, what this node knows of them, and its queue of mail for them.
import { GatewayError } from '../core/index.ts';
import { DID_PATTERN, MESSAGE_ID_PATTERN, need, out, str, UsageError, type Command } from './command.ts';
import { ADMIN_FLAGS, ADMIN_USAGE, DATA_FLAGS, withAdmin, withStore } from './reach.ts';

interface QueueItem { messageId: Buffer; recipient: string; state: string; attempts: number; nextAttemptMs: number; lastError: string; transport: string }

const QUEUE_ACTIONS = ['retry', 'hold', 'release', 'purge'] as const;

export const federationCommands: Command[] = [
  {
    name: 'peers',
    flags: ADMIN_FLAGS,
    usage: [`peers ${ADMIN_USAGE}`, '(known federation peers, transport, RTT, last error)'],
    run: ({ flags }) => withAdmin(flags, async (admin) => {
      const r = await admin.call<{ peers: unknown[] }>('Peers', {});
      out(flags, r.peers, JSON.stringify(r.peers, null, 2));
      return 0;
    }),
  },
  {
    name: 'route add',
    args: ['DOMAIN'],
    flags: { ...DATA_FLAGS, did: { type: 'string' }, endpoint: { type: 'string', required: true }, tls: { type: 'string' } },
    usage: [
      'route add DOMAIN --did DID --endpoint quic://HOST:PORT[,relay://HOST:PORT] --data DIR',
      'route add DOMAIN|"*" --endpoint smtp://HOST[:PORT] [--tls dane|verify|may|none] --data DIR',
      '(an SMTP route sends that domain\'s mail to HOST instead of its MX; "*" = every domain without an AfterSMTP node)',
    ],
    run: ({ args, flags }) => withStore(flags, async ({ storage }) => {
      const domain = args.DOMAIN!.toLowerCase();
      const endpoint = need(flags, 'endpoint');
      // The federation side (QUIC with it) is loaded only by the command that checks an endpoint.
      const { parseEndpoint, parseSmtpEndpoint, formatSmtpEndpoint, isSmtpEndpoint } = await import('../federation/index.ts');
      if (isSmtpEndpoint(endpoint)) {
        if (str(flags, 'did')) throw new UsageError('an SMTP route names no DID');
        const tls = str(flags, 'tls');
        const target = parseSmtpEndpoint(tls ? `${endpoint.replace(/\?.*$/, '')}?tls=${tls}` : endpoint);
        const stored = formatSmtpEndpoint(target);
        await storage.routes.set({ domain, did: '', endpoint: stored });
        out(flags, { event: 'route-added', domain, endpoint: stored }, `route ${domain} -> SMTP ${stored}`);
        return 0;
      }
      if (domain === '*') throw new UsageError('"*" takes an SMTP route only (a smarthost)');
      if (str(flags, 'tls')) throw new UsageError('--tls is for SMTP routes');
      const did = need(flags, 'did');
      if (!DID_PATTERN.test(did)) throw new GatewayError('INVALID_ARGUMENT', `"${did}" is not a DID`);
      endpoint.split(',').forEach(parseEndpoint);
      await storage.routes.set({ domain, did, endpoint });
      out(flags, { event: 'route-added', domain, did, endpoint }, `route ${domain} -> ${did} at ${endpoint}`);
      return 0;
    }),
  },
  {
    name: 'route list',
    flags: DATA_FLAGS,
    usage: ['route list --data DIR', '(the routes of config.yaml and those added with route add)'],
    run: ({ flags }) => withStore(flags, async ({ config, storage }) => {
      const routes = [...config.federation.routes.map((r) => ({ ...r, source: 'config' })), ...storage.routes.list().map((r) => ({ ...r, source: 'static' }))];
      out(flags, routes, JSON.stringify(routes, null, 2));
      return 0;
    }),
  },
  {
    name: 'route remove',
    args: ['DOMAIN'],
    flags: DATA_FLAGS,
    usage: ['route remove DOMAIN --data DIR'],
    run: ({ args, flags }) => withStore(flags, async ({ storage }) => {
      const domain = args.DOMAIN!;
      await storage.routes.delete(domain.toLowerCase());
      out(flags, { event: 'route-removed', domain }, `route ${domain} removed`);
      return 0;
    }),
  },
  {
    name: 'queue list',
    flags: { ...ADMIN_FLAGS, state: { type: 'string' } },
    usage: [`queue list [--state S] ${ADMIN_USAGE}`],
    run: ({ flags }) => withAdmin(flags, async (admin) => {
      const r = await admin.call<{ items: QueueItem[] }>('QueueList', { state: str(flags, 'state') ?? '' });
      // For a delivered or failed recipient the time is when it finished, not a next attempt.
      const items = r.items.map((i) => {
        const at = new Date(Number(i.nextAttemptMs)).toISOString();
        const finished = i.state === 'delivered' || i.state === 'failed';
        return { messageId: Buffer.from(i.messageId).toString('hex'), recipient: i.recipient, transport: i.transport, state: i.state, attempts: i.attempts, ...(finished ? { finishedAt: at } : { nextAttempt: at }), lastError: i.lastError };
      });
      out(flags, items, items.map((i) => `${i.messageId} ${i.recipient} ${i.transport} ${i.state} attempts=${i.attempts} ${'finishedAt' in i ? `finished=${i.finishedAt}` : `next=${i.nextAttempt}`} ${i.lastError}`).join('\n') || '(queue empty)');
      return 0;
    }),
  },
  ...QUEUE_ACTIONS.map((action): Command => ({
    name: `queue ${action}`,
    args: ['[MESSAGE_ID]'],
    flags: { ...ADMIN_FLAGS, recipient: { type: 'string' }, domain: { type: 'string' }, all: { type: 'boolean' } },
    usage: [`queue ${action} (MESSAGE_ID [--recipient ADDR] | --domain DOMAIN | --all) ${ADMIN_USAGE}`],
    run({ args, flags }) {
      const id = args.MESSAGE_ID;
      const domain = flags.all ? '*' : str(flags, 'domain') ?? '';
      // One message (some or all of its recipients), or every message to a domain, or everything.
      if (id ? !MESSAGE_ID_PATTERN.test(id) || domain : !domain) throw new UsageError('give one of MESSAGE_ID (32 hex digits), --domain or --all');
      return withAdmin(flags, async (admin) => {
        const request = { action, messageId: id ? Buffer.from(id, 'hex') : Buffer.alloc(0), recipient: str(flags, 'recipient') ?? '', domain };
        const r = await admin.call<{ affected: number }>('QueueAction', request);
        out(flags, { event: `queue-${action}`, ...(id ? { messageId: id } : { domain }), affected: r.affected }, `${action}: ${r.affected} recipient(s)`);
        return 0;
      });
    },
  })),
];
