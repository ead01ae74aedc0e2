import { describe, expect, it } from 'vitest';
import { gate } from '@switchboard/core/testing';
import { OffsetCommits, type PartitionOffset } from '../src/commits.js';

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
});
