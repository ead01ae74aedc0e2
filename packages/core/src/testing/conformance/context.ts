import { afterEach, it } from 'vitest';
import { createBus, type Bus, type BusOptions, type SubscriptionDefaults } from '../../bus/bus.js';
import type { Capabilities } from '../../ports/capabilities.js';
import type { Message, TransportMessage } from '../../ports/message.js';
import { CountingObserver } from '../../observability/observer.js';
import type { BusEvent } from '../../ports/events.js';
import type { Transport } from '../../ports/ports.js';
import { Recorder, uniqueName } from '../recorder.js';
import type { BrokerLink } from '../broker-link.js';

/** Counts like {@link CountingObserver} and prints what a passing run never shows (internal errors, interruptions), so a failure in CI can be diagnosed from its log. */
export class ReportingObserver extends CountingObserver {
  override onEvent(event: BusEvent): void {
    super.onEvent(event);
    if (event.type === 'internal-error') console.warn(`[conformance] internal error on ${event.topic ?? '-'}: ${event.context}: ${String((event.error as Error)?.message ?? event.error)}`);
    else if (event.type === 'subscription-interrupted') console.warn(`[conformance] subscription to ${event.topic} interrupted`);
  }
}

/** Reads dead letters of one DLQ destination, as they arrive. */
export interface DeadLetterReader {
  readonly letters: Recorder<TransportMessage>;
  close(): Promise<void>;
}

/** A message as a foreign producer writes it. */
export interface RawMessage {
  readonly id: string;
  readonly key?: string;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
}

/** What an adapter gives the suite. */
export interface ConformanceTarget {
  /** Shown in test names, e.g. "kafka". */
  readonly name: string;
  /** The capabilities the adapter declares; scenarios needing an absent one skip, saying which. */
  readonly capabilities: Capabilities;
  /** A fresh, connected transport (its own connections). The suite closes it. */
  createTransport(): Promise<Transport>;
  /** Makes topics exist before use where the broker needs it (e.g. Kafka partitions). Optional. */
  prepareTopics?(topics: readonly string[]): Promise<void>;
  /**
   * Opens a reader on `deadLetterTopic` before anything is dead-lettered. Default: a raw subscription on
   * the transport. Transports whose DLQ lives elsewhere (Redis: a stream) provide their own.
   */
  openDeadLetterReader?(transport: Transport, deadLetterTopic: string): Promise<DeadLetterReader>;
  /**
   * Publishes with the broker's own client, as a producer that does not use Switchboard would: the
   * headers reach the wire exactly as given (forged `x-sb-*` control headers included), with a
   * timestamp field set to `rawTimestamp` where the wire format has one. Default: `transport.publish`.
   */
  publishRaw?(transport: Transport, topic: string, message: RawMessage): Promise<void>;
  /**
   * The adapter reads control values (attempt, topic, timestamp) from message headers (RabbitMQ): the
   * suite then expects forged ones to be reported as `untrusted-header`. Others keep them in their own
   * bookkeeping and ignore such headers entirely.
   */
  readonly readsControlHeaders?: boolean;
  /**
   * Subscription defaults of every bus the suite opens, e.g. `{ ordering: 'key' }` to run every scenario
   * with side-by-side handling. Scenarios that set an option themselves override it.
   */
  readonly defaults?: SubscriptionDefaults;
  /**
   * Whether the broker still keeps anything for an ephemeral subscription of `group` to `topic` that
   * closed (its queue, topic, stream, consumer, rows), asked with the adapter's own admin client. The
   * request/reply scenario then checks that closing a requester leaves nothing. Optional.
   */
  ephemeralStateLeft?(transport: Transport, topic: string, group: string): Promise<boolean>;
  /**
   * Why this configuration carries generated ids even with `envelope.id: 'given'` (e.g. signed
   * headers that bind to the id). Absent: a generated id must not reach the consumer.
   */
  readonly carriesGeneratedIds?: string;
  /**
   * How to reach the broker through a relay the suite cuts ({@link BrokerLink}): the broker's address,
   * and a fresh transport connecting to the relay instead (`link.urlThrough(url)`). The outage
   * scenarios then check that a publish settles and `close()` returns when the broker stops
   * answering. `{ unavailable: why }` skips them with that reason (no broker; clients that connect to
   * addresses the broker advertises).
   */
  readonly brokerLink?: { readonly broker: { readonly host: string; readonly port: number }; createTransport(link: BrokerLink): Promise<Transport> } | { readonly unavailable: string };
  /** Bound for each wait on the broker, ms. Default 20000. */
  readonly waitMs?: number;
  /** Per-test timeout, ms. Default 60000. */
  readonly testTimeoutMs?: number;
}

