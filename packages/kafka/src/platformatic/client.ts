import { Readable } from 'node:stream';
import type { Admin, BaseOptions, ClusterMetadata, Consumer, MessagesStream, Producer } from '@platformatic/kafka';
import { ConfigError } from '@switchboard/core';
import type { KafkaAdmin, KafkaClient, PartitionState, RecordSender } from '../client.js';
import type { KafkaOptions } from '../options.js';
import { waitForLeadersOf } from '../topics.js';
import { retryDelayMs } from '../retry.js';
import { platformaticRunsOn } from './runtime.js';
import { hasPlatformaticCode, isPlatformaticNetworkError } from '../errors.js';
import { PlatformaticGroupConsumer } from './consumer.js';

export type PlatformaticModule = typeof import('@platformatic/kafka');

/** Loads @platformatic/kafka 2, or says clearly why it cannot (the Node version, or the package missing). */
export async function loadPlatformatic(): Promise<PlatformaticModule> {
  if (!platformaticRunsOn())
    throw new ConfigError([{ path: 'transport.driver', message: `"platformatic" needs Node >= 22.22 (@platformatic/kafka 2); this is Node ${process.versions.node}: use driver "kafkajs" here` }]);
  try {
    return await import('@platformatic/kafka');
  } catch (error) {
    throw new Error('transport.driver: "platformatic" needs the package @platformatic/kafka next to @switchboard/kafka (npm install @platformatic/kafka@2)', { cause: error });
  }
}

