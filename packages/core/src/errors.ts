/** Errors with a contract: what they mean to the pipeline, config loading and publishers. */

/** Throw from a handler to say "retrying will not help": the message goes straight to the DLQ. */
export class NonRetryableError extends Error {
  override readonly name: string = 'NonRetryableError';
  readonly retryable = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The payload could not be decoded by the subscription's codec. Never retried. */
export class DecodeError extends NonRetryableError {
  override readonly name = 'DecodeError';
}

/** The decoded payload failed the subscription's schema. Never retried. */
export class SchemaValidationError extends NonRetryableError {
  override readonly name = 'SchemaValidationError';
  constructor(
    message: string,
    readonly issues: readonly { path: string; message: string }[],
  ) {
    super(message);
  }
}

/** Invalid configuration, found at startup. `issues` name each field path and what is allowed. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly issues: readonly { path: string; message: string }[]) {
    super(`Invalid Switchboard config:\n${issues.map((i) => `  - ${i.path || '(root)'}: ${i.message}`).join('\n')}`);
  }
}

/** A transport was asked for something it cannot do (e.g. a durable guarantee on Redis Pub/Sub). */
export class CapabilityError extends ConfigError {}

/** A publish did not meet its delivery guarantee. `cause` holds the transport's error. */
export class PublishError extends Error {
  override readonly name: string = 'PublishError';
  constructor(
    message: string,
    readonly topic: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Operation on a closed publisher, subscriber, subscription or transport. */
export class ClosedError extends Error {
  override readonly name = 'ClosedError';
}
