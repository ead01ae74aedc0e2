import { z } from 'zod';
import { ORDERINGS, type Ordering } from './capabilities.js';
import { retryPolicyFieldsSchema } from './retry.js';

/** Subscription policy fields shared by `defaults` and each named subscription. */
export const subscriptionPolicyShape = {
  concurrency: z.number().int().min(1).max(1024).optional(),
  ordering: z.enum(ORDERINGS as [Ordering, ...Ordering[]]).optional(),
  retry: retryPolicyFieldsSchema.optional(),
  retryMode: z.enum(['transport', 'in-process']).optional(),
  deadLetter: z.union([z.string().min(1), z.literal(false)]).optional(),
  stackTraceLimit: z.number().int().min(0).max(1_000_000).optional(),
};

const isFunction = (value: unknown) => typeof value === 'function';

/**
 * Options given to `Subscriber.subscribe` directly: validated by the same rules as config, so
 * `concurrency: NaN`, `group: ''` or `retryMode: 'later'` fail at once naming the field.
 */
export const subscribeOptionsSchema = z
  .object({
    group: z.string().min(1).max(249).optional(),
    pattern: z.boolean().optional(),
    startFrom: z.enum(['latest', 'earliest']).optional(),
    ...subscriptionPolicyShape,
    codec: z
      .custom<unknown>(
        (v) => typeof v === 'object' && v !== null && isFunction((v as { encode?: unknown }).encode) && isFunction((v as { decode?: unknown }).decode),
        'must be a codec with encode() and decode()',
      )
      .optional(),
    schema: z.custom<unknown>((v) => typeof v === 'object' && v !== null && isFunction((v as { safeParse?: unknown }).safeParse), 'must be a zod schema (with safeParse)').optional(),
    classify: z.custom<unknown>(isFunction, 'must be a function').optional(),
    onFinalFailure: z.custom<unknown>(isFunction, 'must be a function').optional(),
    use: z.array(z.custom<unknown>(isFunction, 'must be a middleware function (message, next)')).optional(),
    transactional: z.boolean().optional(),
    ephemeral: z.boolean().optional(),
  })
  .strict();
