/**
 * Message shapes. A transport moves {@link TransportMessage}s (bytes plus metadata); the core pipeline
 * decodes them into {@link Message}s for handlers. Everything here is broker-neutral.
 */

import { randomBytes } from 'node:crypto';
import { ConfigError } from './errors.js';

/** 96 random bits, new in every process (a fork included: the module is loaded again). */
const ID_PREFIX = randomBytes(12).toString('base64url');
let idSequence = 0;

/**
 * A new message id: a per-process random prefix of fixed length (16 characters) followed by a
 * sequence number in base 36. Unique across processes and restarts without a random draw per message
 * (randomUUID cost a few percent of a delivery); ids are opaque strings, nothing parses them.
 */
export function newMessageId(): string {
  return ID_PREFIX + (idSequence++).toString(36);
}

/** Header map. Keys and values are strings on every transport. */
export type Headers = Readonly<Record<string, string>>;

/** Where a delivered message came from. Read-only; fields a transport does not have are absent. */
export interface SourceMetadata {
  /** Transport kind that delivered it: "memory", "kafka", "rabbitmq", "redis". */
  readonly transport: string;
  /** Topic (Kafka topic, RabbitMQ routing key / core topic, Redis channel). */
  readonly topic: string;
  /** Consumer group the delivery was made to, when the transport has groups. */
  readonly group?: string;
  /** Kafka partition. */
  readonly partition?: number;
  /** Kafka offset (decimal string: offsets exceed 2^53). */
  readonly offset?: string;
  /** RabbitMQ exchange. */
  readonly exchange?: string;
  /** RabbitMQ routing key. */
  readonly routingKey?: string;
  /** RabbitMQ queue. */
  readonly queue?: string;
  /** Redis channel the message was published on. */
  readonly channel?: string;
  /** The subscription pattern that matched (pattern subscriptions only). */
  readonly pattern?: string;
}

/** The unit a transport stores and moves. */
export interface TransportMessage {
  /** Unique id, kept end to end (also through DLQ and fallback relays) so consumers can deduplicate. */
  readonly id: string;
  /** Partitioning / ordering key. Messages with the same key keep their order where the transport promises it. */
  readonly key?: string | undefined;
  readonly headers: Headers;
  /** Encoded payload. */
  readonly body: Uint8Array;
  /** Creation time, ms since the epoch. */
  readonly timestamp: number;
  /**
   * Set when `id` was made by this publish and need not travel: the publisher's envelope says ids
   * go on the wire only when the caller gives one (`envelope.id: 'given'`), and this caller gave
   * none. A transport may then leave the id off the wire; the consumer gets the broker's own identity
   * of the record where it has one (Kafka `<topic>-<partition>-<offset>`, a Redis stream entry id, a
   * PostgreSQL row), else a fresh id. Never set on dead letters, relayed or replayed messages: see
   * {@link withIdOnWire}.
   */
  readonly localId?: true;
  /**
   * Set when the publisher's envelope says `timestamp: 'broker'` and the caller set no timestamp: a transport sends it
   * only in a field the broker has for it (never as a header of its own), and the consumer gets the
   * broker's time where there is none.
   */
  readonly brokerTimestamp?: true;
}

/** `message` with its id marked to travel (a fallback store, a relay and a dead letter always carry ids). */
export function withIdOnWire<M extends TransportMessage>(message: M): M {
  if (message.localId !== true) return message;
  const { localId: _local, ...carried } = message;
  return carried as M;
}

/**
 * One delivery of a message to one subscription, as the transport hands it to the core pipeline.
 * Settle it exactly once with `ack` or `retryLater`; further calls are no-ops that return false.
 */
