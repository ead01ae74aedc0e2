import type { ZodType } from 'zod';
import { decodeOrThrow, type Codec } from '../ports/codec.js';
import { REPLAY_GROUP_HEADER, bodilessDeadLetter, buildDeadLetter, fitDeadLetter, minimalDeadLetter } from './dead-letter.js';
import { schemaValidationError } from '../ports/contract.js';
import { inDeliverySpan, isTraced, type ServerAddress } from '../observability/tracing.js';
import type { Delivery, Message } from '../ports/message.js';
import type { DeliveryGuarantee } from '../ports/capabilities.js';
import { observerWants, type BusEvent, type BusObserver, type FailureReason } from '../ports/events.js';
import type { DeliveryListener, FinalFailure, Handler, Middleware, RawPublisher } from '../ports/ports.js';
import { backoffDelay, isRetryable, type ErrorClassifier, type RetryPolicy } from '../ports/retry.js';
import { isMessageTooLarge } from '../ports/errors.js';

/** Everything the pipeline needs for one subscription, resolved (no defaults left to apply). */
export interface PipelineConfig<T> {
  readonly topic: string;
  readonly group?: string;
  readonly handler: Handler<T>;
  /** Steps around the handler, outermost first. */
  readonly use?: readonly Middleware<T>[];
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
  readonly deadLetter:
    | {
        readonly topic: string | ((concreteTopic: string) => string);
        readonly publisher: RawPublisher;
        /** The guarantee dead letters are published with: the strongest the destination offers. Default `all`. */
        readonly guarantee?: DeliveryGuarantee;
      }
    | false;
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
  /** The broker (trace attributes), when the transport reports its connections. */
  readonly server?: ServerAddress;
  readonly observer: BusObserver;
  /** Aborted when the subscription closes: backoff waits stop and the delivery is left unsettled (handed back). */
  readonly signal: AbortSignal;
  readonly now?: () => number;
}

/** A give-up whose dead letter (or hook) failed: kept by message id until it succeeds, so the handler is not called again. */
interface PendingGiveUp {
  readonly attempt: number;
  /** The last handler call's duration, when measured. */
  readonly durationMs?: number;
  readonly error: unknown;
  readonly reason: FailureReason;
  readonly firstFailureAt: number;
}

