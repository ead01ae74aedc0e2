import { AsyncLocalStorage } from 'node:async_hooks';
import type { KafkaClient, KafkaTransaction, TransactionalSender } from './client.js';
import { parsePartitionKey } from './commits.js';

/**
 * The transaction of the delivery being handled, per async context: set by a transactional
 * subscription around its listener, read by the transport's `publish` (which then joins it) and
 * `inTransaction()`. `owner` is the transport whose publishes join (another transport's do not).
 */
export const transactionScope = new AsyncLocalStorage<{ readonly owner: object; transaction: KafkaTransaction }>();

interface Entry {
  readonly sender: TransactionalSender;
  readonly ready: Promise<void>;
  /** Resolves when the partition's current transaction ended (committed or aborted). */
  ending: Promise<void>;
}

/**
 * The transactional producers of a transactional subscription: one per assigned partition, with the
 * transactional id `sb.<group>.<topic>.<partition>` (the same in every member and process). Contracts:
 * - `assign` connects the producers of newly assigned partitions before their positions are read:
 *   connecting fences the partition's previous owner (its open transaction is aborted, its later
 *   commits fail), so the committed offset read afterwards is final; producers of revoked partitions
 *   are closed once their transaction ended;
 * - one transaction at a time per partition: `begin` waits for the previous one to end, and refuses
 *   a partition without a producer (only `assign`, at a join, connects one: a producer connected
 *   elsewhere could fence the partition's rightful owner);
 * - `reset` closes a partition's producer after a failed transaction; the next join connects another.
 */
export class TransactionalPartitions {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly client: KafkaClient,
    private readonly group: string,
  ) {
    if (!client.transactionalSender) throw new Error(`the Kafka driver "${client.driver}" has no transactions`);
  }

  /** The partitions (topic|partition) assigned now: producers connected for them, closed for the others. */
  async assign(owned: readonly string[]): Promise<void> {
    for (const [tp, entry] of this.entries) {
      if (owned.includes(tp)) continue;
      this.entries.delete(tp);
      void entry.ending.then(() => entry.sender.close()).catch(() => undefined);
    }
    await Promise.all(owned.map((tp) => this.ensure(tp).ready));
  }

  /** Begins the partition's next transaction (after the previous one ended). Only on a producer `assign` connected. */
  async begin(tp: string): Promise<KafkaTransaction> {
    const entry = this.entries.get(tp);
    if (!entry) throw new Error(`no transactional producer for ${tp}: only a join connects one`);
    await entry.ready;
    await entry.ending;
    const transaction = await entry.sender.begin();
    let ended!: () => void;
    entry.ending = new Promise<void>((resolve) => (ended = resolve));
    const end = <T>(step: Promise<T>) => step.finally(ended);
    return {
      send: (topic, records) => transaction.send(topic, records),
      sendOffsets: (groupId, offsets) => transaction.sendOffsets(groupId, offsets),
      commit: () => end(transaction.commit()),
      abort: () => end(transaction.abort()),
    };
  }

  /** Drops the partition's producer (closed in the background); the next `assign` that includes the partition connects another. */
  reset(tp: string): void {
    const entry = this.entries.get(tp);
    if (!entry) return;
    this.entries.delete(tp);
    void entry.sender.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    const entries = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(entries.map((entry) => entry.sender.close().catch(() => undefined)));
  }

  private ensure(tp: string): Entry {
    let entry = this.entries.get(tp);
    if (entry) return entry;
    const { topic, partition } = parsePartitionKey(tp);
    const sender = this.client.transactionalSender!(`sb.${this.group}.${topic}.${partition}`);
    const created: Entry = { sender, ready: sender.connect(), ending: Promise.resolve() };
    created.ready.catch(() => {
      if (this.entries.get(tp) === created) this.entries.delete(tp); // the next assign tries again
      void sender.close().catch(() => undefined);
    });
    this.entries.set(tp, (entry = created));
    return entry;
  }
}
