import { Kafka, logLevel, PartitionAssigners, Partitioners, type Admin, type Consumer, type Message as KafkaRecordOut } from 'kafkajs';
import type { ConsumerHandlers, GroupConsumer, GroupConsumerSpec, KafkaAdmin, KafkaClient, OutgoingRecord, PartitionState, RecordSender, TopicPartitions, TransactionalSender } from '../client.js';
import type { PartitionOffset } from '../commits.js';
import type { KafkaOptions } from '../options.js';
import { RETRY_INITIAL_MS, RETRY_MAX_MS } from '../retry.js';
import { SubscriptionAwareAssigner } from './assigner.js';
import { coordinatorPartition, waitForLeadersOf } from '../topics.js';
import { isUnknownTopic } from '../errors.js';

/** The kafkajs driver (the default): producer, admin and consumers all through kafkajs 2.2.4. */
export function kafkajsClient(options: KafkaOptions): KafkaClient {
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
  const admin = new KafkajsAdmin(kafka, options);
  return {
    driver: 'kafkajs',
    sender: kafkajsSender(kafka, admin, options),
    admin,
    consumer: (spec) => new KafkajsGroupConsumer(kafka, options, spec),
    transactionalSender: (transactionalId) => kafkajsTransactionalSender(kafka, options, transactionalId),
    close: () => admin.close(),
  };
}

/** kafkajs' transactional producer (idempotent, one request in flight, acks=all inside transactions). */
function kafkajsTransactionalSender(kafka: Kafka, options: KafkaOptions, transactionalId: string): TransactionalSender {
  const producer = kafka.producer({
    transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    // The broker aborts a transaction left open longer than this (a member that died mid-transaction).
    transactionTimeout: Math.max(10_000, options.sessionTimeoutMs),
    retry: { retries: options.retries, initialRetryTime: RETRY_INITIAL_MS, maxRetryTime: RETRY_MAX_MS },
  });
  return {
    // kafkajs' connect() asks for an idempotent producer id only; the transactional one (InitProducerId
    // with the transactional id, which fences the previous owner and settles its open transaction) comes
    // with the first transaction(). The contract is that connecting fences, so a join reads final
    // committed offsets: an empty transaction begun and ended here does that (no EndTxn is sent).
    connect: async () => {
      await producer.connect();
      await (await producer.transaction()).abort();
    },
    begin: async () => {
      const transaction = await producer.transaction();
      return {
        send: async (topic, records) => {
          await transaction.send({ topic, messages: records as readonly OutgoingRecord[] as KafkaRecordOut[], acks: -1, timeout: options.requestTimeoutMs });
        },
        sendOffsets: (groupId, offsets) => {
          const byTopic = new Map<string, { partition: number; offset: string }[]>();
          for (const { topic, partition, offset } of offsets) {
            let list = byTopic.get(topic);
            if (!list) byTopic.set(topic, (list = []));
            list.push({ partition, offset });
          }
          return transaction.sendOffsets({ consumerGroupId: groupId, topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })) });
        },
        commit: () => transaction.commit(),
        abort: () => transaction.abort(),
      };
    },
    close: () => producer.disconnect(),
  };
}

/**
 * kafkajs' producer. On a cluster, one send per partition: kafkajs (2.2.4, issue #1303) loses messages
 * when a send spans several leaders and one of them fails: its retry skips every broker that already
 * answered, so the failed partitions' messages are dropped when their new leader is one of those, and
 * the send still resolves. A send with one partition has one leader at a time, so its retry always
 * reaches the new one. Keys map to partitions exactly as kafkajs' default partitioner (murmur2,
 * Java-compatible) maps them; keyless messages go round-robin. With one broker: one send.
 */
