import type { KafkaAdmin } from './client.js';
import { type OffsetCommits, type PartitionOffset, partitionKey } from './commits.js';

/** What positioning needs: the group, the admin client, the commit bookkeeping (which writes the offsets), the consumer's seek. */
export interface PositionsContext {
  readonly groupId: string;
  readonly startFrom: 'earliest' | 'latest';
  readonly admin: KafkaAdmin;
  readonly commits: OffsetCommits;
  /** Log ends by topic|partition, refreshed here. */
  readonly highWatermarks: Map<string, number>;
  seek(position: PartitionOffset): void;
  /** False once the join this positioning is for was superseded or the subscription is closing: stop. */
  isCurrent(): boolean;
  /** Kept offsets were committed at this join (side-by-side windows shrink). */
  onRecommitted(offsets: readonly PartitionOffset[]): void;
  /** Seek to the committed offsets read here too (transactional subscriptions, consumers that read committed offsets themselves), not only to new ones. */
  readonly seekCommitted?: boolean;
}

/** "No committed offset" is -1 (both drivers' admin ports report it so). */
export function isCommitted(offset: string | undefined): boolean {
  return offset !== undefined && offset !== '' && BigInt(offset) >= 0n;
}

/**
 * Fixes the start position of every assigned partition, before its member reads it (the partitions are
 * paused meanwhile):
 * - a partition with a committed offset keeps it, unless this member acknowledged further (a kept
 *   commit, or one kafkajs dropped): then that is committed and sought to;
 * - one without gets a kept offset if any, else the log start (or the log end for a new group that
 *   starts at `latest`), committed and read back (kafkajs drops a commit silently while its runner
 *   restarts), so later members and restarts start from it too.
 */
export async function fixPositions(context: PositionsContext, assigned: readonly { topic: string; partitions: number[] }[]): Promise<void> {
  const { groupId, admin, commits, highWatermarks } = context;
  for (const { topic, partitions } of assigned) {
    const committed = await admin.groupOffsets(groupId, topic);
    const ends = await admin.topicOffsets(topic);
    const ahead: { topic: string; partition: number; offset: string }[] = [];
    const atCommitted: { topic: string; partition: number; offset: string }[] = [];
    for (const partition of partitions) {
      const tp = partitionKey(topic, partition);
      const high = ends.find((e) => e.partition === partition)?.high;
      if (high !== undefined) highWatermarks.set(tp, Number(high));
      const offset = committed.find((c) => c.partition === partition)?.offset;
      // What this member acknowledged before the join and the broker does not have: a commit that
      // failed (kept in pendingCommits), or one kafkajs resolved without sending while its runner
      // restarted (a coordinator failover, a broker restart). Committed now when ahead of the
      // broker's, so the group does not read those records again.
      const believed = commits.believed(tp);
      if (isCommitted(offset) && believed > Number(offset)) ahead.push({ topic, partition, offset: String(believed) });
      else if (isCommitted(offset)) {
        commits.confirm(tp, Number(offset));
        if (context.seekCommitted) atCommitted.push({ topic, partition, offset: offset! });
      }
    }
    if (atCommitted.length > 0 && context.isCurrent()) for (const position of atCommitted) context.seek(position);
    if (ahead.length > 0) {
      if (!context.isCurrent()) return;
      await commits.commitNow(ahead);
      for (const position of ahead) {
        commits.confirm(partitionKey(topic, position.partition), Number(position.offset));
        context.seek(position);
      }
      context.onRecommitted(ahead);
    }
    const missing = partitions.filter((p) => !isCommitted(committed.find((c) => c.partition === p)?.offset));
    if (missing.length === 0) continue;
    const groupKnowsTopic = committed.some((c) => isCommitted(c.offset));
    const fromEnd = !groupKnowsTopic && context.startFrom === 'latest';
    const positions = missing.map((partition) => {
      const believed = commits.believed(partitionKey(topic, partition)); // acknowledged before, its commit failed or was dropped
      if (believed >= 0) return { topic, partition, offset: String(believed) };
      const offsets = ends.find((e) => e.partition === partition);
      return { topic, partition, offset: (fromEnd ? offsets?.high : offsets?.low) ?? '0' };
    });
    if (!context.isCurrent()) return;
    await commits.commitNow(positions);
    // kafkajs drops a commit silently while its runner restarts: read it back, so the position
    // survives this member (later members and restarts start from it, never from a later "latest").
    const after = await admin.groupOffsets(groupId, topic);
    const lost = positions.filter((p) => !isCommitted(after.find((c) => c.partition === p.partition)?.offset));
    for (const position of positions) if (!lost.includes(position)) commits.confirm(partitionKey(topic, position.partition), Number(position.offset));
    if (lost.length > 0) throw new Error(`kafka: start positions of ${topic} partitions ${lost.map((p) => p.partition).join(',')} were not committed (group rebalancing?)`);
    if (!context.isCurrent()) return;
    for (const position of positions) context.seek(position);
  }
}
