// The DNS a node's domains need: every record to publish, and a check of what DNS answers for each.
import { dnsServersOf } from '../core/index.ts';
import { openNodeFiles } from '../datadir/index.ts';
import { DnsPacketResolver } from '../dns/index.ts';
import { out, type Command } from './command.ts';
import { DATA_FLAGS, dataDirOf } from './reach.ts';

export const dnsCommands: Command[] = [
  {
    name: 'dns records',
    flags: DATA_FLAGS,
    usage: ['dns records --data DIR [--json]', '(every DNS record the node\'s domains need, as zone-file lines with what each is for)'],
    run: async ({ flags }) => {
      const dataDir = dataDirOf(flags);
      const { config, keys } = openNodeFiles(dataDir);
      const { expectedDnsRecords } = await import('../smtp/index.ts');
      const records = expectedDnsRecords(config, dataDir, keys.did);
      const zoneLine = (r: (typeof records)[number]) => {
        if (r.type === 'HTTPS') return `; ${r.name} must serve the DID document of ${r.value}`;
        const value = r.type === 'TXT' ? (r.value.match(/.{1,255}/g) ?? []).map((part) => `"${part}"`).join(' ') : r.value;
        return `${r.name}. IN ${r.type} ${r.type === 'MX' ? `${value}.` : value}\n    ; ${r.kind}: ${r.note}`;
      };
      out(flags, records, records.map(zoneLine).join('\n'));
      return 0;
    },
  },
  {
    name: 'dns check',
    flags: DATA_FLAGS,
    usage: ['dns check --data DIR [--json]', '(looks each record up through the node\'s resolver: ok, missing or wrong; exits 1 on any problem)'],
    run: async ({ flags }) => {
      const dataDir = dataDirOf(flags);
      const { config, keys } = openNodeFiles(dataDir);
      const { expectedDnsRecords, checkDnsRecords } = await import('../smtp/index.ts');
      const resolver = new DnsPacketResolver({ servers: dnsServersOf(config), timeoutMs: config.dns.timeoutMs });
      const checks = await checkDnsRecords(expectedDnsRecords(config, dataDir, keys.did), resolver);
      out(flags, checks, checks.map((c) => `${c.status.padEnd(7)} ${c.kind.padEnd(9)} ${c.name}${c.problem ? `: ${c.problem}` : ''}`).join('\n'));
      return checks.some((c) => c.status !== 'ok') ? 1 : 0;
    },
  },
];
