import { ClosedError, type BusObserver, type ConnectionHealth, type SourceMetadata, type SubscriptionStatus } from '@switchboard/core';
import {
  TransportDelivery,
  InFlight,
  KeyedScheduler,
  withDeadline,
  compileTopicPattern,
  type DeliveryListener,
  type TransportSubscribeSpec,
  type TransportSubscription,
} from '@switchboard/core/transport';
import { offsetAfter, type ConsumedRecord, type FetchedBatch, type GroupConsumer, type KafkaClient } from './client.js';
import { fromKafkaRecord } from './codec.js';
import { OffsetWindow } from './offset-window.js';
import { OffsetCommits, parsePartitionKey, partitionKey } from './commits.js';
import { fixPositions } from './positions.js';
import { isProducerFenced } from './errors.js';
import { TransactionalPartitions, transactionScope } from './transactions.js';
import type { KafkaOptions } from './options.js';

/**
 * What a subscription needs from its transport, and nothing more: the client (driver) its consumer is
 * made from, with the shared admin port (positions, high watermarks), and the options.
 */
export interface SubscriptionContext {
  readonly client: KafkaClient;
  readonly options: KafkaOptions;
}

interface HeldRetry {
  readonly topic: string;
  readonly partition: number;
  readonly record: KafkaRecordIn;
  readonly attempt: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

type KafkaRecordIn = ConsumedRecord;
type Outcome = 'acked' | 'retry' | 'unsettled';

/**
 * What a delivery's ack and retryLater do: differs between partition order and side-by-side handling.
 * One object per subscription and mode (no closures per record). `ack` returns a promise only when the
 * commit is written at once (`commitIntervalMs: 0`); otherwise it records the offset and returns.
 */
interface Settlement {
  ack(delivery: KafkaDelivery): Promise<void> | void;
  retry(delivery: KafkaDelivery, delayMs: number, nextAttempt: number): void;
}

/** One delivery of a record: the record's message, where it came from, and how it settles. */
class KafkaDelivery extends TransportDelivery {
  outcome: Outcome = 'unsettled';
  /** Set on transactional deliveries (see `Delivery.discardEffects`). */
  declare discardEffects?: () => Promise<void>;

  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly record: KafkaRecordIn,
    attempt: number,
    source: SourceMetadata,
    private readonly settlement: Settlement,
    /** Side-by-side handling: the record's place in its partition's window. */
    readonly item: WindowedRecord | undefined,
  ) {
    super(fromKafkaRecord(topic, partition, record), attempt, source);
  }

  ack(): Promise<boolean> | boolean {
    if (this.outcome !== 'unsettled') return false;
    this.outcome = 'acked';
    const written = this.settlement.ack(this);
    return written ? written.then(() => true) : true;
  }

  async retryLater(delayMs: number, nextAttempt = this.attempt + 1): Promise<boolean> {
    if (this.outcome !== 'unsettled') return false;
    this.outcome = 'retry';
    this.settlement.retry(this, delayMs, nextAttempt);
    return true;
  }
}

/** A record handled side by side with others of its partition (`ordering` `key` or `none`). */
interface WindowedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly record: KafkaRecordIn;
  readonly window: OffsetWindow;
  attempt: number;
  retryDelayMs: number;
}

/**
 * One consumer (of the chosen driver) in the subscription's group. Contracts:
 * - positions: when partitions are assigned (first join, rebalance, partitions added, restart after a
 *   broker outage) they are paused until their position is fixed. A partition with a committed offset
 *   resumes there. A partition without one starts, for a group that has no committed offset on the
 *   topic at all (it subscribes to it for the first time), at the end of the log (`latest`) or the
 *   beginning (`earliest`); for a group that already has offsets on the topic (the partition appeared
 *   later), at the beginning. That position is committed (and read back) before fetching starts, so
 *   later members, restarts and reconnects resume from it: `latest` means "from the moment this group
 *   first subscribed", and nothing published after `subscribe()` resolved is skipped;
 * - offsets are committed (offset + 1) only for acknowledged messages, in order per partition
 *   (processing within a partition is sequential), in batches every `commitIntervalMs`, and flushed
 *   before `close`/`drain` leave the group;
 * - `retryLater` pauses only that partition; when the delay is over the held message is handed to
 *   the listener again from memory (no re-fetch, so the delay is kept to the timer's accuracy), and
 *   the partition resumes after it. Other partitions keep flowing, per-key order holds, and no
 *   batch handler sleeps (both drivers keep heartbeating, so long backoffs cause no rebalance);
 * - on a rebalance, retries held for revoked partitions are dropped uncommitted (the new owner gets
 *   the message again);
 * - records arrive a fetched batch at a time (the driver's {@link FetchedBatch}), in offset order per partition;
 * - `ordering: 'key'` / `'none'`: each batch is queued as fast as it is fetched; a scheduler runs
 *   up to `concurrency` handlers across the subscription's partitions, one at a time per key (`key`) or
 *   in any order (`none`). Each partition's records wait in an {@link OffsetWindow}: the commit is the
 *   lowest unfinished offset, a retry holds only its key (its offset stays unfinished, so commits of
 *   that partition stop there), and a partition whose window holds `maxUncommittedPerPartition`
 *   records is paused until commits bring it down to half. On a rebalance, records of revoked
 *   partitions are handed back uncommitted (running handlers finish, their acks commit nothing);
 *   records of partitions kept are not handled twice when the consumer fetches them again;
 * - a consumer crash (broker lost) is reported as `subscription-interrupted` (with the time of the
 *   last successful fetch) and, once the group is joined and positions are fixed again,
 *   `subscription-resumed` with the gap.
 */