export async function defaultDeadLetterReader(transport: Transport, topic: string): Promise<DeadLetterReader> {
  const letters = new Recorder<TransportMessage>();
  const subscription = await transport.subscribe(
    {
      topic,
      pattern: false,
      group: transport.capabilities.consumerGroups ? 'dlq-reader' : '',
      concurrency: 1,
      ordering: transport.capabilities.orderings[0] ?? 'partition',
      startFrom: transport.capabilities.replay ? 'earliest' : 'latest',
    },
    async (delivery) => {
      letters.add({ id: delivery.id, ...(delivery.key !== undefined ? { key: delivery.key } : {}), headers: delivery.headers, body: delivery.body, timestamp: delivery.timestamp });
      await delivery.ack();
    },
  );
  return { letters, close: () => subscription.close() };
}

export const text = (m: TransportMessage | Message) => Buffer.from('body' in m ? m.body : m.payload).toString('utf8');

/** What every scenario module gets: the target, its capabilities, bounds, and helpers that clean up after each test. */
export interface ConformanceContext {
  readonly target: ConformanceTarget;
  readonly caps: Capabilities;
  readonly waitMs: number;
  readonly timeout: number;
  /** A scenario that needs capabilities: skipped, visibly, with the missing capability as the reason. */
  needs(required: (keyof Capabilities)[], title: string, scenario: () => Promise<void>): void;
  groupOf(name: string): { group?: string };
  readonly startFrom: 'earliest' | 'latest';
  openBus(observer?: CountingObserver, publisher?: BusOptions['publisher']): Promise<Bus & { counts: CountingObserver }>;
  /** Opens a reader on `<topic>-dlq` before anything is dead-lettered; closed after the test. */
  openDeadLetters(bus: Bus, topic: string): Promise<DeadLetterReader>;
  topics(...names: string[]): Promise<string[]>;
  publishRaw(transport: Transport, topic: string, message: RawMessage): Promise<void>;
  readonly fastRetry: { maxAttempts: number; initialIntervalMs: number; multiplier: number; maxIntervalMs: number };
  /** Runs `cleanup` after the current test (in reverse order of registration). */
  onCleanup(cleanup: () => Promise<void>): void;
}

/** Builds the context inside the suite's `describe` (it registers the `afterEach` that closes what a test opened). */
export function createConformanceContext(target: ConformanceTarget): ConformanceContext {
  const caps = target.capabilities;
  const waitMs = target.waitMs ?? 20_000;
  const timeout = target.testTimeoutMs ?? 60_000;
  const openReader = target.openDeadLetterReader ?? defaultDeadLetterReader;
  /** A scenario that needs capabilities: skipped, visibly, with the missing capability as the reason. */
  const needs = (required: (keyof Capabilities)[], title: string, scenario: () => Promise<void>) => {
    const missing = required.filter((c) => !caps[c]);
    if (missing.length === 0) it(title, { timeout }, scenario);
    else it.skip(`${title} — skipped: transport lacks capability ${missing.join(', ')}`, scenario);
  };
  const groupOf = (name: string): { group?: string } => (caps.consumerGroups ? { group: name } : {});
  const startFrom: 'earliest' | 'latest' = caps.replay ? 'earliest' : 'latest';

  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function openBus(observer: CountingObserver = new ReportingObserver(), publisher?: BusOptions['publisher']): Promise<Bus & { counts: CountingObserver }> {
    const transport = await target.createTransport();
    const bus = createBus({ transport, observer, ...(target.defaults ? { defaults: target.defaults } : {}), ...(publisher ? { publisher } : {}) });
    cleanups.push(() => bus.close());
    return Object.assign(bus, { counts: observer });
  }

  /** Opens a reader on `<topic>-dlq` before anything is dead-lettered; closed after the test. */
  async function openDeadLetters(bus: Bus, topic: string): Promise<DeadLetterReader> {
    const dlqTopic = `${topic}-dlq`;
    await target.prepareTopics?.([dlqTopic]);
    const reader = await openReader(bus.transport, dlqTopic);
    cleanups.push(() => reader.close());
    return reader;
  }

  async function topics(...names: string[]): Promise<string[]> {
    const unique = names.map((n) => uniqueName(`sb-conf.${n}`));
    await target.prepareTopics?.(unique);
    return unique;
  }
  const publishRaw = (transport: Transport, topic: string, message: RawMessage) =>
    target.publishRaw
      ? target.publishRaw(transport, topic, message)
      : transport.publish(topic, [{ ...message, timestamp: Date.now() }], { guarantee: transport.capabilities.defaultGuarantee }).then(() => undefined);
  const fastRetry = { maxAttempts: 3, initialIntervalMs: 20, multiplier: 1, maxIntervalMs: 20 };
  const onCleanup = (cleanup: () => Promise<void>) => void cleanups.push(cleanup);
  return { target, caps, waitMs, timeout, needs, groupOf, startFrom, openBus, openDeadLetters, topics, publishRaw, fastRetry, onCleanup };
}
