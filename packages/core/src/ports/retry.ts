import { z } from 'zod';
import { NonRetryableError } from './errors.js';
import { safeGet } from '../util/failure.js';

/** Bounds of each retry field, written once; the two schemas below differ only in defaults. */
const retryFields = {
  /** Handler calls in all, the first included (3 = one call and two retries). */
  maxAttempts: z.number().int().min(1).max(1000),
  /** Wait before the first retry, ms. */
  initialIntervalMs: z.number().int().min(0).max(86_400_000),
  /** Each further wait is the previous one times this (1 = fixed backoff). */
  multiplier: z.number().min(1).max(100),
  /** Longest wait between attempts, ms; also how often a failing dead-letter publish is tried again. */
  maxIntervalMs: z.number().int().min(0).max(86_400_000),
  /** Spread of each wait, as a fraction (0.2 = ±20%). */
  jitter: z.number().min(0).max(1),
};

/** Retry policy fields without defaults: what a config or a subscription may set. */
export const retryPolicyFieldsSchema = z.object(retryFields).partial().strict();

/**
 * Retry policy of a subscription. `maxAttempts` counts every handler call, the first included
 * (Spring Cloud Stream's `max-attempts: 3` = one call + two retries). The wait before retry n (n = 1, 2, ...) is
 * `initialIntervalMs * multiplier^(n-1)`, capped at `maxIntervalMs`, then spread by ±`jitter` (a fraction).
 * `multiplier: 1` gives a fixed backoff. Defaults: 3 attempts, 1000 ms, ×2, capped at 10000 ms (Spring Cloud Stream's).
 */
export const retryPolicySchema = z
  .object({
    maxAttempts: retryFields.maxAttempts.default(3),
    initialIntervalMs: retryFields.initialIntervalMs.default(1000),
    multiplier: retryFields.multiplier.default(2),
    maxIntervalMs: retryFields.maxIntervalMs.default(10_000),
    jitter: retryFields.jitter.default(0),
  })
  .strict()
  .refine((policy) => policy.maxIntervalMs >= policy.initialIntervalMs, { path: ['maxIntervalMs'], message: 'must be at least initialIntervalMs' });

export type RetryPolicy = z.output<typeof retryPolicySchema>;
export type RetryPolicyInput = z.input<typeof retryPolicySchema>;

/** The defaults: 3 attempts, 1000 ms, ×2.0, capped at 10000 ms, no jitter. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze(retryPolicySchema.parse({}));

/** A fixed backoff: `intervalMs` between attempts; `retries` retries after the first call (e.g. 2000 ms × 3). */
export function fixedBackoff(intervalMs: number, retries: number): RetryPolicy {
  return { maxAttempts: retries + 1, initialIntervalMs: intervalMs, multiplier: 1, maxIntervalMs: intervalMs, jitter: 0 };
}

/**
 * Milliseconds to wait after failed attempt `attempt` (1-based) before the next one.
 * Pure apart from `random` (injectable for tests).
 */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const exponent = Math.max(0, attempt - 1);
  const base = Math.min(policy.maxIntervalMs, policy.initialIntervalMs * policy.multiplier ** exponent);
  if (policy.jitter === 0) return Math.round(base);
  const spread = base * policy.jitter;
  return Math.round(Math.min(policy.maxIntervalMs, Math.max(0, base - spread + random() * 2 * spread)));
}

/**
 * User hook to classify an error: return true (retry), false (do not retry) or undefined (no opinion:
 * fall through to the default).
 */
export type ErrorClassifier = (error: unknown) => boolean | undefined;

/**
 * Decides whether `error` is worth retrying, in this order:
 * 1. {@link NonRetryableError} and its subclasses (decode and schema errors) are never retried — not overridable;
 * 2. any error with a `retryable: boolean` property is taken at its word (a getter that throws counts as absent);
 * 3. the user's classifier, when it returns a boolean (one that throws has no opinion);
 * 4. otherwise: retryable (transient until proven otherwise, as in Spring).
 */
export function isRetryable(error: unknown, classifier?: ErrorClassifier): boolean {
  try {
    if (error instanceof NonRetryableError) return false;
  } catch {
    // a Proxy whose prototype trap throws: not one of ours
  }
  const retryable = safeGet(error, 'retryable');
  if (typeof retryable === 'boolean') return retryable;
  if (classifier) {
    try {
      const verdict = classifier(error);
      if (typeof verdict === 'boolean') return verdict;
    } catch {
      // a classifier that throws has no opinion; retries stay bounded by maxAttempts
    }
  }
  return true;
}
