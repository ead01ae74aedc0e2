import { randomUUID } from 'node:crypto';
import { CountingObserver, type BusConfigInput, type Logger, type Message } from '@switchboard/core';
import { createSwitchboardContainer } from '@switchboard/inversify';
import { kafkaTransport } from '@switchboard/kafka';
import { rabbitmqTransport } from '@switchboard/rabbitmq';
import { redisPubSubTransport } from '@switchboard/redis-pubsub';
import { redisStreamsTransport } from '@switchboard/redis-streams';
import { natsTransport } from '@switchboard/nats';
import { postgresTransport } from '@switchboard/postgres';
import { mqttTransport } from '@switchboard/mqtt';

/** The transports the demo compares; the application registers the adapters it uses (core names none). */
export const TRANSPORT_KINDS = ['memory', 'kafka', 'rabbitmq', 'redis', 'redis-streams', 'nats', 'postgres', 'mqtt'] as const;
export type TransportKind = (typeof TRANSPORT_KINDS)[number];
const ADAPTERS = [kafkaTransport, rabbitmqTransport, redisPubSubTransport, redisStreamsTransport, natsTransport, postgresTransport, mqttTransport];
import type { MailRequested, ProductSalesUpdated } from './app/events.js';
import { FlakyDatabase, Notifier, OrderService, SalesCounter } from './app/services.js';

/** One column of the comparison: what a transport did with the same application and load. */
export interface ComparisonRow {
  readonly transport: TransportKind;
  readonly error?: string;
  readonly published?: number;
  readonly delivered?: number;
  readonly expected?: number;
  readonly lostWhileOffline?: number;
  readonly duplicates?: number;
  readonly perKeyOrderKept?: boolean;
  readonly retries?: number;
  readonly deadLettered?: number;
  readonly throughput?: number;
  readonly p50Ms?: number;
  readonly p99Ms?: number;
}

