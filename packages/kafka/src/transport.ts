import { Kafka, PartitionAssigners, logLevel, type Admin, type Consumer, type Producer } from 'kafkajs';
import { SubscriptionAwareAssigner } from './assigner.js';
import {
  ClosedError,
  InFlight,
  withDeadline,
  PublishError,
  combineObservers,
  compileTopicPattern,
  type BusObserver,
  type Capabilities,
  type Delivery,
  type DeliveryGuarantee,
  type DeliveryListener,
  type Transport,
  type TransportMessage,
  type TransportPublishOptions,
  type TransportPublishResult,
  type TransportSubscribeSpec,
  type TransportSubscription,
} from '@switchboard/core';
import { fromKafkaRecord, toKafkaRecord } from './codec.js';
import type { KafkaOptions } from './options.js';

/**
 * Kafka: a persistent, partitioned log read by consumer groups. Per-key order (same key, same
 * partition), replay from the past (`startFrom: earliest`), redelivery after a delay by pausing only
 * the affected partition. Uncommitted messages come back after a restart, so duplicates happen.
 * Pattern subscriptions match the topics existing when the subscription starts (kafkajs).
 */
export const KAFKA_CAPABILITIES: Capabilities = Object.freeze<Capabilities>({
  persistent: true,
  durableGroups: true,
  consumerGroups: true,
  perKeyOrder: true,
  acknowledgements: true,
  delayedRedelivery: true,
  replay: true,
  patternSubscriptions: true,
  duplicatesOnRestart: true,
  deliveryGuarantees: ['none', 'leader', 'all'],
  defaultGuarantee: 'all',
});

/** Delivery guarantee -> producer acks: none = 0, leader = 1, all = -1 (all in-sync replicas). */
export const ACKS: Readonly<Record<DeliveryGuarantee, 0 | 1 | -1>> = { none: 0, leader: 1, all: -1 };

export class KafkaTransport implements Transport {
  readonly kind = 'kafka';
  readonly capabilities = KAFKA_CAPABILITIES;
  private observer: BusObserver = combineObservers();
  private readonly topicsReady = new Map<string, Promise<void>>();
  private admin: Promise<Admin> | undefined;
  private readonly subscriptions = new Set<KafkaSubscription>();
  private closed = false;

  private constructor(
    readonly options: KafkaOptions,
    readonly kafka: Kafka,
    /** The kafkajs producer (exposed for instrumentation and tests). */
    readonly producer: Producer,
  ) {}

  /** Connects the producer. Rejects with a clear error if no broker answers within the connect timeout. */
  static async connect(options: KafkaOptions): Promise<KafkaTransport> {
    const kafka = new Kafka({
      clientId: options.clientId,
      brokers: options.brokers,
      ssl: options.ssl,
      ...(options.sasl ? { sasl: options.sasl as never } : {}),
      connectionTimeout: options.connectTimeoutMs,
      requestTimeout: options.requestTimeoutMs,
      retry: { retries: options.retries, initialRetryTime: 100, maxRetryTime: 2000 },
      logLevel: logLevel.NOTHING,
    });
    const producer = kafka.producer({ idempotent: options.idempotent, allowAutoTopicCreation: false, retry: { retries: options.retries, initialRetryTime: 100, maxRetryTime: 1000 } });
    try {
      await producer.connect();
    } catch (error) {
      throw new Error(`cannot connect to Kafka at ${options.brokers.join(',')} (connect timeout ${options.connectTimeoutMs} ms): ${(error as Error).message}`, { cause: error });
    }
    return new KafkaTransport(options, kafka, producer);
  }

  observe(observer: BusObserver): void {
    this.observer = observer;
  }

  /**
   * Sends with acks 0 / 1 / -1 for none / leader / all. Resolves when the broker acknowledged per
   * `acks`; rejects with a PublishError after the producer's retries or `publishTimeoutMs`, whichever first.
   */
  async publish(topic: string, messages: readonly TransportMessage[], options: TransportPublishOptions): Promise<TransportPublishResult> {
    if (this.closed) throw new ClosedError('kafka transport is closed');
    const deadline = Date.now() + this.options.publishTimeoutMs;
    const timeoutError = () => new PublishError(`Kafka did not acknowledge ${messages.length} message(s) to "${topic}" (acks=${ACKS[options.guarantee]}) within ${this.options.publishTimeoutMs} ms`, topic);
    await withDeadline(this.ensureTopic(topic), deadline, timeoutError);
    await withDeadline(
      this.producer.send({ topic, messages: messages.map(toKafkaRecord), acks: ACKS[options.guarantee], timeout: this.options.requestTimeoutMs }),
      deadline,
      timeoutError,
    );
    return {};
  }

