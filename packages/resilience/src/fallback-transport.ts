import { BrokenCircuitError, CircuitState, ConsecutiveBreaker, SamplingBreaker, circuitBreaker, handleWhen, type CircuitBreakerPolicy } from 'cockatiel';
import { type BusObserver, type DeadLetterSource, type FallbackRecord, type FallbackStore, isCallerError, PublishError, type Transport } from '@switchboard/core';
import {
  type DeliveryListener,
  ObserverSet,
  type RawPublisher,
  type TransportMessage,
  type TransportPublishOptions,
  type TransportPublishResult,
  type TransportSubscribeSpec,
  type TransportSubscription,
  withDeadline,
  withIdOnWire,
} from '@switchboard/core/transport';

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface FallbackOptions {
  readonly store: FallbackStore;
  /**
   * Breaker (cockatiel): opens after `consecutiveFailures` failed publishes (default 5), or, when
   * `failureRate` is given, when that fraction of publishes failed within `windowMs`; stays open
   * `openMs` (default 5000), then lets one probe through (half-open).
   */
  readonly breaker?: {
    readonly consecutiveFailures?: number;
    readonly failureRate?: { readonly threshold: number; readonly windowMs: number; readonly minimumRps?: number };
    readonly openMs?: number;
  };
  /** A publish not confirmed within this counts as a failure (a hanging broker), ms. Default 5000. */
  readonly publishTimeoutMs?: number;
  /** `resolve` (default): a stored publish resolves with `stored: true`; `reject`: it rejects with StoredForLaterError (still stored). */
  readonly whenStored?: 'resolve' | 'reject';
}

/** The publish did not reach the broker; the messages are in the fallback store and will be relayed. */
export class StoredForLaterError extends PublishError {
  override readonly name = 'StoredForLaterError';
  constructor(
    topic: string,
    readonly ids: readonly string[],
    cause: unknown,
  ) {
    super(`publish to "${topic}" did not reach the broker; ${ids.length} message(s) stored for later relay`, topic, { cause });
  }
}

const STATE_NAMES: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Isolated]: 'open',
};

/**
 * A producer strategy for any transport: publishes go through a circuit breaker with a
 * timeout; when a publish fails or the breaker is open, the messages go to the fallback store
 * instead of being lost, and a {@link FallbackRelay} sends them later. Subscribing is untouched.
 * If the store fails too, the publish rejects: nothing is dropped silently.
 */
export class FallbackTransport implements Transport {
  readonly kind: string;
  readonly capabilities;
  readonly breaker: CircuitBreakerPolicy;
  private readonly observer = new ObserverSet();
  private readonly timeoutMs: number;

  constructor(
    readonly inner: Transport,
    private readonly options: FallbackOptions,
  ) {
    this.kind = inner.kind;
    this.capabilities = inner.capabilities;
    this.timeoutMs = options.publishTimeoutMs ?? 5000;
    const rate = options.breaker?.failureRate;
    // A publish refused for what it asked (a bad topic, a message over the size limit) says nothing
    // about the broker: it neither counts as a failure nor is stored (see `guarded`).
    this.breaker = circuitBreaker(
      handleWhen((error) => !isCallerError(error)),
      {
        halfOpenAfter: options.breaker?.openMs ?? 5000,
        breaker: rate
          ? new SamplingBreaker({ threshold: rate.threshold, duration: rate.windowMs, minimumRps: rate.minimumRps ?? 1 })
          : new ConsecutiveBreaker(options.breaker?.consecutiveFailures ?? 5),
      },
    );
    this.breaker.onStateChange((state) => this.observer.onEvent({ type: 'breaker-state', transport: this.kind, state: STATE_NAMES[state] }));
  }

  get breakerState(): BreakerState {
    return STATE_NAMES[this.breaker.state];
  }

  observe(observer: BusObserver): () => void {
    const removeHere = this.observer.add(observer);
    const removeInner = this.inner.observe?.(observer);
    return () => {
      removeHere();
      removeInner?.();
    };
  }

  publish(topic: string, messages: readonly TransportMessage[], options: TransportPublishOptions): Promise<TransportPublishResult> {
    // Inside a transactional delivery a failure must abort the transaction, not be stored for later; a
    // delayed publish would lose its time in the store (the relay sends what it holds at once): both go
    // to the broker or fail, never diverted.
    if (this.inner.inTransaction?.() || options.deliverAt !== undefined) return this.inner.publish(topic, messages, options);
    return this.guarded(this.inner, 'publish', topic, messages, options);
  }

  /** Dead letters are guarded the same way (and relayed through the dead-letter publisher). */
  deadLetterPublisher(): RawPublisher {
    const target = this.inner.deadLetterPublisher?.() ?? this.inner;
    return {
      publish: (topic, messages, options) => (this.inner.inTransaction?.() ? target.publish(topic, messages, options) : this.guarded(target, 'dead-letter', topic, messages, options)),
    };
  }

  topicProblem(topic: string): string | undefined {
    return this.inner.topicProblem?.(topic);
  }

  inTransaction(): boolean {
    return this.inner.inTransaction?.() ?? false;
  }

  subscribe(spec: TransportSubscribeSpec, listener: DeliveryListener): Promise<TransportSubscription> {
    return this.inner.subscribe(spec, listener);
  }

  deadLetterSource(deadLetterTopic: string): DeadLetterSource | undefined {
    return this.inner.deadLetterSource?.(deadLetterTopic);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private async guarded(target: RawPublisher, via: FallbackRecord['via'], topic: string, messages: readonly TransportMessage[], options: TransportPublishOptions): Promise<TransportPublishResult> {
    try {
      return await this.breaker.execute(() =>
        withDeadline(target.publish(topic, messages, options), Date.now() + this.timeoutMs, () => new PublishError(`no confirmation from ${this.kind} within ${this.timeoutMs} ms`, topic)),
      );
    } catch (error) {
      if (isCallerError(error)) throw error; // it would fail the same way when relayed
      const now = Date.now();
      const lastError = error instanceof Error ? error.message : String(error);
      try {
        // Stored messages carry their ids when relayed: the relay's resends must be recognisable.
        await this.options.store.append(messages.map((message) => ({ topic, message: withIdOnWire(message), guarantee: options.guarantee, via, firstFailureAt: now, attempts: 1, lastError })));
      } catch (storeError) {
        throw new PublishError(`publish to "${topic}" failed (${lastError}) and the fallback store failed too: ${(storeError as Error).message}`, topic, { cause: storeError });
      }
      this.observer.onEvent({ type: 'publish-diverted', topic, count: messages.length, reason: error instanceof BrokenCircuitError ? 'breaker-open' : 'publish-failed', error });
      if (this.options.whenStored === 'reject')
        throw new StoredForLaterError(
          topic,
          messages.map((m) => m.id),
          error,
        );
      return { stored: true };
    }
  }
}

/** Wraps `transport` so a failed publish is stored for later instead of lost. */
export function withFallback(transport: Transport, options: FallbackOptions): FallbackTransport {
  return new FallbackTransport(transport, options);
}
