import type { ZodType } from 'zod';
import { decodeOrThrow, type Codec } from './codec.js';
import { buildDeadLetter } from './dead-letter.js';
import { SchemaValidationError } from './errors.js';
import { inDeliverySpan, isTraced } from './observability/tracing.js';
import type { Delivery, Message } from './message.js';
import type { BusObserver, FailureReason } from './observer.js';
import type { DeliveryListener, FinalFailure, Handler, RawPublisher } from './ports.js';
import { backoffDelay, isRetryable, type ErrorClassifier, type RetryPolicy } from './retry.js';

/** Everything the pipeline needs for one subscription, resolved (no defaults left to apply). */
export interface PipelineConfig<T> {
  readonly topic: string;
  readonly group?: string;
  readonly handler: Handler<T>;
  readonly codec: Codec;
  readonly schema?: ZodType<T>;
  readonly retry: RetryPolicy;
  /** `transport` only when the transport declares delayedRedelivery. */
  readonly retryMode: 'transport' | 'in-process';
  readonly classify?: ErrorClassifier;
  readonly deadLetter: { readonly topic: string; readonly publisher: RawPublisher } | false;
  readonly onFinalFailure?: (failure: FinalFailure) => Promise<void> | void;
  readonly stackTraceLimit: number;
  readonly observer: BusObserver;
  /** Aborted when the subscription closes: backoff waits stop and the delivery is left unsettled (handed back). */
  readonly signal: AbortSignal;
  readonly now?: () => number;
}

/**
 * THE consumer pipeline, the same for every transport:
 *   decode -> validate -> handle -> (failure) classify -> retry with backoff -> dead-letter ->
 *   final-failure hook -> ack.
 *
 * Contracts:
 * - The delivery is acked only after the handler succeeded, or after the dead letter was confirmed
 *   (or, with the DLQ off, after the final-failure hook succeeded).
 * - Decode and schema errors, and errors classified non-retryable, skip the retries.
 * - A failing dead-letter publish is never an ack: the message is retried later (redelivered, or kept
 *   in-process) until the DLQ accepts it or the subscription closes (then it is handed back).
 * - The returned listener never rejects.
 */
