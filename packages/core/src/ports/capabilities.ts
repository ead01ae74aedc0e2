/**
 * How a subscription orders the handling of its messages.
 * - `partition`: the transport's unit of order (a Kafka partition; on memory and Redis one of
 *   `concurrency` lanes a key hashes to) is handled one message at a time; a retry backing off holds
 *   the whole partition or lane.
 * - `key`: messages sharing a key are handled one at a time in order; up to `concurrency` handlers run
 *   across keys, also within one partition; a retry backing off holds only its key. Messages without a
 *   key are not ordered.
 * - `none`: up to `concurrency` handlers, no order; a retry holds nothing but its own message.
 */
export type Ordering = 'partition' | 'key' | 'none';
export const ORDERINGS: readonly Ordering[] = ['partition', 'key', 'none'];

/**
 * Publish delivery guarantee in broker-neutral words. A publish promise resolves only once the
 * guarantee is met. Adapters document their mapping:
 * - `none`:   handed to the client; nothing confirmed (Kafka acks=0, RabbitMQ no confirm, Redis PUBLISH).
 * - `leader`: the broker accepted it (Kafka acks=1, RabbitMQ confirm of a transient message, memory enqueue).
 * - `all`:    the broker made it durable (Kafka acks=all, RabbitMQ confirm of a persistent message on a
 *             durable queue).
 */
export type DeliveryGuarantee = 'none' | 'leader' | 'all';
export const DELIVERY_GUARANTEES: readonly DeliveryGuarantee[] = ['none', 'leader', 'all'];

/** What a transport can honour. Declared honestly: config validation and the conformance suite rely on it. */
export interface Capabilities {
  /** Messages survive a broker restart. */
  readonly persistent: boolean;
  /** A group keeps receiving (buffering) messages while none of its consumers is connected. */
  readonly durableGroups: boolean;
  /** Consumers sharing a group compete (each message to one of them); different groups each get every message. */
  readonly consumerGroups: boolean;
  /** Messages with the same key are handled in publish order (per subscription). */
  readonly perKeyOrder: boolean;
  /**
   * Orderings a subscription may ask for (see {@link Ordering}); the first is the default. Where the
   * transport has competing consumers the order holds for the group; on a transport without groups
   * (Redis Pub/Sub) it holds per subscription, in the order this process received the messages.
   */
  readonly orderings: readonly Ordering[];
  /** Unsettled deliveries are redelivered (ack/commit exists). */
  readonly acknowledgements: boolean;
  /** `Delivery.retryLater` works: the transport redelivers after a delay, holding no handler slot. */
  readonly delayedRedelivery: boolean;
  /**
   * `publish(…, { delayMs | deliverAt })` is held by the broker (or the transport's store) and
   * delivered at that time, no earlier. Absent = false: such a publish is refused, naming `delayMs`.
   */
  readonly delayedDelivery?: boolean;
  /** A new group can read messages published before it existed. */
  readonly replay: boolean;
  /** Wildcard / pattern subscriptions. */
  readonly patternSubscriptions: boolean;
  /** After a consumer restart, messages handled but not yet acknowledged may arrive again. */
  readonly duplicatesOnRestart: boolean;
  /**
   * Largest header map (approximate encoded bytes) a message may carry, where the broker or client
   * has a hard limit (RabbitMQ: amqplib encodes a header table into 64 KiB). Dead letters are cut to fit.
   */
  readonly maxHeaderBytes?: number;
  /**
   * Largest message (body + headers + key, approximate encoded bytes) the transport accepts, where it
   * has a limit: Kafka's broker default `message.max.bytes`, or the adapter's `maxMessageBytes` option
   * (RabbitMQ's `max_message_size`, Redis' `proto-max-bulk-len`). A larger one is refused with a
   * `MessageTooLargeError`; a dead letter that cannot fit even without its headers is sent without
   * its body (see `bodilessDeadLetter`).
   */
  readonly maxMessageBytes?: number;
  /**
   * The transport can make a fast publisher wait (pull-based brokers, queues with flow control).
   * False for Redis Pub/Sub: it pushes to subscribers whatever their pace, so a subscriber buffers in
   * process up to a high-water mark and applies its overflow policy beyond it.
   */
  readonly backpressure?: boolean;
  /**
   * Transactional subscriptions (`subscribe(..., { transactional: true })`): the handler's publishes on
   * this transport and the message's acknowledgement commit in one broker transaction. Kafka only.
   */
  readonly transactions?: boolean;
  /** Publish guarantees this transport can meet. */
  readonly deliveryGuarantees: readonly DeliveryGuarantee[];
  /** Guarantee used when the publisher does not ask for one. */
  readonly defaultGuarantee: DeliveryGuarantee;
}
