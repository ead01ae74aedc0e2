import type { KafkaAdmin } from './client.js';
import type { KafkaOptions } from './options.js';

/** Kafka's own rule for a topic name: 1 to 249 of letters, digits, ".", "_" and "-", not "." or "..". */
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

/** Why `topic` cannot name a Kafka topic (the broker would refuse to create it), or undefined when it can. */
export function topicNameProblem(topic: string): string | undefined {
  if (TOPIC_NAME.test(topic) && topic !== '.' && topic !== '..') return undefined;
  return `${JSON.stringify(topic)} cannot be a Kafka topic name: 1 to 249 characters, each a letter, a digit, ".", "_" or "-" (not "." or ".." alone)`;
}

/** Topic creation for one transport: each topic created (or confirmed) once, through the driver's admin port. */
export class KafkaTopics {
  private readonly topicsReady = new Map<string, Promise<void>>();

  constructor(
    private readonly admin: KafkaAdmin,
    private readonly options: KafkaOptions,
  ) {}

  /** Creates `topic` (partitions, replication factor from options) unless it exists; once per topic per transport. */
  ensureTopic(topic: string): Promise<void> {
    if (!this.options.createTopics) return Promise.resolve();
    let ready = this.topicsReady.get(topic);
    if (!ready) {
      ready = (async () => {
        const partitions = this.options.partitions === 'brokers' ? await this.admin.brokerCount() : this.options.partitions;
        await this.admin.createTopic(topic, partitions, this.options.replicationFactor);
      })();
      ready.catch(() => this.topicsReady.delete(topic));
      this.topicsReady.set(topic, ready);
    }
    return ready;
  }

  /** Whether `topic` exists in the cluster now: one metadata request, never creates it. */
  async exists(topic: string): Promise<boolean> {
    return (await this.admin.listTopics()).includes(topic);
  }

  /** Topics this transport created or confirmed (through `ensureTopic`). */
  knownTopics(): string[] {
    return [...this.topicsReady.keys()];
  }

  /** Creates several topics (used by tests and tooling). */
  async ensureTopics(topics: readonly string[]): Promise<void> {
    await Promise.all(topics.map((t) => this.ensureTopic(t)));
  }
}

/** Waits until every partition of `topic` has a leader, through the metadata of any broker; bounded by `timeoutMs`. */
export async function waitForLeadersOf(admin: KafkaAdmin, topic: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const partitions = await admin.describePartitions([topic]);
      if (partitions.length > 0 && partitions.every((p) => p.leader >= 0)) return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
    if (Date.now() > deadline) throw new Error(`kafka: topic ${topic} has no leader for every partition after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The `__consumer_offsets` partition whose leader coordinates `groupId` (Java's `Utils.abs(groupId.hashCode()) % partitions`). */
export function coordinatorPartition(groupId: string, partitions: number): number {
  let hash = 0;
  for (let i = 0; i < groupId.length; i++) hash = (Math.imul(hash, 31) + groupId.charCodeAt(i)) | 0;
  return (hash & 0x7fffffff) % partitions;
}
