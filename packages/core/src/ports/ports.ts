import type { ZodType } from 'zod';
import type { Capabilities, DeliveryGuarantee } from './capabilities.js';
import type { Codec } from './codec.js';
import type { ContractPublishOptions, TopicContract } from './contract.js';
import type { Ordering } from './capabilities.js';
import type { Delivery, Message, OutgoingMessage, TransportMessage } from './message.js';
import type { ErrorClassifier, RetryPolicyInput } from './retry.js';
import type { BusObserver, FailureReason } from './events.js';
import type { ConnectionHealth, SubscriptionStatus } from './health.js';

// ───────────────────────────── Application ports ─────────────────────────────
// What application code injects. Two methods each; everything else wraps them.

/**
 * Optional ability of a {@link Publisher}: publishing to one consumer group of a topic (replays).
 * Found by a type check (`'publishToGroup' in publisher`).
 */
export interface GroupPublisher {
  /** Publishes `messages` so only `group`'s subscribers of `topic` handle them (see `Transport.publishToGroup`). */
  publishToGroup<T>(topic: string, group: string, messages: OutgoingMessage<T> | readonly OutgoingMessage<T>[]): Promise<PublishReceipt>;
}

/** Publishes messages to topics. */
export interface Publisher {
  /**
   * Publishes one message or a batch to `topic`. Resolves only when the publisher's delivery guarantee
   * is met for every message (see {@link DeliveryGuarantee}); rejects with a `PublishError` otherwise.
   * A batch keeps its order for messages sharing a key.
   */
  publish<T>(topic: string, messages: OutgoingMessage<T> | readonly OutgoingMessage<T>[], options?: PublishOptions): Promise<PublishReceipt>;
  /**
   * Publishes one value to a contract's topic, typed from its schema. Validated first when the
   * contract says `validateOnPublish` (an invalid value rejects with a SchemaValidationError and is
   * not sent); keyed by `options.key`, else the contract's key function.
   */
  publish<Out, In>(contract: TopicContract<Out, In>, value: In, options?: ContractPublishOptions): Promise<PublishReceipt>;
  /** Waits for publishes under way, then releases what this publisher holds. Idempotent. */
  close(): Promise<void>;
}

export interface PublishReceipt {
  /** Ids of the published messages, in order. */
  readonly ids: readonly string[];
  /** `delivered`: the guarantee was met. `stored`: a fallback store kept it for later relay (resilient publishers only). */
  readonly status: 'delivered' | 'stored';
  /** Receivers reached, where the transport knows (Redis: PUBLISH's answer; memory: groups). */
  readonly receivers?: number;
}

/** A message handler. Resolving means success; throwing means failure (an error it swallows is a success). */
export type Handler<T> = (message: Message<T>) => Promise<void> | void;

/** Subscribes handlers to topics. */
export interface Subscriber {
  /**
   * Subscribes `handler` to `topic` (or to a pattern with `{ pattern: true }`). Resolves once the
   * subscription is live: messages published after that reach it.
   */
  subscribe<T = unknown>(topic: string, handler: Handler<T>, options?: SubscribeOptions<T>): Promise<Subscription>;
  /** Subscribes to a contract's topic: the handler's messages are typed from its schema, and validated against it. */
  subscribe<Out, In>(contract: TopicContract<Out, In>, handler: Handler<Out>, options?: Omit<SubscribeOptions<Out>, 'schema' | 'pattern'>): Promise<Subscription>;
  /**
   * Subscribes a handler that takes up to `batch.maxSize` messages at once (after at most
   * `batch.maxWaitMs`). Each message keeps its own outcome in the pipeline: the handler throws (all
   * failed), returns nothing (all handled) or `{ failed: [{ message, error }] }`; failed messages are
   * retried or dead-lettered one by one, and a retried message joins a later batch. Metrics count
   * messages, not batches. Refused (CapabilityError) where the transport handles one message at a time.
   */
  subscribeBatch<T = unknown>(topic: string, handler: BatchHandler<T>, options: BatchSubscribeOptions<T>): Promise<Subscription>;
  subscribeBatch<Out, In>(contract: TopicContract<Out, In>, handler: BatchHandler<Out>, options: Omit<BatchSubscribeOptions<Out>, 'schema' | 'pattern'>): Promise<Subscription>;
  /** Closes every subscription made through this subscriber (as `Subscription.close`). Idempotent. */
  close(): Promise<void>;
}

