import type { Admin, ClusterMetadata } from '@platformatic/kafka';
import type { KafkaAdmin, PartitionState } from '../client.js';
import { hasPlatformaticCode } from '../errors.js';
import type { KafkaOptions } from '../options.js';
import { waitForLeadersOf } from '../topics.js';
import { baseOptions, type PlatformaticModule } from './connection.js';

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
    // Log start and end, one request each (positions at joins, lag in health probes: not a hot path).
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
