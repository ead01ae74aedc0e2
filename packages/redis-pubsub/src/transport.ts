import { Redis } from 'ioredis';
import {
  ClosedError,
  defaultDeadLetterTopic,
  type BusObserver,
  type Capabilities,
  type ConnectionHealth,
  type SourceMetadata,
  type DeadLetterSource,
  type Transport,
  type SubscriptionStatus,
} from '@switchboard/core';
import {
  ConnectionState,
  OrderedLanes,
  ObserverSet,
  compileTopicPattern,
  redactUrl,
  endpointOf,
  buildDeadLetter,
  type Delivery,
  type DeliveryListener,
  type RawPublisher,
  type TransportMessage,
  type TransportPublishOptions,
  type TransportPublishResult,
  type TransportSubscribeSpec,
  type TransportSubscription,
  refuseOversizeMessages,
  ConnectError,
} from '@switchboard/core/transport';
import { DeadLetterStreamPublisher, readDeadLetterStreamRange } from './dead-letter-stream.js';
import { decodeFrame, encodeFrame } from './frame.js';
import type { RedisOptions } from './options.js';

/**
 * Redis Pub/Sub, declared as it is: it broadcasts to whoever is subscribed at that instant and stores
 * nothing. No groups (every subscriber gets every message), no acknowledgements, no replay, no
 * durable guarantee. Order holds per publishing connection, not per key across publishers, so
 * per-key order is not claimed. Retries run in-process; dead letters go to a Redis Stream.
 */
export const REDIS_PUBSUB_CAPABILITIES: Capabilities = Object.freeze<Capabilities>({
  persistent: false,
  durableGroups: false,
  consumerGroups: false,
  perKeyOrder: false,
  orderings: ['partition', 'key', 'none'],
  acknowledgements: false,
  delayedRedelivery: false,
  replay: false,
  patternSubscriptions: true,
  duplicatesOnRestart: false,
  backpressure: false,
  deliveryGuarantees: ['none'],
  defaultGuarantee: 'none',
  maxMessageBytes: 536_870_912,
});

/** The capabilities of a transport with these options (the size limit is the `maxMessageBytes` option). */
export function redisPubSubCapabilities(options: Pick<RedisOptions, 'maxMessageBytes'>): Capabilities {
  return options.maxMessageBytes === REDIS_PUBSUB_CAPABILITIES.maxMessageBytes ? REDIS_PUBSUB_CAPABILITIES : Object.freeze({ ...REDIS_PUBSUB_CAPABILITIES, maxMessageBytes: options.maxMessageBytes });
}

/** Redis glob that over-matches a core pattern: the literal prefix up to the first wildcard, then `*`. */
export function globForPattern(pattern: string): string {
  const segments = pattern.split('.');
  const firstWildcard = segments.findIndex((s) => s === '*' || s === '#');
  const literal = (firstWildcard < 0 ? segments : segments.slice(0, firstWildcard)).join('.');
  const escaped = literal.replace(/[*?[\]\\]/g, '\\$&');
  return firstWildcard < 0 ? escaped : `${escaped}*`;
}

export class RedisPubSubTransport implements Transport {
  readonly kind = 'redis';
  readonly capabilities: Capabilities;
  /** Observers of every bus using this transport. */
  private readonly observer = new ObserverSet();
  private readonly subscriptions = new Set<TransportSubscription>();
  private readonly deadLetters: DeadLetterStreamPublisher;
  private closed = false;
  /** The publishing connection (down from its close until ready again) and one per subscription. */
  private readonly publisherState: ConnectionState;
  private readonly subscriberStates = new Set<ConnectionState>();

  private constructor(
    private readonly options: RedisOptions,
    /** Publishing connection (never in subscriber mode); also writes the DLQ streams. */
    readonly publisherConnection: Redis,
  ) {
    this.capabilities = redisPubSubCapabilities(options);
    this.deadLetters = new DeadLetterStreamPublisher(publisherConnection, options.deadLetterMaxLen, options.maxMessageBytes);
    this.publisherState = new ConnectionState('publisher', endpointOf(options.url));
    publisherConnection.on('close', () => this.publisherState.down());
    publisherConnection.on('ready', () => this.publisherState.up());
  }

  connections(): readonly ConnectionHealth[] {
    return [this.publisherState, ...this.subscriberStates].map((c) => c.snapshot());
  }

  /** Connects the publishing connection. Rejects with a clear error (URL redacted) if Redis does not answer. */
  static async connect(options: RedisOptions): Promise<RedisPubSubTransport> {
    const connection = await openConnection(options, 'publisher');
    return new RedisPubSubTransport(options, connection);
  }

