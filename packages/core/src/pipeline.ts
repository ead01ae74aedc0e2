import type { ZodType } from 'zod';
import { decodeOrThrow, type Codec } from './codec.js';
import { REPLAY_GROUP_HEADER, buildDeadLetter, fitDeadLetter, minimalDeadLetter } from './dead-letter.js';
import { schemaValidationError } from './contract.js';
import { inDeliverySpan, isTraced } from './observability/tracing.js';
import type { Delivery, Message } from './message.js';
import type { BusEvent, BusObserver, FailureReason } from './observer.js';
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
  /**
   * Where dead letters go: a fixed topic, or (pattern subscriptions) one derived from the concrete
   * topic of each delivery. False: no DLQ.
   */
  readonly deadLetter: { readonly topic: string | ((concreteTopic: string) => string); readonly publisher: RawPublisher } | false;
  /** Largest header map (bytes) the dead-letter destination accepts; letters are cut to fit. */
  readonly maxDeadLetterHeaderBytes?: number;
  /**
   * How a failed dead-letter publish is retried: `transport` hands the delivery back with `retryLater`
   * (only where that holds back no more than ordering needs: a partition or a key lane), `in-process`
   * waits in the handler slot. The handler is not called again either way. Default `in-process`.
   */
  readonly deadLetterRetryMode?: 'transport' | 'in-process';
  readonly onFinalFailure?: (failure: FinalFailure) => Promise<void> | void;
  readonly stackTraceLimit: number;
  readonly observer: BusObserver;
  /** Aborted when the subscription closes: backoff waits stop and the delivery is left unsettled (handed back). */
  readonly signal: AbortSignal;
  readonly now?: () => number;
}

/** A give-up whose dead letter (or hook) failed: kept by message id until it succeeds, so the handler is not called again. */
interface PendingGiveUp {
  readonly attempt: number;
  readonly error: unknown;
  readonly reason: FailureReason;
  readonly firstFailureAt: number;
}

/**
 * THE consumer pipeline, the same for every transport:
 *   decode -> validate -> handle -> (failure) classify -> retry with backoff -> dead-letter ->
 *   final-failure hook -> ack.
 *
 * Contracts:
 * - The delivery is acked only after the handler succeeded, or after the dead letter was confirmed
 *   (or, with the DLQ off, after the final-failure hook succeeded).
 * - The handler is called at most `retry.maxAttempts` times per delivery sequence. An attempt number
 *   the transport reports outside `1..maxAttempts` (a forged or corrupted header) is ignored (counted
 *   as `untrusted-header`) and the count starts at 1: nothing from the wire can add attempts.
 * - Decode and schema errors, and errors classified non-retryable, skip the retries.
 * - Total: any thrown value (not an Error, `undefined`, cyclic, with throwing getters or `toString`)
 *   is described in bounded strings; building a dead letter never throws; a letter over the
 *   destination's header limit is cut to fit, and if the full letter is refused a minimal one is sent.
 * - A failing dead-letter publish is never an ack: it is tried again every `maxIntervalMs` (an event
 *   each time) until the DLQ accepts it or the subscription closes (then it is handed back), without
 *   calling the handler again.
 * - A delivery carrying a replay target for another group is acked without calling the handler
 *   (`replay-skipped`).
 * - The returned listener never rejects.
 */