function kafkajsSender(kafka: Kafka, admin: KafkajsAdmin, options: KafkaOptions): RecordSender {
  const newProducer = () =>
    kafka.producer({
      idempotent: options.idempotent,
      allowAutoTopicCreation: false,
      retry: { retries: options.retries, initialRetryTime: RETRY_INITIAL_MS, maxRetryTime: RETRY_MAX_MS },
    });
  let producer = newProducer();
  let replacing: Promise<void> | undefined;
  /**
   * kafkajs asks the metadata of every topic it ever sent to, and fails the whole lookup when one of
   * them is gone: after a topic this process published to was deleted (an ephemeral reply topic,
   * closed), every send to a topic new to it failed with UNKNOWN_TOPIC_OR_PARTITION. A new producer
   * starts with no topics; the old one is disconnected.
   */
  const replaceProducer = (failed: typeof producer): Promise<void> => {
    if (producer !== failed) return replacing ?? Promise.resolve(); // replaced already
    const next = newProducer();
    producer = next;
    replacing = next.connect().finally(() => (replacing = undefined));
    void failed.disconnect().catch(() => undefined);
    return replacing;
  };
  /** Partition count per topic when the cluster has several brokers (undefined: one broker), refreshed every metadataMaxAgeMs. */
  const layouts = new Map<string, { partitions: number | undefined; at: number }>();
  const partitioner = Partitioners.DefaultPartitioner();
  let roundRobin = 0;

  const partitionsToSplit = async (topic: string): Promise<number | undefined> => {
    const known = layouts.get(topic);
    if (known && Date.now() - known.at < options.metadataMaxAgeMs) return known.partitions;
    const partitions = (await admin.brokerCount()) > 1 ? (await admin.partitionCount(topic)) || undefined : undefined;
    layouts.set(topic, { partitions, at: Date.now() });
    return partitions;
  };
  const byPartition = (topic: string, records: readonly KafkaRecordOut[], count: number): KafkaRecordOut[][] => {
    const partitionMetadata = Array.from({ length: count }, (_, partitionId) => ({ partitionId, partitionErrorCode: 0, leader: 0, replicas: [], isr: [] }));
    const groups = new Map<number, KafkaRecordOut[]>();
    for (const record of records) {
      const partition = record.key === null || record.key === undefined ? roundRobin++ % count : partitioner({ topic, partitionMetadata, message: record });
      let group = groups.get(partition);
      if (!group) groups.set(partition, (group = []));
      group.push({ ...record, partition });
    }
    return [...groups.values()];
  };
  return {
    driver: 'kafkajs',
    connect: () => producer.connect(),
    send: async (topic, records, acks, timeout) => {
      const messages = records as readonly OutgoingRecord[] as KafkaRecordOut[];
      const partitions = await partitionsToSplit(topic);
      const sends = partitions === undefined ? [messages] : byPartition(topic, messages, partitions);
      const used = producer;
      try {
        await Promise.all(sends.map((batch) => used.send({ topic, messages: batch, acks, timeout })));
      } catch (error) {
        if (!isUnknownTopic(error)) throw error;
        await replaceProducer(used);
        await Promise.all(sends.map((batch) => producer.send({ topic, messages: batch, acks, timeout })));
      }
    },
    close: () => producer.disconnect(),
  };
}

