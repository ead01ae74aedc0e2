import type { BusObserver } from '../ports/events.js';
import type { SubscriptionStatus } from '../ports/health.js';
import type { Delivery } from '../ports/message.js';
import type { DeliveryListener } from '../ports/ports.js';

/**
 * Calls `listener` with `delivery`, then `after` once the call is over, whether it returned, threw or
 * rejected (the pipeline reports its own failures; what matters here is how the delivery was
 * settled). Synchronous when the listener is: no promise on the fast path.
 */
export function afterListener<R>(listener: DeliveryListener, delivery: Delivery, after: () => R): R | Promise<R> {
  let running: Promise<void> | void;
  try {
    running = listener(delivery);
  } catch {
    running = undefined;
  }
  return running ? running.then(after, after) : after();
}

/**
 * Whether a subscription is cut off from its broker, and since when: reports `subscription-interrupted`
 * once per outage and `subscription-resumed` with the gap, and gives the `status()` a subscription
 * reports (`lag` and `buffered` supplied by the adapter).
 */
export class InterruptionTracker {
  private since: number | undefined;

  constructor(
    private readonly observer: () => BusObserver,
    private readonly topic: string,
    private readonly transport: string,
  ) {}

  get interrupted(): boolean {
    return this.since !== undefined;
  }

  /** The broker was lost (reported once until {@link resume}). */
  interrupt(error?: unknown): void {
    if (this.since !== undefined) return;
    this.since = Date.now();
    this.observer().onEvent({ type: 'subscription-interrupted', topic: this.topic, transport: this.transport, ...(error !== undefined ? { error } : {}) });
  }

  /** The broker answers again. */
  resume(): void {
    if (this.since === undefined) return;
    const gapMs = Date.now() - this.since;
    this.since = undefined;
    this.observer().onEvent({ type: 'subscription-resumed', topic: this.topic, transport: this.transport, gapMs });
  }

  status(lag: number | undefined, buffered: number): SubscriptionStatus {
    const withLag = lag !== undefined ? { lag } : {};
    return this.since !== undefined ? { state: 'interrupted', since: this.since, ...withLag } : { state: 'live', ...withLag, buffered };
  }
}

/**
 * The window of messages a pulling subscription may hold unsettled (backpressure): its reader reads
 * `room()` more at once, and only once half the window is free — a read per settled message would
 * cost a round trip each. `wake()` (a message settled, or the subscription is closing) lets a waiting
 * reader look again.
 */
export class ReadWindow {
  private waiter: (() => void) | undefined;

  constructor(readonly limit: number) {}

  /** How many to read now with `held` unsettled: 0 while less than half the window is free. */
  room(held: number): number {
    const free = this.limit - held;
    return free < Math.ceil(this.limit / 2) ? 0 : free;
  }

  /** Resolves at the next `wake()`. */
  changed(): Promise<void> {
    return new Promise<void>((resolve) => (this.waiter = resolve));
  }

  wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}
