import type { SourceMetadata } from './message.js';

/**
 * Everything the bus reports, as one discriminated union. Counters, logs, Prometheus and tracing are
 * observers of these events; the pipeline never talks to a metrics library directly.
 */
export type BusEvent =
  | { type: 'success'; topic: string; group?: string | undefined; messageId: string; attempt: number; durationMs: number }
  /** A handler call with attempt > 1 is starting (the retry-attempt counter). */
  | { type: 'retry-attempt'; topic: string; group?: string | undefined; messageId: string; attempt: number; source: SourceMetadata }
  /** A handler failed with a retryable error and will be called again after `delayMs`. */
  | {
      type: 'will-retry';
      topic: string;
      group?: string | undefined;
      messageId: string;
      attempt: number;
      delayMs: number;
      error: unknown;
      source: SourceMetadata;
      /** How long the failed handler call ran, ms. */
      durationMs?: number;
    }
  /** The message is given up on: retries exhausted, non-retryable error, or undecodable/invalid payload. */
  | {
      type: 'final-failure';
      topic: string;
      group?: string | undefined;
      messageId: string;
      attempt: number;
      reason: FailureReason;
      error: unknown;
      source: SourceMetadata;
      key?: string;
      payload: Uint8Array;
      /** How long the last handler call ran, ms (absent when the handler was not called: undecodable or invalid payload). */
      durationMs?: number;
    }
  | { type: 'dead-lettered'; topic: string; group?: string | undefined; messageId: string; deadLetterTopic: string }
  | { type: 'published'; topic: string; count: number; receivers?: number }
  | { type: 'publish-failed'; topic: string; count: number; error: unknown }
  /** A publish reached nobody (Redis Pub/Sub with no subscriber, memory topic with no group): the message is gone. */
  | { type: 'no-receivers'; topic: string; count: number }
  /**
   * A subscription lost its connection; messages published until `resumed` may be lost (transports
   * without persistence). `since`: when the connection was last known good (ms since the epoch), where
   * the transport knows it (Kafka: the last successful fetch).
   */
  | { type: 'subscription-interrupted'; topic: string; transport: string; since?: number; error?: unknown }
  | { type: 'subscription-resumed'; topic: string; transport: string; gapMs: number }
  /** Producer resilience: breaker state changes, publishes diverted to the fallback store, relay progress. */
  | { type: 'breaker-state'; transport: string; state: 'closed' | 'open' | 'half-open' }
  | { type: 'publish-diverted'; topic: string; count: number; reason: 'breaker-open' | 'publish-failed'; error: unknown }
  | { type: 'relayed'; topic: string; count: number; lagMs: number }
  | { type: 'relay-failed'; topic: string; count: number; error: unknown }
  | { type: 'fallback-depth'; depth: number }
  | { type: 'fallback-expired'; count: number }
  /** Rows waiting in a transactional outbox, and the age of the oldest (after each relay round). */
  | { type: 'outbox-depth'; depth: number; oldestAgeMs?: number }
  /**
   * A control value from the wire (an attempt count, a timestamp, a signed header) was out of range or
   * failed verification, and was ignored: the pipeline used its own value instead.
   */
  | { type: 'untrusted-header'; topic: string; transport: string; header: string; value?: string; messageId?: string }
  /** A replayed message meant for another group was acknowledged without calling the handler. */
  | { type: 'replay-skipped'; topic: string; group?: string | undefined; messageId: string; targetGroup: string }
  /** A push transport's in-process buffer was over its high-water mark: `dropped` messages were given up per its overflow policy. */
  | { type: 'buffer-overflow'; topic: string; transport: string; dropped: number; policy: string }
  /** Internal problem that lost nothing but deserves attention (a failing hook, a settle that failed...). */
  | { type: 'internal-error'; topic?: string; context: string; error: unknown };

export type BusEventType = BusEvent['type'];

/** Why a message reached its final failure (`buffer-overflow`: a push transport's subscriber buffer was full; the handler never saw it). */
export type FailureReason = 'retries-exhausted' | 'non-retryable' | 'decode-failed' | 'validation-failed' | 'buffer-overflow';

/** Receives bus events. Must not throw and must be fast (it runs on the hot path); offload heavy work. */
export interface BusObserver {
  onEvent(event: BusEvent): void;
  /**
   * Which event types this observer reads. Optional; without it, all of them. The pipeline asks once
   * per subscription and builds no event of a type no observer wants (per-message `success` events
   * are the common case: an observer that does not count them saves an object and two clock reads
   * per message).
   */
  wants?(type: BusEventType): boolean;
}

/** True when `observer` (or, for a combination, any of its members) reads events of `type`. */
export function observerWants(observer: BusObserver, type: BusEventType): boolean {
  return observer.wants ? observer.wants(type) : true;
}