/** kafkajs' admin client behind the {@link KafkaAdmin} port (connected on first use). */
class KafkajsAdmin implements KafkaAdmin {
  private admin: Promise<Admin> | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly options: KafkaOptions,
  ) {}

  private client(): Promise<Admin> {
    this.admin ??= (async () => {
      const admin = this.kafka.admin({ retry: { retries: this.options.retries } });
      await admin.connect();
      return admin;
    })();
    this.admin.catch(() => (this.admin = undefined));
    return this.admin;
  }

  async brokerCount(): Promise<number> {
    return (await (await this.client()).describeCluster()).brokers.length;
  }

  async partitionCount(topic: string): Promise<number> {
    return (await (await this.client()).fetchTopicMetadata({ topics: [topic] })).topics[0]?.partitions.length ?? 0;
  }

  async createTopic(topic: string, partitions: number, replicationFactor: number): Promise<void> {
    const admin = await this.client();
    try {
      await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor }], waitForLeaders: true });
    } catch (error) {
      // On a cluster, the broker asked for leaders may not know the new topic yet (kafkajs waits only
      // on LEADER_NOT_AVAILABLE): wait for leaders through the metadata of any broker, bounded.
      if ((error as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION') throw error;
      await waitForLeadersOf(this, topic, this.options.requestTimeoutMs);
    }
  }

  async topicOffsets(topic: string) {
    return (await (await this.client()).fetchTopicOffsets(topic)).map(({ partition, low, high }) => ({ partition, low, high }));
  }

  async groupOffsets(groupId: string, topic: string) {
    const partitions = (await (await this.client()).fetchOffsets({ groupId, topics: [topic] }))[0]?.partitions ?? [];
    // kafkajs reports "no committed offset" as -1 or an empty value.
    return partitions.map(({ partition, offset }) => ({ partition, offset: offset === '' ? '-1' : offset }));
  }

  async createPartitions(topic: string, count: number): Promise<void> {
    await (await this.client()).createPartitions({ topicPartitions: [{ topic, count }] });
  }

  async deleteTopics(topics: readonly string[]): Promise<void> {
    await (await this.client()).deleteTopics({ topics: [...topics], timeout: 30_000 });
  }

  async groupCoordinator(groupId: string): Promise<number> {
    const partitions = await this.describePartitions(['__consumer_offsets']);
    const partition = coordinatorPartition(groupId, partitions.length);
    return partitions.find((p) => p.partition === partition)?.leader ?? -1;
  }

  async listTopics(): Promise<string[]> {
    return (await this.client()).listTopics();
  }

  async describePartitions(topics?: readonly string[]): Promise<PartitionState[]> {
    const metadata = await (await this.client()).fetchTopicMetadata(topics ? { topics: [...topics] } : undefined);
    return metadata.topics.flatMap((t) => t.partitions.map((p) => ({ topic: t.name, partition: p.partitionId, leader: p.leader, replicas: p.replicas, isr: p.isr })));
  }

  async close(): Promise<void> {
    if (this.admin) await (await this.admin).disconnect().catch(() => undefined);
  }
}

/**
 * kafkajs' consumer behind the {@link GroupConsumer} port: its `eachBatch` runner with manual
 * offsets, its group events, and the subscription-aware assigner (kafkajs' round-robin second, for
 * groups that mix in plain kafkajs consumers).
 */
class KafkajsGroupConsumer implements GroupConsumer {
  private readonly consumer: Consumer;
  private handlers: ConsumerHandlers | undefined;
  /** The member id of the consumer's current membership (from its last join); undefined after a crash. */
  private memberId: string | undefined;
  private stopped = false;

  constructor(
    private readonly kafka: Kafka,
    private readonly options: KafkaOptions,
    private readonly spec: GroupConsumerSpec,
  ) {
    this.consumer = kafka.consumer({
      groupId: spec.groupId,
      partitionAssigners: [SubscriptionAwareAssigner, PartitionAssigners.roundRobin],
      sessionTimeout: options.sessionTimeoutMs,
      heartbeatInterval: options.heartbeatIntervalMs,
      rebalanceTimeout: options.rebalanceTimeoutMs,
      maxWaitTimeInMs: options.maxWaitTimeMs,
      metadataMaxAge: options.metadataMaxAgeMs,
      allowAutoTopicCreation: false,
      // Short, bounded retries: a lost broker is noticed (and reported) within seconds and the
      // consumer restarts every second or so until the broker answers again. Never once disconnected:
      // kafkajs decides on a restart after its crash handler's own disconnect, so a close that came
      // meanwhile was undone, and the consumer came back as a member nobody reads for (it held its
      // partitions from the group's other members).
      retry: { retries: Math.max(options.retries, 5), initialRetryTime: 100, maxRetryTime: 1000, restartOnFailure: async () => !this.stopped },
    });
  }