  /** Creates `topic` (partitions, replication factor from options) unless it exists; once per topic per transport. */
  ensureTopic(topic: string): Promise<void> {
    if (!this.options.createTopics) return Promise.resolve();
    let ready = this.topicsReady.get(topic);
    if (!ready) {
      ready = (async () => {
        const admin = await this.adminClient();
        const partitions = this.options.partitions === 'brokers' ? (await admin.describeCluster()).brokers.length : this.options.partitions;
        await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: this.options.replicationFactor }], waitForLeaders: true });
      })();
      ready.catch(() => this.topicsReady.delete(topic));
      this.topicsReady.set(topic, ready);
    }
    return ready;
  }

  /** Topics this transport created or confirmed (through `ensureTopic`). */
  knownTopics(): string[] {
    return [...this.topicsReady.keys()];
  }

  /** Creates several topics (used by tests and tooling). */
  async ensureTopics(topics: readonly string[]): Promise<void> {
    await Promise.all(topics.map((t) => this.ensureTopic(t)));
  }

  async subscribe(spec: TransportSubscribeSpec, listener: DeliveryListener): Promise<TransportSubscription> {
    if (this.closed) throw new ClosedError('kafka transport is closed');
    if (!spec.pattern) await this.ensureTopic(spec.topic);
    const subscription = new KafkaSubscription(this, spec, listener, () => this.observer);
    await subscription.start();
    this.subscriptions.add(subscription);
    subscription.onEnded(() => this.subscriptions.delete(subscription));
    return subscription;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    await this.producer.disconnect().catch(() => undefined);
    if (this.admin) await (await this.admin).disconnect().catch(() => undefined);
  }

  private adminClient(): Promise<Admin> {
    this.admin ??= (async () => {
      const admin = this.kafka.admin({ retry: { retries: this.options.retries } });
      await admin.connect();
      return admin;
    })();
    this.admin.catch(() => (this.admin = undefined));
    return this.admin;
  }
}

interface HeldRetry {
  readonly timer: ReturnType<typeof setTimeout>;
}

/**
 * One kafkajs consumer in the subscription's group. Contracts:
 * - offsets are committed (offset + 1) only for acknowledged messages, in order per partition
 *   (processing within a partition is sequential), in batches every `commitIntervalMs`;
 * - `retryLater` pauses only that partition and seeks back to the message; the partition resumes when
 *   the delay is over, so other partitions keep flowing, per-key order holds, and no eachMessage call
 *   sleeps (kafkajs keeps heartbeating, so long backoffs cause no rebalance);
 * - on a rebalance, retries held for revoked partitions are dropped uncommitted (the new owner gets
 *   the message again) and stale pauses are lifted.
 */
class KafkaSubscription implements TransportSubscription {
  private readonly consumer: Consumer;
  private readonly held = new Map<string, HeldRetry>();
  /** Next attempt of messages coming back after a retry, by topic|partition|offset. */
  private readonly attempts = new Map<string, number>();
  private readonly pendingCommits = new Map<string, { topic: string; partition: number; offset: string }>();
  private commitTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly inFlight = new InFlight();
  private stopping = false;
  private ending: Promise<void> | undefined;
  private endedCallbacks: (() => void)[] = [];

  constructor(
    private readonly transport: KafkaTransport,
    private readonly spec: TransportSubscribeSpec,
    private readonly listener: DeliveryListener,
    private readonly observer: () => BusObserver,
  ) {
    const o = transport.options;
    this.consumer = transport.kafka.consumer({
      groupId: spec.group || 'default',
      partitionAssigners: [SubscriptionAwareAssigner, PartitionAssigners.roundRobin],
      sessionTimeout: o.sessionTimeoutMs,
      heartbeatInterval: o.heartbeatIntervalMs,
      rebalanceTimeout: o.rebalanceTimeoutMs,
      maxWaitTimeInMs: o.maxWaitTimeMs,
      allowAutoTopicCreation: false,
      retry: { retries: Math.max(o.retries, 5) },
    });
  }

