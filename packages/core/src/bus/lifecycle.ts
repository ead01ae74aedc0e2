import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BusEvent, BusEventType, BusObserver } from '../ports/events.js';
import type { Subscription, Transport } from '../ports/ports.js';
import type { BusHealth, SubscriptionHealth, SubscriptionStatus } from '../ports/health.js';

/** A subscription as the health report reads it: the port, and what its transport says about it. */
export interface ObservedSubscription extends Subscription {
  status?(): SubscriptionStatus;
  handedBack?(): number;
}

/**
 * Tracks `subscription-interrupted` / `-resumed` events per topic (an observer every bus installs), for
 * transports whose subscriptions do not report their own status; combines them with the transport's
 * connections into `bus.health()`.
 */
export class HealthTracker implements BusObserver {
  private readonly interrupted = new Map<string, number>();

  wants(type: BusEventType): boolean {
    return type === 'subscription-interrupted' || type === 'subscription-resumed';
  }

  onEvent(event: BusEvent): void {
    if (event.type === 'subscription-interrupted') {
      if (!this.interrupted.has(event.topic)) this.interrupted.set(event.topic, event.since ?? Date.now());
    } else if (event.type === 'subscription-resumed') {
      this.interrupted.delete(event.topic);
    }
  }

  report(transport: Pick<Transport, 'kind' | 'connections'>, subscriptions: readonly ObservedSubscription[], closed: boolean): BusHealth {
    const list: SubscriptionHealth[] = subscriptions.map((s) => {
      const status = s.status?.();
      const since = status ? (status.state === 'interrupted' ? (status.since ?? Date.now()) : undefined) : this.interrupted.get(s.topic);
      return {
        topic: s.topic,
        ...(s.group !== undefined ? { group: s.group } : {}),
        ...(since !== undefined ? { state: 'interrupted' as const, since } : { state: 'live' as const }),
        ...(status?.lag !== undefined ? { lag: status.lag } : {}),
        ...(status?.buffered !== undefined ? { buffered: status.buffered } : {}),
      };
    });
    const connections = closed ? [] : (transport.connections?.() ?? []);
    const healthy = list.every((s) => s.state === 'live') && connections.every((c) => c.state === 'up');
    return { status: closed ? 'closed' : healthy ? 'up' : 'degraded', transport: transport.kind, subscriptions: list, connections };
  }
}

/** What a bus shutdown did. */
export interface ShutdownReport {
  /** Subscriptions that finished everything they had received (drained) before the deadline. */
  readonly drained: number;
  /**
   * Subscriptions still busy at the deadline: closed instead, so what they had received and not started
   * was handed back unacknowledged (redelivered to the group where the transport acknowledges).
   */
  readonly handedBack: number;
  /**
   * Messages handed back unhandled by those subscriptions, summed where the transport counts them (a
   * lower bound on Kafka: kafkajs' prefetched records are not visible), with the topics of the
   * subscriptions whose transport does not count (`uncounted`).
   */
  readonly messagesHandedBack: number;
  readonly uncounted: readonly string[];
  readonly durationMs: number;
  /** Errors raised while closing (described), if any. */
  readonly errors: readonly string[];
}

/** The part of a bus a shutdown needs. */
export interface Closable {
  subscriptions(): readonly ObservedSubscription[];
  close(): Promise<void>;
}

/**
 * Drains every subscription (handles what was received, retries held in process included), for at
 * most `deadlineMs`; subscriptions still busy then are closed (handing back what they had not started),
 * and the bus is closed. Never rejects: errors are reported.
 */
export async function shutdownBus(bus: Closable, options: { readonly deadlineMs?: number } = {}): Promise<ShutdownReport> {
  const started = Date.now();
  const deadlineMs = options.deadlineMs ?? 10_000;
  const errors: string[] = [];
  let drained = 0;
  let handedBack = 0;
  let messagesHandedBack = 0;
  const uncounted: string[] = [];
  await Promise.all(
    bus.subscriptions().map(async (subscription) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<'deadline'>((resolve) => (timer = setTimeout(() => resolve('deadline'), deadlineMs)));
      const outcome = await Promise.race([subscription.drain().then(() => 'drained' as const), deadline]).catch((error: unknown) => {
        errors.push(`${subscription.topic}: ${(error as Error)?.message ?? String(error)}`);
        return 'failed' as const;
      });
      clearTimeout(timer);
      if (outcome === 'drained') drained++;
      else {
        handedBack++;
        await subscription.close().catch((error: unknown) => errors.push(`${subscription.topic}: ${(error as Error)?.message ?? String(error)}`));
      }
      if (subscription.handedBack) messagesHandedBack += subscription.handedBack();
      else uncounted.push(subscription.topic);
    }),
  );
  await bus.close().catch((error: unknown) => errors.push(`closing the bus: ${(error as Error)?.message ?? String(error)}`));
  return { drained, handedBack, messagesHandedBack, uncounted, durationMs: Date.now() - started, errors };
}

/**
 * On the first of `signals` (default SIGTERM and SIGINT), shuts the bus down (see {@link shutdownBus}),
 * hands the report to `onShutdown`, then exits with code 0 (or `exitCode`) unless `exit: false`.
 * Returns a function that removes the handlers.
 */
export function closeOnSignals(
  bus: Closable,
  options: {
    readonly signals?: readonly NodeJS.Signals[];
    readonly deadlineMs?: number;
    readonly onShutdown?: (report: ShutdownReport & { readonly signal: NodeJS.Signals }) => void | Promise<void>;
    readonly exit?: boolean;
    readonly exitCode?: number;
  } = {},
): () => void {
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  let shuttingDown = false;
  const handler = (signal: NodeJS.Signals) => {
    if (shuttingDown) return;
    shuttingDown = true;
    void (async () => {
      const report = await shutdownBus(bus, options.deadlineMs !== undefined ? { deadlineMs: options.deadlineMs } : {});
      try {
        await options.onShutdown?.({ ...report, signal });
      } finally {
        if (options.exit !== false) process.exit(options.exitCode ?? 0);
      }
    })();
  };
  for (const signal of signals) process.on(signal, handler);
  return () => {
    for (const signal of signals) process.off(signal, handler);
  };
}

/**
 * A `node:http` request handler: `GET <prefix>/live` answers 200 while the process runs; `GET
 * <prefix>/ready` answers 200 when the bus is `up` and 503 otherwise, with the health as JSON.
 * Other paths: 404. Mount it on a server of your own (bind it where your orchestrator probes).
 */
export function healthHandler(bus: { health(): BusHealth }, prefix = '/health'): (request: IncomingMessage, response: ServerResponse) => void {
  return (request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (request.method !== 'GET' || (path !== `${prefix}/live` && path !== `${prefix}/ready`)) {
      response.writeHead(404).end();
      return;
    }
    const health = bus.health();
    const ok = path === `${prefix}/live` || health.status === 'up';
    response.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(health));
  };
}
