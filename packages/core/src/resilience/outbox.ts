import { randomUUID } from 'node:crypto';
import { combineObservers } from '../observability/observer.js';
import type { DeliveryGuarantee } from '../ports/capabilities.js';
import type { Codec } from '../ports/codec.js';
import type { BusObserver } from '../ports/events.js';
import { assertOutgoing, newMessageId, type OutgoingMessage, type TransportMessage } from '../ports/message.js';
import type { RawPublisher } from '../ports/ports.js';
import { consecutiveRuns, publishRun, RelayLoop, type RunSettling } from './relay-loop.js';

/**
 * The transactional outbox, written once for every database: the application writes messages into an
 * outbox table in its own transaction ({@link OutboxStore} implementations: `@switchboard/postgres`,
 * `@switchboard/mysql`), and an {@link OutboxRelay} publishes them to the broker afterwards.
 *
 * Work sharing: every row belongs to one of {@link OUTBOX_SHARDS} shards, chosen from its key (or, without
 * a key, its id). A relay publishes only the rows of shards it holds a lease on; the relays alive share
 * the shards evenly. A key lives in one shard, so one relay at a time publishes it: per-key order is
 * kept across relays (a shard changes hands only between batches, or when a lease expired).
 */
export const OUTBOX_SHARDS = 64;

/** The shard of a message: FNV-1a of its key (its id without a key), modulo {@link OUTBOX_SHARDS}. */
export function outboxShardOf(message: { readonly id: string; readonly key?: string | undefined }): number {
  return fnv1a(message.key ?? message.id) % OUTBOX_SHARDS;
}

/** 32-bit FNV-1a of a string's UTF-16 code units (stable across processes and versions). */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** Messages as the bus encodes them: checked as the bus checks them, ids given or new, values through the codec, one timestamp for the batch. */
export function encodeOutgoing(codec: Codec, list: readonly OutgoingMessage<unknown>[], now = Date.now()): TransportMessage[] {
  for (const m of list) assertOutgoing(m);
  return list.map((m) => ({
    id: m.id ?? newMessageId(),
    ...(m.key !== undefined ? { key: m.key } : {}),
    headers: m.headers ?? {},
    body: m.payload ?? codec.encode(m.value),
    timestamp: m.timestamp ?? now,
  }));
}

/** A message waiting in the outbox. */
export interface OutboxRecord {
  /** Position in the outbox (write order; per key, commit order). */
  readonly seq: string;
  readonly topic: string;
  readonly message: TransportMessage;
  readonly guarantee: DeliveryGuarantee;
}

/**
 * An outbox table as the relay sees it. Contracts:
 * - `claim` records `owner` as alive and returns the shards it holds until `leaseMs` from now: those it
 *   held (renewed), plus free or expired ones up to its fair share (shards ÷ relays alive, rounded up),
 *   minus what it held above that share (let go, for the others to take);
 * - `read` returns the oldest rows of the given shards in `seq` order;
 * - `remove` deletes rows the broker confirmed, by `seq` only: whoever holds the shard now, a confirmed
 *   row is done (a relay whose lease expired mid-publish has had its rows read again by the new holder:
 *   published twice, never lost; deleting by primary key alone also keeps the delete from locking
 *   ranges that writers insert into);
 * - `waitForWrites`, where the database can notify, resolves early when a transaction wrote rows.
 */
export interface OutboxStore {
  claim(owner: string, leaseMs: number): Promise<number[]>;
  read(shards: readonly number[], limit: number): Promise<OutboxRecord[]>;
  remove(seqs: readonly string[]): Promise<number>;
  release(owner: string): Promise<void>;
  /** Rows waiting, and the write time (ms since the epoch, the writer's clock) of the oldest. */
  stats(): Promise<{ depth: number; oldestTimestamp?: number }>;
  waitForWrites?(ms: number): Promise<void>;
  close?(): Promise<void>;
}

export interface OutboxRelayOptions {
  readonly store: OutboxStore;
  /** Where the rows go: the transport (or any raw publisher) of the bus. */
  readonly publisher: RawPublisher;
  readonly observer?: BusObserver;
  /** Identifies this relay in the leases. Default: a random id. */
  readonly owner?: string;
  /** Rows read and published per round. Default 500. */
  readonly batchSize?: number;
  /** Shard lease time to live, ms; renewed every round. Keep it well above a publish's worst case. Default 30000. */
  readonly leaseMs?: number;
  /** Longest wait between rounds when idle, ms (a notification ends it early). Default 1000. */
  readonly pollIntervalMs?: number;
  /** Backoff while publishing fails: from `retryInitialMs` (200) doubling to `retryMaxMs` (5000). */
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
  /** An oldest row older than this makes `health()` degraded. Default 60000. */
  readonly maxLagMs?: number;
}

/** What an outbox relay reports to `health()` handlers. */
export interface OutboxHealth {
  readonly status: 'up' | 'degraded' | 'closed';
  readonly owner: string;
  readonly shards: number;
  readonly depth: number;
  readonly oldestAgeMs?: number;
  readonly lastError?: string;
}