  /** Resolves once this member has joined the group and received its assignment. */
  async start(): Promise<void> {
    const consumer = this.consumer;
    await consumer.connect();
    await consumer.subscribe({ topics: [this.spec.pattern ? compileTopicPattern(this.spec.topic) : this.spec.topic], fromBeginning: this.spec.startFrom === 'earliest' });
    const joined = new Promise<void>((resolve) => {
      consumer.on(consumer.events.GROUP_JOIN, (event) => {
        this.onAssignment(event.payload.memberAssignment);
        resolve();
      });
    });
    consumer.on(consumer.events.CRASH, (event) => {
      this.observer().onEvent({ type: 'internal-error', topic: this.spec.topic, context: `kafka consumer crashed (restart: ${event.payload.restart})`, error: event.payload.error });
    });
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: this.spec.concurrency,
      eachMessage: ({ topic, partition, message }) => this.onMessage(topic, partition, message),
    });
    await withDeadline(joined, Date.now() + this.transport.options.rebalanceTimeoutMs + 10_000, () => new Error(`kafka consumer of group "${this.spec.group}" did not join within the rebalance timeout`));
  }

  private async onMessage(topic: string, partition: number, record: Parameters<typeof fromKafkaRecord>[2]): Promise<void> {
    if (this.stopping) return; // not committed: the group gets it again
    const position = `${topic}|${partition}|${record.offset}`;
    const message = fromKafkaRecord(topic, partition, record);
    const attempt = this.attempts.get(position) ?? 1;
    let settled = false;
    const delivery: Delivery = {
      ...message,
      attempt,
      source: { transport: 'kafka', topic, partition, offset: record.offset, group: this.spec.group },
      ack: async () => {
        if (settled) return false;
        settled = true;
        this.attempts.delete(position);
        await this.commit(topic, partition, (BigInt(record.offset) + 1n).toString());
        return true;
      },
      retryLater: async (delayMs: number) => {
        if (settled) return false;
        settled = true;
        this.hold(topic, partition, record.offset, attempt + 1, delayMs);
        return true;
      },
    };
    this.inFlight.begin();
    try {
      await this.listener(delivery);
      if (!settled && !this.stopping) this.hold(topic, partition, record.offset, attempt + 1, 0); // unsettled: read it again
    } finally {
      this.inFlight.end();
    }
  }

  /** Pauses the partition at `offset` and resumes it after `delayMs`, when the message comes again as `attempt`. */
  private hold(topic: string, partition: number, offset: string, attempt: number, delayMs: number): void {
    const tp = `${topic}|${partition}`;
    this.attempts.set(`${tp}|${offset}`, attempt);
    this.consumer.pause([{ topic, partitions: [partition] }]);
    this.consumer.seek({ topic, partition, offset });
    const previous = this.held.get(tp);
    if (previous) clearTimeout(previous.timer);
    const timer = setTimeout(() => {
      this.held.delete(tp);
      if (!this.stopping) this.consumer.resume([{ topic, partitions: [partition] }]);
    }, delayMs);
    this.held.set(tp, { timer });
  }

  private onAssignment(assignment: Record<string, number[]>): void {
    const owned = new Set(Object.entries(assignment).flatMap(([topic, partitions]) => partitions.map((p) => `${topic}|${p}`)));
    for (const [tp, held] of this.held) {
      if (owned.has(tp)) continue;
      clearTimeout(held.timer); // revoked: the new owner reads it from the committed offset
      this.held.delete(tp);
      for (const position of this.attempts.keys()) if (position.startsWith(`${tp}|`)) this.attempts.delete(position);
    }
    // A pause survives rebalances in kafkajs: lift every pause we no longer hold a retry for.
    const stale = this.consumer.paused().flatMap(({ topic, partitions }) => partitions.filter((p) => !this.held.has(`${topic}|${p}`)).map((p) => ({ topic, partitions: [p] })));
    if (stale.length > 0) this.consumer.resume(stale);
  }

  private async commit(topic: string, partition: number, offset: string): Promise<void> {
    this.pendingCommits.set(`${topic}|${partition}`, { topic, partition, offset });
    const interval = this.transport.options.commitIntervalMs;
    if (interval === 0) return this.flushCommits();
    this.commitTimer ??= setTimeout(() => void this.flushCommits(), interval);
  }

  private async flushCommits(): Promise<void> {
    if (this.commitTimer) clearTimeout(this.commitTimer);
    this.commitTimer = undefined;
    if (this.pendingCommits.size === 0) return;
    const offsets = [...this.pendingCommits.values()];
    this.pendingCommits.clear();
    try {
      await this.consumer.commitOffsets(offsets);
    } catch (error) {
      // e.g. a rebalance: those messages come again (at-least-once), nothing is lost.
      this.observer().onEvent({ type: 'internal-error', topic: this.spec.topic, context: 'kafka offset commit', error });
    }
  }

  onEnded(callback: () => void): void {
    this.endedCallbacks.push(callback);
  }

  /** Stops fetching, lets running handlers finish and commit, hands back held retries uncommitted, leaves the group. */
  close(): Promise<void> {
    this.ending ??= (async () => {
      this.stopping = true;
      for (const held of this.held.values()) clearTimeout(held.timer);
      this.held.clear();
      await this.inFlight.idle();
      await this.flushCommits();
      await this.consumer.disconnect().catch(() => undefined);
      for (const callback of this.endedCallbacks) callback();
    })();
    return this.ending;
  }

  /** Kafka hands back what it fetched but did not start (uncommitted), so drain is close. */
  drain(): Promise<void> {
    return this.close();
  }
}
