// Reports others sent about the node's domains: TLS-RPT (`tlsrpt list`) and DMARC aggregate (`dmarc list`),
// per reporting organisation and period, with each policy domain's successes and failures by kind, and the
// domains whose DKIM signature on the report's mail passed.
import { GatewayError } from '../core/index.ts';
import { printable } from '../rules/index.ts';
import { out, str, type Command } from './command.ts';
import { DATA_FLAGS, withStore } from './reach.ts';

export function sinceMs(text: string | undefined): number {
  if (text === undefined) return 0;
  const ms = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text);
  if (!Number.isFinite(ms)) throw new GatewayError('INVALID_ARGUMENT', `--since ${text} is not a date (YYYY-MM-DD)`);
  return ms;
}

function listCommand(kind: 'tlsrpt' | 'dmarc', what: string): Command {
  return {
    name: `${kind} list`,
    flags: { ...DATA_FLAGS, since: { type: 'string' } },
    usage: [`${kind} list [--since YYYY-MM-DD] --data DIR [--json]`, `(${what} received about this node's domains)`],
    run: ({ flags }) => withStore(flags, async ({ storage }) => {
      const reports = storage.receivedReports.since(kind, sinceMs(str(flags, 'since'))).map((r) => ({
        organization: r.organization, reportId: r.reportId, begin: new Date(r.beginMs).toISOString(), end: new Date(r.endMs).toISOString(),
        via: r.via, signedBy: r.signedBy ? r.signedBy.split(' ') : [], policies: r.summary,
      }));
      const lines = reports.flatMap((r) => Object.entries(r.policies).map(([domain, p]) => {
        // What a report says is anyone's text: shown escaped, it cannot draw on the terminal or forge a line.
        const failures = Object.entries(p.failures).map(([type, n]) => `${printable(type)}=${n}`).join(' ');
        // Who signed it, or that nothing did: the organization is only what the report claims to be.
        const signed = r.signedBy.length ? `signed by ${r.signedBy.join(' ')}` : `unsigned, by ${r.via}`;
        return `${r.begin.slice(0, 10)} ${printable(r.organization)} ${printable(domain)}: ${p.successes} ok${failures ? `, ${failures}` : ''} (${signed})`;
      }));
      out(flags, reports, lines.join('\n') || `(no ${what})`);
      return 0;
    }),
  };
}

export const reportCommands: Command[] = [
  listCommand('tlsrpt', 'TLS reports (RFC 8460)'),
  listCommand('dmarc', 'DMARC aggregate reports'),
];