  observe(observer: BusObserver): () => void {
    return this.observer.add(observer);
  }

  /** PUBLISH each message (pipelined); resolves with the fewest receivers any of them reached. */
  async publish(channel: string, messages: readonly TransportMessage[], _options: TransportPublishOptions): Promise<TransportPublishResult> {
    if (this.closed) throw new ClosedError('redis transport is closed');
    refuseOversizeMessages(channel, messages, this.options.maxMessageBytes);
    let counts: number[];
    if (messages.length === 1) {
      counts = [await this.publisherConnection.publish(channel, encodeFrame(messages[0]!, this.options.wireFormat))];
    } else {
      const pipeline = this.publisherConnection.pipeline();
      for (const message of messages) pipeline.publish(channel, encodeFrame(message, this.options.wireFormat));
      const results = (await pipeline.exec()) ?? [];
      const failed = results.find(([error]) => error);
      if (failed) throw failed[0];
      counts = results.map(([, count]) => Number(count));
    }
    // Zero receivers = lost: the publisher's noReceivers policy (warn / reject / ignore) decides.
    return { receivers: Math.min(...counts) };
  }

  /** One subscriber-mode connection per subscription; resolves once SUBSCRIBE/PSUBSCRIBE is confirmed. */
  async subscribe(spec: TransportSubscribeSpec, listener: DeliveryListener): Promise<TransportSubscription> {
    if (this.closed) throw new ClosedError('redis transport is closed');
    const connection = await openConnection(this.options, 'subscriber');
    const matcher = spec.pattern ? compileTopicPattern(spec.topic) : undefined;
    const glob = spec.pattern ? globForPattern(spec.topic) : undefined;
    const lanes = new OrderedLanes<Delivery>(
      spec.ordering,
      spec.concurrency,
      (delivery) => listener(delivery),
      (error) => this.observer.onEvent({ type: 'internal-error', topic: spec.topic, context: 'redis handler', error }),
    );
    // Shared by every delivery of this subscription: nothing to acknowledge, no redelivery.
    const ack = () => true;
    const retryLater = async (): Promise<boolean> => {
      throw new Error('Redis Pub/Sub cannot redeliver: retries run in-process');
    };
    const sources = new Map<string, SourceMetadata>();
    const receive = (channel: string, frame: Buffer) => {
      if (matcher && !matcher.test(channel)) return;
      let source = sources.get(channel);
      if (!source) {
        // Anyone can PUBLISH to channels a pattern matches: one entry per channel, kept bounded.
        if (sources.size >= 1000) sources.clear();
        sources.set(channel, (source = Object.freeze({ transport: 'redis', topic: channel, channel, ...(spec.pattern ? { pattern: spec.topic } : {}) })));
      }
      const m = decodeFrame(frame);
      const delivery: Delivery = { id: m.id, key: m.key, headers: m.headers, body: m.body, timestamp: m.timestamp, attempt: 1, source, ack, retryLater };
      if (lanes.pending >= this.options.maxBuffered) return this.overflow(spec.topic, delivery);
      lanes.push(m.key, delivery);
    };
    if (glob) connection.on('pmessageBuffer', (_pattern: string, channel: Buffer, frame: Buffer) => receive(channel.toString('utf8'), frame));
    else connection.on('messageBuffer', (channel: Buffer, frame: Buffer) => receive(channel.toString('utf8'), frame));
    const listen = () => (glob ? connection.psubscribe(glob) : connection.subscribe(spec.topic));
    await listen();

    // First, so an observer of the interruption below already reads the connection as down.
    const connectionState = new ConnectionState(`subscriber ${spec.topic}`, endpointOf(this.options.url));
    connection.on('close', () => connectionState.down());
    connection.on('ready', () => connectionState.up());
    this.subscriberStates.add(connectionState);

    // Resubscribe ourselves after a reconnect, so "resumed" is reported only once SUBSCRIBE is confirmed.
    let interruptedAt: number | undefined;
    let ending = false;
    connection.on('close', () => {
      if (ending || interruptedAt !== undefined) return;
      interruptedAt = Date.now();
      this.observer.onEvent({ type: 'subscription-interrupted', topic: spec.topic, transport: 'redis' });
    });
    connection.on('ready', () => {
      if (ending || interruptedAt === undefined) return;
      const since = interruptedAt;
      listen().then(
        () => {
          interruptedAt = undefined;
          this.observer.onEvent({ type: 'subscription-resumed', topic: spec.topic, transport: 'redis', gapMs: Date.now() - since });
        },
        (error: unknown) => this.observer.onEvent({ type: 'internal-error', topic: spec.topic, context: 'redis resubscribe', error }),
      );
    });

    // A subscriber connection only receives: with no command waiting for a reply, a connection that went
    // silent (a partition, a proxy whose server is gone) would never be noticed, and the subscription
    // would stay deaf while reading as live. A PING every commandTimeoutMs gives the reply timeout
    // something to time: no answer, and the socket is replaced (interrupted, then resubscribed and resumed).
    // Only while connected: a PING would otherwise wait in the offline queue, one per interval of an outage.
    const pinger = setInterval(() => connection.status === 'ready' && void connection.ping().catch(() => undefined), this.options.commandTimeoutMs);
    pinger.unref();

    let ended: Promise<void> | undefined;
    // Nothing can be handed back (no redelivery), so close also handles what was already received.
    const end = () =>
      (ended ??= (async () => {
        ending = true;
        clearInterval(pinger);
        await (glob ? connection.punsubscribe(glob) : connection.unsubscribe(spec.topic)).catch(() => undefined);
        await lanes.whenIdle(true);
        connection.disconnect();
        this.subscriptions.delete(subscription);
        this.subscriberStates.delete(connectionState);
      })());
    const status = (): SubscriptionStatus => (interruptedAt !== undefined ? { state: 'interrupted', since: interruptedAt } : { state: 'live' });
    // Nothing is ever handed back: close handles what was received.
    const subscription: TransportSubscription = { close: end, drain: end, status, handedBack: () => 0 };
    this.subscriptions.add(subscription);
    return subscription;
  }