export interface Delivery extends TransportMessage {
  /** 1 on the first delivery; +1 on each redelivery the transport knows of. */
  readonly attempt: number;
  readonly source: SourceMetadata;
  /**
   * How many times the broker has handed this message to a consumer, from the broker's own
   * bookkeeping (never from a header): Redis Streams' pending entry list, JetStream's delivery
   * metadata. Optional: set only by transports that keep such a count. A count above the retry
   * policy's `maxAttempts` means consumers crashed or stalled while handling it (a poison message):
   * the pipeline then gives it up without calling the handler again.
   */
  readonly deliveryCount?: number;
  /**
   * Marks the message done (ack / offset commit). Resolves once the transport has recorded it; a
   * transport that records it at once may return the boolean itself (no promise on the fast path).
   * Returns false if the delivery was already settled.
   */
  ack(): Promise<boolean> | boolean;
  /**
   * Hands the message back to be delivered again as `nextAttempt` (default `attempt + 1`; the pipeline
   * passes its own count, which a forged attempt header cannot move), no sooner than `delayMs` from
   * now, without holding a handler slot meanwhile. Only called when the transport declares
   * `capabilities.delayedRedelivery`. Returns false if the delivery was already settled.
   */
  retryLater(delayMs: number, nextAttempt?: number): Promise<boolean>;
  /**
   * The handler's attempt failed: a transport that made the attempt's publishes part of a broker
   * transaction (`transactional` subscriptions) drops them, and what follows (a dead letter, the
   * acknowledgement) goes into a fresh transaction. The pipeline calls it after every failed attempt.
   * Optional.
   */
  discardEffects?(): Promise<void>;
}

/**
 * The message part of a {@link Delivery}, copied once from a transport message: what a transport's
 * own delivery class extends with its settlement (`ack`, `retryLater`). One object per delivery, no
 * closures.
 */
export abstract class TransportDelivery implements Delivery {
  readonly id: string;
  readonly key: string | undefined;
  readonly headers: Headers;
  readonly body: Uint8Array;
  readonly timestamp: number;

  constructor(
    message: TransportMessage,
    readonly attempt: number,
    readonly source: SourceMetadata,
  ) {
    this.id = message.id;
    this.key = message.key;
    this.headers = message.headers;
    this.body = message.body;
    this.timestamp = message.timestamp;
  }

  abstract ack(): Promise<boolean> | boolean;
  abstract retryLater(delayMs: number, nextAttempt?: number): Promise<boolean>;
}

/** What a handler receives: the delivery, decoded. */
export interface Message<T = unknown> {
  readonly id: string;
  readonly key?: string | undefined;
  readonly headers: Headers;
  /** Raw bytes as received. */
  readonly payload: Uint8Array;
  /** Decoded (and, with a schema, validated) value. */
  readonly value: T;
  readonly timestamp: number;
  /** Delivery attempt, 1-based. Attempt > 1 means this is a retry. */
  readonly attempt: number;
  readonly source: SourceMetadata;
}

/** What application code publishes. Give `value` (encoded by the codec) or raw `payload` bytes. */
export type OutgoingMessage<T = unknown> = {
  /** Defaults to {@link newMessageId}: unique, opaque. */
  readonly id?: string;
  readonly key?: string;
  readonly headers?: Record<string, string>;
  /** Defaults to now. */
  readonly timestamp?: number;
} & ({ readonly value: T; readonly payload?: never } | { readonly payload: Uint8Array; readonly value?: never });

/**
 * Refuses, naming the field, an outgoing message no transport can carry as given: the types say so,
 * but a JavaScript caller (or a cast) is not held to them, and each broker client failed its own way
 * (a number header: a TypeError from ioredis, dropped by kafkajs, kept as a number in memory).
 */
export function assertOutgoing(message: OutgoingMessage<unknown>): void {
  if (typeof message !== 'object' || message === null) throw invalidField('message', 'an object with `value` or `payload`', message);
  const { id, key, headers, timestamp, payload } = message;
  if (id !== undefined && (typeof id !== 'string' || id === '')) throw invalidField('id', 'a non-empty string', id);
  if (key !== undefined && typeof key !== 'string') throw invalidField('key', 'a string', key);
  if (timestamp !== undefined && !Number.isFinite(timestamp)) throw invalidField('timestamp', 'a number (ms since the epoch)', timestamp);
  if (payload !== undefined && !(payload instanceof Uint8Array)) throw invalidField('payload', 'bytes (a Uint8Array or Buffer)', payload);
  if (headers === undefined) return;
  if (typeof headers !== 'object' || headers === null || headers instanceof Map) throw invalidField('headers', 'an object of strings', headers);
  for (const name in headers) if (typeof headers[name] !== 'string') throw invalidField(`headers.${name}`, 'a string', headers[name]);
}

function invalidField(path: string, expected: string, got: unknown): ConfigError {
  return new ConfigError([{ path, message: `must be ${expected} (got ${got === null ? 'null' : Array.isArray(got) ? 'a list' : got instanceof Map ? 'a Map' : typeof got})` }]);
}