  async start(handlers: ConsumerHandlers): Promise<void> {
    this.handlers = handlers;
    const consumer = this.consumer;
    await consumer.connect();
    // Positions are fixed by the subscription; kafkajs' own fallback for a partition without a
    // committed offset is "earliest", which never skips anything.
    await consumer.subscribe({ topics: [this.spec.topics], fromBeginning: true });
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      this.memberId = event.payload.memberId;
      handlers.onJoin(event.payload.memberAssignment);
    });
    consumer.on(consumer.events.REBALANCING, () => handlers.onRebalancing());
    consumer.on(consumer.events.FETCH, () => handlers.onFetch());
    consumer.on(consumer.events.CRASH, (event) => {
      const left = this.memberId;
      this.memberId = undefined;
      if (left !== undefined) void this.removeStaleMember(left);
      handlers.onCrash(event.payload.error, event.payload.restart);
    });
    await this.run();
  }

  private run(): Promise<void> {
    const handlers = this.handlers!;
    return this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.spec.partitionsConcurrently,
      eachBatch: ({ batch, resolveOffset, heartbeat, isRunning, isStale }) =>
        handlers.onBatch({ topic: batch.topic, partition: batch.partition, highWatermark: batch.highWatermark, messages: batch.messages, resolveOffset, heartbeat, isRunning, isStale }),
    });
  }

  async restart(): Promise<void> {
    await this.consumer.connect();
    await this.run();
  }

  async rejoin(): Promise<void> {
    await this.consumer.stop(); // leaves the group
    await this.run(); // and joins it again: a rebalance, then GROUP_JOIN
  }

  pause(partitions: readonly TopicPartitions[]): void {
    this.consumer.pause(partitions.map(({ topic, partitions }) => ({ topic, partitions })));
  }

  resume(partitions: readonly TopicPartitions[]): void {
    this.consumer.resume(partitions.map(({ topic, partitions }) => ({ topic, partitions })));
  }

  paused(): TopicPartitions[] {
    return this.consumer.paused();
  }

  seek(position: PartitionOffset): void {
    this.consumer.seek(position);
  }

  commit(offsets: readonly PartitionOffset[]): Promise<void> {
    return this.consumer.commitOffsets([...offsets]);
  }

  disconnect(): Promise<void> {
    this.stopped = true;
    return this.consumer.disconnect();
  }

  /**
   * After a crash kafkajs runs the consumer again as a new member (a new member id), and the LeaveGroup
   * it sends for the old one fails while the broker is away. A broker that comes back restores the
   * group with the old member in it, and the new member's join waits until that one's session expires:
   * consumption resumed `sessionTimeoutMs` (30 s by default) after the broker did. So the old member is
   * removed here, with a LeaveGroup of its id sent to the group's coordinator, tried every second until
   * it is answered (gone already counts), for at most a session timeout (the broker expires it then).
   * kafkajs exposes LeaveGroup only on its internal cluster, created here through the client's private
   * factory (kafkajs 2.2.4, no release since 2023: its internals do not move).
   */
  private async removeStaleMember(memberId: string): Promise<void> {
    const createCluster = Object.getOwnPropertySymbols(this.kafka).find((symbol) => symbol.description === 'private:Kafka:createCluster');
    if (!createCluster) return; // another kafkajs build: the old member then expires after its session
    const until = Date.now() + this.options.sessionTimeoutMs;
    while (!this.stopped && Date.now() < until) {
      const cluster = (this.kafka as unknown as Record<symbol, (options: object) => KafkajsCluster>)[createCluster]!({ metadataMaxAge: this.options.metadataMaxAgeMs, allowAutoTopicCreation: false });
      try {
        await cluster.connect();
        const coordinator = await cluster.findGroupCoordinator({ groupId: this.spec.groupId });
        await coordinator.leaveGroup({ groupId: this.spec.groupId, memberId });
        return;
      } catch (error) {
        if ((error as { type?: string }).type === 'UNKNOWN_MEMBER_ID') return; // left or expired already
      } finally {
        await cluster.disconnect().catch(() => undefined);
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

/** The part of kafkajs' internal cluster {@link KafkajsGroupConsumer.removeStaleMember} uses. */
interface KafkajsCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  findGroupCoordinator(request: { groupId: string }): Promise<{ leaveGroup(request: { groupId: string; memberId: string }): Promise<unknown> }>;
}