/** A live subscription. */
export interface Subscription {
  readonly topic: string;
  readonly group?: string;
  /**
   * Stops taking deliveries. Handler calls already running finish and are acknowledged; deliveries
   * received but not started are handed back unacknowledged (redelivered to the group where the
   * transport has acknowledgements). Resolves when nothing of this subscription runs. Idempotent.
   * So a handler must not await its own subscription's `close()` (nor the bus's): it would wait for
   * itself. Call it without `await` there; it completes once the handler returned.
   */
  close(): Promise<void>;
  /**
   * Stops taking new deliveries, handles everything already received (in-process retries and retries
   * the transport holds in this process included), then closes. A retry the broker holds (RabbitMQ
   * `retryMode: broker`) stays with the broker and goes to the group. `close()` during a drain stops
   * it: backoff waits end and what was not started is handed back, as for `close()`.
   */
  drain(): Promise<void>;
}

/** Context of a message given up on, for the final-failure hook (e.g. store it for manual reprocessing). */
export interface FinalFailure {
  readonly message: Omit<Message<unknown>, 'value'> & { readonly value?: unknown };
  readonly reason: FailureReason;
  readonly error: unknown;
  readonly attempts: number;
  /** Where it was dead-lettered, or undefined when the DLQ is off. */
  readonly deadLetterTopic?: string;
}

/**
 * A step of the consumer pipeline around the handler (dedup, timeout, throttle, logging context...).
 * It runs inside the retry loop, once per handler attempt, after decode and validation (and inside the
 * delivery's trace span): it sees the decoded message and calls `next()` to run the later steps and
 * the handler, once: a second call rejects (retrying belongs to the pipeline, which counts the attempts).
 * What it throws is a handler failure (classified, retried, dead-lettered); returning
 * without calling `next()` skips the handler and counts as success. Steps run in the order given:
 * the subscriber's (`defaults.use`, e.g. from `createBus({ defaults })`) first, then the subscription's.
 */
export type Middleware<T = unknown> = (message: Message<T>, next: () => Promise<void>) => Promise<void> | void;

export interface SubscribeOptions<T = unknown> {
  /** Consumer group: subscribers of one group compete; each group gets every message. Default "default". */
  readonly group?: string;
  /** Treat `topic` as a pattern (`*` one segment, `#`/`>` the rest; transport-specific syntax documented per adapter). */
  readonly pattern?: boolean;
  /** Handler calls running at once. Default 1. Per-key order is kept where the transport promises it. */
  readonly concurrency?: number;
  /** Steps around the handler, in order (see {@link Middleware}); after the bus defaults' `use` steps. */
  readonly use?: readonly Middleware<T>[];
  /**
   * What `concurrency` may run side by side (see {@link Ordering}): `partition` (one message at a time
   * per partition, or per key lane on memory and Redis), `key` (one at a time per key, many keys of a
   * partition at once; a retry holds only its key), `none`. Default: the transport's first declared
   * ordering (`capabilities.orderings`): `partition` on Kafka, memory and Redis, `none` on RabbitMQ.
   */
  readonly ordering?: Ordering;
  /** Where a new group starts: only new messages (default) or everything kept (transports with replay). */
  readonly startFrom?: 'latest' | 'earliest';
  readonly codec?: Codec;
  /** Validates the decoded value; failures go straight to the DLQ with reason `validation-failed`. */
  readonly schema?: ZodType<T>;
  readonly retry?: RetryPolicyInput;
  /** `transport`: redelivery after the backoff without holding a handler slot (where declared); `in-process`: wait in the handler slot. Default: `transport` when available. */
  readonly retryMode?: 'transport' | 'in-process';
  readonly classify?: ErrorClassifier;
  /** Dead-letter topic, default `<topic>-dlq`; false: no DLQ (then the final-failure hook is the only record). */
  readonly deadLetter?: string | false;
  /** Called after the dead-letter publish, before the ack. Throwing is reported; with the DLQ off it delays the ack. */
  readonly onFinalFailure?: (failure: FinalFailure) => Promise<void> | void;
  /** Max characters of the stack trace header. Default 4096. */
  readonly stackTraceLimit?: number;
  /**
   * One broker transaction per message: what the handler publishes through a publisher of this bus
   * (on the same transport), a dead letter, and the message's acknowledgement commit together, or
   * none of them does (a handler that throws aborts its publishes). Consumers that read committed
   * data only (Kafka `read_committed`, Switchboard's default) never see the output of a failed or
   * repeated attempt. Needs a transport declaring `transactions` (Kafka, driver kafkajs), ordering
   * `partition` and the transport's retries (`retryMode` not `in-process`); refused otherwise.
   * Publishes to another transport, and any other side effect, are not part of it.
   */
  readonly transactional?: boolean;
  /**
   * The subscription is the only reader of its topic and owns it (request/reply's reply topics): when
   * it closes, what the broker keeps for it goes — Kafka: the topic; RabbitMQ: its queue (auto-delete,
   * so also when the process dies); Redis Streams: the stream; NATS: its consumer and the subject's
   * messages; PostgreSQL: its subscription and deliveries; memory: its group. Not with patterns.
   */
  readonly ephemeral?: boolean;
}

