/**
 * Ordered concurrency for push-style transports (memory, Redis): up to `concurrency` items run at
 * once; items with the same key always go to the same lane and run one after another, in push order.
 * Items without a key are spread round-robin over the lanes (no order among them).
 *
 * The runner may return a number: "put this item back at the head of its lane and pause the lane that
 * many ms" — a delayed retry that keeps per-key order and occupies no runner meanwhile.
 */
export class KeyedLanes<T> {
  private readonly lanes: Lane<T>[];
  private nextLane = 0;
  private running = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(
    concurrency: number,
    private readonly run: (item: T) => Promise<number | void>,
    private readonly onRunnerError: (error: unknown) => void = () => {},
  ) {
    this.lanes = Array.from({ length: Math.max(1, concurrency) }, () => ({ items: [], head: 0, busy: false, timer: undefined }));
  }

  push(key: string | undefined, item: T): void {
    const index = key === undefined ? this.nextLane++ % this.lanes.length : hashKey(key) % this.lanes.length;
    const lane = this.lanes[index]!;
    lane.items.push(item);
    if (!lane.busy && lane.timer === undefined) void this.drainLane(lane);
  }

  /** Items waiting (not started), including items put back for a delayed retry. */
  get pending(): number {
    let n = 0;
    for (const lane of this.lanes) n += lane.items.length - lane.head;
    return n;
  }

  get inFlight(): number {
    return this.running;
  }

  /** Removes and returns every item not started yet (cancelling delayed retries), in lane order. */
  takePending(): T[] {
    const taken: T[] = [];
    for (const lane of this.lanes) {
      if (lane.timer !== undefined) clearTimeout(lane.timer);
      lane.timer = undefined;
      taken.push(...lane.items.slice(lane.head));
      lane.items = [];
      lane.head = 0;
    }
    this.notifyIfIdle();
    return taken;
  }

  /** Resolves when nothing runs and (with `includePending`) nothing waits either. */
  whenIdle(includePending: boolean): Promise<void> {
    const idle = () => this.running === 0 && (!includePending || this.pending === 0);
    if (idle()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => (idle() ? resolve() : this.idleWaiters.push(check));
      this.idleWaiters.push(check);
    });
  }

  private async drainLane(lane: Lane<T>): Promise<void> {
    lane.busy = true;
    while (lane.head < lane.items.length && lane.timer === undefined) {
      const item = lane.items[lane.head]!;
      lane.head++;
      if (lane.head > 1024 && lane.head * 2 > lane.items.length) {
        lane.items = lane.items.slice(lane.head);
        lane.head = 0;
      }
      this.running++;
      let retryDelay: number | undefined;
      try {
        const result = await this.run(item);
        if (typeof result === 'number') retryDelay = result;
      } catch (error) {
        this.onRunnerError(error);
      }
      this.running--;
      if (typeof retryDelay === 'number') {
        // Put it back at the head; the lane waits, keeping this key's order.
        lane.items.splice(lane.head, 0, item);
        lane.timer = setTimeout(() => {
          lane.timer = undefined;
          if (!lane.busy) void this.drainLane(lane);
        }, retryDelay);
      }
    }
    lane.busy = false;
    this.notifyIfIdle();
  }

  private notifyIfIdle(): void {
    if (this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const check of waiters) check();
  }
}

interface Lane<T> {
  items: T[];
  head: number;
  busy: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
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
