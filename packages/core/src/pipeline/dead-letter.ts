import { createHash } from 'node:crypto';
import type { FailureReason } from '../ports/events.js';
import { describeFailure, truncate } from '../util/failure.js';
import type { Delivery, TransportMessage } from '../ports/message.js';
import { headerBytes } from '../kit/message-size.js';

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
  /** Set when the body was left out because no letter with it fitted: why, in words. */
  bodyDropped: 'x-dlq-body-dropped',
  /** With {@link DeadLetterHeaders.bodyDropped}: the original body's size in bytes and its SHA-256 (hex). */
  bodyBytes: 'x-dlq-body-bytes',
  bodySha256: 'x-dlq-body-sha256',
} as const;

/** Default cap for the stack trace header: enough for a useful trace, small enough for any broker. */
export const DEFAULT_STACK_TRACE_LIMIT = 4096;

/** Suffix of dead-letter topics. Pattern subscriptions never match a topic ending in it (see `compileTopicPattern`). */
export const DEAD_LETTER_SUFFIX = '-dlq';

/**
 * Default dead-letter destination for a concrete topic: `<topic>-dlq`. A pattern subscription
 * dead-letters each message to the DLQ of the topic it came from (`orders.*` -> `orders.eu-dlq`), a
 * name legal on every broker, which the pattern itself never matches.
 */
export function defaultDeadLetterTopic(topic: string): string {
  return `${topic}${DEAD_LETTER_SUFFIX}`;
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

/**
 * Header a replay carries: the consumer group the replayed message is meant for; other groups ack it
 * without handling (counted as `replay-skipped`). Not carried into dead letters.
 */
export const REPLAY_GROUP_HEADER = 'x-sb-replay-group';

/** Marks a dead letter whose headers were cut to fit the transport: names of the original headers cut or dropped. */
export const TRUNCATED_HEADERS_HEADER = 'x-dlq-truncated-headers';

/** ISO-8601 of `ms`, or of now when `ms` is not a representable time (never throws). */
export function safeIsoTime(ms: number): string {
  const date = new Date(Number.isFinite(ms) ? ms : Date.now());
  return Number.isNaN(date.getTime()) ? new Date().toISOString() : date.toISOString();
}

/** JSON of the source metadata, bounded (a hostile topic or routing key can be long). */
function sourceJson(source: Delivery['source'], limit: number): string {
  try {
    return truncate(JSON.stringify(source), limit);
  } catch {
    return '{}';
  }
}

/**
 * The dead letter for `delivery`: same id, key and body; original headers plus {@link DeadLetterHeaders}.
 * Never throws, whatever the error or the delivery's headers hold. Incoming `x-dlq-*` headers are
 * replaced, never carried over: a producer cannot pre-set where a dead letter claims to come from.
 * A replay target is dropped: the dead letter is for whoever consumes the DLQ.
 */
export function buildDeadLetter(delivery: Delivery, details: DeadLetterDetails): TransportMessage {
  const limit = Math.max(0, details.stackTraceLimit);
  const failure = describeFailure(details.error, limit);
  const source = delivery.source;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(delivery.headers)) if (!name.startsWith(DEAD_LETTER_PREFIX) && name !== REPLAY_GROUP_HEADER && typeof value === 'string') headers[name] = value;
  Object.assign(headers, {
    [DeadLetterHeaders.originalTopic]: source.topic,
    [DeadLetterHeaders.transport]: source.transport,
    [DeadLetterHeaders.source]: sourceJson(source, Math.max(limit, 1024)),
    [DeadLetterHeaders.attempts]: String(details.attempts),
    [DeadLetterHeaders.reason]: details.reason,
    [DeadLetterHeaders.errorName]: failure.name,
    [DeadLetterHeaders.errorMessage]: failure.message,
    [DeadLetterHeaders.errorStack]: failure.stack,
    [DeadLetterHeaders.firstFailureAt]: safeIsoTime(details.firstFailureAt),
    [DeadLetterHeaders.lastFailureAt]: safeIsoTime(details.lastFailureAt),
    [DeadLetterHeaders.retryable]: String(details.retryable),
  });
  if (source.group !== undefined) headers[DeadLetterHeaders.originalGroup] = source.group;
  if (source.partition !== undefined) headers[DeadLetterHeaders.originalPartition] = String(source.partition);
  if (source.offset !== undefined) headers[DeadLetterHeaders.originalOffset] = source.offset;
  return { id: delivery.id, ...(delivery.key !== undefined ? { key: delivery.key } : {}), headers, body: delivery.body, timestamp: safeTimestamp(delivery.timestamp) };
}

