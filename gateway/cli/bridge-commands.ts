// The SMTP bridge's checks as commands, offline: authenticate a message file as the MX listener would,
// and ARC-seal one as a forwarding node does. DNS is the node's resolver (--data) or a JSON file of TXT
// records (--dns), so a result can be reproduced without the network.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { BridgeDnsAnswer, BridgeResolver } from '../../bridge/index.ts';
import { dnsServersOf, loadConfig, smtpHostname, GatewayError } from '../core/index.ts';
import { DnsPacketResolver } from '../dns/index.ts';
import { need, out, str, UsageError, type Command, type Flags, type FlagSpecs } from './command.ts';
import { dataDirOf } from './reach.ts';

const NO_ANSWER: BridgeDnsAnswer<never> = { status: 'NXDOMAIN', records: [] };

/**
 * A resolver answering TXT queries from a JSON object (name -> record or records); every other name and
 * record type does not exist.
 */
export function staticTxtResolver(records: Record<string, string | string[]>): BridgeResolver {
  const byName = new Map(Object.entries(records).map(([name, value]) => [name.toLowerCase().replace(/\.$/, ''), Array.isArray(value) ? value : [value]]));
  return {
    txt: async (name) => {
      const found = byName.get(name.toLowerCase().replace(/\.$/, ''));
      return found ? { status: 'NOERROR', records: found } : NO_ANSWER;
    },
    a: async () => NO_ANSWER,
    aaaa: async () => NO_ANSWER,
    mx: async () => NO_ANSWER,
    ptr: async () => NO_ANSWER,
  };
}

function readDnsFile(file: string): BridgeResolver {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new GatewayError('INVALID_ARGUMENT', `--dns ${file}: ${(err as Error).message}`);
  }
  const valid = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
    && Object.values(parsed).every((v) => typeof v === 'string' || (Array.isArray(v) && v.every((s) => typeof s === 'string')));
  if (!valid) throw new GatewayError('INVALID_ARGUMENT', `--dns ${file} must hold an object of name -> TXT string (or strings)`);
  return staticTxtResolver(parsed as Record<string, string | string[]>);
}

/** --dns FILE, else the resolver of --data's node, else the system's nameservers; and the authserv-id. */
function lookupContext(flags: Flags): { resolver: BridgeResolver; authservId: string; trustedArcSealers: string[] } {
  const dnsFile = str(flags, 'dns');
  const config = str(flags, 'data') !== undefined ? loadConfig(dataDirOf(flags)) : undefined;
  const resolver = dnsFile !== undefined ? readDnsFile(dnsFile)
    : new DnsPacketResolver(config ? { servers: dnsServersOf(config), timeoutMs: config.dns.timeoutMs } : {});
  return { resolver, authservId: config ? smtpHostname(config) : 'localhost', trustedArcSealers: config?.bridge.smtp.trustedArcSealers ?? [] };
}

const SESSION_FLAGS: FlagSpecs = {
  dns: { type: 'string' },
  data: { type: 'string' },
  ip: { type: 'string' },
  helo: { type: 'string' },
  'mail-from': { type: 'string' },
};
const SESSION_USAGE = '[--dns FILE.json] [--ip IP] [--helo NAME] [--mail-from ADDR] [--data DIR]';

function session(flags: Flags): { ip: string; helo: string; mailFrom: string } {
  const ip = str(flags, 'ip') ?? '127.0.0.1';
  if (isIP(ip) === 0) throw new UsageError(`--ip ${ip} is not an IP address`);
  return { ip, helo: str(flags, 'helo') ?? 'localhost', mailFrom: str(flags, 'mail-from') ?? '' };
}

