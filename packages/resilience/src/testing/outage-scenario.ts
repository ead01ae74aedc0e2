import { CountingObserver, createBus, FallbackRelay, type FallbackStore, type Transport } from '@switchboard/core';
import { withFallback } from '../fallback-transport.js';
import { uniqueName } from '@switchboard/core/testing';

export interface OutageScenarioOptions {
  /** A fresh connection to the real broker. Called twice: publisher side and consumer side. */
  readonly createTransport: () => Promise<Transport>;
  /** Makes the topic and its group exist before publishing (e.g. a Kafka topic, a RabbitMQ queue). */
  readonly prepare?: (transport: Transport, topic: string) => Promise<void>;
  readonly stopBroker: () => Promise<void>;
  readonly startBroker: () => Promise<void>;
  readonly store: FallbackStore;
  /** Messages in all (default 10000), spread over `publishers` concurrent publishers (default 20). */
  readonly total?: number;
  readonly publishers?: number;
  /** How long the broker stays down after it stopped, ms (default 6000). */
  readonly outageMs?: number;
  /** Consecutive failed publishes that open the breaker (default 3). */
  readonly breakerThreshold?: number;
  /** Bound on each wait, ms (default 180000). */
  readonly waitMs?: number;
}

export interface OutageReport {
  readonly published: number;
  readonly storedForLater: number;
  readonly delivered: number;
  readonly duplicates: number;
  readonly missing: readonly string[];
  readonly recoveryToEmptyStoreMs: number;
  readonly breakerOpened: boolean;
  /** After recovery a publish was delivered (not stored) and the breaker was closed. */
  readonly breakerClosedAfterRecovery: boolean;
}

async function until(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * The producer-outage scenario against a real broker: many concurrent publishers publish `total` messages
 * through a fallback transport; partway through, the broker process is stopped, later started again;
 * a relay drains the store. Reports what the consumer saw. Bounded in count and time.
 */
export async function runBrokerOutageScenario(options: OutageScenarioOptions): Promise<OutageReport> {
  const total = options.total ?? 10_000;
  const publishers = options.publishers ?? 20;
  const waitMs = options.waitMs ?? 180_000;
  const topic = uniqueName('sb-outage');
  const counts = new CountingObserver();
  const inner = await options.createTransport();
  const transport = withFallback(inner, { store: options.store, breaker: { consecutiveFailures: options.breakerThreshold ?? 3, openMs: 1000 }, publishTimeoutMs: 3000 });
  const bus = createBus({ transport, observer: counts });
  // What a passing run never shows, printed so a failing run in CI can be diagnosed from its log.
  const consumerBus = createBus({
    transport: await options.createTransport(),
    observer: {
      wants: (type) => type === 'internal-error' || type === 'subscription-interrupted' || type === 'subscription-resumed',
      onEvent: (event) => {
        if (event.type === 'internal-error') console.warn(`[outage] consumer internal error: ${event.context}: ${(event.error as Error)?.message ?? String(event.error)}`);
        else console.warn(`[outage] consumer ${event.type} at ${new Date().toISOString()}`);
      },
    },
  });
  const relay = new FallbackRelay({ store: options.store, transport: inner, observer: counts, pollIntervalMs: 100, retryMaxMs: 1000 });
  try {
    await options.prepare?.(inner, topic);
    const seen = new Map<string, number>();
    await consumerBus.subscriber.subscribe(topic, (m) => void seen.set(m.id, (seen.get(m.id) ?? 0) + 1), {
      group: 'outage',
      concurrency: 8,
      ...(consumerBus.transport.capabilities.replay ? { startFrom: 'earliest' as const } : {}),
    });
    relay.start();

    let published = 0;
    let stored = 0;
    let outage: Promise<number> | undefined;
    const perPublisher = Math.ceil(total / publishers);
    await Promise.all(
      Array.from({ length: publishers }, async (_, p) => {
        for (let i = 0; i < perPublisher && p * perPublisher + i < total; i++) {
          const receipt = await bus.publisher.publish(topic, { id: `p${p}-${i}`, key: `key-${i % 50}`, value: { p, i } });
          published++;
          if (receipt.status === 'stored') stored++;
          if (!outage && published >= total * 0.3) {
            outage = (async () => {
              await options.stopBroker();
              await new Promise((resolve) => setTimeout(resolve, options.outageMs ?? 6000));
              await options.startBroker();
              return Date.now();
            })();
          }
        }
      }),
    );
    const recoveredAt = await outage!;
    await until(async () => (await options.store.depth()) === 0, waitMs, 'an empty fallback store');
    const emptyAt = Date.now();
    const expected = Array.from({ length: publishers }, (_, p) => Array.from({ length: perPublisher }, (_, i) => (p * perPublisher + i < total ? `p${p}-${i}` : undefined)))
      .flat()
      .filter((id): id is string => id !== undefined);
    await until(() => expected.every((id) => seen.has(id)), waitMs, 'every published id at the consumer').catch(() => undefined);
    const deliveries = [...seen.values()].reduce((a, b) => a + b, 0);
    const delivered = expected.filter((id) => seen.has(id)).length;
    let breakerClosedAfterRecovery = false;
    await until(
      async () => {
        const receipt = await bus.publisher.publish(topic, { id: 'after-recovery', value: 'after' }).catch(() => undefined);
        breakerClosedAfterRecovery = receipt?.status === 'delivered' && transport.breakerState === 'closed';
        return breakerClosedAfterRecovery;
      },
      30_000,
      'the breaker to close after recovery',
    ).catch(() => undefined);
    return {
      published,
      storedForLater: stored,
      delivered,
      duplicates: deliveries - seen.size,
      missing: expected.filter((id) => !seen.has(id)),
      recoveryToEmptyStoreMs: Math.max(0, emptyAt - recoveredAt),
      breakerOpened: counts.count('breaker-state') > 0,
      breakerClosedAfterRecovery,
    };
  } finally {
    await relay.stop();
    await bus.close().catch(() => undefined);
    await consumerBus.close().catch(() => undefined);
  }
}
