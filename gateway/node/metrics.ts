// The node's Prometheus metrics, through prom-client: its standard process and Node.js metrics, the
// node's own gauges and counters (read from the node's parts when scraped, so nothing is kept twice),
// and latency histograms observed on the paths that matter (app submissions, relay acknowledgements).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What the node reads at each scrape. Each getter is cheap (a counter, a cached count, one small query). */
export interface NodeMetricsSource {
  gauges: Record<string, { help: string; value: () => number }>;
  counters: Record<string, { help: string; value: () => number }>;
  /** Federation refusals since start, by reason code. */
  refusals: () => Record<string, number>;
  /** Recipients in the outbound queue, by state. */
  outbound: () => Record<string, number>;
  /** Webhook deliveries waiting and dead-lettered. */
  webhooks: () => Record<string, number>;
}

/** Latency buckets (seconds) from a fast local commit (~1 ms) to a slow disk or a distant peer. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class NodeMetrics {
  readonly registry = new Registry();
  /** From a submission's arrival to its reply (durable), by method and outcome. */
  readonly submitSeconds: Histogram<'method' | 'outcome'>;
  /** From sending an envelope to a peer to its acknowledgement, by outcome. */
  readonly relaySeconds: Histogram<'outcome'>;

  constructor(source: NodeMetricsSource) {
    collectDefaultMetrics({ register: this.registry });
    for (const [name, { help, value }] of Object.entries(source.gauges)) {
      new Gauge({ name, help, registers: [this.registry], collect() { this.set(value()); } });
    }
    for (const [name, { help, value }] of Object.entries(source.counters)) {
      // The totals live in the parts that count them; a scrape copies them.
      new Counter({ name, help, registers: [this.registry], collect() { this.reset(); this.inc(value()); } });
    }
    new Counter({
      name: 'aftersmtp_refused_total', help: 'Federation refusals since start, by reason code', labelNames: ['code'], registers: [this.registry],
      collect() {
        this.reset();
        for (const [code, n] of Object.entries(source.refusals())) this.inc({ code }, n);
      },
    });
    new Gauge({
      name: 'aftersmtp_outbound_recipients', help: 'Recipients waiting in the outbound queue, by state', labelNames: ['state'], registers: [this.registry],
      collect() {
        this.reset();
        for (const [state, n] of Object.entries(source.outbound())) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'aftersmtp_webhook_deliveries', help: 'Webhook deliveries waiting (queued) and dead-lettered (dead)', labelNames: ['state'], registers: [this.registry],
      collect() {
        this.reset();
        for (const [state, n] of Object.entries(source.webhooks())) this.set({ state }, n);
      },
    });
    this.submitSeconds = new Histogram({
      name: 'aftersmtp_submit_seconds', help: 'Time from an app submission\'s arrival to its reply (after it is durable)',
      labelNames: ['method', 'outcome'], buckets: LATENCY_BUCKETS, registers: [this.registry],
    });
    this.relaySeconds = new Histogram({
      name: 'aftersmtp_relay_ack_seconds', help: 'Time from sending an envelope to a peer to its acknowledgement',
      labelNames: ['outcome'], buckets: LATENCY_BUCKETS, registers: [this.registry],
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
