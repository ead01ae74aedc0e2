import { randomUUID } from 'node:crypto';
import { combineObservers } from '../observability/observer.js';
import type { BusObserver } from '../ports/events.js';
import type { RawPublisher, Transport } from '../ports/ports.js';
import { consecutiveRuns, publishRun, RelayLoop, type RunSettling } from './relay-loop.js';
import type { FallbackStore, StoredRecord } from './fallback-store.js';

export interface RelayOptions {
  readonly store: FallbackStore;
  /** Where records go back to: the real transport (not the fallback-wrapped one). */
  readonly transport: Transport;
  readonly observer?: BusObserver;
  /** Identifies this relay in the lease. Default: a random id. */
  readonly owner?: string;
  /** Records read and sent per round. Default 500. */
  readonly batchSize?: number;
  /** Lease time to live, ms; renewed every round. Keep it above a publish's worst case. Default 15000. */
  readonly leaseMs?: number;
  /** Pause when the store is empty or the lease is held elsewhere, ms. Default 250. */
  readonly pollIntervalMs?: number;
  /** Backoff while the broker is still down: from `retryInitialMs` (200) doubling to `retryMaxMs` (5000). */
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
  /** Records whose first failure is older than this are moved aside (counted), never dropped. Off by default. */
  readonly retentionMs?: number;
}

/**
 * The relay agent: drains a fallback store back to the broker. Contracts:
 * - records go out in store order, one run of consecutive same-topic records per publish, so per-key
 *   order holds;
 * - a record is removed only after the broker confirmed it: a relay crash mid-drain sends some
 *   records again (at-least-once, ids kept), it never loses one;
 * - only the lease holder sends, so several relays on one store do not double-send;
 * - while the broker is down it backs off instead of hammering it.
 */
export class FallbackRelay {
  readonly owner: string;
  private readonly observer: BusObserver;
  private readonly loop: RelayLoop;

  constructor(private readonly options: RelayOptions) {
    this.owner = options.owner ?? `relay-${randomUUID().slice(0, 8)}`;
    this.observer = options.observer ?? combineObservers();
    this.loop = new RelayLoop({
      pass: () => this.drainOnce(),
      onError: (error) => this.observer.onEvent({ type: 'internal-error', context: 'fallback relay', error }),
      pollIntervalMs: options.pollIntervalMs ?? 250,
      retryInitialMs: options.retryInitialMs ?? 200,
      retryMaxMs: options.retryMaxMs ?? 5000,
    });
  }

  /** Starts draining in the background until `stop`. */
  start(): void {
    this.loop.start();
  }

  /** Finishes the round under way, releases the lease. */
  async stop(): Promise<void> {
    await this.loop.stop();
    await this.options.store.releaseLease(this.owner).catch(() => undefined);
  }

  /**
   * One pass: relays until the store is empty, the lease is elsewhere, or a publish fails.
   * Returns how many records were relayed and whether the store was found empty.
   *
   * A record the transport refuses for what it is (a message over its size limit, a topic it cannot
   * name: see `isCallerError`), stored while the breaker was open, fails the same way every time: it
   * stays in the store (attempts counted, moved aside at `retentionMs` like any record) and the pass
   * goes on past it, so it never holds up the records behind it.
   */
  async drainOnce(): Promise<{ relayed: number; empty: boolean; failed: boolean }> {
    const { store } = this.options;
    let relayed = 0;
    const refused = new Set<string>();
    for (;;) {
      if (!(await store.acquireLease(this.owner, this.options.leaseMs ?? 15_000))) return { relayed, empty: false, failed: false };
      if (this.options.retentionMs !== undefined) {
        const moved = await store.expire(this.options.retentionMs);
        if (moved > 0) this.observer.onEvent({ type: 'fallback-expired', count: moved });
      }
      const peeked = await store.peek(this.options.batchSize ?? 500);
      if (peeked.length === 0) {
        this.observer.onEvent({ type: 'fallback-depth', depth: 0 });
        return { relayed, empty: true, failed: false };
      }
      const batch = refused.size === 0 ? peeked : peeked.filter((r) => !refused.has(r.seq));
      if (batch.length === 0) return { relayed, empty: false, failed: true }; // only refused records left in reach
      for (const run of consecutiveRuns(batch, (head, next) => head.topic === next.topic && head.guarantee === next.guarantee && head.via === next.via)) {
        const first = run[0]!;
        const target: RawPublisher = first.via === 'dead-letter' ? (this.options.transport.deadLetterPublisher?.() ?? this.options.transport) : this.options.transport;
        const sent = await publishRun(run, target, this.settleRun(first), refused);
        relayed += sent.relayed;
        if (sent.failed) return { relayed, empty: false, failed: true };
      }
      this.observer.onEvent({ type: 'fallback-depth', depth: await store.depth() });
    }
  }

  /** Settling one run of records (same topic, guarantee and route): removed once confirmed, their attempts counted when not. */
  private settleRun(first: StoredRecord): RunSettling<StoredRecord> {
    const { store } = this.options;
    return {
      sent: async (records) => {
        await store.remove(records.map((r) => r.seq));
        this.observer.onEvent({ type: 'relayed', topic: first.topic, count: records.length, lagMs: Date.now() - first.firstFailureAt });
      },
      failed: async (records, error) => {
        await store
          .markAttempt(
            records.map((r) => r.seq),
            error instanceof Error ? error.message : String(error),
          )
          .catch(() => undefined);
        this.observer.onEvent({ type: 'relay-failed', topic: first.topic, count: records.length, error });
      },
    };
  }
}
