import type { Ordering } from '../ports/capabilities.js';

/**
 * Ordered concurrency: up to `concurrency` items run at once. Items pushed with the same order key run
 * one after another, in push order; items pushed without one are not ordered. Fairness: keys with
 * work take turns (a key goes to the back of the line after each item).
 *
 * The runner may return a number: "put this item back at the head of its key and hold the key that
 * many ms" — a delayed retry that keeps the key's order, holds no runner, and lets other keys run.
 *
 * Order keys: a number is a lane (a small, bounded set: its queue is kept while idle); a string is a
 * message key (unbounded: its queue is dropped once idle).
 */
export class KeyedScheduler<T> {
  private readonly queues = new Map<string | number, KeyQueue<T>>();
  /** Queues with an item ready to start, in turn order. */
  private ready: KeyQueue<T>[] = [];
  private readyHead = 0;
  /** Queues holding a delayed retry (unordered ones are in no other index). */
  private readonly held = new Set<KeyQueue<T>>();
  private running = 0;
  private waiting = 0;
  private idleWaiters: (() => void)[] = [];
  /** True while `pump` runs its loop (a re-entrant call returns at once). */
  private pumping = false;

  /**
   * @param run starts one item; returns (or resolves to) a delay in ms to hold the item's key for a
   * retry, or nothing when the item is done. It may finish synchronously (no promise).
   */
  constructor(
    private readonly concurrency: number,
    private readonly run: (item: T) => Promise<number | void> | number | void,
    private readonly onRunnerError: (error: unknown) => void = () => {},
  ) {}

  /** Queues `item` behind earlier items of `orderKey` (undefined: unordered). */
  push(orderKey: string | number | undefined, item: T): void {
    let queue: KeyQueue<T> | undefined = orderKey === undefined ? undefined : this.queues.get(orderKey);
    if (!queue) {
      queue = { key: orderKey, items: [], head: 0, state: 'idle', timer: undefined };
      if (orderKey !== undefined) this.queues.set(orderKey, queue);
    }
    queue.items.push(item);
    this.waiting++;
    if (queue.state === 'idle') {
      queue.state = 'ready';
      this.ready.push(queue);
      this.pump();
    }
  }

  /** Items waiting (not started), including items put back for a delayed retry. */
  get pending(): number {
    return this.waiting;
  }

  get inFlight(): number {
    return this.running;
  }

  /** Removes and returns every item not started yet (cancelling delayed retries), oldest key first. */
  takePending(): T[] {
    const taken: T[] = [];
    const take = (queue: KeyQueue<T>) => {
      if (queue.timer !== undefined) clearTimeout(queue.timer);
      queue.timer = undefined;
      for (let i = queue.head; i < queue.items.length; i++) taken.push(queue.items[i]!);
      queue.items = [];
      queue.head = 0;
      if (queue.state !== 'running') {
        queue.state = 'idle';
        if (queue.key !== undefined) this.queues.delete(queue.key);
      }
    };
    for (let i = this.readyHead; i < this.ready.length; i++) take(this.ready[i]!);
    for (const queue of this.queues.values()) take(queue);
    for (const queue of this.held) take(queue);
    this.held.clear();
    this.ready = [];
    this.readyHead = 0;
    this.waiting = 0;
    this.notifyIfIdle();
    return taken;
  }

