import type { Consumer, ConsumerOptions, GroupAssignment, MessagesStream } from '@platformatic/kafka';
import { SUBSCRIPTION_ROUND_ROBIN, type ConsumedRecord, type ConsumerHandlers, type FetchedBatch, type GroupConsumer, type GroupConsumerSpec, type TopicPartitions } from '../client.js';
import { parsePartitionKey, partitionKey, type PartitionOffset } from '../commits.js';
import type { KafkaOptions } from '../options.js';
import type { PlatformaticAdmin } from './admin.js';
import { baseOptions, dormant, type PlatformaticModule } from './connection.js';
import { hasPlatformaticCode } from '../errors.js';
import { subscriptionAwareAssigner } from './assigner.js';

/** Record batch attribute: a control batch (transaction markers), never handed to a handler. */
const IS_CONTROL_BATCH = 0x20;
/** Fetch partition error codes acted on here. */
const OFFSET_OUT_OF_RANGE = 1;

type FetchResponse = Awaited<ReturnType<Consumer['fetch']>>;
/** Fetch isolation: only records of committed transactions (kafkajs' default too). */
const READ_COMMITTED = 1;
/** KIP-848: how long an empty first assignment waits for partitions before it is reported (two default broker heartbeat intervals). */
const FIRST_ASSIGNMENT_WAIT_MS = 10_000;
/** Pause after a failed fetch before that broker is asked again. */
const FAILURE_BACKOFF_MS = 1000;

interface Requested {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly epoch: number;
}

/**
 * A member of a consumer group through @platformatic/kafka 2, with this package's own fetch loop.
 *
 * Why not the library's MessagesStream: it has no per-partition pause or seek, and the transport needs
 * both (a retry pauses only its partition; a full window pauses one partition). So the library keeps
 * the group membership (join, heartbeats, rejoins, the classic or the KIP-848 `consumer` protocol,
 * through a stream that never fetches: {@link dormant}) and this class fetches with `Consumer.fetch`
 * (which keeps fetch sessions, leader epochs, retries and read_committed filtering). Contracts:
 * - a join is a change of `consumer.assignments` (every classic join; every KIP-848 assignment change);
 *   it is reported before any fetch for the new assignment, and makes every fetch in flight stale;
 * - assigned partitions are fetched from the group's committed offset unless sought; a paused partition
 *   is not fetched, and a fetched batch of a partition paused meanwhile is dropped unhandled;
 * - one fetch in flight per leader broker, batches of different partitions handled side by side up to
 *   `partitionsConcurrently`, each partition's next fetch after its batch was handled;
 * - a failed fetch reports a crash once (the broker lost), is tried again every second, and the first
 *   fetch that works after it is reported as a join with the current assignment (positions are fixed
 *   again from committed offsets, as kafkajs does by restarting).
 */
