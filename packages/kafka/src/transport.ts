import { ClosedError, ConfigError, PublishError, MessageTooLargeError, type BusObserver, type Capabilities, type ConnectionHealth, type DeliveryGuarantee, type Transport } from '@switchboard/core';
import {
  ConnectionState,
  withDeadline,
  ObserverSet,
  type DeliveryListener,
  type TransportMessage,
  type TransportPublishOptions,
  type TransportPublishResult,
  type TransportSubscribeSpec,
  type TransportSubscription,
  ConnectError,
} from '@switchboard/core/transport';
import { toKafkaRecord } from './codec.js';
import { KafkaSubscription } from './subscription.js';
import { KafkaTopics, topicNameProblem } from './topics.js';
import { transactionScope } from './transactions.js';
import { isKafkaTooLarge, isPlatformaticNetworkError } from './errors.js';
import type { KafkaAdmin, KafkaClient, RecordSender } from './client.js';
import type { KafkaOptions } from './options.js';

/** The chosen driver's client; only its module is loaded. */
async function clientFor(options: KafkaOptions): Promise<KafkaClient> {
  if (options.driver === 'platformatic') return (await import('./platformatic/client.js')).platformaticClient(options);
  return (await import('./kafkajs/client.js')).kafkajsClient(options);
}

/**
 * Kafka: a persistent, partitioned log read by consumer groups. Per-key order (same key, same
 * partition), replay from the past (`startFrom: earliest`), redelivery after a delay by pausing only
 * the affected partition. Uncommitted messages come back after a restart, so duplicates happen.
 * Pattern subscriptions match the topics existing when the subscription starts (both drivers).
 */
export const KAFKA_CAPABILITIES: Capabilities = Object.freeze<Capabilities>({
  persistent: true,
  durableGroups: true,
  consumerGroups: true,
  perKeyOrder: true,
  orderings: ['partition', 'key', 'none'],
  acknowledgements: true,
  delayedRedelivery: true,
  replay: true,
  patternSubscriptions: true,
  duplicatesOnRestart: true,
  deliveryGuarantees: ['none', 'leader', 'all'],
  defaultGuarantee: 'all',
  backpressure: true,
  // The broker's default message.max.bytes (a record batch). A topic configured otherwise refuses at its
  // own limit: the broker's MESSAGE_TOO_LARGE is what counts, mapped to MessageTooLargeError.
  maxMessageBytes: 1_048_588,
});

/** Delivery guarantee -> producer acks: none = 0, leader = 1, all = -1 (all in-sync replicas). */
export const ACKS: Readonly<Record<DeliveryGuarantee, 0 | 1 | -1>> = { none: 0, leader: 1, all: -1 };

/** With the kafkajs driver: transactional subscriptions too. */
const KAFKAJS_CAPABILITIES: Capabilities = Object.freeze<Capabilities>({ ...KAFKA_CAPABILITIES, transactions: true });

/** What the Kafka transport declares with `driver`: {@link KAFKA_CAPABILITIES}, plus transactions on kafkajs. */
export function kafkaCapabilities(driver: KafkaOptions['driver']): Capabilities {
  return driver === 'kafkajs' ? KAFKAJS_CAPABILITIES : KAFKA_CAPABILITIES;
}

export class KafkaTransport implements Transport {
  readonly kind = 'kafka';
  readonly capabilities: Capabilities;
  private readonly observers = new ObserverSet();
  private readonly subscriptions = new Set<KafkaSubscription>();
  private closed = false;
  /** Up after a connect or an acknowledged send; down when a send failed for want of a broker. */
  private readonly producerState: ConnectionState;
  /** Topic administration and the shared admin client. */
  readonly topics: KafkaTopics;

  private constructor(
    readonly options: KafkaOptions,
    /** The driver's client: producer, admin port and consumers. */
    readonly client: KafkaClient,
  ) {
    this.capabilities = kafkaCapabilities(client.driver);
    this.producerState = new ConnectionState('producer', options.brokers.join(','));
    this.topics = new KafkaTopics(client.admin, options);
  }

  /** The producer seam (exposed for instrumentation and tests). */
  get sender(): RecordSender {
    return this.client.sender;
  }

  /** Kafka's rule for topic names (see {@link topicNameProblem}). */
  topicProblem(topic: string): string | undefined {
    return topicNameProblem(topic);
  }

  /** The producer, and one consumer per subscription (down while it restarts after losing its broker). */
  connections(): readonly ConnectionHealth[] {
    return [this.producerState.snapshot(), ...[...this.subscriptions].map((s) => s.connection())];
  }

  /** Connects the producer. Rejects with a clear error if no broker answers within the connect timeout. */
  static async connect(options: KafkaOptions): Promise<KafkaTransport> {
    const client = await clientFor(options);
    try {
      await withDeadline(client.sender.connect(), Date.now() + options.connectTimeoutMs + 1000, () => new Error('no broker answered'));
    } catch (error) {
      await client.sender.close().catch(() => undefined);
      await client.close().catch(() => undefined);
      throw new ConnectError(`cannot connect to Kafka at ${options.brokers.join(',')} (connect timeout ${options.connectTimeoutMs} ms): ${(error as Error).message}`, options.brokers.join(','), {
        cause: error,
      });
    }
    return new KafkaTransport(options, client);
  }