export class KafkaSubscription implements TransportSubscription {
  private readonly consumer: GroupConsumer;
  private readonly fetchWaiters = new Set<() => void>();
  /** Retries held in this process, by topic|partition. */
  private readonly held = new Map<string, HeldRetry>();
  private readonly inFlight = new InFlight();
  /** Acknowledged offsets: recorded, written in batches, kept when a write fails. */
  private readonly commits: OffsetCommits;
  /** Side-by-side handling (`ordering` `key` / `none`); undefined for partition order. */
  private readonly scheduler: KeyedScheduler<WindowedRecord> | undefined;
  /** Uncommitted records by topic|partition, side-by-side handling only. */
  private readonly windows = new Map<string, OffsetWindow>();
  private stopping = false;
  private ending: Promise<void> | undefined;
  private endedCallbacks: (() => void)[] = [];
  /** Incremented on every join: positioning work of an older join is abandoned. */
  private generation = 0;
  /** topic|partition currently assigned to this member. */
  private owned = new Set<string>();
  private lastFetchAt = Date.now();
  private interruptedSince: number | undefined;
  private connectedSince = Date.now();
  private handedBackCount = 0;
  /** Per topic|partition, as last seen: the log's end (fetch responses, joins) and this group's committed offset. */
  private readonly highWatermarks = new Map<string, number>();
  private highWatermarksAskedAt = 0;
  private firstPositioned: { promise: Promise<void>; resolve: () => void; reject: (error: unknown) => void };
  /** `transactional` subscriptions: a transactional producer per assigned partition. */
  private readonly transactions: TransactionalPartitions | undefined;
  /**
   * Partitions given up after a transaction failed (fenced: another member owns them now; or a lost
   * broker, a commit whose outcome is unknown). Nothing more is handled for them until a join assigns
   * them again: only a join may connect a partition's producer (connecting one fences the partition's
   * other producers, and a zombie that did so would fence the rightful owner). A failure asks for that
   * join ({@link requestRejoin}); at the join the new producer settles the old transaction and the
   * partition resumes from the committed offset.
   */
  private readonly suspendedPartitions = new Set<string>();
  /**
   * Transactional: per topic|partition, the highest next offset this member's own transactions
   * committed (never lowered, kept when a partition is revoked). A record below it was committed by a
   * transaction already, so it is never handled again, whatever position the consumer was moved to:
   * the committed offsets a join reads can be older than a transaction that commits meanwhile (a
   * transaction of a kept partition still open at the join; kafkajs' OffsetFetch has no
   * `require_stable`, so a commit still pending reads as the offset before it).
   */
  private readonly committedByTransactions = new Map<string, number>();
  private rejoining: Promise<void> | undefined;

  constructor(
    private readonly context: SubscriptionContext,
    private readonly spec: TransportSubscribeSpec,
    private readonly listener: DeliveryListener,
    private readonly observer: () => BusObserver,
  ) {
    const o = context.options;
    this.transactions = spec.transactional ? new TransactionalPartitions(context.client, spec.group || 'default') : undefined;
    this.consumer = context.client.consumer({
      groupId: spec.group || 'default',
      topics: spec.pattern ? compileTopicPattern(spec.topic) : spec.topic,
      // Side by side, a batch is only queued: one batch at a time is enough.
      partitionsConcurrently: spec.ordering !== 'partition' ? 1 : spec.concurrency,
    });
    this.commits = new OffsetCommits({
      commitOffsets: (offsets) => this.consumer.commit(offsets),
      intervalMs: o.commitIntervalMs,
      onCommitted: (offsets) => {
        if (this.scheduler) this.windowsCommitted(offsets);
      },
      onFailed: (error) =>
        this.observer().onEvent({
          type: 'internal-error',
          topic: this.spec.topic,
          context: this.stopping ? 'kafka offset commit at close (not committed: the next owner reads those records again)' : 'kafka offset commit (kept, committed again later)',
          error,
        }),
      isStopping: () => this.stopping,
    });
    if (spec.ordering !== 'partition') {
      this.scheduler = new KeyedScheduler<WindowedRecord>(
        spec.concurrency,
        (item) => this.runWindowed(item),
        (error) => this.observer().onEvent({ type: 'internal-error', topic: spec.topic, context: 'kafka: handling a record', error }),
      );
    }
    let resolve!: () => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
    promise.catch(() => undefined);
    this.firstPositioned = { promise, resolve, reject };
  }

