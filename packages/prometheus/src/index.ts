import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BusEvent, BusObserver } from '@switchboard/core';

export interface PrometheusObserverOptions {
  /** Registry to register into (default: a new one). */
  readonly registry?: Registry;
  /** `transport` label value (e.g. bus.transport.kind). */
  readonly transport: string;
  /** Metric name prefix. Default `switchboard_`. */
  readonly prefix?: string;
}

/**
 * Prometheus metrics over the bus observer, labelled by transport, topic and group: the usual
 * counters (successes, retry attempts, final failures) plus dead letters, publishes and publish
 * failures, handler duration, breaker state and fallback store depth.
 */
export class PrometheusObserver implements BusObserver {
  readonly registry: Registry;
  private readonly transport: string;
  readonly succeeded: Counter<'transport' | 'topic' | 'group'>;
  readonly retryAttempts: Counter<'transport' | 'topic' | 'group'>;
  readonly finalFailures: Counter<'transport' | 'topic' | 'group' | 'reason'>;
  readonly deadLettered: Counter<'transport' | 'topic' | 'group'>;
  readonly published: Counter<'transport' | 'topic'>;
  readonly publishFailures: Counter<'transport' | 'topic'>;
  readonly noReceivers: Counter<'transport' | 'topic'>;
  readonly diverted: Counter<'transport' | 'topic' | 'reason'>;
  readonly relayed: Counter<'transport' | 'topic'>;
  readonly handlerDuration: Histogram<'transport' | 'topic' | 'group' | 'outcome'>;
  readonly breakerState: Gauge<'transport'>;
  readonly fallbackDepth: Gauge<'transport'>;
  readonly outboxDepth: Gauge<'transport'>;
  readonly outboxOldestAge: Gauge<'transport'>;

  constructor(options: PrometheusObserverOptions) {
    const registry = (this.registry = options.registry ?? new Registry());
    this.transport = options.transport;
    const p = options.prefix ?? 'switchboard_';
    const registers = [registry];
    this.succeeded = new Counter({ name: `${p}messages_succeeded_total`, help: 'Messages handled successfully', labelNames: ['transport', 'topic', 'group'], registers });
    this.retryAttempts = new Counter({ name: `${p}retry_attempts_total`, help: 'Handler calls with delivery attempt > 1', labelNames: ['transport', 'topic', 'group'], registers });
    this.finalFailures = new Counter({
      name: `${p}final_failures_total`,
      help: 'Messages given up on after all retries (or not retryable)',
      labelNames: ['transport', 'topic', 'group', 'reason'],
      registers,
    });
    this.deadLettered = new Counter({ name: `${p}dead_lettered_total`, help: 'Messages published to a dead-letter destination', labelNames: ['transport', 'topic', 'group'], registers });
    this.published = new Counter({ name: `${p}published_total`, help: 'Messages published (guarantee met)', labelNames: ['transport', 'topic'], registers });
    this.publishFailures = new Counter({ name: `${p}publish_failures_total`, help: 'Messages whose publish failed', labelNames: ['transport', 'topic'], registers });
    this.noReceivers = new Counter({ name: `${p}no_receivers_total`, help: 'Messages published to nobody (lost)', labelNames: ['transport', 'topic'], registers });
    this.diverted = new Counter({ name: `${p}publish_diverted_total`, help: 'Messages diverted to the fallback store', labelNames: ['transport', 'topic', 'reason'], registers });
    this.relayed = new Counter({ name: `${p}relayed_total`, help: 'Messages relayed from the fallback store', labelNames: ['transport', 'topic'], registers });
    this.handlerDuration = new Histogram({
      name: `${p}handler_duration_seconds`,
      help: 'Handler call duration, by outcome (success, or failure: a call that threw)',
      labelNames: ['transport', 'topic', 'group', 'outcome'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    });
    this.breakerState = new Gauge({ name: `${p}breaker_state`, help: 'Circuit breaker: 0 closed, 1 half-open, 2 open', labelNames: ['transport'], registers });
    this.fallbackDepth = new Gauge({ name: `${p}fallback_store_depth`, help: 'Messages waiting in the fallback store', labelNames: ['transport'], registers });
    this.outboxDepth = new Gauge({ name: `${p}outbox_depth`, help: 'Rows waiting in the transactional outbox', labelNames: ['transport'], registers });
    this.outboxOldestAge = new Gauge({ name: `${p}outbox_oldest_age_seconds`, help: 'Age of the oldest row waiting in the transactional outbox (0 when empty)', labelNames: ['transport'], registers });
  }

  onEvent(event: BusEvent): void {
    const t = this.transport;
    switch (event.type) {
      case 'success':
        this.succeeded.inc({ transport: t, topic: event.topic, group: event.group ?? '' });
        this.handlerDuration.observe({ transport: t, topic: event.topic, group: event.group ?? '', outcome: 'success' }, event.durationMs / 1000);
        break;
      case 'will-retry':
        if (event.durationMs !== undefined) this.handlerDuration.observe({ transport: t, topic: event.topic, group: event.group ?? '', outcome: 'failure' }, event.durationMs / 1000);
        break;
      case 'retry-attempt':
        this.retryAttempts.inc({ transport: t, topic: event.topic, group: event.group ?? '' });
        break;
      case 'final-failure':
        this.finalFailures.inc({ transport: t, topic: event.topic, group: event.group ?? '', reason: event.reason });
        if (event.durationMs !== undefined) this.handlerDuration.observe({ transport: t, topic: event.topic, group: event.group ?? '', outcome: 'failure' }, event.durationMs / 1000);
        break;
      case 'dead-lettered':
        this.deadLettered.inc({ transport: t, topic: event.topic, group: event.group ?? '' });
        break;
      case 'published':
        this.published.inc({ transport: t, topic: event.topic }, event.count);
        break;
      case 'publish-failed':
        this.publishFailures.inc({ transport: t, topic: event.topic }, event.count);
        break;
      case 'no-receivers':
        this.noReceivers.inc({ transport: t, topic: event.topic }, event.count);
        break;
      case 'publish-diverted':
        this.diverted.inc({ transport: t, topic: event.topic, reason: event.reason }, event.count);
        break;
      case 'relayed':
        this.relayed.inc({ transport: t, topic: event.topic }, event.count);
        break;
      case 'breaker-state':
        this.breakerState.set({ transport: t }, event.state === 'closed' ? 0 : event.state === 'half-open' ? 1 : 2);
        break;
      case 'fallback-depth':
        this.fallbackDepth.set({ transport: t }, event.depth);
        break;
      case 'outbox-depth':
        this.outboxDepth.set({ transport: t }, event.depth);
        this.outboxOldestAge.set({ transport: t }, (event.oldestAgeMs ?? 0) / 1000);
        break;
      default:
        break;
    }
  }

  /** The exposition text, as `/metrics` serves it. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}

/** Serves `GET /metrics` from `registry` on loopback (default 127.0.0.1). Resolves once listening. */
export async function startMetricsServer(registry: Registry, options: { port?: number; host?: string } = {}): Promise<Server & { url: string }> {
  const server = createServer((request, response) => {
    if (request.method === 'GET' && request.url?.split('?')[0] === '/metrics') {
      registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (error: unknown) => response.writeHead(500).end(String(error)),
      );
    } else response.writeHead(404).end('not found: try /metrics\n');
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  const address = server.address();
  const url = typeof address === 'object' && address ? `http://${address.address}:${address.port}/metrics` : '';
  return Object.assign(server, { url });
}