export class PlatformaticGroupConsumer implements GroupConsumer {
  readonly readsCommittedUnlessSought = true;
  private readonly consumer: Consumer;
  private handlers: ConsumerHandlers | undefined;
  private stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
  private membership: { letGo(): void } | undefined;
  private topics: string[] = [];
  private running = false;
  /** The assignment last reported as a join (the library's array, compared by identity). */
  private applied: readonly GroupAssignment[] | null = null;
  private readonly owned = new Map<string, { topic: string; partition: number }>();
  /** Next offset to fetch by topic|partition; absent: read the group's committed offset first. */
  private readonly positions = new Map<string, bigint>();
  /** Bumped by a seek and by a join: batches fetched before are stale. */
  private readonly epochs = new Map<string, number>();
  private readonly pausedPartitions = new Set<string>();
  private readonly busyNodes = new Set<number>();
  private readonly busyPartitions = new Set<string>();
  private crashed = false;
  private wakeUp: (() => void) | undefined;
  private loopDone: Promise<void> = Promise.resolve();
  private freeSlots: number;
  private readonly slotWaiters: (() => void)[] = [];
  private rejoinTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly partitionCounts = new Map<string, number>();
  private firstEmptyAt: number | undefined;
  private firstAssignmentTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    kafka: PlatformaticModule,
    private readonly options: KafkaOptions,
    private readonly spec: GroupConsumerSpec,
    private readonly admin: PlatformaticAdmin,
  ) {
    this.freeSlots = spec.partitionsConcurrently;
    const group =
      options.groupProtocol === 'consumer'
        ? { groupProtocol: 'consumer' as const, rebalanceTimeout: options.rebalanceTimeoutMs }
        : {
            groupProtocol: 'classic' as const,
            sessionTimeout: options.sessionTimeoutMs,
            heartbeatInterval: options.heartbeatIntervalMs,
            rebalanceTimeout: options.rebalanceTimeoutMs,
            // Offered under the kafkajs driver's name, so a group may mix both drivers (see
            // SUBSCRIPTION_ROUND_ROBIN); `roundrobin` (the name this driver offered before) second, so
            // members of an earlier build still share an assignor with this one during an upgrade. The
            // same assigner runs under either name.
            protocols: [
              { name: SUBSCRIPTION_ROUND_ROBIN, version: 0 },
              { name: 'roundrobin', version: 1 },
            ],
            partitionAssigner: subscriptionAwareAssigner,
          };
    this.consumer = new kafka.Consumer({
      ...baseOptions(options),
      // Short, bounded retries: a lost broker is noticed (and reported) within seconds.
      retries: Math.max(options.retries, 5),
      groupId: spec.groupId,
      autocommit: false,
      maxWaitTime: options.maxWaitTimeMs,
      minBytes: 1,
      isolationLevel: READ_COMMITTED,
      ...group,
    } as ConsumerOptions<Buffer, Buffer, Buffer, Buffer>);
  }

  async start(handlers: ConsumerHandlers): Promise<void> {
    this.handlers = handlers;
    const pattern = this.spec.topics;
    this.topics = typeof pattern === 'string' ? [pattern] : (await this.admin.listTopics()).filter((t) => pattern.test(t)).sort();
    const consumer = this.consumer;
    // Without a listener an 'error' (a classic rejoin that failed) would be thrown; it stops the
    // heartbeats, so join again until that works.
    consumer.on('error', () => this.rejoinLater());
    consumer.on('consumer:group:join', () => this.checkAssignment());
    consumer.on('consumer:heartbeat:end', () => this.checkAssignment());
    consumer.on('consumer:group:rebalance', () => handlers.onRebalancing());
    consumer.on('consumer:heartbeat:error', ({ error }) => {
      if (hasPlatformaticCode(error, 'REBALANCE_IN_PROGRESS')) handlers.onRebalancing();
    });
    if (this.topics.length === 0) return; // a pattern matching nothing: no member (as kafkajs)
    this.stream = await consumer.consume({ topics: this.topics, mode: 'committed', fallbackMode: 'earliest', autocommit: false });
    this.stream.on('error', () => undefined); // its only work is the membership; fetch errors are ours
    this.membership = dormant(this.stream);
    this.running = true;
    this.checkAssignment();
    this.loopDone = this.loop();
  }

  async restart(): Promise<void> {
    // Never asked: every crash is reported as restarting (the loop keeps trying).
  }

  private rejoinLater(): void {
    if (!this.running || this.rejoinTimer) return;
    this.rejoinTimer = setTimeout(() => {
      this.rejoinTimer = undefined;
      if (!this.running || this.options.groupProtocol === 'consumer') return;
      this.consumer.joinGroup({}).then(
        () => this.checkAssignment(),
        () => this.rejoinLater(),
      );
    }, FAILURE_BACKOFF_MS);
  }

  /**
   * A new assignment (a join): report it before anything is fetched for it. With KIP-848 the broker
   * hands a new member its partitions a heartbeat or two after it joined (once other members gave them
   * up), so an empty first assignment is not reported at once: `subscribe()` resolving with nothing
   * assigned would leave the group's start positions unfixed (a `latest` group could then skip what
   * was published after subscribe resolved). It is reported when partitions come, or after
   * {@link FIRST_ASSIGNMENT_WAIT_MS} (a group with more members than partitions).
   */
  private checkAssignment(): void {
    const current = this.consumer.assignments;
    if (!this.running || current === null || current === this.applied) return;
    if (this.options.groupProtocol === 'consumer' && this.applied === null && current.every((a) => a.partitions.length === 0)) {
      this.firstEmptyAt ??= Date.now();
      if (Date.now() - this.firstEmptyAt < FIRST_ASSIGNMENT_WAIT_MS) {
        this.firstAssignmentTimer ??= setTimeout(() => {
          this.firstAssignmentTimer = undefined;
          this.checkAssignment();
        }, 250);
        return;
      }
    }
    this.applied = current;
    this.joined(current);
  }

  private joined(assignment: readonly GroupAssignment[]): void {
    this.owned.clear();
    const reported: Record<string, number[]> = {};
    for (const { topic, partitions } of assignment) {
      if (!this.topics.includes(topic)) continue;
      reported[topic] = [...partitions];
      for (const partition of partitions) this.owned.set(partitionKey(topic, partition), { topic, partition });
    }
    for (const tp of new Set([...this.epochs.keys(), ...this.owned.keys()])) this.epochs.set(tp, (this.epochs.get(tp) ?? 0) + 1);
    this.positions.clear();
    for (const tp of this.pausedPartitions) if (!this.owned.has(tp)) this.pausedPartitions.delete(tp);
    this.handlers!.onJoin(reported);
    this.wake();
  }

  private wake(): void {
    const wakeUp = this.wakeUp;
    this.wakeUp = undefined;
    wakeUp?.();
  }

  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const previous = this.wakeUp;
      this.wakeUp = done;
      function done() {
        clearTimeout(timer);
        previous?.();
        resolve();
      }
    });
  }

  private async loop(): Promise<void> {
    while (this.running) {
      this.checkAssignment();
      const wanted = [...this.owned].filter(([tp]) => !this.pausedPartitions.has(tp) && !this.busyPartitions.has(tp));
      if (wanted.length === 0) {
        await this.idle(this.options.maxWaitTimeMs);
        continue;
      }
      try {
        await this.lookUpPositions(wanted.filter(([tp]) => !this.positions.has(tp)).map(([, p]) => p));
        const metadata = await this.consumer.metadata({ topics: this.topics });
        const byNode = new Map<number, Requested[]>();
        let leaderless = false;
        for (const [tp, { topic, partition }] of wanted) {
          const offset = this.positions.get(tp);
          const leader = metadata.topics.get(topic)?.partitions[partition]?.leader ?? -1;
          if (offset === undefined || this.pausedPartitions.has(tp)) continue;
          if (leader < 0) {
            leaderless = true;
            continue;
          }
          if (this.busyNodes.has(leader)) continue;
          let requests = byNode.get(leader);
          if (!requests) byNode.set(leader, (requests = []));
          requests.push({ topic, partition, offset, epoch: this.epochs.get(tp) ?? 0 });
        }
        if (leaderless) this.consumer.clearMetadata();
        this.watchPartitionCounts(metadata);
        const topicIds = new Map([...metadata.topics].map(([name, t]) => [name, t.id]));
        for (const [node, requests] of byNode) void this.fetchFrom(node, requests, topicIds);
      } catch (error) {
        this.failed(error);
        await this.idle(FAILURE_BACKOFF_MS);
        continue;
      }
      await this.idle(this.options.maxWaitTimeMs);
    }
  }

  /**
   * Partitions added to a subscribed topic (seen when the metadata is refreshed, every
   * `metadataMaxAgeMs`): with the classic protocol the group rebalances only when a member rejoins, so
   * this member does (the broker does it by itself with KIP-848).
   */
  private watchPartitionCounts(metadata: { topics: ReadonlyMap<string, { partitionsCount: number }> }): void {
    let grown = false;
    for (const topic of this.topics) {
      const count = metadata.topics.get(topic)?.partitionsCount;
      if (count === undefined) continue;
      const known = this.partitionCounts.get(topic);
      if (known !== undefined && count > known) grown = true;
      this.partitionCounts.set(topic, count);
    }
    if (!grown || this.options.groupProtocol === 'consumer') return;
    this.consumer.clearMetadata();
    this.consumer.joinGroup({}).then(
      () => this.checkAssignment(),
      () => this.rejoinLater(),
    );
  }

  /** Positions of partitions without one: the group's committed offset, or the log start when it has none. */
  private async lookUpPositions(partitions: readonly { topic: string; partition: number }[]): Promise<void> {
    for (const topic of new Set(partitions.map((p) => p.topic))) {
      const epochs = new Map(partitions.filter((p) => p.topic === topic).map((p) => [p.partition, this.epochs.get(partitionKey(topic, p.partition))]));
      const committed = await this.admin.groupOffsets(this.spec.groupId, topic);
      const starts = committed.some((c) => epochs.has(c.partition) && BigInt(c.offset) < 0n) ? await this.admin.topicOffsets(topic) : [];
      for (const [partition, epoch] of epochs) {
        const tp = partitionKey(topic, partition);
        if (this.positions.has(tp) || this.epochs.get(tp) !== epoch) continue; // sought, or a new join, meanwhile
        const offset = BigInt(committed.find((c) => c.partition === partition)?.offset ?? '-1');
        this.positions.set(tp, offset >= 0n ? offset : BigInt(starts.find((s) => s.partition === partition)?.low ?? '0'));
      }
    }
  }

  private async fetchFrom(node: number, requests: readonly Requested[], topicIds: ReadonlyMap<string, string>): Promise<void> {
    this.busyNodes.add(node);
    for (const r of requests) this.busyPartitions.add(partitionKey(r.topic, r.partition));
    try {
      const byTopic = new Map<string, Requested[]>();
      for (const r of requests) {
        let list = byTopic.get(r.topic);
        if (!list) byTopic.set(r.topic, (list = []));
        list.push(r);
      }
      let response: FetchResponse;
      try {
        response = await this.consumer.fetch({
          node,
          maxWaitTime: this.options.maxWaitTimeMs,
          minBytes: 1,
          isolationLevel: READ_COMMITTED,
          topics: [...byTopic].map(([topic, list]) => ({
            topicId: topicIds.get(topic)!,
            partitions: list.map((r) => ({ partition: r.partition, fetchOffset: r.offset, partitionMaxBytes: 1_048_576, currentLeaderEpoch: -1, lastFetchedEpoch: -1 })),
          })),
        });
      } catch (error) {
        this.handlers!.onFetch();
        this.failed(error);
        if (this.running) await new Promise((resolve) => setTimeout(resolve, FAILURE_BACKOFF_MS));
        return;
      }
      this.handlers!.onFetch();
      if (!this.running) return;
      this.recovered();
      const topicsById = new Map([...topicIds].map(([name, id]) => [id, name]));
      const batches: FetchedBatch[] = [];
      let refused = false;
      for (const topicResponse of response.responses) {
        const topic = topicsById.get(topicResponse.topicId);
        for (const answer of topicResponse.partitions) {
          const requested = requests.find((r) => r.topic === topic && r.partition === answer.partitionIndex);
          if (!requested) continue; // not asked in this request (a fetch session may return others)
          if (answer.errorCode !== 0 && answer.errorCode !== OFFSET_OUT_OF_RANGE) refused = true;
          const batch = this.batchOf(requested, answer);
          if (batch) batches.push(batch);
        }
      }
      await Promise.all(batches.map((batch) => this.handle(batch)));
      // A partition the broker refused (a leader moving, a topic being created): not at once again.
      if (refused) await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      this.busyNodes.delete(node);
      for (const r of requests) this.busyPartitions.delete(partitionKey(r.topic, r.partition));
      this.wake();
    }
  }

  private batchOf(requested: Requested, answer: FetchResponse['responses'][number]['partitions'][number]): FetchedBatch | undefined {
    const { topic, partition, epoch } = requested;
    const tp = partitionKey(topic, partition);
    if (this.epochs.get(tp) !== epoch) return undefined; // sought or rejoined since the request
    if (answer.errorCode === OFFSET_OUT_OF_RANGE) {
      // Retention removed the position's records: go on from the log start (kafkajs' earliest reset).
      this.positions.set(tp, answer.logStartOffset >= 0n ? answer.logStartOffset : 0n);
      return undefined;
    }
    if (answer.errorCode !== 0) {
      this.consumer.clearMetadata(); // e.g. the leader moved: ask again with fresh metadata
      return undefined;
    }
    const messages: ConsumedRecord[] = [];
    let last = -1n;
    for (const batch of answer.records ?? []) {
      last = batch.firstOffset + BigInt(batch.lastOffsetDelta);
      if (batch.attributes & IS_CONTROL_BATCH) continue;
      for (const record of batch.records) {
        const offset = batch.firstOffset + BigInt(record.offsetDelta);
        if (offset < requested.offset) continue; // a record batch starts before the position asked
        messages.push({ key: record.key, value: record.value, headers: headersOf(record.headers), offset: String(offset), timestamp: String(batch.firstTimestamp + record.timestampDelta) });
      }
    }
    if (messages.length === 0) {
      // Only markers or aborted records past the position: step over them.
      if (last >= requested.offset) this.positions.set(tp, last + 1n);
      return undefined;
    }
    return {
      topic,
      partition,
      highWatermark: String(answer.highWatermark),
      messages,
      resolveOffset: (offset) => {
        if (this.epochs.get(tp) === epoch) this.positions.set(tp, BigInt(offset) + 1n);
      },
      heartbeat: async () => undefined, // the library heartbeats on its own timer
      isRunning: () => this.running && this.owned.has(tp),
      isStale: () => this.epochs.get(tp) !== epoch,
    };
  }

  /** One batch, when a slot is free (`partitionsConcurrently` across all brokers), unless its partition was paused or sought meanwhile. */
  private async handle(batch: FetchedBatch): Promise<void> {
    if (this.freeSlots === 0) await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
    else this.freeSlots--;
    try {
      if (!this.running || batch.isStale() || this.pausedPartitions.has(partitionKey(batch.topic, batch.partition))) return;
      await this.handlers!.onBatch(batch);
    } catch (error) {
      // A handler broke the batch contract: a crash, after which positions are fixed again from the
      // committed offsets (the batch's unacknowledged records come again), as after a lost broker.
      this.failed(error);
    } finally {
      const next = this.slotWaiters.shift();
      if (next) next();
      else this.freeSlots++;
    }
  }

  private failed(error: unknown): void {
    if (!this.running) return;
    this.consumer.clearMetadata();
    if (this.crashed) return;
    this.crashed = true;
    this.handlers!.onCrash(error, true);
  }

  /** The first fetch that worked after a failure: a join with the current assignment (positions fixed again, the gap reported). */
  private recovered(): void {
    if (!this.crashed) return;
    this.crashed = false;
    this.applied = this.consumer.assignments;
    this.joined(this.applied ?? []);
  }

  pause(partitions: readonly TopicPartitions[]): void {
    for (const { topic, partitions: list } of partitions) for (const partition of list) this.pausedPartitions.add(partitionKey(topic, partition));
  }

  resume(partitions: readonly TopicPartitions[]): void {
    for (const { topic, partitions: list } of partitions) for (const partition of list) this.pausedPartitions.delete(partitionKey(topic, partition));
    this.wake();
  }

  paused(): TopicPartitions[] {
    const byTopic = new Map<string, number[]>();
    for (const tp of this.pausedPartitions) {
      const { topic, partition } = parsePartitionKey(tp);
      let list = byTopic.get(topic);
      if (!list) byTopic.set(topic, (list = []));
      list.push(partition);
    }
    return [...byTopic].map(([topic, partitions]) => ({ topic, partitions }));
  }

  seek({ topic, partition, offset }: PartitionOffset): void {
    const tp = partitionKey(topic, partition);
    this.positions.set(tp, BigInt(offset));
    this.epochs.set(tp, (this.epochs.get(tp) ?? 0) + 1);
    this.wake();
  }

  async commit(offsets: readonly PartitionOffset[]): Promise<void> {
    await this.consumer.commit({ offsets: offsets.map(({ topic, partition, offset }) => ({ topic, partition, offset: BigInt(offset), leaderEpoch: -1 })) });
  }

  async disconnect(): Promise<void> {
    this.running = false;
    if (this.rejoinTimer) clearTimeout(this.rejoinTimer);
    if (this.firstAssignmentTimer) clearTimeout(this.firstAssignmentTimer);
    this.wake();
    this.membership?.letGo();
    await this.consumer.close(true).catch(() => undefined);
    await this.loopDone;
  }
}

/** Record headers as the kafkajs shape: name -> value, repeated names -> an array of values. */
function headersOf(headers: readonly [Buffer | null, Buffer | null][]): Record<string, Buffer | Buffer[]> {
  const result: Record<string, Buffer | Buffer[]> = {};
  for (const [name, value] of headers) {
    if (name === null || value === null) continue;
    const key = name.toString();
    const existing = result[key];
    if (existing === undefined) result[key] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else result[key] = [existing, value];
  }
  return result;
}