// ───────────────────────────── Transport SPI ─────────────────────────────
// What an adapter implements. Bytes in, bytes out; no retry, DLQ or codec logic lives here.

export interface TransportPublishOptions {
  readonly guarantee: DeliveryGuarantee;
  /**
   * Deliver no earlier than this time (ms since the epoch). Only asked of transports declaring
   * `delayedDelivery`; the guarantee then covers the held message.
   */
  readonly deliverAt?: number;
  /**
   * Publish only to a destination that exists now: the transport never creates it for this publish
   * (a Kafka topic, a Redis stream), and a destination that does not exist resolves with
   * `receivers: 0` (nobody could get the message). The publisher sets it for reply topics
   * (`sb.reply.*`): their name comes from a request's `x-reply-to` header, which any producer can
   * set, and a reply sent after its requester closed must not bring the deleted topic back.
   */
  readonly existingOnly?: boolean;
}

/** Options of one `publish` call. */
export interface PublishOptions {
  /** Deliver this many ms from now, no earlier (0 – 30 days). Where the transport declares `delayedDelivery`; refused elsewhere. */
  readonly delayMs?: number;
  /** Deliver at this time, no earlier (a time past is now). Not with `delayMs`. */
  readonly deliverAt?: number | Date;
}

export interface TransportPublishResult {
  readonly receivers?: number;
  /** True when a fallback store kept the messages for later relay instead of the broker. */
  readonly stored?: boolean;
}

/** Publishes encoded messages. */
export interface RawPublisher {
  /** Resolves when `options.guarantee` is met for every message; rejects otherwise. */
  publish(topic: string, messages: readonly TransportMessage[], options: TransportPublishOptions): Promise<TransportPublishResult>;
}

export interface TransportSubscribeSpec {
  readonly topic: string;
  readonly pattern: boolean;
  readonly group: string;
  readonly concurrency: number;
  /** One of the transport's declared `capabilities.orderings`. */
  readonly ordering: Ordering;
  readonly startFrom: 'latest' | 'earliest';
  /** See {@link SubscribeOptions.transactional}; only asked of transports declaring `transactions`. */
  readonly transactional?: boolean;
  /** See {@link SubscribeOptions.ephemeral}. */
  readonly ephemeral?: boolean;
}

/**
 * Called by the transport for each delivery. Returns once it settled the delivery (ack or retryLater):
 * synchronously (undefined) when everything it did was synchronous, the handler and the transport's
 * `ack` included, else a promise that resolves then. If it finishes without settling, the transport
 * hands the message back unacknowledged (redelivered later where the transport has acknowledgements).
 * It never throws or rejects in normal operation.
 */
export type DeliveryListener = (delivery: Delivery) => Promise<void> | void;

export interface TransportSubscription {
  /** See {@link Subscription.close}. */
  close(): Promise<void>;
  /** See {@link Subscription.drain}. */
  drain(): Promise<void>;
  /**
   * Live or interrupted (since when), and lag where the broker tells it. Synchronous and cheap: it
   * reports what the transport last saw, it asks the broker nothing. Optional: without it, health
   * follows the transport's `subscription-interrupted` / `-resumed` events.
   */
  status?(): SubscriptionStatus;
  /**
   * Messages this subscription had received and handed back unacknowledged (requeued, left
   * uncommitted, returned to the group) because it closed before handling them; at least that many
   * where a client prefetches more than it shows (kafkajs). Optional: a transport that cannot count leaves it out.
   */
  handedBack?(): number;
}