  /** A message that found the subscription's buffer full: dead-lettered unhandled, or dropped, per `overflow`; always reported. */
  private overflow(subscribedTopic: string, delivery: Delivery): void {
    this.observer.onEvent({ type: 'buffer-overflow', topic: subscribedTopic, transport: 'redis', dropped: 1, policy: this.options.overflow });
    if (this.options.overflow !== 'dead-letter') return;
    const now = Date.now();
    const letter = buildDeadLetter(delivery, {
      reason: 'buffer-overflow',
      error: new Error(`subscriber buffer full (maxBuffered ${this.options.maxBuffered})`),
      attempts: 0,
      retryable: true,
      firstFailureAt: now,
      lastFailureAt: now,
      stackTraceLimit: 0,
    });
    this.deadLetters.publish(defaultDeadLetterTopic(delivery.source.topic), [letter]).catch((error: unknown) => {
      this.observer.onEvent({ type: 'publish-failed', topic: defaultDeadLetterTopic(delivery.source.topic), count: 1, error });
    });
  }

  /** Dead letters go to a Redis Stream named like the DLQ topic. */
  deadLetterPublisher(): RawPublisher {
    return this.deadLetters;
  }

  /** The DLQ stream, for tooling (`switchboard dlq ... --source transport`). */
  deadLetterSource(stream: string): DeadLetterSource {
    const redis = this.publisherConnection;
    return {
      read: async (afterCursor, limit) =>
        (await readDeadLetterStreamRange(redis, stream, afterCursor === undefined ? '-' : `(${afterCursor}`, limit)).map(({ entryId, ...letter }) => ({ ...letter, cursor: entryId })),
      remove: async (cursors) => {
        if (cursors.length > 0) await redis.xdel(stream, ...cursors);
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    await this.publisherConnection.quit().catch(() => this.publisherConnection.disconnect());
  }
}

/**
 * Opens and waits for a connection. The publisher fails fast while disconnected (no offline queue), so
 * a publish during an outage rejects instead of hanging. Subscriber connections reconnect forever.
 */
async function openConnection(options: RedisOptions, role: 'publisher' | 'subscriber'): Promise<Redis> {
  const connection = new Redis(options.url, {
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs,
    enableOfflineQueue: role === 'subscriber',
    autoResubscribe: false,
    maxRetriesPerRequest: role === 'publisher' ? 1 : null,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2000),
    // A reply that never comes fails its command, and the silent socket is replaced (see commandTimeoutMs).
    commandTimeout: options.commandTimeoutMs,
    socketTimeout: options.commandTimeoutMs,
    connectionName: `switchboard-${role}`,
    ...(options.username !== undefined ? { username: options.username } : {}),
    ...(options.password !== undefined ? { password: options.password } : {}),
  });
  connection.on('error', () => {
    // Reported through close/interrupted events and failing commands; never log the URL.
  });
  try {
    await connection.connect();
  } catch (error) {
    connection.disconnect();
    throw new ConnectError(`cannot connect to Redis at ${redactUrl(options.url)} within ${options.connectTimeoutMs} ms: ${(error as Error).message}`, endpointOf(options.url), { cause: error });
  }
  return connection;
}
