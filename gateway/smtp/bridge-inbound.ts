// The SMTP bridge's listeners as part of the node: options from the configuration, the node's handler,
// started once the store and the ledger are up and stopped first on shutdown (the listeners drain their
// sessions while the store can still take what they are finishing).
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { startInbound, type InboundServer, type ListenerConfig, type ListenerKind } from '../../bridge/index.ts';
import { dataPath, smtpHostname, GatewayError, type NodeConfig } from '../core/index.ts';
import type { DnsResolver } from '../dns/index.ts';
import { SmtpHandler, type SmtpHandlerDeps } from './smtp-handler.ts';

/** The enabled listeners of the configuration, in the order mx, submission, smtps. */
export function listenerConfigs(config: NodeConfig): ListenerConfig[] {
  const smtp = config.bridge.smtp;
  return (['mx', 'submission', 'smtps'] as const)
    .filter((kind) => smtp[kind].enabled)
    .map((kind) => ({ kind, host: smtp[kind].host, port: smtp[kind].port, greetingDelayMs: smtp[kind].greetingDelayMs }));
}

export class SmtpBridge {
  readonly handler: SmtpHandler;
  private server?: InboundServer;

  constructor(deps: SmtpHandlerDeps) {
    this.handler = new SmtpHandler(deps);
  }

  /** Starts the listeners of bridge.smtp with the node's handler, certificate and DNS client. */
  async start(opts: { config: NodeConfig; dataDir: string; dns: DnsResolver; log: Logger }): Promise<void> {
    const { config, dataDir, log } = opts;
    const smtp = config.bridge.smtp;
    const listeners = listenerConfigs(config);
    this.server = await startInbound({
      hostname: smtpHostname(config),
      listeners,
      tls: {
        cert: readFileSync(dataPath(dataDir, smtp.tls.certFile ?? config.tls.certFile)),
        key: readFileSync(dataPath(dataDir, smtp.tls.keyFile ?? config.tls.keyFile)),
      },
      limits: smtp.limits,
      dnsbl: smtp.dnsbl,
      trustedArcSealers: smtp.trustedArcSealers,
      resolver: opts.dns,
      handler: this.handler,
      logger: log,
    }).catch((err: Error) => {
      const where = listeners.map((l) => `${l.kind} ${l.host}:${l.port}`).join(', ');
      throw new GatewayError('LISTEN_FAILED', `cannot listen for SMTP (${where}; config bridge.smtp.mx, .submission, .smtps): ${err.message}`, { cause: err });
    });
  }

  /** Where each listener is bound, "host:port", named as in the ready line (the MX listener is `smtp`). */
  addresses(): { smtp?: string; submission?: string; smtps?: string } {
    const bound = this.server?.addresses() ?? {};
    const names: Record<ListenerKind, 'smtp' | 'submission' | 'smtps'> = { mx: 'smtp', submission: 'submission', smtps: 'smtps' };
    return Object.fromEntries(Object.entries(bound).map(([kind, a]) => [names[kind as ListenerKind], `${a!.host.includes(':') ? `[${a!.host}]` : a!.host}:${a!.port}`]));
  }

  /** Refuses new messages, then closes the listeners (open sessions get 421 and end). */
  async stop(): Promise<void> {
    this.handler.drain();
    await this.server?.close();
    this.server = undefined;
  }
}
