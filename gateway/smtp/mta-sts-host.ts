// The MTA-STS policy the node publishes for its own domains (RFC 8461 §3.2): served over HTTPS at
// https://mta-sts.<domain>/.well-known/mta-sts.txt, announced by the `_mta-sts.<domain>` TXT record whose
// id must change whenever the policy does. The id is derived from the policy's text, so it changes with
// it and with nothing else, and the record `aftersmtp dns records` prints is always the current one.
import { createHash } from 'node:crypto';
import { smtpHostname, type NodeConfig } from '../core/index.ts';

export const STS_POLICY_PATH = '/.well-known/mta-sts.txt';

export interface HostedStsPolicy { text: string; id: string }

export function hostedStsPolicy(config: NodeConfig): HostedStsPolicy {
  const sts = config.bridge.smtp.mtaSts;
  const mx = sts.mx.length ? sts.mx : [smtpHostname(config)];
  const text = ['version: STSv1', `mode: ${sts.mode}`, ...mx.map((m) => `mx: ${m.toLowerCase()}`), `max_age: ${sts.maxAgeSeconds}`, ''].join('\r\n');
  // RFC 8461 §3.1: 1 to 32 alphanumeric characters.
  const id = createHash('sha256').update(text).digest('hex').slice(0, 20);
  return { text, id };
}

/** The node domain a request's Host names as its policy host (`mta-sts.<domain>`), or undefined. */
export function stsPolicyDomain(config: NodeConfig, host: string | undefined): string | undefined {
  const name = (host ?? '').toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
  if (!name.startsWith('mta-sts.')) return undefined;
  const domain = name.slice('mta-sts.'.length);
  return config.node.domains.some((d) => d.toLowerCase() === domain) ? domain : undefined;
}
