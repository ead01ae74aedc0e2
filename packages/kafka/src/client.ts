import type { KafkaOptions } from './options.js';
import type { PartitionOffset } from './commits.js';

/**
 * The seam between the Kafka transport and a Kafka client library (`driver`: kafkajs or
 * @platformatic/kafka). The transport, its subscriptions, positioning and commits are written once
 * against these ports; each driver maps them onto its client and nothing else. A driver module is
 * loaded only when chosen, so `driver: 'platformatic'` never loads kafkajs.
 */
export interface KafkaClient {
  readonly driver: KafkaOptions['driver'];
  /** The producer (connected by the transport). */
  readonly sender: RecordSender;
  /** Topic and group administration (one shared connection, opened on first use). */
  readonly admin: KafkaAdmin;
  /** A new consumer in group `groupId`, reading `topics` (a name, or a pattern matched against the topics existing at start). */
  consumer(spec: GroupConsumerSpec): GroupConsumer;
  /**
   * A transactional producer with `transactionalId` (drivers that have transactions). `connect` fences
   * any earlier producer with the same id: its open transaction is aborted, its later commits fail.
   */
  transactionalSender?(transactionalId: string): TransactionalSender;
  /** Closes the admin connection (the sender and consumers are closed by their owners). */
  close(): Promise<void>;
}

/**
 * The name of the partition assignment both drivers offer in the classic group protocol (round-robin
 * over the members subscribed to each topic). One name for both: a group whose members run different
 * drivers (a rolling change of `driver`) then has an assignor in common, which the broker requires of
 * every member, and whichever member leads assigns for all. Subscription metadata and assignments are
 * Kafka's standard consumer-protocol encodings on both sides.
 */
export const SUBSCRIPTION_ROUND_ROBIN = 'SwitchboardSubscriptionRoundRobin';

/** A record as the transport writes it. `partition` set: that partition; else keyed = murmur2 of the key (Java-compatible), keyless = round-robin. */
export interface OutgoingRecord {
  readonly key: Buffer | string | null;
  readonly value: Buffer;
  /** Milliseconds since the epoch, as a decimal string. */
  readonly timestamp: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly partition?: number;
}

/** A record as a consumer hands it over, the same shape from both drivers. Repeated header names become arrays. */
export interface ConsumedRecord {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers?: Readonly<Record<string, Buffer | string | (Buffer | string)[] | undefined>>;
  /** The record's offset, a decimal string. */
  readonly offset: string;
  /** Milliseconds since the epoch, a decimal string. */
  readonly timestamp: string;
}

/**
 * The producer. Contract: `send` resolves once the broker acknowledged every record per `acks`
 * (0: written to the socket; 1: the leader; -1: all in-sync replicas) and rejects when it could not;
 * `connect` rejects when no broker answers within the connect timeout.
 */