/** A broker connection, as an adapter provides it. */
export interface Transport extends RawPublisher {
  readonly kind: string;
  readonly capabilities: Capabilities;
  /** Resolves once the subscription is live. */
  subscribe(spec: TransportSubscribeSpec, listener: DeliveryListener): Promise<TransportSubscription>;
  /**
   * Where this transport's dead letters go when the subscription does not say otherwise. Transports
   * that store nothing (Redis Pub/Sub) return a durable destination here. Default: the transport itself.
   */
  deadLetterPublisher?(): RawPublisher;
  /**
   * True while the calling code runs inside a transactional delivery of this transport (an async
   * context, see {@link SubscribeOptions.transactional}): a `publish` then joins that transaction
   * instead of being sent, so the bus sends it straight to the transport (never coalesced with
   * publishes of other contexts) and a fallback wrapper never diverts it. Optional.
   */
  inTransaction?(): boolean;
  /**
   * Where dead letters can be read back when they live outside the broker's queues (Redis Pub/Sub
   * keeps them in a stream). Transports whose DLQ is a normal topic/queue leave this out: tooling
   * subscribes to the DLQ topic instead.
   */
  deadLetterSource?(deadLetterTopic: string): DeadLetterSource | undefined;
  /**
   * Publishes to one consumer group of `topic` only, where the broker can address it (RabbitMQ: the
   * group's queue). Used by replays, so a replayed message does not reach groups that handled it.
   * Transports without it get the replay with a replay-target header that other groups skip.
   */
  publishToGroup?(topic: string, group: string, messages: readonly TransportMessage[], options: TransportPublishOptions): Promise<TransportPublishResult>;
  /**
   * Adds an observer for transport-level events (subscription interrupted/resumed, untrusted headers,
   * buffer overflow...). Every bus over a shared transport adds its own; returns the function that
   * removes it (called when the bus closes). Optional.
   */
  observe?(observer: BusObserver): () => void;
  /** The state of each broker connection this transport holds, as last seen (synchronous, asks nothing). Optional. */
  connections?(): readonly ConnectionHealth[];
  /**
   * Why the broker cannot hold a topic of this name, or undefined when it can (Kafka's topic name
   * rule, an AMQP routing key, a NATS subject, an MQTT topic). `subscribe` checks the subscription's
   * dead-letter topic with it, so a name the broker refuses fails at startup, not at the first dead
   * letter. Optional: a transport without it takes any name.
   */
  topicProblem?(topic: string): string | undefined;
  /** Closes subscriptions and connections. Idempotent. */
  close(): Promise<void>;
}

/** A stored dead letter with its position in the store. */
export interface StoredDeadLetter extends TransportMessage {
  readonly cursor: string;
}

/** Reads and removes dead letters kept outside the broker's queues. */
export interface DeadLetterSource {
  /** Oldest first, strictly after `afterCursor` (from the start when undefined). */
  read(afterCursor: string | undefined, limit: number): Promise<StoredDeadLetter[]>;
  /** Deletes the given letters (after a replay, or a purge). */
  remove(cursors: readonly string[]): Promise<void>;
}

// Batch handlers: the types of `Subscriber.subscribeBatch` (the batching itself is `bus/batch.ts`).

/** How messages are gathered for a batch handler. */
export interface BatchOptions {
  /** At most this many messages per call (1–10,000). */
  readonly maxSize: number;
  /** A batch is handed over at the latest this long after its first message arrived, full or not (0–600,000 ms). */
  readonly maxWaitMs: number;
}

/** One message of a batch that failed, and why (classified like a thrown error: retried, or dead-lettered). */
export interface BatchFailure<T> {
  readonly message: Message<T>;
  readonly error: unknown;
}

/**
 * What a batch handler reports: nothing (every message succeeded), or the messages that failed (the
 * others succeeded). Throwing fails every message of the batch with that error.
 */
export type BatchResult<T> = void | undefined | { readonly failed: readonly BatchFailure<T>[] };

export type BatchHandler<T> = (messages: readonly Message<T>[]) => Promise<BatchResult<T>> | BatchResult<T>;

/**
 * Options of a batch subscription: those of `subscribe` plus `batch`. Batches gather messages of
 * different keys handled side by side, so ordering is `key` (per-key order kept: a key's next message
 * waits for its previous one, so a batch holds at most one message per key) or `none`; the default is
 * `key` where the transport offers it. `concurrency` (default `batch.maxSize`) bounds the messages in
 * flight, so it must be at least `batch.maxSize`. Not with `transactional`.
 */
export type BatchSubscribeOptions<T = unknown> = Omit<SubscribeOptions<T>, 'ordering' | 'transactional'> & {
  readonly batch: BatchOptions;
  readonly ordering?: 'key' | 'none';
};