function readMessage(file: string): Buffer {
  try {
    // The bridge works on SMTP's CRLF lines; a file saved with LF line ends is read the same.
    return Buffer.from(readFileSync(file, 'latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
  } catch (err) {
    throw new GatewayError('INVALID_ARGUMENT', `cannot read ${file}: ${(err as Error).message}`);
  }
}

export const bridgeCommands: Command[] = [
  {
    name: 'auth',
    args: ['FILE'],
    flags: SESSION_FLAGS,
    usage: [
      `auth FILE.eml ${SESSION_USAGE}`,
      '(SPF, DKIM, DMARC and ARC of a message as the MX listener checks them; --dns: {"name": "TXT" | ["TXT", ...]}, other lookups NXDOMAIN)',
    ],
    async run({ args, flags }) {
      // The bridge (mailauth and its dependencies) is loaded only by the commands that use it.
      const { verifyMessage } = await import('../../bridge/index.ts');
      const context = lookupContext(flags);
      const verdicts = await verifyMessage({ message: readMessage(args.FILE!), ...session(flags), ...context });
      const { spf, dkim, dmarc, arc, authenticationResults } = verdicts;
      out(flags, { spf, dkim, dmarc, arc, authenticationResults },
        `Authentication-Results: ${authenticationResults}\n  spf=${spf.result} dkim=${dkim.map((d) => d.result).join(',') || 'none'} dmarc=${dmarc.result} arc=${arc.result}`);
      return 0;
    },
  },
  {
    name: 'arc seal',
    args: ['FILE'],
    flags: {
      ...SESSION_FLAGS,
      domain: { type: 'string', required: true },
      selector: { type: 'string', required: true },
      key: { type: 'string', required: true },
      'srv-id': { type: 'string', required: true },
      headers: { type: 'string' },
      time: { type: 'string' },
    },
    usage: [
      `arc seal FILE.eml --domain D --selector S --key KEY.pem --srv-id ID [--headers h1:h2:...] [--time UNIX] ${SESSION_USAGE}`,
      '(the next ARC set for the message: its AAR records this check of the message, cv= the chain as found)',
    ],
    async run({ args, flags }) {
      const { arcSeal, verifyMessage } = await import('../../bridge/index.ts');
      const message = readMessage(args.FILE!);
      const time = str(flags, 'time');
      if (time !== undefined && !/^[0-9]{1,12}$/.test(time)) throw new UsageError('--time must be a Unix time in seconds');
      const headers = str(flags, 'headers');
      const context = lookupContext(flags);
      const authservId = need(flags, 'srv-id');
      const verdicts = await verifyMessage({ message, ...session(flags), ...context, authservId });
      let keyPem: string;
      try {
        keyPem = readFileSync(need(flags, 'key'), 'utf8');
      } catch (err) {
        throw new GatewayError('INVALID_ARGUMENT', `cannot read --key: ${(err as Error).message}`);
      }
      const set = arcSeal({
        message,
        domain: need(flags, 'domain'),
        selector: need(flags, 'selector'),
        privateKey: keyPem,
        authservId,
        authResults: verdicts.results,
        chainValidation: verdicts.arc.result,
        ...(headers ? { signHeaders: headers.split(':').map((h) => h.trim()).filter(Boolean) } : {}),
        ...(time !== undefined ? { time: Number(time) } : {}),
      });
      // A chain that already failed, or one at its last instance, is not sealed again (RFC 8617 §5.1.2).
      if (!set) throw new GatewayError('INVALID_ARGUMENT', `the message's ARC chain is not sealed again (arc=${verdicts.arc.result}${verdicts.arc.reason ? `: ${verdicts.arc.reason}` : ''})`);
      const result = { instance: set.instance, aar: set.aar, ams: set.ams, as: set.as, headers: set.headers.toString('latin1') };
      out(flags, result, set.headers.toString('latin1').trimEnd());
      return 0;
    },
  },
  {
    name: 'dkim show',
    flags: { data: { type: 'string', required: true } },
    usage: ['dkim show --data DIR [--json]', '(the DNS TXT record to publish for each DKIM key the node signs with)'],
    run: async ({ flags }) => {
      const dataDir = dataDirOf(flags);
      const config = loadConfig(dataDir);
      // The bridge (and the node's SMTP side) load only for the commands that need them.
      const { publishedDkimKeys, nodeDkimRecord } = await import('../smtp/index.ts');
      const records = publishedDkimKeys(config, dataDir).map((k) => ({
        ...(k.retiredAt ? { retiredAt: k.retiredAt } : { signing: true }),
        domain: k.domain, selector: k.selector, algorithm: k.algorithm,
        ...nodeDkimRecord(k),
      }));
      // Zone-file lines: a TXT character-string holds at most 255 octets, so long values are split.
      const text = records.map((r) => `${r.name}. IN TXT ${(r.value.match(/.{1,255}/g) ?? []).map((part) => `"${part}"`).join(' ')}`).join('\n');
      out(flags, records, text || '(no DKIM keys: bridge.smtp.outbound.dkim is empty)');
      return 0;
    },
  },
  {
    name: 'dkim rotate',
    flags: { data: { type: 'string', required: true } },
    usage: ['dkim rotate --data DIR [--json]', '(new RSA and Ed25519 keys sign from the next start; the old ones stay published for dkimGraceDays)'],
    run: async ({ flags }) => {
      const { rotateDkimKeys } = await import('../datadir/index.ts');
      const { added, retired } = rotateDkimKeys(dataDirOf(flags));
      out(flags, { event: 'dkim-rotated', added, retired },
        `new keys: ${added.map((k) => `${k.selector} (${k.domain}, ${k.algorithm})`).join(', ')}\n`
        + 'publish their records (aftersmtp dkim show), then restart the node: they sign from then on');
      return 0;
    },
  },
];