export function createDeliveryProcessor<T>(config: PipelineConfig<T>): DeliveryListener {
  const now = config.now ?? Date.now;
  const { topic, group, retry } = config;
  /** First failure time of messages waiting for a transport redelivery, by message id. */
  const firstFailures = new Map<string, number>();
  const pendingGiveUps = new Map<string, PendingGiveUp>();

  /** Observers must not throw; one that does is not allowed to break a delivery. */
  const emit = (event: BusEvent) => {
    try {
      config.observer.onEvent(event);
    } catch {
      // an observer's bug is its own
    }
  };
  const report = (context: string, error: unknown) => emit({ type: 'internal-error', topic, context, error });

  const OK = { ok: true } as const;

  async function attemptOnce(delivery: Delivery, attempt: number): Promise<{ ok: true } | { ok: false; error: unknown; reason: FailureReason | undefined }> {
    let value: unknown;
    try {
      value = decodeOrThrow(config.codec, delivery.body);
    } catch (error) {
      return { ok: false, error, reason: 'decode-failed' };
    }
    if (config.schema) {
      let parsed: ReturnType<ZodType<T>['safeParse']>;
      try {
        parsed = config.schema.safeParse(value);
      } catch (error) {
        return { ok: false, error, reason: 'validation-failed' };
      }
      if (!parsed.success) return { ok: false, error: schemaValidationError('payload', parsed.error.issues), reason: 'validation-failed' };
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
    emit({ type: 'success', topic, group, messageId: delivery.id, attempt, durationMs: now() - started });
    return OK;
  }

  function deadLetterTopicOf(delivery: Delivery): string | undefined {
    const deadLetter = config.deadLetter;
    if (!deadLetter) return undefined;
    return typeof deadLetter.topic === 'string' ? deadLetter.topic : deadLetter.topic(delivery.source.topic);
  }

  /** Dead-letters and runs the hook. Returns true when the message may be acked. Never throws. */
  async function giveUp(delivery: Delivery, pending: PendingGiveUp): Promise<boolean> {
    const { attempt, error, reason, firstFailureAt } = pending;
    const deadLetter = config.deadLetter;
    const deadLetterTopic = deadLetterTopicOf(delivery);
    if (deadLetter && deadLetterTopic !== undefined) {
      const letter = fitDeadLetter(
        buildDeadLetter(delivery, { reason, error, attempts: attempt, retryable: reason === 'retries-exhausted', firstFailureAt, lastFailureAt: now(), stackTraceLimit: config.stackTraceLimit }),
        config.maxDeadLetterHeaderBytes,
      );
      let sent = false;
      for (const candidate of [letter, minimalDeadLetter(letter)]) {
        try {
          await deadLetter.publisher.publish(deadLetterTopic, [candidate], { guarantee: 'all' });
          sent = true;
          break;
        } catch (publishError) {
          emit({ type: 'publish-failed', topic: deadLetterTopic, count: 1, error: publishError });
        }
      }
      if (!sent) return false;
      emit({ type: 'dead-lettered', topic, group, messageId: delivery.id, deadLetterTopic });
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
          message: {
            id: delivery.id,
            ...(delivery.key !== undefined ? { key: delivery.key } : {}),
            headers: delivery.headers,
            payload: delivery.body,
            value,
            timestamp: delivery.timestamp,
            attempt,
            source: delivery.source,
          },
          reason,
          error,
          attempts: attempt,
          ...(deadLetterTopic !== undefined ? { deadLetterTopic } : {}),
        });
      } catch (hookError) {
        report('onFinalFailure hook', hookError);
        // With a DLQ the message is safe there; without one the hook is the only record: do not ack.
        if (!deadLetter) return false;
      }
    }
    return true;
  }

  /** Gives up on `delivery`; until the dead letter is accepted, retries it without calling the handler. */
  async function settleGivenUp(delivery: Delivery, pending: PendingGiveUp): Promise<void> {
    for (;;) {
      if (await giveUp(delivery, pending)) {
        pendingGiveUps.delete(delivery.id);
        firstFailures.delete(delivery.id);
        await delivery.ack();
        return;
      }
      pendingGiveUps.set(delivery.id, pending);
      if (config.deadLetterRetryMode === 'transport') {
        await delivery.retryLater(retry.maxIntervalMs, pending.attempt + 1);
        return;
      }
      if (!(await waitUnlessAborted(retry.maxIntervalMs, config.signal))) return; // closing: hand it back
    }
  }

  function finalFailureEvent(delivery: Delivery, pending: PendingGiveUp): void {
    emit({
      type: 'final-failure',
      topic,
      group,
      messageId: delivery.id,
      attempt: pending.attempt,
      reason: pending.reason,
      error: pending.error,
      source: delivery.source,
      ...(delivery.key !== undefined ? { key: delivery.key } : {}),
      payload: delivery.body,
    });
  }

  /** The attempt the transport reports, if it is one this policy can have produced; else 1 (counted). */
  function trustedAttempt(delivery: Delivery): number {
    const attempt = delivery.attempt;
    if (Number.isSafeInteger(attempt) && attempt >= 1 && attempt <= retry.maxAttempts) return attempt;
    emit({ type: 'untrusted-header', topic, transport: delivery.source.transport, header: 'attempt', value: String(attempt), messageId: delivery.id });
    return 1;
  }

  return async function processDelivery(delivery: Delivery): Promise<void> {
    try {
      const replayGroup = delivery.headers[REPLAY_GROUP_HEADER];
      if (replayGroup !== undefined && replayGroup !== (group ?? '')) {
        emit({ type: 'replay-skipped', topic, group, messageId: delivery.id, targetGroup: replayGroup });
        await delivery.ack();
        return;
      }
      // A redelivery of a message whose dead letter failed earlier in this process: no more handler calls.
      const pending = delivery.attempt > 1 ? pendingGiveUps.get(delivery.id) : undefined;
      if (pending) {
        await settleGivenUp(delivery, pending);
        return;
      }
      let attempt = trustedAttempt(delivery);
      // Only a redelivered message can have failed before (keeps the first delivery free of lookups).
      let firstFailureAt = attempt > 1 ? firstFailures.get(delivery.id) : undefined;
      for (;;) {
        if (attempt > 1) {
          emit({ type: 'retry-attempt', topic, group, messageId: delivery.id, attempt, source: delivery.source });
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
          emit({ type: 'will-retry', topic, group, messageId: delivery.id, attempt, delayMs, error: result.error, source: delivery.source });
          if (config.retryMode === 'transport') {
            firstFailures.set(delivery.id, firstFailureAt);
            await delivery.retryLater(delayMs, attempt + 1);
            return;
          }
          if (!(await waitUnlessAborted(delayMs, config.signal))) return; // closing: hand it back
          attempt++;
          continue;
        }
        const reason: FailureReason = result.reason ?? (retryable ? 'retries-exhausted' : 'non-retryable');
        const givenUp: PendingGiveUp = { attempt, error: result.error, reason, firstFailureAt };
        finalFailureEvent(delivery, givenUp);
        await settleGivenUp(delivery, givenUp);
        return;
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
