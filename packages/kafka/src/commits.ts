/** The one key for a topic's partition in every per-partition map of a subscription: `topic|partition`. */
export function partitionKey(topic: string, partition: number): string {
  return `${topic}|${partition}`;
}

/** The topic and partition of a {@link partitionKey} (topic names may not hold `|`, partitions are numbers: the last `|` splits). */
export function parsePartitionKey(key: string): { topic: string; partition: number } {
  const at = key.lastIndexOf('|');
  return { topic: key.slice(0, at), partition: Number(key.slice(at + 1)) };
}

/** A partition's position to commit: the offset of the next record to read. */
export interface PartitionOffset {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

/** What the commit bookkeeping needs from its subscription. */
export interface CommitsContext {
  /** Writes offsets to the group (kafkajs `commitOffsets`). */
  commitOffsets(offsets: PartitionOffset[]): Promise<void>;
  /** 0: every recorded offset is written at once; else within this many ms. */
  readonly intervalMs: number;
  /** The broker confirmed these offsets. */
  onCommitted(offsets: readonly PartitionOffset[]): void;
  /** A write failed; the offsets are kept and written again. */
  onFailed(error: unknown): void;
  isStopping(): boolean;
}

/**
 * The offsets a subscription acknowledged, by topic|partition: recorded at each ack, written in
 * batches, kept when a write fails (committed again by the next flush, or at the rejoin when the member
 * keeps the partition: see {@link believed}), and what the broker is known to have.
 */
export class OffsetCommits {
  private readonly pending = new Map<string, PartitionOffset>();
  /**
   * Offsets of the write under way. Counted in {@link believed}: a write can hang while the broker is
   * away, and a join meanwhile must still see what was acknowledged (otherwise it reads the older
   * committed offset and handles those records again).
   */
  private readonly writing = new Map<string, number>();
  private readonly committed = new Map<string, number>();
  /**
   * Acknowledged here but not known committed, for partitions this member lost at a join (its commits
   * failed, then a rebalance moved the partition, e.g. to this member's own stale incarnation after a
   * broker restart). Never written while not owned; used if the partition comes back (see {@link believed}).
   */
  private readonly acknowledged = new Map<string, number>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Every write to the group goes through this chain, one at a time. Kafka keeps the last offset
   * written, so two writes in flight for a partition could land out of order and move its committed
   * offset back: a write that hung while the broker was away (kept and retried) landing after a newer
   * one, and the group reads acknowledged records again.
   */
  private tail: Promise<unknown> = Promise.resolve();
  /** The flush waiting behind the write under way: later flush() calls join it (it writes what is pending when it starts). */
  private queuedFlush: Promise<void> | undefined;

  constructor(private readonly context: CommitsContext) {}

  /** Records `offset` as the partition's next commit; written at once (a promise) with `intervalMs` 0, else within the interval. */
  record(topic: string, partition: number, offset: string): Promise<void> | undefined {
    this.pending.set(partitionKey(topic, partition), { topic, partition, offset });
    if (this.context.intervalMs === 0) return this.flush();
    this.timer ??= setTimeout(() => void this.flush(), this.context.intervalMs);
    return undefined;
  }

  /**
   * Writes what is pending, after the write under way if any. A failure keeps the offsets (unless a
   * newer one for the partition came meanwhile) and tries again later; never rejects.
   */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queuedFlush ??= this.afterWritesUnderWay(() => {
      this.queuedFlush = undefined;
      return this.writePending();
    });
    return this.queuedFlush;
  }

  /** Writes `offsets` (a join's start positions) after the write under way, so an older one cannot land after them; rejects when the write fails. */
  commitNow(offsets: PartitionOffset[]): Promise<void> {
    return this.afterWritesUnderWay(() => this.context.commitOffsets(offsets));
  }

  private afterWritesUnderWay<T>(write: () => Promise<T>): Promise<T> {
    const run = this.tail.then(write);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async writePending(): Promise<void> {
    if (this.pending.size === 0) return;
    const offsets = [...this.pending.values()];
    this.pending.clear();
    for (const { topic, partition, offset } of offsets) this.writing.set(partitionKey(topic, partition), Number(offset));
    try {
      await this.context.commitOffsets(offsets);
      for (const { topic, partition, offset } of offsets) this.committed.set(partitionKey(topic, partition), Number(offset));
      this.context.onCommitted(offsets);
    } catch (error) {
      // e.g. the coordinator moved or the group is rebalancing: a failover then re-reads at most what
      // was not acknowledged. A revoked partition's offsets are dropped at the join: its new owner commits.
      for (const retained of offsets) {
        const tp = partitionKey(retained.topic, retained.partition);
        const newer = this.pending.get(tp);
        if (!newer || Number(newer.offset) < Number(retained.offset)) this.pending.set(tp, retained);
      }
      if (!this.context.isStopping()) this.timer ??= setTimeout(() => void this.flush(), Math.max(this.context.intervalMs, 1000));
      this.context.onFailed(error);
    } finally {
      this.writing.clear();
    }
  }

  /** The offset the broker is known to have for `tp` (from a confirmed write or a join). */
  committedOffset(tp: string): number | undefined {
    return this.committed.get(tp);
  }

  /**
   * What this member acknowledged for `tp`, written or not: a commit that failed, or one kafkajs
   * resolved without sending while its runner restarted (a coordinator failover, a broker restart).
   * -1 when nothing.
   */
  believed(tp: string): number {
    const kept = this.pending.get(tp);
    return Math.max(kept ? Number(kept.offset) : -1, this.writing.get(tp) ?? -1, this.committed.get(tp) ?? -1, this.acknowledged.get(tp) ?? -1);
  }

  /** The broker has `offset` for `tp` (read at a join, or written now). A kept offset at or below it is done. */
  confirm(tp: string, offset: number): void {
    this.committed.set(tp, offset);
    if ((this.acknowledged.get(tp) ?? -1) <= offset) this.acknowledged.delete(tp);
    const kept = this.pending.get(tp);
    if (kept && Number(kept.offset) <= offset) this.pending.delete(tp);
  }

  /**
   * Stops writing for the partitions not in `owned` (revoked: their new owner commits). What this member
   * acknowledged for them is remembered, so that if one comes back with an older committed offset
   * (commits failed around a rebalance) the records this member handled are not read again.
   */
  keepOnly(owned: ReadonlySet<string>): void {
    for (const tp of new Set([...this.pending.keys(), ...this.writing.keys(), ...this.committed.keys()])) {
      if (owned.has(tp)) continue;
      const believed = this.believed(tp);
      if (believed >= 0) this.acknowledged.set(tp, believed);
      this.pending.delete(tp);
      this.committed.delete(tp);
    }
  }

  /** Forgets what is pending for `tp` (its window was revoked). */
  drop(tp: string): void {
    this.pending.delete(tp);
  }
}