/**
 * THE consumer pipeline, the same for every transport, as ordered steps:
 *   decode -> validate -> trace span -> middleware (`use`) -> handler -> (failure) classify ->
 *   retry with backoff -> dead-letter -> final-failure hook -> settle (ack).
 *
 * Contracts:
 * - The delivery is acked only after the handler succeeded, or after the dead letter was confirmed
 *   (or, with the DLQ off, after the final-failure hook succeeded).
 * - The handler is called at most `retry.maxAttempts` times per delivery sequence. An attempt number
 *   the transport reports outside `1..maxAttempts` (a forged or corrupted header) is ignored (counted
 *   as `untrusted-header`) and the count starts at 1: nothing from the wire can add attempts.
 * - A delivery whose broker-kept `deliveryCount` exceeds `maxAttempts` (it crashed or stalled its
 *   consumers that often) is given up without a handler call: dead letter `retries-exhausted`.
 * - Decode and schema errors, and errors classified non-retryable, skip the retries.
 * - Total: any thrown value (not an Error, `undefined`, cyclic, with throwing getters or `toString`)
 *   is described in bounded strings; building a dead letter never throws; a letter over the
 *   destination's header limit is cut to fit, and if the full letter is refused a minimal one is sent;
 *   if that is refused for its size (`MessageTooLargeError`), one without its body (size and SHA-256 in
 *   its headers), so a record at the broker's size limit never stops its partition.
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
  /**
   * First failure time of messages waiting for a transport redelivery, and given-up messages whose dead
   * letter failed, by message id. Bounded: a redelivery that never comes back here (its partition was
   * revoked and another member has it) must not keep its entry for the life of the process.
   */
  const firstFailures = new RecentById<number>();
  const pendingGiveUps = new RecentById<PendingGiveUp>();

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
  /** Per-message `success` events (and their two clock reads) only when some observer reads them. */
  const wantsSuccess = observerWants(config.observer, 'success');
  /** Handler durations are measured when an observer reads an event that carries one. */
  const timed = wantsSuccess || observerWants(config.observer, 'will-retry') || observerWants(config.observer, 'final-failure');
  /** The steps and the handler, composed once: `run(message)` calls the first step. */
  const run = composeSteps(config.use ?? [], config.handler);

  /** Decode and validate: a message, or the failure (never retried). Synchronous. */
  function decodeMessage(delivery: Delivery, attempt: number): Message<T> | Failure {
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
    return {
      id: delivery.id,
      key: delivery.key,
      headers: delivery.headers,
      payload: delivery.body,
      value: value as T,
      timestamp: delivery.timestamp,
      attempt,
      source: delivery.source,
    };
  }

  /** Calls the steps and the handler; inside a span when the message carries a trace. May throw, may return a promise. */
  function callHandler(delivery: Delivery, message: Message<T>): unknown {
    if (isTraced(delivery.headers)) {
      return inDeliverySpan({ topic, messageId: delivery.id, attempt: message.attempt, key: delivery.key, source: delivery.source, server: config.server }, delivery.headers, async () => {
        await run(message);
      });
    }
    return run(message); // untraced: no span machinery on the hot path
  }

  function succeeded(delivery: Delivery, attempt: number, started: number): void {
    if (wantsSuccess) emit({ type: 'success', topic, group, messageId: delivery.id, attempt, durationMs: now() - started });
  }

  function handlerFailed(error: unknown, started: number): Failure {
    return timed ? { ok: false, error, reason: undefined, durationMs: now() - started } : { ok: false, error, reason: undefined };
  }

  async function attemptOnce(delivery: Delivery, attempt: number): Promise<{ ok: true } | Failure> {
    const message = decodeMessage(delivery, attempt);
    if (isFailure(message)) return message;
    const started = timed ? now() : 0;
    try {
      await callHandler(delivery, message);
    } catch (error) {
      return handlerFailed(error, started);
    }
    succeeded(delivery, attempt, started);
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
      // The full letter, then the minimal one; when that too is refused for its size (never for an
      // outage: then the body must not be lost), one without its body, which always fits.
      let sent = false;
      const candidates = [letter, minimalDeadLetter(letter)];
      for (let i = 0; i < candidates.length && !sent; i++) {
        try {
          await deadLetter.publisher.publish(deadLetterTopic, [candidates[i]!], { guarantee: deadLetter.guarantee ?? 'all' });
          sent = true;
        } catch (publishError) {
          emit({ type: 'publish-failed', topic: deadLetterTopic, count: 1, error: publishError });
          if (i === 1 && isMessageTooLarge(publishError)) candidates.push(bodilessDeadLetter(letter));
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
      ...(pending.durationMs !== undefined ? { durationMs: pending.durationMs } : {}),
    });
  }

  /** The attempt the transport reports, if it is one this policy can have produced; else 1 (counted). */
  function trustedAttempt(delivery: Delivery): number {
    const attempt = delivery.attempt;
    if (Number.isSafeInteger(attempt) && attempt >= 1 && attempt <= retry.maxAttempts) return attempt;
    emit({ type: 'untrusted-header', topic, transport: delivery.source.transport, header: 'attempt', value: String(attempt), messageId: delivery.id });
    return 1;
  }

  /**
   * Settles an ack; the listener never throws or rejects (a failed ack: the transport redelivers the
   * unsettled message). Synchronous when the transport's ack is.
   */
  function ackAfterSuccess(delivery: Delivery): Promise<void> | undefined {
    let acked: Promise<boolean> | boolean;
    try {
      acked = delivery.ack();
    } catch (error) {
      report('settling a delivery', error);
      return undefined;
    }
    if (typeof acked === 'boolean') return undefined;
    return Promise.resolve(acked).then(
      () => undefined,
      (error: unknown) => report('settling a delivery', error),
    );
  }

  /**
   * The general path: attempt (unless `result` already holds attempt `attempt`'s outcome), then on
   * failure classify, retry with backoff (here or through the transport), dead-letter.
   */
  async function handleFrom(delivery: Delivery, attempt: number, result: { ok: true } | Failure | undefined, firstFailureAt: number | undefined): Promise<void> {
    try {
      for (;;) {
        if (result === undefined) {
          if (attempt > 1) emit({ type: 'retry-attempt', topic, group, messageId: delivery.id, attempt, source: delivery.source });
          result = await attemptOnce(delivery, attempt);
        }
        if (result.ok) {
          if (firstFailureAt !== undefined) firstFailures.delete(delivery.id);
          await delivery.ack();
          return;
        }
        firstFailureAt ??= now();
        // What the failed attempt published inside a transaction is not kept (a dead letter may follow).
        if (result.reason === undefined && delivery.discardEffects) await delivery.discardEffects();
        const retryable = result.reason === undefined && isRetryable(result.error, config.classify);
        if (retryable && attempt < retry.maxAttempts) {
          const delayMs = backoffDelay(retry, attempt);
          emit({
            type: 'will-retry',
            topic,
            group,
            messageId: delivery.id,
            attempt,
            delayMs,
            error: result.error,
            source: delivery.source,
            ...(result.durationMs !== undefined ? { durationMs: result.durationMs } : {}),
          });
          if (config.retryMode === 'transport') {
            firstFailures.set(delivery.id, firstFailureAt);
            await delivery.retryLater(delayMs, attempt + 1);
            return;
          }
          if (!(await waitUnlessAborted(delayMs, config.signal))) return; // closing: hand it back
          attempt++;
          result = undefined;
          continue;
        }
        const reason: FailureReason = result.reason ?? (retryable ? 'retries-exhausted' : 'non-retryable');
        const givenUp: PendingGiveUp = { attempt, error: result.error, reason, firstFailureAt, ...(result.durationMs !== undefined ? { durationMs: result.durationMs } : {}) };
        finalFailureEvent(delivery, givenUp);
        await settleGivenUp(delivery, givenUp);
        return;
      }
    } catch (error) {
      // ack/retryLater failed (connection lost...): the transport will redeliver the unsettled message.
      report('settling a delivery', error);
    }
  }

  /** Redeliveries, replays for other groups, dead letters that failed earlier: everything but a plain first delivery. */
  async function processOther(delivery: Delivery): Promise<void> {
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
      const deliveries = delivery.deliveryCount;
      if (deliveries !== undefined && deliveries > retry.maxAttempts) {
        const at = now();
        const error = new Error(`delivered ${deliveries} times without being settled (its consumers crashed or stalled while handling it); maxAttempts is ${retry.maxAttempts}`);
        const givenUp: PendingGiveUp = { attempt: deliveries, error, reason: 'retries-exhausted', firstFailureAt: firstFailures.get(delivery.id) ?? at };
        finalFailureEvent(delivery, givenUp);
        await settleGivenUp(delivery, givenUp);
        return;
      }
    } catch (error) {
      report('settling a delivery', error);
      return;
    }
    const attempt = trustedAttempt(delivery);
    // Only a redelivered message can have failed before (keeps the first delivery free of lookups).
    return handleFrom(delivery, attempt, undefined, attempt > 1 ? firstFailures.get(delivery.id) : undefined);
  }

  /**
   * The fast path: a first delivery (attempt 1, no replay target, a broker count within bounds) is decoded, handled and acked with no
   * extra promise when the handler returns none, and no event object when no observer reads `success`.
   * Anything else, or any failure, continues on the general path with the same outcome.
   */
  return function processDelivery(delivery: Delivery): Promise<void> | undefined {
    if (delivery.attempt !== 1 || delivery.headers[REPLAY_GROUP_HEADER] !== undefined || (delivery.deliveryCount ?? 0) > retry.maxAttempts) return processOther(delivery);
    const message = decodeMessage(delivery, 1);
    if (isFailure(message)) return handleFrom(delivery, 1, message, undefined);
    const started = timed ? now() : 0;
    let returned: unknown;
    try {
      returned = callHandler(delivery, message);
    } catch (error) {
      return handleFrom(delivery, 1, handlerFailed(error, started), undefined);
    }
    if (isThenable(returned)) {
      return (returned instanceof Promise ? returned : Promise.resolve(returned)).then(
        () => {
          succeeded(delivery, 1, started);
          return ackAfterSuccess(delivery);
        },
        (error: unknown) => handleFrom(delivery, 1, handlerFailed(error, started), undefined),
      );
    }
    succeeded(delivery, 1, started);
    return ackAfterSuccess(delivery);
  };
}

