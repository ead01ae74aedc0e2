import { describe, expect, it } from 'vitest';
import { gate } from '@switchboard/core/testing';
import { OffsetCommits, type PartitionOffset, parsePartitionKey, partitionKey } from '../src/commits.js';

/** The commit bookkeeping alone (no broker): what a join sees while a write hangs, fails or lands. */
describe('offset commits: what this member acknowledged, written or not', () => {
  function commitsWith(write: (offsets: PartitionOffset[]) => Promise<void>) {
    return new OffsetCommits({ commitOffsets: write, intervalMs: 3000, onCommitted: () => undefined, onFailed: () => undefined, isStopping: () => true });
  }

  it('counts a write that is still under way (the broker away, the client waiting): a join meanwhile must not go back to the older committed offset', async () => {
    const hanging = gate();
    const commits = commitsWith(() => hanging.promise.then(() => Promise.reject(new Error('coordinator not available'))));
    commits.confirm('t|0', 0); // the join's start position
    commits.record('t', 0, '75');
    const writing = commits.flush();
    // The write hangs: a join now reads committed offset 0 from the broker; what was acknowledged is 75.
    expect(commits.believed('t|0')).toBe(75);
    hanging.open();
    await writing;
    expect(commits.believed('t|0')).toBe(75); // failed: kept for the next flush (or the join's commit)
  });

  it('after the write lands the offset is known committed; after it fails it is kept; a revoked partition is remembered with it', async () => {
    let fail = false;
    const commits = commitsWith(async () => {
      if (fail) throw new Error('rebalancing');
    });
    commits.record('t', 1, '10');
    await commits.flush();
    expect(commits.committedOffset('t|1')).toBe(10);
    fail = true;
    commits.record('t', 1, '20');
    await commits.flush();
    expect(commits.committedOffset('t|1')).toBe(10);
    expect(commits.believed('t|1')).toBe(20);
    commits.keepOnly(new Set());
    expect(commits.believed('t|1')).toBe(20);
  });

  /**
   * A broker that keeps the last offset written per partition (as Kafka does); `hangFirst` holds the
   * first write until opened, then fails or lands it; `firstStarted` resolves when the first write
   * reaches the client. Records every write in the order it reaches the broker.
   */
  function lastWriterWins(hangFirst: { promise: Promise<void> }, firstFails: boolean) {
    const broker = new Map<string, number>();
    const written: number[] = [];
    let writes = 0;
    const started = gate();
    const write = async (offsets: PartitionOffset[]) => {
      const first = writes++ === 0;
      if (first) started.open();
      if (first) await hangFirst.promise;
      if (first && firstFails) throw new Error('Cannot connect to any broker');
      for (const { topic, partition, offset } of offsets) {
        broker.set(partitionKey(topic, partition), Number(offset));
        written.push(Number(offset));
      }
    };
    return { broker, written, write, firstStarted: started.promise };
  }

  it('one write at a time: a write that hung while the broker was away and then failed is not written again after the newer offset (the group would read acknowledged records again)', async () => {
    // Seen with @platformatic/kafka: the flush of offset 49 hung through a broker restart; the last
    // record's ack (50) was flushed meanwhile; 49 failed, was kept, retried, and landed after 50.
    const hanging = gate();
    const { broker, written, write, firstStarted } = lastWriterWins(hanging, true);
    const commits = commitsWith(write);
    commits.record('t', 3, '49');
    const first = commits.flush();
    await firstStarted;
    commits.record('t', 3, '50');
    const second = commits.flush();
    hanging.open();
    await Promise.all([first, second]);
    await commits.flush(); // whatever is still kept
    expect(written).toEqual([50]);
    expect(broker.get('t|3')).toBe(50);
    expect(commits.believed('t|3')).toBe(50);
  });

  it("a join's start positions are written after the write under way, never before it", async () => {
    const hanging = gate();
    const { broker, written, write, firstStarted } = lastWriterWins(hanging, false);
    const commits = commitsWith(write);
    commits.record('t', 0, '49');
    const late = commits.flush(); // hangs, then lands
    await firstStarted;
    const atJoin = commits.commitNow([{ topic: 't', partition: 0, offset: '50' }]);
    hanging.open();
    await Promise.all([late, atJoin]);
    expect(written).toEqual([49, 50]);
    expect(broker.get('t|0')).toBe(50);
  });
});

describe('partition keys', () => {
  it('parse back to the topic and partition they were made of, dots and dashes in the topic included', () => {
    for (const [topic, partition] of [
      ['orders', 0],
      ['sb.reply.a-b_c', 12],
      ['x', 2147483647],
    ] as const)
      expect(parsePartitionKey(partitionKey(topic, partition))).toEqual({ topic, partition });
  });
});