  /** Resolves when nothing runs and (with `includePending`) nothing waits either. */
  whenIdle(includePending: boolean): Promise<void> {
    const idle = () => this.running === 0 && (!includePending || this.waiting === 0);
    if (idle()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => (idle() ? resolve() : this.idleWaiters.push(check));
      this.idleWaiters.push(check);
    });
  }

  /**
   * Starts items while runners are free. A runner that returns a number or nothing (not a promise)
   * finished synchronously: its bookkeeping happens here, in this loop, and the loop goes on (no
   * promise, no microtask, no recursion). A push made from inside a runner only queues: the loop that
   * is already pumping starts it.
   */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.running < this.concurrency && this.readyHead < this.ready.length) {
        const queue = this.ready[this.readyHead]!;
        this.ready[this.readyHead++] = undefined as never;
        if (this.readyHead > 1024 && this.readyHead * 2 > this.ready.length) {
          this.ready = this.ready.slice(this.readyHead);
          this.readyHead = 0;
        }
        if (queue.head >= queue.items.length) {
          // emptied by takePending meanwhile
          queue.state = 'idle';
          continue;
        }
        const item = queue.items[queue.head]!;
        queue.head++;
        this.waiting--;
        queue.state = 'running';
        this.running++;
        let result: Promise<number | void> | number | void;
        try {
          result = this.run(item);
        } catch (error) {
          this.onRunnerError(error);
          result = undefined;
        }
        if (result !== undefined && typeof result !== 'number') {
          result.then(
            (delay) => this.finished(queue, item, delay),
            (error: unknown) => {
              this.onRunnerError(error);
              this.finished(queue, item, undefined);
            },
          );
        } else this.complete(queue, item, result);
      }
    } finally {
      this.pumping = false;
    }
    this.notifyIfIdle();
  }

  /** An asynchronous runner finished: bookkeeping, then start what can start. */
  private finished(queue: KeyQueue<T>, item: T, delay: number | void): void {
    this.complete(queue, item, delay);
    this.pump();
  }

  /** Bookkeeping of a finished runner: the key's next item becomes ready, or the item is held for a retry. */
  private complete(queue: KeyQueue<T>, item: T, delay: number | void): void {
    this.running--;
    if (typeof delay === 'number') {
      // Back at the head of its key; the key waits (keeping its order), other keys go on.
      if (queue.head > 0 && queue.items.length > 0) queue.items[--queue.head] = item;
      else {
        queue.items.unshift(item);
        queue.head = 0;
      }
      this.waiting++;
      queue.state = 'held';
      this.held.add(queue);
      queue.timer = setTimeout(() => {
        queue.timer = undefined;
        this.held.delete(queue);
        if (queue.state !== 'held') return;
        queue.state = 'ready';
        this.ready.push(queue);
        this.pump();
      }, delay);
    } else if (queue.head < queue.items.length) {
      queue.state = 'ready';
      this.ready.push(queue);
      if (queue.head > 1024 && queue.head * 2 > queue.items.length) {
        queue.items = queue.items.slice(queue.head);
        queue.head = 0;
      }
    } else {
      queue.state = 'idle';
      queue.head = 0;
      if (typeof queue.key === 'number') {
        // A lane number (a bounded set, see OrderedLanes): the queue stays for the lane's next item, so
        // a lane that empties after every item allocates nothing per item.
        queue.items.length = 0;
      } else {
        queue.items = [];
        // A key (unbounded: one per message key) or no key: dropped once idle, so the map stays small.
        if (queue.key !== undefined && this.queues.get(queue.key) === queue) this.queues.delete(queue.key);
      }
    }
  }

  private notifyIfIdle(): void {
    if (this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const check of waiters) check();
  }
}

interface KeyQueue<T> {
  readonly key: string | number | undefined;
  items: T[];
  head: number;
  /** idle: no items; ready: in the ready line; running: its head item runs; held: a delayed retry waits. */
  state: 'idle' | 'ready' | 'running' | 'held';
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * A {@link KeyedScheduler} whose order keys follow an {@link Ordering} for message keys: `partition`
 * hashes a key to one of `concurrency` lanes (unkeyed items round-robin), `key` orders by the key
 * itself, `none` orders nothing.
 */
export class OrderedLanes<T> {
  private readonly scheduler: KeyedScheduler<T>;
  private nextLane = 0;

  constructor(
    private readonly ordering: Ordering,
    private readonly concurrency: number,
    run: (item: T) => Promise<number | void> | number | void,
    onRunnerError?: (error: unknown) => void,
  ) {
    this.scheduler = new KeyedScheduler(Math.max(1, concurrency), run, onRunnerError);
  }

  push(key: string | undefined, item: T): void {
    this.scheduler.push(orderKeyOf(this.ordering, key, this.concurrency, this.nextLane++), item);
  }

  get pending(): number {
    return this.scheduler.pending;
  }

  get inFlight(): number {
    return this.scheduler.inFlight;
  }

  takePending(): T[] {
    return this.scheduler.takePending();
  }

  whenIdle(includePending: boolean): Promise<void> {
    return this.scheduler.whenIdle(includePending);
  }
}

/** The scheduler order key of a message key under `ordering` (see {@link OrderedLanes}). */
export function orderKeyOf(ordering: Ordering, key: string | undefined, lanes: number, roundRobin: number): string | number | undefined {
  if (ordering === 'none') return undefined;
  if (ordering === 'key') return key;
  if (lanes <= 1) return 0;
  return key === undefined ? roundRobin % lanes : hashKey(key) % lanes;
}

/** FNV-1a, 32 bit: stable across processes, so the same key maps to the same lane/member everywhere. */
export function hashKey(key: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