type Failure = { ok: false; error: unknown; reason: FailureReason | undefined; durationMs?: number };

function isFailure(value: unknown): value is Failure {
  return (value as Failure).ok === false;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as PromiseLike<unknown>).then === 'function';
}

/**
 * A map by message id that keeps at most `limit` entries, dropping the oldest first. For state a later
 * redelivery may need and that nothing else clears when the redelivery goes elsewhere (a revoked
 * partition): an entry dropped early costs only precision (a first-failure time restarts, a failed
 * dead letter is retried through the handler path again), never a message.
 */
export class RecentById<V> {
  private readonly entries = new Map<string, V>();
  constructor(readonly limit = 10_000) {}

  get size(): number {
    return this.entries.size;
  }

  get(id: string): V | undefined {
    return this.entries.get(id);
  }

  set(id: string, value: V): void {
    this.entries.delete(id); // a re-set entry counts as the newest
    this.entries.set(id, value);
    if (this.entries.size > this.limit) this.entries.delete(this.entries.keys().next().value!);
  }

  delete(id: string): void {
    this.entries.delete(id);
  }
}

/**
 * Composes middleware steps around the handler once per subscription (see {@link Middleware}). A
 * step's `next` runs the rest once per attempt: a second call rejects (the attempt fails with that
 * error) instead of running the handler again.
 */
export function composeSteps<T>(steps: readonly Middleware<T>[], handler: Handler<T>): (message: Message<T>) => unknown {
  let run: (message: Message<T>) => unknown = handler;
  for (let i = steps.length - 1; i >= 0; i--) {
    const step = steps[i]!;
    const next = run;
    run = (message) => {
      let called = false;
      return step(message, async () => {
        if (called) throw new Error(`middleware step ${i + 1} called next() twice: the handler runs once per attempt`);
        called = true;
        await next(message);
      });
    };
  }
  return run;
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
