import type { Message } from '../ports/message.js';
import type { Handler, Middleware } from '../ports/ports.js';

/**
 * Where a deduplicating consumer records which messages it handled. Keys are message ids (or what
 * `keyOf` returns). Contract: `claim` is atomic across the processes sharing the store.
 */
export interface DeduplicationStore {
  /**
   * Claims `key` for handling: `claimed` (go ahead; the claim lapses after `leaseMs` if never
   * completed, e.g. the process died), `done` (handled before: skip), `busy` (being handled elsewhere now).
   */
  claim(key: string, leaseMs: number): Promise<'claimed' | 'done' | 'busy'>;
  /** Records `key` as handled, remembered for `ttlMs`. */
  complete(key: string, ttlMs: number): Promise<void>;
  /** Gives a claim up (the handler failed), so a retry can claim it at once. */
  release(key: string): Promise<void>;
}

/** Thrown (and retried with the subscription's backoff) when another consumer is handling the same message right now. */
export class DuplicateInProgressError extends Error {
  override readonly name = 'DuplicateInProgressError';
}

export interface DeduplicateOptions<T> {
  readonly store: DeduplicationStore;
  /** How long a handled id is remembered (default 24 h): duplicates arriving later are handled again. */
  readonly ttlMs?: number;
  /** How long a claim holds while the handler runs (default 60 s); keep it above the handler's longest run. */
  readonly leaseMs?: number;
  /** The deduplication key of a message. Default: its id (kept end to end by every transport). */
  readonly keyOf?: (message: Message<T>) => string;
  /** Called for each duplicate skipped. */
  readonly onDuplicate?: (message: Message<T>) => void;
}

/**
 * Wraps a handler so each message id is handled once: a duplicate (a redelivery after a crash or a
 * rebalance, a producer retry, a replay) is acknowledged without calling the handler. The id is
 * recorded after the handler succeeded; a crash between the handler's side effects and that record
 * can still repeat them — for exactly-once side effects, record both in one transaction
 * (`PostgresDeduplicator` in `@switchboard/postgres`).
 */
export function deduplicate<T>(handler: Handler<T>, options: DeduplicateOptions<T>): Handler<T> {
  const step = deduplication(options);
  return (message) =>
    step(message, async () => {
      await handler(message);
    });
}

/**
 * The same as a pipeline step: `subscribe(topic, handler, { use: [deduplication({ store })] })`, or
 * for every subscription of a bus through `defaults.use`. Later steps and the handler run once per id.
 */
export function deduplication<T = unknown>(options: DeduplicateOptions<T>): Middleware<T> {
  const ttlMs = options.ttlMs ?? 24 * 60 * 60 * 1000;
  const leaseMs = options.leaseMs ?? 60_000;
  const keyOf = options.keyOf ?? ((message: Message<T>) => message.id);
  return async (message, next) => {
    const key = keyOf(message);
    const state = await options.store.claim(key, leaseMs);
    if (state === 'done') {
      options.onDuplicate?.(message);
      return;
    }
    if (state === 'busy') throw new DuplicateInProgressError(`message ${key} is being handled by another consumer`);
    try {
      await next();
    } catch (error) {
      await options.store.release(key).catch(() => undefined);
      throw error;
    }
    await options.store.complete(key, ttlMs);
  };
}

/**
 * An in-process {@link DeduplicationStore}: at most `maxEntries` keys (least recently used go first),
 * each remembered for its TTL. For one process; use Redis or PostgreSQL across processes and restarts.
 */
export class MemoryDeduplicationStore implements DeduplicationStore {
  private readonly entries = new Map<string, { state: 'busy' | 'done'; expiresAt: number }>();

  constructor(
    private readonly maxEntries = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  async claim(key: string, leaseMs: number): Promise<'claimed' | 'done' | 'busy'> {
    const entry = this.entries.get(key);
    if (entry && entry.expiresAt > this.now()) {
      this.touch(key, entry);
      return entry.state;
    }
    this.set(key, { state: 'busy', expiresAt: this.now() + leaseMs });
    return 'claimed';
  }

  async complete(key: string, ttlMs: number): Promise<void> {
    this.set(key, { state: 'done', expiresAt: this.now() + ttlMs });
  }

  async release(key: string): Promise<void> {
    if (this.entries.get(key)?.state === 'busy') this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }

  private touch(key: string, entry: { state: 'busy' | 'done'; expiresAt: number }): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
  }

  private set(key: string, entry: { state: 'busy' | 'done'; expiresAt: number }): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }
}
