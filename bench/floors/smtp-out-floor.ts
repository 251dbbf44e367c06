// The floor of bench:smtp-out, as its own process (`node bench/floors/smtp-out-floor.ts CONFIG_JSON`): the
// outbound bridge alone (bridge/outbound's createSmtpOutbound, its connection pool and RSET reuse) delivering
// mail from memory to the sink over the node's static route (STARTTLS when offered, `--tls may`), with the
// node's own outbound settings (connections per host, messages per connection) and as many deliveries at
// once as the node's queue runs. No node, no gRPC, no store, no queue, no envelope to open or signature to
// check: what any node built on this bridge must at least spend per message once the mail is composed and
// signed. The messages are the node's (composed and DKIM-signed with the node's keys, bench/helpers/
// messages.ts) and are made before the clock starts; their cost is reported apart. With `signing`, each is
// composed and signed on the clock instead, just before it is handed to the bridge, as the node must.
//
// It prints {"event":"ready"} and then takes JSON lines on stdin:
//   {"cmd":"prepare","bytes":B,"count":N,"signing":false} -> {"event":"prepared","n":N,"wireBytes":W,"cpuMsPerMsg":C}
//   {"cmd":"go"}                                          -> {"event":"delivered","delivered":K,"notes":[...]}
// and stops on SIGTERM (QUIT on its pooled connections).
import { createInterface } from 'node:readline';
import { createSmtpOutbound, InMemoryStsPolicyCache, type OutboundMessage, type SmtpNextHop } from '../../bridge/index.ts';
import { loadConfig, smtpHostname } from '../../gateway/core/index.ts';
import { DnsPacketResolver } from '../../gateway/dns/index.ts';
import { dkimSigners } from '../../gateway/smtp/index.ts';
import { legacyMessage } from '../helpers/messages.ts';
import { ownCpuSeconds } from '../helpers/proc.ts';

export interface SmtpOutFloorConfig {
  /** The node's data directory: its configuration (outbound settings) and DKIM keys. */
  data: string;
  from: string;
  to: string;
  /** The node's static route to the sink. */
  nextHop: SmtpNextHop;
}

const config: SmtpOutFloorConfig = JSON.parse(process.argv[2] ?? '{}');
if (!config.data || !config.nextHop) throw new Error('usage: smtp-out-floor.ts CONFIG_JSON');
const node = loadConfig(config.data);
const out = node.bridge.smtp.outbound;
const signers = dkimSigners(node, config.data);
const logOrigin = node.ledger.origin ?? `${node.node.domains[0]}/aftersmtp`;
// As many deliveries at once as the node's outbound queue runs (its capacity, gateway/node/node.ts).
const concurrency = Math.max(256, 4 * node.federation.maxInFlightPerPeer);
const outbound = createSmtpOutbound({
  hostname: smtpHostname(node),
  // A static next hop by address under `may`: no DNS lookup, no MTA-STS.
  resolver: new DnsPacketResolver(),
  stsCache: new InMemoryStsPolicyCache(),
  stsFetch: { fetchTimeoutMs: out.stsFetchTimeoutMs },
  connectTimeoutMs: out.connectTimeoutMs,
  commandTimeoutMs: out.commandTimeoutMs,
  dataTimeoutMs: out.dataTimeoutMs,
  maxConnectionsPerHost: out.maxConnectionsPerHost,
  maxMessagesPerConnection: out.maxMessagesPerConnection,
  idleTimeoutMs: out.idleTimeoutMs,
});
const domain = config.to.split('@')[1]!;
let messages: OutboundMessage[] = [];
/** With signing on the clock: how many messages of which size `go` composes, signs and delivers. */
let onTheClock: { bytes: number; count: number } | undefined;
let leaf = 0;

const say = (event: Record<string, unknown>): void => { process.stdout.write(`${JSON.stringify(event)}\n`); };

const make = (bytes: number) => legacyMessage({ from: config.from, to: config.to, bytes, signers, logOrigin, leaf: leaf++ });

async function prepare(bytes: number, count: number, signing: boolean): Promise<void> {
  const cpu0 = process.cpuUsage();
  messages = [];
  onTheClock = signing ? { bytes, count } : undefined;
  if (signing) {
    say({ event: 'prepared', n: count, wireBytes: (await make(bytes)).data.length, cpuMsPerMsg: NaN });
    return;
  }
  for (let i = 0; i < count; i++) messages.push(await make(bytes));
  say({ event: 'prepared', n: count, wireBytes: messages[0]?.data.length ?? 0, cpuMsPerMsg: (ownCpuSeconds(cpu0) * 1000) / Math.max(1, count) });
}

async function go(): Promise<void> {
  let next = 0;
  let delivered = 0;
  const notes: string[] = [];
  const total = onTheClock?.count ?? messages.length;
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, async () => {
    while (next < total) {
      const i = next++;
      // Signing on the clock, each message is made in an event-loop turn of its own, so the connections'
      // replies are read between two signatures rather than after hundreds of them.
      if (onTheClock) await new Promise((resolve) => setImmediate(resolve));
      const message = onTheClock ? await make(onTheClock.bytes) : messages[i]!;
      const [result] = await outbound.deliver(domain, message, { nextHop: config.nextHop });
      if (result?.status === 'delivered') delivered++;
      else if (notes.length < 5) notes.push(`${result?.status}: ${result?.reply.code} ${result?.reply.text}`);
    }
  }));
  messages = [];
  say({ event: 'delivered', delivered, notes });
}

let work = Promise.resolve();
createInterface({ input: process.stdin }).on('line', (line) => {
  const command = JSON.parse(line) as { cmd: 'prepare'; bytes: number; count: number; signing?: boolean } | { cmd: 'go' };
  work = work.then(() => (command.cmd === 'prepare' ? prepare(command.bytes, command.count, command.signing === true) : go()))
    .catch((err: Error) => { say({ event: 'error', message: err.message }); });
});
process.once('SIGTERM', () => { void outbound.close().then(() => process.exit(0)); });
say({ event: 'ready', concurrency, maxConnectionsPerHost: out.maxConnectionsPerHost });
