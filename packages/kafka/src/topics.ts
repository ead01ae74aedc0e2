import { Partitioners, type Admin, type Kafka, type Message as KafkaRecordOut } from 'kafkajs';
import type { KafkaOptions } from './options.js';

/**
 * Topic administration for one transport: creating topics (once each), waiting for their leaders,
 * the partition layout a cluster publish is split by, and the shared admin client.
 */
export class KafkaTopics {
  private readonly topicsReady = new Map<string, Promise<void>>();
  /** Partition count per topic when the cluster has several brokers (undefined: one broker), refreshed every metadataMaxAgeMs. */
  private readonly layouts = new Map<string, { partitions: number | undefined; at: number }>();
  private readonly partitioner = Partitioners.DefaultPartitioner();
  private roundRobin = 0;
  private admin: Promise<Admin> | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly options: KafkaOptions,
  ) {}

  /**
   * On a cluster, one send per partition. kafkajs (2.2.4, issue #1303) loses messages when a send spans
   * several leaders and one of them fails: its retry skips every broker that already answered, so the
   * failed partitions' messages are dropped when their new leader is one of those, and the send still
   * resolves. A send with one partition has one leader at a time, so its retry always reaches the new
   * one. Keys map to partitions exactly as kafkajs' default partitioner (murmur2, Java-compatible) maps
   * them; keyless messages go round-robin. With one broker there is nothing to fail over to: one send.
   */
  async partitionsToSplit(topic: string): Promise<number | undefined> {
    const known = this.layouts.get(topic);
    if (known && Date.now() - known.at < this.options.metadataMaxAgeMs) return known.partitions;
    const admin = await this.adminClient();
    const brokers = (await admin.describeCluster()).brokers.length;
    const partitions = brokers > 1 ? ((await admin.fetchTopicMetadata({ topics: [topic] })).topics[0]?.partitions.length ?? undefined) : undefined;
    this.layouts.set(topic, { partitions, at: Date.now() });
    return partitions;
  }

  byPartition(topic: string, records: KafkaRecordOut[], count: number): KafkaRecordOut[][] {
    const partitionMetadata = Array.from({ length: count }, (_, partitionId) => ({ partitionId, partitionErrorCode: 0, leader: 0, replicas: [], isr: [] }));
    const groups = new Map<number, KafkaRecordOut[]>();
    for (const record of records) {
      const partition = record.key === null || record.key === undefined ? this.roundRobin++ % count : this.partitioner({ topic, partitionMetadata, message: record });
      let group = groups.get(partition);
      if (!group) groups.set(partition, (group = []));
      group.push({ ...record, partition });
    }
    return [...groups.values()];
  }

  /** Creates `topic` (partitions, replication factor from options) unless it exists; once per topic per transport. */
  ensureTopic(topic: string): Promise<void> {
    if (!this.options.createTopics) return Promise.resolve();
    let ready = this.topicsReady.get(topic);
    if (!ready) {
      ready = (async () => {
        const admin = await this.adminClient();
        const partitions = this.options.partitions === 'brokers' ? (await admin.describeCluster()).brokers.length : this.options.partitions;
        try {
          await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: this.options.replicationFactor }], waitForLeaders: true });
        } catch (error) {
          // On a cluster, the broker asked for leaders may not know the new topic yet (kafkajs waits only
          // on LEADER_NOT_AVAILABLE): wait for leaders through the metadata of any broker, bounded.
          if ((error as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION') throw error;
          await this.waitForLeaders(admin, topic);
        }
      })();
      ready.catch(() => this.topicsReady.delete(topic));
      this.topicsReady.set(topic, ready);
    }
    return ready;
  }

  private async waitForLeaders(admin: Admin, topic: string): Promise<void> {
    const deadline = Date.now() + this.options.requestTimeoutMs;
    for (;;) {
      try {
        const partitions = (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0]?.partitions ?? [];
        if (partitions.length > 0 && partitions.every((p) => p.leader >= 0)) return;
      } catch (error) {
        if (Date.now() > deadline) throw error;
      }
      if (Date.now() > deadline) throw new Error(`kafka: topic ${topic} has no leader for every partition after ${this.options.requestTimeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Topics this transport created or confirmed (through `ensureTopic`). */
  knownTopics(): string[] {
    return [...this.topicsReady.keys()];
  }

  /** Creates several topics (used by tests and tooling). */
  async ensureTopics(topics: readonly string[]): Promise<void> {
    await Promise.all(topics.map((t) => this.ensureTopic(t)));
  }

  /** The transport's admin client (shared, connected on first use). */
  adminClient(): Promise<Admin> {
    this.admin ??= (async () => {
      const admin = this.kafka.admin({ retry: { retries: this.options.retries } });
      await admin.connect();
      return admin;
    })();
    this.admin.catch(() => (this.admin = undefined));
    return this.admin;
  }

  /** Disconnects the admin client, if one was opened. */
  async close(): Promise<void> {
    if (this.admin) await (await this.admin).disconnect().catch(() => undefined);
  }
}