/** Connection options every @platformatic/kafka client of a transport shares (credentials are passed, never logged). */
export function baseOptions(options: KafkaOptions): BaseOptions {
  return {
    clientId: options.clientId,
    bootstrapBrokers: options.brokers,
    connectTimeout: options.connectTimeoutMs,
    requestTimeout: options.requestTimeoutMs,
    retries: options.retries,
    // The kafkajs producer's backoff. A fixed 100 ms gave up within a second, and a leader kill on a
    // 3-broker cluster rejected two thirds of a run (the cluster test measures it).
    retryDelay: (_client: unknown, _operation: string, attempt: number) => retryDelayMs(attempt),
    metadataMaxAge: options.metadataMaxAgeMs,
    autocreateTopics: false,
    ...(options.ssl ? { tls: {} } : {}),
    ...(options.sasl
      ? { sasl: { mechanism: options.sasl.mechanism.toUpperCase() as 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512', username: options.sasl.username, password: options.sasl.password } }
      : {}),
  };
}

/** The @platformatic/kafka driver: producer, admin and consumers all through @platformatic/kafka 2; kafkajs is not loaded. */
export async function platformaticClient(options: KafkaOptions): Promise<KafkaClient> {
  const kafka = await loadPlatformatic();
  const admin = new PlatformaticAdmin(kafka, options);
  return {
    driver: 'platformatic',
    sender: platformaticSender(kafka, options),
    admin,
    consumer: (spec) => new PlatformaticGroupConsumer(kafka, options, spec, admin),
    close: () => admin.close(),
  };
}

/**
 * @platformatic/kafka's producer: about twice kafkajs' produce throughput on the same broker
 * (docs/benchmarks.md). Same record shape on the wire: key, value, headers, timestamp; keys go to the
 * same partitions as with kafkajs (Java-compatible murmur2). Connections open lazily; `connect` asks
 * the cluster for metadata to fail fast.
 */
export function platformaticSender(kafka: PlatformaticModule, options: KafkaOptions): RecordSender {
  // acks=-1 goes through an idempotent producer, always: 2.12.1 retries a produce spanning several
  // partitions as a whole when one of them fails (e.g. NOT_LEADER right after a topic is created), and
  // without broker-side dedup the partitions that had succeeded got their records twice (15-23 records
  // for 10 sent on fresh 4-partition topics, 3 rounds out of 4). The idempotent producer's sequence
  // numbers make the broker drop those copies (10 of 10, 5 rounds). acks 0/1 cannot be idempotent.
  let confirmed: Producer | undefined;
  let unconfirmed: Producer | undefined;
  const producerFor = (acks: 0 | 1 | -1): Producer =>
    acks === -1 ? (confirmed ??= new kafka.Producer({ ...baseOptions(options), idempotent: true })) : (unconfirmed ??= new kafka.Producer({ ...baseOptions(options), idempotent: false }));
  return {
    driver: 'platformatic',
    connect: async () => {
      await producerFor(-1).metadata({ topics: [] });
    },
    send: async (topic, records, acks) => {
      const producer = producerFor(acks);
      const messages = records.map((record) => {
        // Header names and values are bytes for this client (no serializer configured).
        const headers = new Map<Buffer, Buffer>();
        for (const name in record.headers) headers.set(Buffer.from(name), Buffer.from(record.headers[name]!));
        return {
          topic,
          ...(record.key !== null ? { key: Buffer.isBuffer(record.key) ? record.key : Buffer.from(record.key) } : {}),
          value: record.value,
          headers,
          timestamp: BigInt(record.timestamp),
          ...(record.partition !== undefined ? { partition: record.partition } : {}),
        };
      });
      // This client retries a produce on the leader it looked up first, and looks leaders up again
      // only after a protocol error or when its metadata is `metadataMaxAgeMs` old. A leader that
      // died (connection refused, timeouts) therefore kept failing sends for up to a minute on the
      // 3-broker cluster test. After such a failure: forget the metadata and send again, twice at most;
      // the publish deadline bounds it all. A resend may duplicate (at least once, as kafkajs' retries).
      for (let attempt = 1; ; attempt++) {
        try {
          await producer.send({ acks, messages });
          return;
        } catch (error) {
          if (attempt > 2 || !isPlatformaticNetworkError(error)) throw error;
          producer.clearMetadata();
        }
      }
    },
    close: async () => {
      await Promise.all([confirmed?.close(), unconfirmed?.close()]);
    },
  };
}

/** @platformatic/kafka's Admin behind the {@link KafkaAdmin} port (connections open on first use). */
export class PlatformaticAdmin implements KafkaAdmin {
  private readonly admin: Admin;

  constructor(
    kafka: PlatformaticModule,
    private readonly options: KafkaOptions,
  ) {
    this.admin = new kafka.Admin(baseOptions(options));
  }

  /** Fresh cluster metadata for `topics` (all topics when omitted). */
  metadata(topics?: readonly string[]): Promise<ClusterMetadata> {
    return topics ? this.admin.metadata({ topics: [...topics], forceUpdate: true }) : this.listTopics().then((all) => this.admin.metadata({ topics: all, forceUpdate: true }));
  }

  listTopics(): Promise<string[]> {
    return this.admin.listTopics({ includeInternals: true });
  }

  async brokerCount(): Promise<number> {
    return (await this.admin.metadata({ topics: [], forceUpdate: true })).brokers.size;
  }

  async partitionCount(topic: string): Promise<number> {
    return (await this.metadata([topic])).topics.get(topic)?.partitionsCount ?? 0;
  }

  async createTopic(topic: string, partitions: number, replicationFactor: number): Promise<void> {
    try {
      await this.admin.createTopics({ topics: [topic], partitions, replicas: replicationFactor });
    } catch (error) {
      if (!hasPlatformaticCode(error, 'TOPIC_ALREADY_EXISTS')) throw error;
    }
    await waitForLeadersOf(this, topic, this.options.requestTimeoutMs);
  }

  async topicOffsets(topic: string) {
    const count = await this.partitionCount(topic);
    const partitions = Array.from({ length: count }, (_, partitionIndex) => partitionIndex);
    const ask = (timestamp: bigint) => this.admin.listOffsets({ topics: [{ name: topic, partitions: partitions.map((partitionIndex) => ({ partitionIndex, timestamp })) }] });
    // One after the other: two listOffsets in flight at once on one Admin (2.12.1) answered with
    // offsets mixed between the requests (high watermarks summing to 16 or 17 for 10 records).
    const low = await ask(-2n);
    const high = await ask(-1n);
    const offsetOf = (listed: typeof low, partition: number) => String(listed[0]?.partitions.find((p) => p.partitionIndex === partition)?.offset ?? 0n);
    return partitions.map((partition) => ({ partition, low: offsetOf(low, partition), high: offsetOf(high, partition) }));
  }

  async groupOffsets(groupId: string, topic: string) {
    const count = await this.partitionCount(topic);
    const [group] = await this.admin.listConsumerGroupOffsets({ groups: [{ groupId, topics: [{ name: topic, partitionIndexes: Array.from({ length: count }, (_, i) => i) }] }] });
    const committed = group?.topics.find((t) => t.name === topic)?.partitions ?? [];
    return Array.from({ length: count }, (_, partition) => {
      const offset = committed.find((p) => p.partitionIndex === partition)?.committedOffset;
      return { partition, offset: offset === undefined || offset < 0n ? '-1' : String(offset) };
    });
  }

  async createPartitions(topic: string, count: number): Promise<void> {
    await this.admin.createPartitions({ topics: [{ name: topic, count }] });
  }

  async deleteTopics(topics: readonly string[]): Promise<void> {
    await this.admin.deleteTopics({ topics: [...topics] });
  }

  async groupCoordinator(groupId: string): Promise<number> {
    return (await this.admin.findCoordinator({ keyType: 0, keys: [groupId] }))[0]?.nodeId ?? -1;
  }

  async describePartitions(topics?: readonly string[]): Promise<PartitionState[]> {
    const metadata = await this.metadata(topics);
    return [...metadata.topics].flatMap(([topic, t]) => (t?.partitions ?? []).map((p, partition) => ({ topic, partition, leader: p.leader, replicas: p.replicas, isr: p.isr })));
  }

  close(): Promise<void> {
    return this.admin.close().catch(() => undefined);
  }
}

/**
 * A stream that only keeps a consumer's group membership (both group protocols join through
 * `consume()`) and never fetches: the library resumes its streams after a revocation, which would
 * start a fetch loop whose records nobody reads. Its `resume` is a no-op until `letGo()`, when the
 * library closes it.
 */
export function dormant(stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>): { letGo(): void } {
  let held = true;
  stream.resume = function resume(this: MessagesStream<Buffer, Buffer, Buffer, Buffer>) {
    return held ? this : (Readable.prototype.resume.call(this) as typeof this);
  };
  return {
    letGo: () => {
      held = false;
    },
  };
}

export type { Consumer };