export interface RecordSender {
  readonly driver: KafkaOptions['driver'];
  connect(): Promise<void>;
  send(topic: string, records: readonly OutgoingRecord[], acks: 0 | 1 | -1, timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/** A producer whose sends belong to Kafka transactions (acks=all, idempotent). */
export interface TransactionalSender {
  /**
   * Resolves once this producer holds its transactional id: the previous producer with the same id is
   * fenced, and its open transaction settled (committed if its commit was under way, else aborted).
   */
  connect(): Promise<void>;
  begin(): Promise<KafkaTransaction>;
  close(): Promise<void>;
}

/**
 * One open Kafka transaction: records and a group's offsets, committed together or aborted together.
 * Consumers reading `read_committed` see the records only after `commit`, never after `abort`.
 */
export interface KafkaTransaction {
  send(topic: string, records: readonly OutgoingRecord[]): Promise<void>;
  /** The group's committed offsets (the next offset to read), committed with the transaction. */
  sendOffsets(groupId: string, offsets: readonly PartitionOffset[]): Promise<void>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

/** Offsets of one partition of a topic; strings are decimal offsets. */
export interface PartitionEnds {
  readonly partition: number;
  /** The log start offset. */
  readonly low: string;
  /** The high watermark (the next offset to be written). */
  readonly high: string;
}

/** One partition's leader (-1: none), replicas and in-sync replicas, by broker id. */
export interface PartitionState {
  readonly topic: string;
  readonly partition: number;
  readonly leader: number;
  readonly replicas: readonly number[];
  readonly isr: readonly number[];
}

/** What the transport administers: topics, their layout and offsets, and a group's committed offsets. */
export interface KafkaAdmin {
  /** Brokers in the cluster now. */
  brokerCount(): Promise<number>;
  /** Partitions of `topic` (0 when unknown). */
  partitionCount(topic: string): Promise<number>;
  /** Creates `topic` unless it exists, and resolves once every partition has a leader (bounded by the request timeout). */
  createTopic(topic: string, partitions: number, replicationFactor: number): Promise<void>;
  /** Log start and high watermark of every partition of `topic`. */
  topicOffsets(topic: string): Promise<PartitionEnds[]>;
  /** The committed offset of `groupId` on each partition of `topic`; "-1" where it has none. */
  groupOffsets(groupId: string, topic: string): Promise<{ partition: number; offset: string }[]>;
  /** Adds partitions to `topic` up to `count`. */
  createPartitions(topic: string, count: number): Promise<void>;
  deleteTopics(topics: readonly string[]): Promise<void>;
  /** Names of every topic in the cluster (internal ones included). */
  listTopics(): Promise<string[]>;
  /** The broker id of `groupId`'s coordinator (-1: not known yet). */
  groupCoordinator(groupId: string): Promise<number>;
  /** Leader and replicas of every partition of `topics` (all topics when omitted; the platformatic driver leaves internal topics out). */
  describePartitions(topics?: readonly string[]): Promise<PartitionState[]>;
  close(): Promise<void>;
}

/** What a consumer is made for. */
export interface GroupConsumerSpec {
  readonly groupId: string;
  /** A topic name, or a pattern (matched against the topics existing when the consumer starts). */
  readonly topics: string | RegExp;
  /** Partitions whose batches are handled at the same time (partition order: the subscription's concurrency). */
  readonly partitionsConcurrently: number;
}

/** A partition set, as pause/resume take and give it. */
export interface TopicPartitions {
  readonly topic: string;
  readonly partitions: number[];
}

/**
 * One fetched batch of one partition, in offset order. `resolveOffset(o)` moves the consumer's position
 * past `o` (the next fetch starts at o + 1); without it the records are fetched again. `isStale()`: a
 * seek or a rebalance happened since the fetch (stop, do not resolve); `isRunning()`: false once the
 * consumer stops.
 */
export interface FetchedBatch {
  readonly topic: string;
  readonly partition: number;
  /** The partition's high watermark in the fetch response. */
  readonly highWatermark: string;
  readonly messages: readonly ConsumedRecord[];
  resolveOffset(offset: string): void;
  heartbeat(): Promise<void>;
  isRunning(): boolean;
  isStale(): boolean;
}

/** What a consumer reports to its subscription. */
export interface ConsumerHandlers {
  /** A (re)join: every partition assigned to this member now. Called before the consumer fetches for them. */
  onJoin(assignment: Readonly<Record<string, number[]>>): void;
  /** A rebalance is starting (offsets may still be committed in this generation). */
  onRebalancing(): void;
  /** A fetch round ended. */
  onFetch(): void;
  /** One batch; the next batch of the same partition waits for it. */
  onBatch(batch: FetchedBatch): Promise<void>;
  /**
   * The consumer failed (a lost broker, an error it does not retry). `restarting`: it runs again on
   * its own, and rejoins; otherwise the subscription calls {@link GroupConsumer.restart}.
   */
  onCrash(error: unknown, restarting: boolean): void;
}

/**
 * A member of a consumer group. Partitions assigned at a join are fetched from the group's committed
 * offset unless `seek` moved them; a paused partition is not fetched (a fetch in flight for it is
 * dropped unhandled); offsets are written only through `commit`.
 */
export interface GroupConsumer {
  /** Connects, joins and starts fetching; resolves once running (the first join may still be under way). */
  start(handlers: ConsumerHandlers): Promise<void>;
  /** Runs again after a crash it did not restart from. */
  restart(): Promise<void>;
  /** Leaves the group and joins it again (a rebalance; positions are fixed again at the join). Drivers with transactions have it. */
  rejoin?(): Promise<void>;
  /**
   * True when the consumer reads a partition without a sought position from the group's committed
   * offset, read by itself when it next fetches. The subscription then seeks every assigned partition
   * at each join, so the position read is the one fixed there (the committed offset, or further where
   * this member acknowledged further), never a later read that a failed or lost commit left behind.
   */
  readonly readsCommittedUnlessSought?: boolean;
  pause(partitions: readonly TopicPartitions[]): void;
  resume(partitions: readonly TopicPartitions[]): void;
  paused(): TopicPartitions[];
  seek(position: PartitionOffset): void;
  commit(offsets: readonly PartitionOffset[]): Promise<void>;
  /** Leaves the group and closes. */
  disconnect(): Promise<void>;
}

/** The next offset after `offset` (what a commit stores), without BigInt while the offset is a safe integer. */
export function offsetAfter(offset: string): string {
  const n = Number(offset);
  return Number.isSafeInteger(n + 1) ? String(n + 1) : (BigInt(offset) + 1n).toString();
}