  observe(observer: BusObserver): () => void {
    return this.observers.add(observer);
  }

  /**
   * Sends with acks 0 / 1 / -1 for none / leader / all. Resolves when the broker acknowledged per
   * `acks`; rejects with a PublishError after the producer's retries or `publishTimeoutMs`, whichever first.
   */
  async publish(topic: string, messages: readonly TransportMessage[], options: TransportPublishOptions): Promise<TransportPublishResult> {
    if (this.closed) throw new ClosedError('kafka transport is closed');
    const badName = topicNameProblem(topic);
    if (badName) throw new ConfigError([{ path: 'topic', message: badName }]);
    const deadline = Date.now() + this.options.publishTimeoutMs;
    const timeoutError = () =>
      new AckTimeoutError(`Kafka did not acknowledge ${messages.length} message(s) to "${topic}" (acks=${ACKS[options.guarantee]}) within ${this.options.publishTimeoutMs} ms`, topic);
    if (options.existingOnly) {
      // A reply topic: created by its requester only; gone means the requester is gone.
      if (!(await withDeadline(this.topics.exists(topic), deadline, timeoutError))) return { receivers: 0 };
    } else await withDeadline(this.ensureTopic(topic), deadline, timeoutError);
    const records = messages.map(toKafkaRecord);
    const scope = transactionScope.getStore();
    if (scope?.owner === this) {
      // Inside a transactional delivery: the records join its transaction (acks=all), visible to
      // read_committed consumers once it commits.
      await scope.transaction.send(topic, records);
      return {};
    }
    try {
      await withDeadline(this.client.sender.send(topic, records, ACKS[options.guarantee], this.options.requestTimeoutMs), deadline, timeoutError);
    } catch (error) {
      if (isBrokerUnreachable(error)) this.producerState.down();
      if (isKafkaTooLarge(error))
        throw new MessageTooLargeError(`Kafka refused ${messages.length} message(s) to "${topic}" as too large (MESSAGE_TOO_LARGE: over the topic's max.message.bytes)`, topic, undefined, undefined, {
          cause: error,
        });
      throw error;
    }
    this.producerState.up();
    return {};
  }

  /** True inside a transactional delivery of this transport: a publish joins its transaction. */
  inTransaction(): boolean {
    return transactionScope.getStore()?.owner === this;
  }

  /** Creates `topic` (partitions, replication factor from options) unless it exists; once per topic per transport. */
  ensureTopic(topic: string): Promise<void> {
    return this.topics.ensureTopic(topic);
  }

  /** Creates several topics (used by tests and tooling). */
  ensureTopics(topics: readonly string[]): Promise<void> {
    return this.topics.ensureTopics(topics);
  }

  /** Topics this transport created or confirmed (through `ensureTopic`). */
  knownTopics(): string[] {
    return this.topics.knownTopics();
  }

  /** The driver's admin port (topics, offsets, partition leaders; shared, connected on first use). */
  get admin(): KafkaAdmin {
    return this.client.admin;
  }

  async subscribe(spec: TransportSubscribeSpec, listener: DeliveryListener): Promise<TransportSubscription> {
    if (this.closed) throw new ClosedError('kafka transport is closed');
    const badName = spec.pattern ? undefined : topicNameProblem(spec.topic);
    if (badName) throw new ConfigError([{ path: 'topic', message: badName }]);
    if (!spec.pattern) await this.ensureTopic(spec.topic);
    const subscription = new KafkaSubscription(this, spec, listener, () => this.observers);
    await subscription.start();
    this.subscriptions.add(subscription);
    subscription.onEnded(() => this.subscriptions.delete(subscription));
    if (!spec.ephemeral) return subscription;
    // Ephemeral: the subscription owns its topic, deleted once it closed (its group, left without
    // offsets for a topic that is gone, is then dropped by the broker when empty).
    let removing: Promise<void> | undefined;
    const removeTopic = () =>
      (removing ??= this.admin.deleteTopics([spec.topic]).catch((error: unknown) => {
        this.observers.onEvent({ type: 'internal-error', topic: spec.topic, context: "deleting an ephemeral subscription's topic", error });
      }));
    return {
      close: () => subscription.close().then(removeTopic),
      drain: () => subscription.drain().then(removeTopic),
      status: () => subscription.status(),
      handedBack: () => subscription.handedBack(),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    await this.client.sender.close().catch(() => undefined);
    await this.client.close();
  }
}

/** No acknowledgement within `publishTimeoutMs`: the producer counts as down (see {@link isBrokerUnreachable}). */
class AckTimeoutError extends PublishError {}

/** A failure that says no broker answered (connection lost, request timed out, retries spent on those), not a refused request. */
function isBrokerUnreachable(error: unknown): boolean {
  for (let e = error as { name?: string; cause?: unknown; retriable?: boolean } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e instanceof AckTimeoutError) return true;
    if (e.name && /KafkaJS(Connection|ConnectionClosed|RequestTimeout|BrokerNotFound|NumberOfRetriesExceeded|LockTimeout)Error/.test(e.name)) return true;
  }
  return isPlatformaticNetworkError(error);
}