/**
 * Publishes an outbox's rows. Contracts:
 * - a row is deleted only after the broker confirmed it with the row's guarantee: a crash between the
 *   two publishes it again (same id: the consumer's inbox absorbs it); nothing written is ever lost;
 * - rows go out in `seq` order, consecutive rows of one topic and guarantee in one publish; a failed
 *   publish ends the round before any later row, so a key's rows never overtake each other;
 * - except a row the transport refuses for what it is (a topic it cannot name, a message over its
 *   size limit: see `isCallerError`), which fails the same way every time: it stays in the outbox
 *   (counted in the depth, its age making `health()` degraded, the refusal its `lastError`) and the
 *   rows behind it go on; a refused publish of several rows is sent again one row at a time, so only
 *   the refused ones stay;
 * - several relays (processes) on one outbox share the shards; each publishes only its own;
 * - while publishing fails it backs off; `outbox-depth` events and {@link health} give depth and age.
 */
export class OutboxRelay {
  readonly owner: string;
  private readonly loop: RelayLoop;
  private readonly observer: BusObserver;
  private held: number[] = [];
  private last: { depth: number; oldestAgeMs?: number | undefined; error?: string; failing: boolean } = { depth: 0, failing: false };

  constructor(private readonly options: OutboxRelayOptions) {
    this.owner = options.owner ?? `outbox-relay-${randomUUID().slice(0, 8)}`;
    this.observer = options.observer ?? combineObservers();
    const { store } = options;
    this.loop = new RelayLoop({
      pass: () => this.drainOnce(),
      onError: (error) => {
        this.last = { ...this.last, failing: true, error: error instanceof Error ? error.message : String(error) };
        this.observer.onEvent({ type: 'internal-error', context: 'outbox relay', error });
      },
      pollIntervalMs: options.pollIntervalMs ?? 1000,
      retryInitialMs: options.retryInitialMs ?? 200,
      retryMaxMs: options.retryMaxMs ?? 5000,
      ...(store.waitForWrites ? { waitForWork: (ms: number) => store.waitForWrites!(ms) } : {}),
    });
  }

  /** Starts relaying in the background until `stop`. */
  start(): void {
    this.loop.start();
  }

  /** Finishes the round under way, lets go of its shards. */
  async stop(): Promise<void> {
    await this.loop.stop();
    await this.options.store.release(this.owner).catch(() => undefined);
    this.held = [];
  }

  health(): OutboxHealth {
    const { depth, oldestAgeMs, error, failing } = this.last;
    const late = oldestAgeMs !== undefined && oldestAgeMs > (this.options.maxLagMs ?? 60_000);
    return {
      status: !this.loop.isRunning ? 'closed' : failing || late ? 'degraded' : 'up',
      owner: this.owner,
      shards: this.held.length,
      depth,
      ...(oldestAgeMs !== undefined ? { oldestAgeMs } : {}),
      ...(error !== undefined ? { lastError: error } : {}),
    };
  }

  /**
   * One pass: claims this relay's shards and publishes their rows until none are left or a publish
   * fails. Returns how many rows were published.
   */
  async drainOnce(): Promise<{ relayed: number; failed: boolean }> {
    const { store, publisher } = this.options;
    const leaseMs = this.options.leaseMs ?? 30_000;
    let relayed = 0;
    const refused = new Set<string>();
    try {
      for (;;) {
        this.held = await store.claim(this.owner, leaseMs);
        if (this.held.length === 0) return { relayed, failed: false };
        const read = await store.read(this.held, this.options.batchSize ?? 500);
        const batch = refused.size === 0 ? read : read.filter((r) => !refused.has(r.seq));
        if (batch.length === 0) return { relayed, failed: refused.size > 0 };
        for (const run of consecutiveRuns(batch, (head, next) => head.topic === next.topic && head.guarantee === next.guarantee)) {
          const sent = await publishRun(run, publisher, this.settleRun(run[0]!), refused);
          relayed += sent.relayed;
          if (sent.failed) return { relayed, failed: true };
        }
        if (refused.size === 0) this.last = { ...this.last, failing: false };
      }
    } finally {
      await this.refreshStats();
    }
  }

  /** Settling one run of rows (same topic and guarantee): deleted once confirmed. */
  private settleRun(first: OutboxRecord): RunSettling<OutboxRecord> {
    return {
      sent: async (rows) => {
        await this.options.store.remove(rows.map((r) => r.seq));
        this.observer.onEvent({ type: 'relayed', topic: first.topic, count: rows.length, lagMs: Date.now() - rows[0]!.message.timestamp });
      },
      failed: async (rows, error) => {
        this.last = { ...this.last, failing: true, error: error instanceof Error ? error.message : String(error) };
        this.observer.onEvent({ type: 'relay-failed', topic: first.topic, count: rows.length, error });
      },
    };
  }

  private async refreshStats(): Promise<void> {
    try {
      const { depth, oldestTimestamp } = await this.options.store.stats();
      const oldestAgeMs = oldestTimestamp !== undefined ? Math.max(0, Date.now() - oldestTimestamp) : undefined;
      this.last = { ...this.last, depth, oldestAgeMs };
      this.observer.onEvent({ type: 'outbox-depth', depth, ...(oldestAgeMs !== undefined ? { oldestAgeMs } : {}) });
    } catch (error) {
      this.observer.onEvent({ type: 'internal-error', context: 'outbox relay: reading the outbox depth', error });
    }
  }
}