/** Connection options per transport; addresses from the usual environment variables. */
export function transportConfig(kind: TransportKind): Record<string, unknown> {
  switch (kind) {
    case 'kafka':
      return { kind, brokers: process.env.KAFKA_BROKERS ?? '127.0.0.1:9092', partitions: 3, connectTimeoutMs: 2000 };
    case 'rabbitmq':
      return { kind, url: process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672', queueExpiresMs: 600_000, connectTimeoutMs: 2000 };
    case 'redis':
    case 'redis-streams':
      return { kind, url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', connectTimeoutMs: 2000 };
    case 'nats':
      return { kind, servers: process.env.NATS_URL ?? 'nats://127.0.0.1:4222', connectTimeoutMs: 2000, maxAgeMs: 3_600_000 };
    case 'postgres':
      return { kind, url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres', connectTimeoutMs: 2000 };
    case 'mqtt':
      // A static member (memberId): the broker keeps the group's messages in its sessions while it is away.
      return { kind, url: process.env.MQTT_URL ?? 'mqtt://127.0.0.1:1883', memberId: 'switchboard-demo', sessionExpirySec: 600, connectTimeoutMs: 2000 };
    default:
      return { kind };
  }
}

/**
 * The same application on one transport. Only the config differs between transports: the transport
 * itself, and what a transport cannot do left out (Redis has no groups; Kafka starts new groups at the
 * beginning of their fresh topics).
 */
function busConfig(kind: TransportKind, runId: string): BusConfigInput {
  const groups = kind !== 'redis';
  const extra = kind === 'kafka' ? { startFrom: 'earliest' as const } : {};
  return {
    transport: transportConfig(kind) as BusConfigInput['transport'],
    defaults: { concurrency: 3, retry: { maxAttempts: 3, initialIntervalMs: 100, multiplier: 2, maxIntervalMs: 1000 } },
    subscriptions: {
      sales: { topic: `demo.sales.${runId}`, ...(groups ? { group: 'sales-counter' } : {}), ...extra },
      mail: { topic: `demo.mail.${runId}`, ...(groups ? { group: 'notifier' } : {}), ...extra },
    },
  };
}

/** Prints the log lines compactly, prefixed with the transport. */
function storyLogger(kind: string, print: (line: string) => void, active: () => boolean): Logger {
  const line = (level: string) => (fields: object, message: string) => {
    if (!active()) return;
    const f = fields as Record<string, unknown>;
    if (message === 'final failure')
      print(
        `  [${kind}] ${level} final failure: topic=${f.topic}, partition=${f.partition ?? '-'}, offset=${f.offset ?? '-'}, key=${f.key}, reason=${f.reason}, error=${f.errorMessage}, payload=${f.payload}`,
      );
    else if (message === 'failed, will retry') print(`  [${kind}] ${level} failed, will retry: ${f.messageId} attempt ${f.attempt}, next in ${f.delayMs} ms (${f.errorMessage})`);
    else if (message.startsWith('retrying')) print(`  [${kind}] ${level} ${message}: ${f.messageId}`);
    else print(`  [${kind}] ${level} ${message} ${JSON.stringify(fields)}`);
  };
  return { debug() {}, info: line('INFO '), warn: line('WARN '), error: line('ERROR') };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const now = () => performance.timeOrigin + performance.now();

async function waitUntil(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

/**
 * Runs the story (one success, one retried then successful, two dead-lettered) and the measured
 * load on one transport. Bounded: every wait has a limit; `messages` orders at most.
 */
export async function runOn(kind: TransportKind, options: { messages: number; story: boolean; print: (line: string) => void }): Promise<ComparisonRow> {
  const runId = randomUUID().slice(0, 8);
  const counts = new CountingObserver();
  let telling = options.story;
  let setup: Awaited<ReturnType<typeof createSwitchboardContainer>>;
  try {
    setup = await createSwitchboardContainer(
      { env: false, object: busConfig(kind, runId) },
      { transports: ADAPTERS, observer: counts, ...(options.story ? { logger: storyLogger(kind, options.print, () => telling) } : {}) },
    );
  } catch (error) {
    return { transport: kind, error: `unreachable: ${(error as Error).message.split('\n')[0]}` };
  }
  const { container, bus } = setup;
  try {
    container.bind(OrderService).toSelf();
    container.bind(SalesCounter).toSelf();
    container.bind(Notifier).toSelf();
    const orders = container.get(OrderService);
    const database = new FlakyDatabase(['-flaky']);
    const handled: Message<ProductSalesUpdated>[] = [];
    const latencies: number[] = [];
    await container.get(SalesCounter).start(database, (message) => {
      latencies.push(now() - message.value.sentAt);
      handled.push(message);
    });
    const notifier = container.get(Notifier);
    let mailSubscription = await notifier.start();
    if (kind === 'mqtt') {
      // MQTT keeps nothing for a topic nobody subscribes to, so a dead letter waits (held, retried)
      // until a group reads the DLQ: the operators' DLQ reader is part of an MQTT deployment.
      for (const topic of [`demo.sales.${runId}-dlq`, `demo.mail.${runId}-dlq`]) await bus.subscriber.subscribe(topic, () => undefined, { group: 'dlq-reader' });
    }

    // 1. The story: a success, a retry that succeeds, a malformed order and a deleted product (both dead-lettered).
    if (options.story) {
      options.print(`\nStory on ${kind}: order-ok succeeds, order-1-flaky fails once then succeeds, order-bad is malformed, order-gone names a deleted product`);
      await orders.placeOrders([
        { orderId: 'order-ok', productId: 'p-1', quantity: 1, seq: 0, sentAt: now() },
        { orderId: 'order-1-flaky', productId: 'p-2', quantity: 2, seq: 0, sentAt: now() },
        { orderId: 'order-bad', productId: 'p-3', quantity: 'three', seq: 0, sentAt: now() },
        { orderId: 'order-gone', productId: 'deleted-product', quantity: 1, seq: 0, sentAt: now() },
      ]);
      // The two orders handled (the flaky one after its retry) and the two dead letters; success events
      // alone would also count a DLQ reader's.
      await waitUntil(() => ['order-ok', 'order-1-flaky'].every((id) => handled.some((m) => m.value.orderId === id)) && counts.count('dead-lettered') >= 2, 30_000);
      telling = false;
      options.print(
        `  [${kind}] counters: success=${counts.count('success')} retry-attempt=${counts.count('retry-attempt')} final-failure=${counts.count('final-failure')} dead-lettered=${counts.count('dead-lettered')}`,
      );
    }
    const before = { success: counts.count('success'), retries: counts.count('retry-attempt'), dead: counts.count('dead-lettered') };
    handled.length = 0;
    latencies.length = 0;

    // 2. The load: keyed by product; every 100th order flaky once, every 250th malformed.
    const products = 50;
    const seqs = new Map<string, number>();
    const batch: (ProductSalesUpdated | Record<string, unknown>)[] = [];
    let malformed = 0;
    for (let i = 0; i < options.messages; i++) {
      const productId = `product-${i % products}`;
      const seq = seqs.get(productId) ?? 0;
      seqs.set(productId, seq + 1);
      if (i % 250 === 249) {
        malformed++;
        batch.push({ orderId: `order-${i}`, productId, quantity: -1, seq, sentAt: 0 });
      } else batch.push({ orderId: `order-${i}${i % 100 === 99 ? '-flaky' : ''}`, productId, quantity: 1, seq, sentAt: 0 });
    }
    const expected = options.messages - malformed;
    const started = now();
    for (let i = 0; i < batch.length; i += 100) {
      const slice = batch.slice(i, i + 100).map((order) => ({ ...order, sentAt: now() }));
      await orders.placeOrders(slice);
    }
    await waitUntil(() => counts.count('success') - before.success >= expected && counts.count('dead-lettered') - before.dead >= malformed, 60_000);
    const elapsedSeconds = (now() - started) / 1000;
    const ids = handled.map((m) => m.id);
    const distinct = new Set(ids).size;
    const lastSeq = new Map<string, number>();
    let ordered = true;
    for (const message of handled) {
      const previous = lastSeq.get(message.value.productId) ?? -1;
      if (message.value.seq < previous) ordered = false;
      lastSeq.set(message.value.productId, message.value.seq);
    }
    const sortedLatencies = [...latencies].sort((a, b) => a - b);

    // 3. Offline: the notifier stops, 50 mails are sent, it comes back.
    await mailSubscription.close();
    const offline: MailRequested[] = Array.from({ length: 50 }, (_, i) => ({ eventId: `mail-${i}`, to: `user${i}@example.com`, template: 'welcome' }));
    await orders.requestMails(offline);
    mailSubscription = await notifier.start();
    await orders.requestMails([{ eventId: 'mail-sentinel', to: 'ops@example.com', template: 'ping' }]);
    await waitUntil(() => notifier.sent.includes('mail-sentinel'), 30_000);
    await waitUntil(() => offline.every((m) => notifier.sent.includes(m.eventId)), 3000);
    const lostWhileOffline = offline.filter((m) => !notifier.sent.includes(m.eventId)).length;

    return {
      transport: kind,
      published: options.messages,
      delivered: distinct,
      expected,
      lostWhileOffline,
      duplicates: ids.length - distinct,
      perKeyOrderKept: ordered,
      retries: counts.count('retry-attempt') - before.retries,
      deadLettered: counts.count('dead-lettered') - before.dead,
      throughput: Math.round(options.messages / elapsedSeconds),
      p50Ms: percentile(sortedLatencies, 50),
      p99Ms: percentile(sortedLatencies, 99),
    };
  } catch (error) {
    return { transport: kind, error: (error as Error).message.split('\n')[0]! };
  } finally {
    await bus.close().catch(() => undefined);
  }
}

/** The side-by-side table. */
export function formatTable(rows: readonly ComparisonRow[]): string {
  const fields: [string, (r: ComparisonRow) => string][] = [
    ['delivered / expected', (r) => `${r.delivered} / ${r.expected}`],
    ['lost while subscriber offline (of 50)', (r) => String(r.lostWhileOffline)],
    ['duplicates', (r) => String(r.duplicates)],
    ['per-key order kept', (r) => (r.perKeyOrderKept ? 'yes' : 'no')],
    ['retries (attempt > 1)', (r) => String(r.retries)],
    ['dead-lettered', (r) => String(r.deadLettered)],
    ['throughput (msg/s, end to end)', (r) => String(r.throughput)],
    ['latency p50 (ms)', (r) => (r.p50Ms ?? 0).toFixed(1)],
    ['latency p99 (ms)', (r) => (r.p99Ms ?? 0).toFixed(1)],
  ];
  const header = ['', ...rows.map((r) => r.transport)];
  const body = fields.map(([label, get]) => [label, ...rows.map((r) => (r.error ? (label === fields[0]![0] ? r.error.slice(0, 60) : '-') : get(r)))]);
  const table = [header, ...body];
  const widths = header.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
  const line = (row: string[]) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}
