/**
 * Errors with a contract: what they mean to the pipeline, config loading and publishers. Each carries a
 * stable `code` (`SB_…`): match on it, not on the message text, which may change.
 */

/** The stable codes of Switchboard's errors. */
export const ErrorCodes = {
  nonRetryable: 'SB_NON_RETRYABLE',
  decode: 'SB_DECODE',
  schemaValidation: 'SB_SCHEMA_VALIDATION',
  configInvalid: 'SB_CONFIG_INVALID',
  capability: 'SB_CAPABILITY',
  publish: 'SB_PUBLISH',
  messageTooLarge: 'SB_MESSAGE_TOO_LARGE',
  connect: 'SB_CONNECT',
  closed: 'SB_CLOSED',
  requestTimeout: 'SB_REQUEST_TIMEOUT',
  remote: 'SB_REMOTE',
} as const;
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** Throw from a handler to say "retrying will not help": the message goes straight to the DLQ. */
export class NonRetryableError extends Error {
  override readonly name: string = 'NonRetryableError';
  readonly code: ErrorCode = ErrorCodes.nonRetryable;
  readonly retryable = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The payload could not be decoded by the subscription's codec. Never retried. */
export class DecodeError extends NonRetryableError {
  override readonly name = 'DecodeError';
  override readonly code: ErrorCode = ErrorCodes.decode;
}

/** The decoded payload failed the subscription's schema. Never retried. */
export class SchemaValidationError extends NonRetryableError {
  override readonly name = 'SchemaValidationError';
  override readonly code: ErrorCode = ErrorCodes.schemaValidation;
  constructor(
    message: string,
    readonly issues: readonly { path: string; message: string }[],
  ) {
    super(message);
  }
}

/** Invalid configuration, found at startup. `issues` name each field path and what is allowed. */
export class ConfigError extends Error {
  override readonly name: string = 'ConfigError';
  readonly code: ErrorCode = ErrorCodes.configInvalid;
  constructor(readonly issues: readonly { path: string; message: string }[]) {
    super(`Invalid Switchboard config:\n${issues.map((i) => `  - ${i.path || '(root)'}: ${i.message}`).join('\n')}`);
  }
}

/** A transport was asked for something it cannot do (e.g. a durable guarantee on Redis Pub/Sub). */
export class CapabilityError extends ConfigError {
  override readonly name: string = 'CapabilityError';
  override readonly code: ErrorCode = ErrorCodes.capability;
}

/** A publish did not meet its delivery guarantee. `cause` holds the transport's error. */
export class PublishError extends Error {
  override readonly name: string = 'PublishError';
  readonly code: ErrorCode = ErrorCodes.publish;
  constructor(
    message: string,
    readonly topic: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The transport (or its broker) refused a message for its size: sending it again as it is can never
 * succeed. `bytes` is the size the adapter measured (body + headers + key), `limit` the limit it knows
 * of, where it knows them. Adapters map their broker's refusal to this class (Kafka MESSAGE_TOO_LARGE,
 * a configured `maxMessageBytes`), so the dead-letter path can drop the body instead of looping.
 */
export class MessageTooLargeError extends PublishError {
  override readonly name = 'MessageTooLargeError';
  override readonly code: ErrorCode = ErrorCodes.messageTooLarge;
  constructor(
    message: string,
    topic: string,
    readonly bytes?: number,
    readonly limit?: number,
    options?: { cause?: unknown },
  ) {
    super(message, topic, options);
  }
}

/** True when `error`, or one of its causes (five deep), is a {@link MessageTooLargeError}. */
export function isMessageTooLarge(error: unknown): boolean {
  for (let e = error, depth = 0; e !== null && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) if (e instanceof MessageTooLargeError) return true;
  return false;
}

/**
 * True when a publish failed because of what it asked, not because of the broker: a bad topic or
 * option ({@link ConfigError}, {@link CapabilityError}) or a message over the size limit. Sending it
 * again fails the same way, so such a failure is never stored for a later relay and never counts
 * against a breaker (one bad caller would otherwise divert everyone's publishes).
 */
export function isCallerError(error: unknown): boolean {
  return error instanceof ConfigError || isMessageTooLarge(error);
}

/** Operation on a closed publisher, subscriber, subscription or transport. */
export class ClosedError extends Error {
  override readonly name = 'ClosedError';
  readonly code: ErrorCode = ErrorCodes.closed;
}

/**
 * A transport (or a store) could not connect to its broker at startup: unreachable, refused, timed out,
 * or the credentials were refused. `endpoint` names where (credentials never included); `cause` holds
 * the client's error.
 */
export class ConnectError extends Error {
  override readonly name = 'ConnectError';
  readonly code: ErrorCode = ErrorCodes.connect;
  constructor(
    message: string,
    readonly endpoint: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A request got no reply within its `timeoutMs` (a reply arriving later is dropped and counted). */
export class RequestTimeoutError extends Error {
  override readonly name = 'RequestTimeoutError';
  readonly code: ErrorCode = ErrorCodes.requestTimeout;
  constructor(
    readonly topic: string,
    readonly timeoutMs: number,
  ) {
    super(`no reply to the request on ${topic} within ${timeoutMs} ms`);
  }
}

/** The replier's handler threw: its error's name and message, as the error reply carried them. */
export class RemoteError extends Error {
  override readonly name = 'RemoteError';
  readonly code: ErrorCode = ErrorCodes.remote;
  constructor(
    readonly remoteName: string,
    message: string,
  ) {
    super(message);
  }
}
