import type { FailureReason } from './observer.js';
import type { Delivery, TransportMessage } from './message.js';

/**
 * Standard headers stamped on every dead letter, on every transport. The original message's id, key,
 * headers and body are kept as they were; these are added (and overwrite older ones on a second trip).
 */
export const DeadLetterHeaders = {
  originalTopic: 'x-dlq-original-topic',
  originalGroup: 'x-dlq-original-group',
  originalPartition: 'x-dlq-original-partition',
  originalOffset: 'x-dlq-original-offset',
  /** The whole source metadata as JSON (exchange, routing key, channel... whatever the transport had). */
  source: 'x-dlq-source',
  transport: 'x-dlq-transport',
  /** Handler calls made before giving up. */
  attempts: 'x-dlq-attempts',
  reason: 'x-dlq-reason',
  errorName: 'x-dlq-error-name',
  errorMessage: 'x-dlq-error-message',
  /** Stack trace, truncated to the subscription's `stackTraceLimit` characters. */
  errorStack: 'x-dlq-error-stack',
  /** ISO-8601 times of the first and the last failure. */
  firstFailureAt: 'x-dlq-first-failure-at',
  lastFailureAt: 'x-dlq-last-failure-at',
  /** "true" when the last error was retryable (retries exhausted), "false" otherwise. */
  retryable: 'x-dlq-retryable',
} as const;

/** Default cap for the stack trace header: enough for a useful trace, small enough for any broker. */
export const DEFAULT_STACK_TRACE_LIMIT = 4096;

/** Default dead-letter destination for a topic: seed 1's `<topic>-dlq`. */
export function defaultDeadLetterTopic(topic: string): string {
  return `${topic}-dlq`;
}

export interface DeadLetterDetails {
  readonly reason: FailureReason;
  readonly error: unknown;
  readonly attempts: number;
  readonly retryable: boolean;
  readonly firstFailureAt: number;
  readonly lastFailureAt: number;
  readonly stackTraceLimit: number;
}

function truncate(text: string, limit: number): string {
  return text.length <= limit ? text : `${text.slice(0, Math.max(0, limit - 15))}…[truncated]`;
}

/** The dead letter for `delivery`: same id, key and body; original headers plus {@link DeadLetterHeaders}. */
export function buildDeadLetter(delivery: Delivery, details: DeadLetterDetails): TransportMessage {
  const error = details.error;
  const name = error instanceof Error ? error.name : typeof error;
  const message = error instanceof Error ? error.message : String(error);
  const stack = error instanceof Error && error.stack ? error.stack : '';
  const source = delivery.source;
  const headers: Record<string, string> = {
    ...delivery.headers,
    [DeadLetterHeaders.originalTopic]: source.topic,
    [DeadLetterHeaders.transport]: source.transport,
    [DeadLetterHeaders.source]: JSON.stringify(source),
    [DeadLetterHeaders.attempts]: String(details.attempts),
    [DeadLetterHeaders.reason]: details.reason,
    [DeadLetterHeaders.errorName]: name,
    [DeadLetterHeaders.errorMessage]: truncate(message, details.stackTraceLimit),
    [DeadLetterHeaders.errorStack]: truncate(stack, details.stackTraceLimit),
    [DeadLetterHeaders.firstFailureAt]: new Date(details.firstFailureAt).toISOString(),
    [DeadLetterHeaders.lastFailureAt]: new Date(details.lastFailureAt).toISOString(),
    [DeadLetterHeaders.retryable]: String(details.retryable),
  };
  if (source.group !== undefined) headers[DeadLetterHeaders.originalGroup] = source.group;
  if (source.partition !== undefined) headers[DeadLetterHeaders.originalPartition] = String(source.partition);
  if (source.offset !== undefined) headers[DeadLetterHeaders.originalOffset] = source.offset;
  return { id: delivery.id, ...(delivery.key !== undefined ? { key: delivery.key } : {}), headers, body: delivery.body, timestamp: delivery.timestamp };
}