  /** Resolves once this member has joined the group and every partition assigned to it has a fixed, committed position. */
  async start(): Promise<void> {
    await this.consumer.start({
      onJoin: (assignment) => this.onGroupJoin(assignment),
      // A rebalance is starting: commit what was acknowledged while this generation may still commit,
      // so the next owner of a partition does not handle it again.
      onRebalancing: () => void this.commits.flush(),
      onFetch: () => {
        this.lastFetchAt = Date.now();
        for (const waiter of this.fetchWaiters) waiter();
      },
      onBatch: (batch) => this.onBatch(batch),
      onCrash: (error, restarting) => {
        if (this.interruptedSince === undefined && !this.stopping) {
          this.interruptedSince = this.lastFetchAt;
          this.observer().onEvent({ type: 'subscription-interrupted', topic: this.spec.topic, transport: 'kafka', since: this.lastFetchAt, error });
        }
        if (!restarting && !this.stopping) {
          this.observer().onEvent({ type: 'internal-error', topic: this.spec.topic, context: 'kafka consumer crashed on an error its client does not retry; running it again', error });
          this.runAgainLater();
        }
      },
    });
    await withDeadline(
      this.firstPositioned.promise,
      Date.now() + this.context.options.rebalanceTimeoutMs + 10_000,
      () => new Error(`kafka consumer of group "${this.spec.group}" did not join and position its partitions within the rebalance timeout`),
    );
    await this.nextFetch();
  }

