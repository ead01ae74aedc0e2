import type { ZodType, z } from 'zod';
import { SchemaValidationError } from './errors.js';

/**
 * A topic and the shape of its messages, defined once and shared by producers and consumers:
 * `publish(contract, value)` and `subscribe(contract, handler)` are typed from the schema, and
 * consumers validate every message against it (a message that fails goes to the DLQ with reason
 * `validation-failed`, the handler is not called).
 *
 * `In` is what producers publish (the schema's input), `Out` what handlers receive (its output,
 * after defaults and transforms).
 */
export interface TopicContract<Out, In = Out> {
  readonly name: string;
  readonly schema: ZodType<Out, In>;
  /** The key of a value (per-key order, partitioning); a key given to `publish` wins. */
  readonly key?: ((value: In) => string) | undefined;
  /** Also validate on publish: an invalid value is refused before it reaches the broker. Default false. */
  readonly validateOnPublish: boolean;
}

/** Per-message fields of a contract publish, besides the value. */
export interface ContractPublishOptions {
  readonly id?: string;
  readonly key?: string;
  readonly headers?: Record<string, string>;
  readonly timestamp?: number;
  /** As `PublishOptions.delayMs`. */
  readonly delayMs?: number;
  /** As `PublishOptions.deliverAt`. */
  readonly deliverAt?: number | Date;
}

/**
 * Defines a topic contract. The types come from the schema; no generics to write:
 *
 * ```ts
 * const OrderPlaced = defineTopic({ name: 'orders.placed', schema: z.object({ orderId: z.string(), quantity: z.number().int() }), key: (o) => o.orderId });
 * await publisher.publish(OrderPlaced, { orderId: 'o-1', quantity: 2 });
 * await subscriber.subscribe(OrderPlaced, (m) => m.value.quantity);
 * ```
 */
export function defineTopic<S extends ZodType>(definition: {
  readonly name: string;
  readonly schema: S;
  readonly key?: (value: z.input<S>) => string;
  readonly validateOnPublish?: boolean;
}): TopicContract<z.output<S>, z.input<S>> {
  if (typeof definition.name !== 'string' || definition.name === '') throw new TypeError('defineTopic: name must be a non-empty string');
  return Object.freeze({
    name: definition.name,
    schema: definition.schema as ZodType<z.output<S>, z.input<S>>,
    key: definition.key,
    validateOnPublish: definition.validateOnPublish ?? false,
  });
}

export function isTopicContract(value: unknown): value is TopicContract<unknown, unknown> {
  return (
    typeof value === 'object' && value !== null && typeof (value as { name?: unknown }).name === 'string' && typeof (value as { schema?: { safeParse?: unknown } }).schema?.safeParse === 'function'
  );
}

/** Checks `value` against the contract's schema (publish side); throws a SchemaValidationError naming each issue. */
export function assertValidForContract(contract: TopicContract<unknown, unknown>, value: unknown): void {
  const parsed = contract.schema.safeParse(value);
  if (!parsed.success) throw schemaValidationError(`value for "${contract.name}"`, parsed.error.issues);
}

/** A SchemaValidationError for zod issues: `<subject> failed schema validation: path: message; ...`. */
export function schemaValidationError(subject: string, zodIssues: readonly { readonly path: readonly PropertyKey[]; readonly message: string }[]): SchemaValidationError {
  const issues = zodIssues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
  return new SchemaValidationError(`${subject} failed schema validation: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`, issues);
}