export function createDeliveryProcessor<T>(config: PipelineConfig<T>): DeliveryListener {
  const now = config.now ?? Date.now;
  const { observer, topic, group, retry } = config;
  /** First failure time of messages waiting for a transport redelivery, by message id. */
  const firstFailures = new Map<string, number>();

  const report = (context: string, error: unknown) => observer.onEvent({ type: 'internal-error', topic, context, error });

  const OK = { ok: true } as const;

  async function attemptOnce(delivery: Delivery, attempt: number): Promise<{ ok: true } | { ok: false; error: unknown; reason: FailureReason | undefined }> {
    let value: unknown;
    try {
      value = decodeOrThrow(config.codec, delivery.body);
    } catch (error) {
      return { ok: false, error, reason: 'decode-failed' };
    }
    if (config.schema) {
      const parsed = config.schema.safeParse(value);
      if (!parsed.success) {
        const issues = parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
        const error = new SchemaValidationError(`payload failed schema validation: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`, issues);
        return { ok: false, error, reason: 'validation-failed' };
      }
      value = parsed.data;
    }
    const message: Message<T> = {
      id: delivery.id,
      key: delivery.key,
      headers: delivery.headers,
      payload: delivery.body,
      value: value as T,
      timestamp: delivery.timestamp,
      attempt,
      source: delivery.source,
    };
    const started = now();
    try {
      if (isTraced(delivery.headers)) {
        await inDeliverySpan(topic, delivery.source.transport, delivery.id, attempt, delivery.headers, async () => {
          await config.handler(message);
        });
      } else {
        await config.handler(message); // untraced: no span machinery on the hot path
      }
    } catch (error) {
      return { ok: false, error, reason: undefined };
    }
    observer.onEvent({ type: 'success', topic, group, messageId: delivery.id, attempt, durationMs: now() - started });
    return OK;
  }

  /** Dead-letters and runs the hook. Returns true when the message may be acked. */
  async function giveUp(delivery: Delivery, attempt: number, error: unknown, reason: FailureReason, firstFailureAt: number): Promise<boolean> {
    observer.onEvent({
      type: 'final-failure',
      topic,
      group,
      messageId: delivery.id,
      attempt,
      reason,
      error,
      source: delivery.source,
      ...(delivery.key !== undefined ? { key: delivery.key } : {}),
      payload: delivery.body,
    });
    const deadLetter = config.deadLetter;
    if (deadLetter) {
      const letter = buildDeadLetter(delivery, {
        reason,
        error,
        attempts: attempt,
        retryable: reason === 'retries-exhausted',
        firstFailureAt,
        lastFailureAt: now(),
        stackTraceLimit: config.stackTraceLimit,
      });
      try {
        await deadLetter.publisher.publish(deadLetter.topic, [letter], { guarantee: 'all' });
      } catch (publishError) {
        observer.onEvent({ type: 'publish-failed', topic: deadLetter.topic, count: 1, error: publishError });
        return false;
      }
      observer.onEvent({ type: 'dead-lettered', topic, group, messageId: delivery.id, deadLetterTopic: deadLetter.topic });
    }
    if (config.onFinalFailure) {
      let value: unknown;
      try {
        value = config.codec.decode(delivery.body);
      } catch {
        value = undefined;
      }
      try {
        await config.onFinalFailure({
          message: { id: delivery.id, ...(delivery.key !== undefined ? { key: delivery.key } : {}), headers: delivery.headers, payload: delivery.body, value, timestamp: delivery.timestamp, attempt, source: delivery.source },
          reason,
          error,
          attempts: attempt,
          ...(deadLetter ? { deadLetterTopic: deadLetter.topic } : {}),
        });
      } catch (hookError) {
        report('onFinalFailure hook', hookError);
        // With a DLQ the message is safe there; without one the hook is the only record: do not ack.
        if (!deadLetter) return false;
      }
    }
    return true;
  }

  return async function processDelivery(delivery: Delivery): Promise<void> {
    try {
      let attempt = delivery.attempt;
      // Only a redelivered message can have failed before (keeps the first delivery free of lookups).
      let firstFailureAt = attempt > 1 ? firstFailures.get(delivery.id) : undefined;
      for (;;) {
        if (attempt > 1) {
          observer.onEvent({ type: 'retry-attempt', topic, group, messageId: delivery.id, attempt, source: delivery.source });
        }
        const result = await attemptOnce(delivery, attempt);
        if (result.ok) {
          if (firstFailureAt !== undefined) firstFailures.delete(delivery.id);
          await delivery.ack();
          return;
        }
        firstFailureAt ??= now();
        const retryable = result.reason === undefined && isRetryable(result.error, config.classify);
        if (retryable && attempt < retry.maxAttempts) {
          const delayMs = backoffDelay(retry, attempt);
          observer.onEvent({ type: 'will-retry', topic, group, messageId: delivery.id, attempt, delayMs, error: result.error, source: delivery.source });
          if (config.retryMode === 'transport') {
            firstFailures.set(delivery.id, firstFailureAt);
            await delivery.retryLater(delayMs);
            return;
          }
          if (!(await waitUnlessAborted(delayMs, config.signal))) return; // closing: hand it back
          attempt++;
          continue;
        }
        const reason: FailureReason = result.reason ?? (retryable ? 'retries-exhausted' : 'non-retryable');
        // Give up; if the DLQ (or, without one, the hook) fails, keep the message and try again later.
        for (;;) {
          if (await giveUp(delivery, attempt, result.error, reason, firstFailureAt)) {
            firstFailures.delete(delivery.id);
            await delivery.ack();
            return;
          }
          if (config.retryMode === 'transport') {
            firstFailures.set(delivery.id, firstFailureAt);
            await delivery.retryLater(retry.maxIntervalMs);
            return;
          }
          if (!(await waitUnlessAborted(retry.maxIntervalMs, config.signal))) return;
        }
      }
    } catch (error) {
      // ack/retryLater failed (connection lost...): the transport will redeliver the unsettled message.
      report('settling a delivery', error);
    }
  };
}

/** Waits `ms`; resolves false early if `signal` aborts. */
export function waitUnlessAborted(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