  /**
   * Resolves at the consumer's next fetch (at most 2 × maxWaitTimeMs + 1 s): while every partition was
   * paused for positioning, kafkajs' fetcher sleeps `maxWaitTimeMs` between rounds, so the first messages
   * published after subscribe() waited up to that long (the low-rate end-to-end p99 of ~215 ms against
   * a p50 of ~2 ms). After this, the fetcher is in a long poll that the broker answers as soon as a
   * record comes.
   */
  private nextFetch(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.fetchWaiters.delete(done);
        resolve();
      };
      this.fetchWaiters.add(done);
      const timer = setTimeout(done, this.context.options.maxWaitTimeMs * 2 + 1000);
    });
  }

  /**
   * One fetched batch (one partition), in offset order: each record is handled (partition order) or
   * queued (side by side), then the consumer's position is moved past the last one taken, once per batch
   * (kafkajs' per-message path adds a heartbeat check and an offset resolution per record). Stops at
   * a record held for a retry (the partition is paused and sought back to it), at a full window
   * (paused; fetched again from there on resume), or when the batch went stale (a seek, a rebalance).
   */
  private async onBatch(batch: FetchedBatch): Promise<void> {
    const { topic, partition, resolveOffset, heartbeat, isRunning, isStale } = batch;
    this.highWatermarks.set(partitionKey(topic, partition), Number(batch.highWatermark));
    const tp = partitionKey(topic, partition);
    let last: string | undefined;
    for (let index = 0; index < batch.messages.length; index++) {
      const record = batch.messages[index]!;
      if (this.stopping) {
        this.countHandedBack(tp, batch.messages.slice(index)); // fetched, never started: the group reads them again
        break;
      }
      if (!isRunning() || isStale() || this.held.has(tp) || this.suspendedPartitions.has(tp)) break;
      if (this.scheduler) {
        this.acceptWindowed(topic, partition, record);
        last = record.offset;
        if (this.windows.get(tp)?.paused) break;
        continue;
      }
      const handling = this.onMessage(topic, partition, record);
      if (handling) await handling;
      if (this.held.has(tp) || this.suspendedPartitions.has(tp)) break; // held at this record (or suspended): not taken
      last = record.offset;
    }
    if (last !== undefined && isRunning() && !isStale()) resolveOffset(last);
    await heartbeat();
  }

  /** Offset up to which records of a partition were counted as handed back (a consumer may offer a batch again while closing). */
  private readonly handedBackUpTo = new Map<string, number>();

  private countHandedBack(tp: string, records: readonly KafkaRecordIn[]): void {
    const counted = this.handedBackUpTo.get(tp) ?? -1;
    for (const record of records) if (Number(record.offset) > counted) this.handedBackCount++;
    const last = records[records.length - 1];
    if (last) this.handedBackUpTo.set(tp, Math.max(counted, Number(last.offset)));
  }

  /**
   * kafkajs restarts its consumer after retriable errors only. After any other (a TypeError in its
   * offset manager when a rebalance lands mid-batch, kafkajs #1366; a listener that rejects) it stays
   * stopped for good. This subscription must not: it runs the consumer again, every second until that
   * works. The next join fixes positions from the committed offsets and reports `subscription-resumed`.
   */
  private runAgainLater(): void {
    setTimeout(() => {
      if (this.stopping) return;
      this.consumer.restart().catch((error: unknown) => {
        this.observer().onEvent({ type: 'internal-error', topic: this.spec.topic, context: 'kafka: running the consumer again after a crash (trying again)', error });
        this.runAgainLater();
      });
    }, 1000);
  }

  /**
   * A (re)join: drop held retries of revoked partitions, pause every assigned partition at once (this
   * runs before the consumer's next fetch), fix positions, then resume.
   */
  private onGroupJoin(assignment: Readonly<Record<string, number[]>>): void {
    const generation = ++this.generation;
    this.suspendedPartitions.clear(); // what this join assigns is this member's again (its producers fence the previous owner)
    this.owned = new Set(Object.entries(assignment).flatMap(([topic, partitions]) => partitions.map((p) => partitionKey(topic, p))));
    for (const [tp, held] of this.held) {
      if (this.owned.has(tp)) continue;
      if (held.timer) clearTimeout(held.timer); // revoked: the new owner reads it from the committed offset
      this.held.delete(tp);
    }
    // Acks of revoked partitions are not committed by this member any more: the new owner commits.
    this.commits.keepOnly(this.owned);
    for (const [tp, window] of this.windows) {
      if (this.owned.has(tp)) continue;
      window.revoked = true; // its queued records are dropped when their turn comes; nothing of it is committed
      this.windows.delete(tp);
      this.commits.drop(tp);
    }
    const assigned = Object.entries(assignment)
      .filter(([, partitions]) => partitions.length > 0)
      .map(([topic, partitions]) => ({ topic, partitions }));
    if (assigned.length > 0) this.consumer.pause(assigned);
    this.positionAndResume(generation, assigned);
  }

  /** Fixes positions for this generation, then resumes; on failure tries again every second while the generation lasts. */
  private positionAndResume(generation: number, assigned: { topic: string; partitions: number[] }[]): void {
    void this.fixPositions(generation, assigned).then(
      () => {
        if (generation !== this.generation || this.stopping) return;
        // Resume what we do not hold a retry for (pauses survive rebalances: lift stale ones too).
        const resumed = this.onConsumer('resuming partitions after a join', () => {
          const resumable = this.consumer
            .paused()
            .flatMap(({ topic, partitions }) =>
              partitions.filter((p) => !this.held.has(partitionKey(topic, p)) && !this.windows.get(partitionKey(topic, p))?.paused).map((p) => ({ topic, partitions: [p] })),
            );
          if (resumable.length > 0) this.consumer.resume(resumable);
        });
        if (!resumed) return; // the consumer is restarting: its next join positions and resumes
        if (this.interruptedSince !== undefined) {
          this.connectedSince = Date.now();
          this.observer().onEvent({ type: 'subscription-resumed', topic: this.spec.topic, transport: 'kafka', gapMs: Date.now() - this.interruptedSince });
          this.interruptedSince = undefined;
        }
        this.firstPositioned.resolve();
      },
      (error: unknown) => {
        if (generation !== this.generation || this.stopping) return;
        this.observer().onEvent({ type: 'internal-error', topic: this.spec.topic, context: 'kafka: fixing partition positions after a join (trying again)', error });
        // Partitions stay paused: nothing is read from an unknown position. A rebalance (a new
        // generation) starts over; otherwise try again. `subscribe()` is bounded by its own deadline.
        setTimeout(() => {
          if (generation === this.generation && !this.stopping) this.positionAndResume(generation, assigned);
        }, 1000);
      },
    );
  }

  /** Commits a start position for every assigned partition that has none (or a kept one ahead of the broker's), reads it back, and seeks there. */
  private async fixPositions(generation: number, assigned: { topic: string; partitions: number[] }[]): Promise<void> {
    // Transactional: the partitions' producers first. Connecting one fences the partition's previous
    // owner and ends its open transaction, so the committed offsets read next are final.
    if (this.transactions) await this.transactions.assign(assigned.flatMap(({ topic, partitions }) => partitions.map((p) => partitionKey(topic, p))));
    if (generation !== this.generation || this.stopping) return;
    await fixPositions(
      {
        // Transactional: the consumer goes to the committed offsets read after the fencing, never to
        // ones it may have read before (a dead member's last transaction was still open then).
        // So does a consumer that would otherwise read the committed offset again by itself.
        seekCommitted: this.transactions !== undefined || this.consumer.readsCommittedUnlessSought === true,
        groupId: this.spec.group || 'default',
        startFrom: this.spec.startFrom,
        admin: this.context.client.admin,
        commits: this.commits,
        highWatermarks: this.highWatermarks,
        seek: (position) => this.consumer.seek(position),
        isCurrent: () => generation === this.generation && !this.stopping,
        onRecommitted: (offsets) => {
          if (this.scheduler) this.windowsCommitted(offsets);
        },
      },
      assigned,
    );
  }

  /** Hands a record to the listener (partition order); synchronous when the listener is. */
  private onMessage(topic: string, partition: number, record: KafkaRecordIn): Promise<void> | undefined {
    if (this.stopping) return undefined; // not committed: the group gets it again
    const outcome = this.deliver(topic, partition, record, 1, this.inPartitionOrder, undefined);
    if (typeof outcome === 'string') {
      this.afterFirstDelivery(outcome, topic, partition, record);
      return undefined;
    }
    return outcome.then((settled) => this.afterFirstDelivery(settled, topic, partition, record));
  }

  private afterFirstDelivery(outcome: Outcome, topic: string, partition: number, record: KafkaRecordIn): void {
    if (outcome === 'unsettled' && !this.stopping) this.hold(topic, partition, record, 1, 0); // handle it again
  }

  /** Partition order: an ack commits the next offset, a retry pauses the partition at the record. */
  private readonly inPartitionOrder: Settlement = {
    ack: (d) => this.commits.record(d.topic, d.partition, offsetAfter(d.record.offset)),
    retry: (d, delayMs, nextAttempt) => this.hold(d.topic, d.partition, d.record, nextAttempt, delayMs),
  };

  /** Side by side: an ack finishes the record in its partition's window (committing what became contiguous); a retry holds its key. */
  private readonly sideBySide: Settlement = {
    ack: (d) => {
      const window = d.item!.window;
      if (window.revoked) return undefined;
      const position = window.finish(Number(d.record.offset));
      return position !== undefined ? this.commits.record(d.topic, d.partition, String(position)) : undefined;
    },
    retry: (d, delayMs, nextAttempt) => {
      d.item!.attempt = nextAttempt;
      d.item!.retryDelayMs = Math.max(0, delayMs);
    },
  };

  /** Side by side: queue the record behind its key (or nowhere, unordered); pause the partition when its window is full. */
  private acceptWindowed(topic: string, partition: number, record: KafkaRecordIn): void {
    if (this.stopping) return;
    const tp = partitionKey(topic, partition);
    let window = this.windows.get(tp);
    if (!window) this.windows.set(tp, (window = new OffsetWindow()));
    if (!window.accept(Number(record.offset))) return; // known already: fetched again after a rebalance
    // Keys are bytes; latin1 maps each byte to one character, so distinct keys stay distinct.
    const orderKey = this.spec.ordering === 'key' && record.key ? `${tp}|${record.key.toString('latin1')}` : undefined;
    this.scheduler!.push(orderKey, { topic, partition, record, window, attempt: 1, retryDelayMs: 0 });
    if (!window.paused && window.size >= this.context.options.maxUncommittedPerPartition) {
      window.paused = true;
      this.onConsumer('pausing a partition whose window is full', () => this.consumer.pause([{ topic, partitions: [partition] }]));
    }
  }

  /** Runs one windowed record; returns a delay to hold its key for a retry. Synchronous when the listener is. */
  private runWindowed(item: WindowedRecord): Promise<number | void> | number | void {
    if (this.stopping || item.window.revoked) return; // handed back uncommitted
    const outcome = this.deliver(item.topic, item.partition, item.record, item.attempt, this.sideBySide, item);
    if (typeof outcome === 'string') return this.afterWindowed(item, outcome);
    return outcome.then((settled) => this.afterWindowed(item, settled));
  }

  private afterWindowed(item: WindowedRecord, outcome: Outcome): number | void {
    if (this.stopping || item.window.revoked) return;
    if (outcome === 'retry') return item.retryDelayMs;
    if (outcome === 'unsettled') return 0; // handle it again, in its key's turn
  }

  /**
   * Hands one record to the listener as delivery `attempt`; the outcome at once when the listener
   * finished synchronously, else a promise of it. A listener that throws or rejects fails the batch
   * (kafkajs' crash path; see runAgainLater).
   */
  private deliver(topic: string, partition: number, record: KafkaRecordIn, attempt: number, settlement: Settlement, item: WindowedRecord | undefined): Promise<Outcome> | Outcome {
    if (this.transactions) return this.deliverInTransaction(this.transactions, topic, partition, record, attempt, settlement);
    const delivery = new KafkaDelivery(topic, partition, record, attempt, { transport: 'kafka', topic, partition, offset: record.offset, group: this.spec.group }, settlement, item);
    this.inFlight.begin();
    let running: Promise<void> | void;
    try {
      running = this.listener(delivery);
    } catch (error) {
      this.inFlight.end();
      throw error;
    }
    if (!running) {
      this.inFlight.end();
      return delivery.outcome;
    }
    return running.then(
      () => {
        this.inFlight.end();
        return delivery.outcome;
      },
      (error: unknown) => {
        this.inFlight.end();
        throw error;
      },
    );
  }

  /** Asks the consumer to leave and join the group again (one request at a time), after a transaction failed. */
  private requestRejoin(): void {
    if (this.rejoining || this.stopping || !this.consumer.rejoin) return;
    const consumer = this.consumer;
    this.rejoining = new Promise<void>((resolve) => setTimeout(resolve, 0))
      .then(() => (this.stopping ? undefined : consumer.rejoin!()))
      .catch((error: unknown) => {
        this.observer().onEvent({ type: 'internal-error', topic: this.spec.topic, context: 'kafka: rejoining the group after a failed transaction (trying again)', error });
        this.runAgainLater();
      })
      .finally(() => {
        this.rejoining = undefined;
      });
  }

  /**
   * A delivery in a Kafka transaction of its own (`transactional`): the listener runs inside the
   * transaction's scope, so what the handler publishes on this transport (and a dead letter) joins it;
   * an ack adds the next offset to it and commits; a retry, a handing back or a failure aborts it (its
   * publishes are never visible to read_committed consumers). A transaction that cannot begin, commit or
   * abort gives the partition up until the member joins the group again (see `suspendedPartitions`).
   */
  private async deliverInTransaction(transactions: TransactionalPartitions, topic: string, partition: number, record: KafkaRecordIn, attempt: number, settlement: Settlement): Promise<Outcome> {
    const tp = partitionKey(topic, partition);
    if (!this.owned.has(tp) || this.stopping || this.suspendedPartitions.has(tp)) return 'unsettled';
    const failed = (context: string, error: unknown): Outcome => {
      const fenced = isProducerFenced(error);
      this.observer().onEvent({
        type: 'internal-error',
        topic,
        context: `kafka transaction: ${context}${fenced ? ': fenced, another member owns the partition now' : ''} (aborted; the partition waits for a join, then resumes from its committed offset)`,
        error,
      });
      this.suspendedPartitions.add(tp);
      const held = this.held.get(tp);
      if (held?.timer) clearTimeout(held.timer);
      this.held.delete(tp);
      transactions.reset(tp); // closed, not replaced: only a join connects its successor
      this.onConsumer('pausing a partition after a failed transaction', () => this.consumer.pause([{ topic, partitions: [partition] }]));
      this.requestRejoin();
      return 'retry'; // neither held nor acknowledged: the join decides who handles it
    };
    let transaction: Awaited<ReturnType<TransactionalPartitions['begin']>>;
    try {
      transaction = await transactions.begin(tp);
    } catch (error) {
      return failed('beginning', error);
    }
    // Checked once the partition's previous transaction ended (begin waits for it): that one may have
    // been this very record's.
    if (Number(record.offset) < (this.committedByTransactions.get(tp) ?? -1)) {
      const aborted = await transaction.abort().then(
        () => undefined,
        (error: unknown) => error,
      );
      if (aborted !== undefined) return failed('aborting', aborted);
      this.observer().onEvent({
        type: 'internal-error',
        topic,
        context: `kafka: a record this member committed in a transaction was fetched again (partition ${partition}, offset ${record.offset}: the consumer was positioned at an older committed offset); skipped, not handled again`,
        error: new Error(`offset ${record.offset} is below ${this.committedByTransactions.get(tp)}, committed by this member`),
      });
      return 'acked';
    }
    // The offset goes into the transaction: an ack records nothing for the consumer to commit.
    const inTransaction: Settlement = { ack: () => undefined, retry: settlement.retry };
    const delivery = new KafkaDelivery(topic, partition, record, attempt, { transport: 'kafka', topic, partition, offset: record.offset, group: this.spec.group }, inTransaction, undefined);
    const scope = { owner: this.context, transaction };
    // A failed attempt's publishes are aborted; a dead letter and the ack go into a fresh transaction.
    delivery.discardEffects = async () => {
      await scope.transaction.abort();
      scope.transaction = await transactions.begin(tp);
    };
    this.inFlight.begin();
    try {
      await transactionScope.run(scope, () => this.listener(delivery));
    } catch (error) {
      await scope.transaction.abort().catch(() => undefined);
      return failed('handling', error);
    } finally {
      this.inFlight.end();
    }
    transaction = scope.transaction;
    if (delivery.outcome !== 'acked' || this.stopping) {
      const aborted = await transaction.abort().then(
        () => undefined,
        (error: unknown) => error,
      );
      if (aborted !== undefined) return failed('aborting', aborted);
      return delivery.outcome === 'acked' ? 'unsettled' : delivery.outcome;
    }
    const next = offsetAfter(record.offset);
    try {
      await transaction.sendOffsets(this.spec.group || 'default', [{ topic, partition, offset: next }]);
      await transaction.commit();
    } catch (error) {
      await transaction.abort().catch(() => undefined);
      return failed('committing', error);
    }
    this.commits.confirm(tp, Number(next));
    if (Number(next) > (this.committedByTransactions.get(tp) ?? -1)) this.committedByTransactions.set(tp, Number(next));
    return 'acked';
  }

  /**
   * Pauses the partition at the record (the consumer stops its batch there and will fetch from the record
   * again if the hold is lost) and hands the record to the listener again as `attempt` after `delayMs`.
   */
  private hold(topic: string, partition: number, record: KafkaRecordIn, attempt: number, delayMs: number): void {
    const tp = partitionKey(topic, partition);
    if (!this.owned.has(tp)) return; // revoked meanwhile: the new owner reads it from the committed offset
    // While the consumer restarts (kafkajs) this fails; the restart's join pauses every held partition again.
    this.onConsumer('pausing a partition for a retry', () => {
      this.consumer.pause([{ topic, partitions: [partition] }]);
      this.consumer.seek({ topic, partition, offset: record.offset });
    });
    const previous = this.held.get(tp);
    if (previous?.timer) clearTimeout(previous.timer);
    const held: HeldRetry = { topic, partition, record, attempt, timer: undefined };
    held.timer = setTimeout(
      () => {
        this.redeliver(tp, held).catch((error: unknown) => this.observer().onEvent({ type: 'internal-error', topic: this.spec.topic, context: 'kafka: redelivering a held retry', error }));
      },
      Math.max(0, delayMs),
    );
    this.held.set(tp, held);
  }

  private async redeliver(tp: string, held: HeldRetry): Promise<void> {
    held.timer = undefined;
    if (this.stopping || this.held.get(tp) !== held) return;
    const { topic, partition, record } = held;
    const outcome = await this.deliver(topic, partition, record, held.attempt, this.inPartitionOrder, undefined);
    if (this.held.get(tp) !== held) return; // revoked, closed or re-held meanwhile
    if (outcome === 'retry') return; // deliver() held it again with the next attempt
    if (outcome === 'unsettled') {
      if (!this.stopping) this.hold(topic, partition, record, held.attempt + 1, 0);
      return;
    }
    this.held.delete(tp);
    if (this.stopping || !this.owned.has(tp)) return;
    // While kafkajs restarts (broker lost) there is no consumer group to seek in: the next join resumes
    // from the committed offset instead (the ack above, or the record again: at least once).
    this.onConsumer('resuming a partition after a held retry', () => {
      this.consumer.seek({ topic, partition, offset: offsetAfter(record.offset) });
      this.consumer.resume([{ topic, partitions: [partition] }]);
    });
  }

  /**
   * Runs a pause / seek / resume on the consumer; kafkajs' throws while it restarts after a crash
   * (no consumer group then). Returns false, reported, when it did.
   */
  private onConsumer(what: string, action: () => void): boolean {
    try {
      action();
      return true;
    } catch (error) {
      this.observer().onEvent({ type: 'internal-error', topic: this.spec.topic, context: `kafka: ${what}`, error });
      return false;
    }
  }

  /** Commits confirmed: shrink the windows; resume partitions paused full once down to half. */
  private windowsCommitted(offsets: readonly { topic: string; partition: number; offset: string }[]): void {
    const resume: { topic: string; partitions: number[] }[] = [];
    for (const { topic, partition, offset } of offsets) {
      const window = this.windows.get(partitionKey(topic, partition));
      if (!window) continue;
      window.committed(Number(offset));
      if (window.paused && window.size <= this.context.options.maxUncommittedPerPartition / 2) {
        window.paused = false;
        resume.push({ topic, partitions: [partition] });
      }
    }
    if (resume.length > 0 && !this.stopping) this.onConsumer('resuming partitions whose window emptied', () => this.consumer.resume(resume));
  }

  onEnded(callback: () => void): void {
    this.endedCallbacks.push(callback);
  }

  /** Held retries and queued records handed back uncommitted at close (the client's own prefetched records are not counted). */
  handedBack(): number {
    return this.handedBackCount;
  }

  /**
   * Live or interrupted, and the group's lag on the partitions this member reads: high watermark minus
   * committed offset, summed; absent until both are known for one. High watermarks come from fetches
   * and joins, and from the broker in the background when this is called and they are older than a
   * second (a paused or busy partition is fetched rarely): health probes that poll read a lag at most
   * one poll old, and a process nobody probes sends nothing extra.
   */
  status(): SubscriptionStatus {
    if (Date.now() - this.highWatermarksAskedAt >= 1000 && !this.stopping) this.refreshHighWatermarks();
    let lag: number | undefined;
    for (const tp of this.owned) {
      const high = this.highWatermarks.get(tp);
      const committed = this.commits.committedOffset(tp);
      if (high !== undefined && committed !== undefined) lag = (lag ?? 0) + Math.max(0, high - committed);
    }
    return {
      ...(this.interruptedSince !== undefined ? { state: 'interrupted' as const, since: this.interruptedSince } : { state: 'live' as const }),
      ...(lag !== undefined ? { lag } : {}),
      // Records queued for a handler (side by side) or held for a retry (partition order).
      buffered: this.scheduler ? this.scheduler.pending : this.held.size,
    };
  }

  private refreshHighWatermarks(): void {
    this.highWatermarksAskedAt = Date.now();
    const topics = new Set([...this.owned].map((tp) => parsePartitionKey(tp).topic));
    void (async () => {
      for (const topic of topics) {
        for (const { partition, high } of await this.context.client.admin.topicOffsets(topic)) this.highWatermarks.set(partitionKey(topic, partition), Number(high));
      }
    })().catch(() => undefined); // unreachable broker: the subscription reports interrupted; the lag stays as last seen
  }

  /** This subscription's consumer as a connection: down from a crash (a lost broker) until it fetches again. */
  connection(): ConnectionHealth {
    const name = `consumer ${this.spec.topic} (group ${this.spec.group || 'default'})`;
    const endpoint = this.context.options.brokers.join(',');
    return this.interruptedSince !== undefined ? { name, state: 'down', since: this.interruptedSince, endpoint } : { name, state: 'up', since: this.connectedSince, endpoint };
  }

  /**
   * Stops fetching, lets running handlers finish, commits every acknowledged offset, hands back held
   * retries uncommitted, then leaves the group.
   */
  close(): Promise<void> {
    this.ending ??= (async () => {
      this.stopping = true;
      for (const held of this.held.values()) if (held.timer) clearTimeout(held.timer);
      this.handedBackCount += this.held.size;
      this.held.clear();
      this.handedBackCount += this.scheduler?.takePending().length ?? 0; // not started: handed back uncommitted
      await this.inFlight.idle();
      await this.lastCommit();
      await this.transactions?.close();
      await this.consumer.disconnect().catch(() => undefined);
      this.firstPositioned.reject(new ClosedError('kafka subscription closed'));
      for (const callback of this.endedCallbacks) callback();
    })();
    return this.ending;
  }

  /**
   * The commit of what was acknowledged since the last one, at close: waited for at most
   * `closeCommitTimeoutMs`. Past it (no broker answers) the close goes on without it; the write is
   * not retried (`isStopping`), and the partition's next owner reads those records again.
   */
  private async lastCommit(): Promise<void> {
    const bound = this.context.options.closeCommitTimeoutMs;
    await withDeadline(
      this.commits.flush(),
      Date.now() + bound,
      () => new Error(`no answer within closeCommitTimeoutMs (${bound} ms): closed without committing what was acknowledged since the last commit (the next owner reads it again)`),
    ).catch((error: unknown) => this.observer().onEvent({ type: 'internal-error', topic: this.spec.topic, context: 'kafka offset commit at close', error }));
  }

  /** Kafka hands back what it fetched but did not start (uncommitted), so drain is close. */
  drain(): Promise<void> {
    return this.close();
  }
}