const DEAD_LETTER_PREFIX = 'x-dlq-';

/** A timestamp a transport can encode: the given one when it is a sane epoch time, else now. */
export function safeTimestamp(ms: number): number {
  return Number.isSafeInteger(ms) && ms >= 0 && ms <= 8_640_000_000_000_000 ? ms : Date.now();
}

/**
 * Makes a dead letter fit `maxHeaderBytes`: first the longest original (non-`x-dlq-*`) header values
 * are cut to 256 characters, then original headers are dropped, longest first, then the error
 * message and stack are cut to 512 characters. Every original header cut or dropped is named in
 * {@link TRUNCATED_HEADERS_HEADER}. Returns the letter unchanged when it fits.
 */
export function fitDeadLetter(letter: TransportMessage, maxHeaderBytes: number | undefined): TransportMessage {
  if (maxHeaderBytes === undefined || headerBytes(letter.headers) <= maxHeaderBytes) return letter;
  const headers: Record<string, string> = { ...letter.headers };
  const touched: string[] = [];
  const budget = maxHeaderBytes - 1024; // room for the truncation marker header itself
  const originals = () =>
    Object.keys(headers)
      .filter((name) => !name.startsWith(DEAD_LETTER_PREFIX))
      .sort((a, b) => headers[b]!.length - headers[a]!.length);
  for (const name of originals()) {
    if (headerBytes(headers) <= budget) break;
    if (headers[name]!.length > 256) {
      headers[name] = truncate(headers[name]!, 256);
      touched.push(name);
    }
  }
  for (const name of originals()) {
    if (headerBytes(headers) <= budget) break;
    delete headers[name];
    if (!touched.includes(name)) touched.push(name);
  }
  for (const name of [DeadLetterHeaders.errorStack, DeadLetterHeaders.errorMessage, DeadLetterHeaders.source]) {
    if (headerBytes(headers) <= budget) break;
    if (headers[name] !== undefined) headers[name] = truncate(headers[name]!, 512);
  }
  headers[TRUNCATED_HEADERS_HEADER] = truncate(touched.map((name) => truncate(name, 128)).join(',') || '(x-dlq-* only)', 900);
  return { ...letter, headers };
}

/**
 * The smallest useful dead letter: id, key and body with the reason, origin, attempts and a short
 * error. What the pipeline sends when the full letter is refused by the transport.
 */
export function minimalDeadLetter(letter: TransportMessage): TransportMessage {
  const h = letter.headers;
  const keep = [
    DeadLetterHeaders.originalTopic,
    DeadLetterHeaders.originalGroup,
    DeadLetterHeaders.originalPartition,
    DeadLetterHeaders.originalOffset,
    DeadLetterHeaders.transport,
    DeadLetterHeaders.attempts,
    DeadLetterHeaders.reason,
    DeadLetterHeaders.errorName,
    DeadLetterHeaders.errorMessage,
    DeadLetterHeaders.firstFailureAt,
    DeadLetterHeaders.lastFailureAt,
    DeadLetterHeaders.retryable,
  ];
  const headers: Record<string, string> = {};
  for (const name of keep) if (h[name] !== undefined) headers[name] = truncate(h[name]!, 256);
  headers[TRUNCATED_HEADERS_HEADER] = 'minimal letter: the full dead letter was refused by the transport';
  return { id: letter.id, ...(letter.key !== undefined ? { key: truncate(letter.key, 1024) } : {}), headers, body: letter.body, timestamp: safeTimestamp(letter.timestamp) };
}

/**
 * The last resort when even the {@link minimalDeadLetter} is refused for its size: the minimal letter's
 * headers, an empty body, and {@link DeadLetterHeaders.bodyDropped} / `bodyBytes` / `bodySha256` so an
 * operator can find the original (still in the source log on Kafka, in the `onFinalFailure` hook's
 * message, e.g. a parking lot) and check it is the same. It always fits, so the source moves on.
 */
export function bodilessDeadLetter(letter: TransportMessage): TransportMessage {
  const minimal = minimalDeadLetter(letter);
  return {
    ...minimal,
    headers: {
      ...minimal.headers,
      [DeadLetterHeaders.bodyDropped]: 'too large: the transport refused the dead letter even without its headers, so it is sent without its body',
      [DeadLetterHeaders.bodyBytes]: String(letter.body.byteLength),
      [DeadLetterHeaders.bodySha256]: createHash('sha256').update(letter.body).digest('hex'),
    },
    body: new Uint8Array(0),
  };
}
