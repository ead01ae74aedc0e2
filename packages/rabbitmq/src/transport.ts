import { once } from 'node:events';
import * as amqplib from 'amqplib';
import type { Channel, ConfirmChannel, ConsumeMessage, RecoveringChannelModel } from 'amqplib';
import {
  ClosedError,
  PublishError,
  DEAD_LETTER_SUFFIX,
  type BusObserver,
  type Capabilities,
  type ConnectionHealth,
  type SourceMetadata,
  type Transport,
  type SubscriptionStatus,
} from '@switchboard/core';
import {
  asBuffer,
  TransportDelivery,
  ConnectionState,
  InFlight,
  withDeadline,
  refuseOversizeMessages,
  ObserverSet,
  createControlSigner,
  compileTopicPattern,
  type ControlSigner,
  type DeliveryListener,
  type RawPublisher,
  type TransportMessage,
  type TransportPublishOptions,
  type TransportPublishResult,
  type TransportSubscribeSpec,
  type TransportSubscription,
  ConnectError,
} from '@switchboard/core/transport';
import { fromConsumeMessage, toPublishOptions, type ReceivedMessage, type ReceiveContext } from './codec.js';
import { Endpoints } from './endpoints.js';
import type { RabbitOptions, RabbitRoute } from './options.js';

/**
 * RabbitMQ capabilities. Persistent (durable queues, persistent messages under "all"); groups are
 * queues (competing consumers within, a queue per group across); no per-key order (prefetch > 1 and
 * competing consumers interleave); unacked deliveries come back after a restart, so duplicates happen.
 * Delayed redelivery is broker-native in `retryMode: broker`.
 */
export function rabbitCapabilities(options: Pick<RabbitOptions, 'retryMode'> & { readonly maxMessageBytes?: number | undefined }): Capabilities {
  return {
    persistent: true,
    durableGroups: true,
    consumerGroups: true,
    perKeyOrder: false,
    orderings: ['none'],
    acknowledgements: true,
    delayedRedelivery: options.retryMode === 'broker',
    replay: false,
    patternSubscriptions: true,
    duplicatesOnRestart: true,
    deliveryGuarantees: ['none', 'leader', 'all'],
    defaultGuarantee: 'all',
    maxHeaderBytes: RABBIT_MAX_HEADER_BYTES,
    maxMessageBytes: options.maxMessageBytes ?? 134_217_728,
    backpressure: true,
  };
}

/** amqplib encodes a header table into a 64 KiB buffer; this leaves room for its encoding and our own headers. */
export const RABBIT_MAX_HEADER_BYTES = 60_000;

/** Queue of a consumer group: the topic itself for the default group, `<topic>.<group>` otherwise. */
export function queueNameFor(topic: string, group: string): string {
  return group === '' || group === 'default' ? topic : `${topic}.${group}`;
}

/** Per-delay retry queue of a work queue: messages wait `delayMs` there, then dead-letter back. */
export function retryQueueName(queue: string, delayMs: number): string {
  return `${queue}.retry.${delayMs}`;
}

interface PublishLink {
  readonly channel: ConfirmChannel;
  /** Exchanges and queues already declared on this connection. */
  readonly declared: Set<string>;
  /** messageIds the broker returned as unroutable (basic.return precedes the confirm). */
  readonly returned: Set<string>;
}

export class RabbitTransport implements Transport {
  readonly kind = 'rabbitmq';
  readonly capabilities: Capabilities;
  /** Observers of every bus using this transport. */
  private readonly observer = new ObserverSet();
  /** Times a publish waited for the channel's `drain` (amqplib's write buffer was full). */
  backpressureWaits = 0;
  private link: PublishLink | undefined;
  private linking: Promise<PublishLink> | undefined;
  private readonly subscriptions = new Set<RabbitSubscription>();
  private closed = false;
  /** Signs and verifies control headers when a signing key is configured. */
  readonly signer: ControlSigner | undefined;
  private checking: Promise<Channel> | undefined;
  private topologyTimer: NodeJS.Timeout | undefined;

  /** The AMQP connection: down from a disconnect until the recovering model connects again. */
  private readonly connectionState: ConnectionState;

  private constructor(
    readonly options: RabbitOptions,
    private readonly model: RecoveringChannelModel,
    private readonly endpoints: Endpoints,
  ) {
    this.capabilities = rabbitCapabilities(options);
    this.connectionState = new ConnectionState('connection', endpoints.current());
    this.signer = options.signingKey !== undefined ? createControlSigner(options.signingKey) : undefined;
    model.on('disconnect', (error: Error) => {
      this.connectionState.down();
      this.link = undefined;
      this.linking = undefined;
      for (const subscription of this.subscriptions) subscription.interrupted(error);
    });
    model.on('connect', () => {
      this.connectionState.up();
      for (const subscription of this.subscriptions) subscription.restart();
    });
    model.on('error', () => {
      // surfaced through disconnect / failing operations; never log the URL
    });
  }

  /** Connects (recovering connection). Rejects with a clear error, URL redacted, if the broker does not answer. */
  static async connect(options: RabbitOptions): Promise<RabbitTransport> {
    const endpoints = new Endpoints(options.url);
    let model: RecoveringChannelModel;
    try {
      model = await amqplib.connect(endpoints.target(), {
        timeout: options.connectTimeoutMs,
        recovery: {
          initialDelay: options.reconnectInitialDelayMs,
          maxDelay: options.reconnectMaxDelayMs,
          // The first connection tries each node once.
          initialMaxRetries: endpoints.count - 1,
          waitForConnect: false,
        },
      });
      if (endpoints.count > 1) {
        model.on('connect-failed', () => endpoints.advance());
        model.on('disconnect', () => endpoints.advance());
      }
      await model.waitForConnect();
    } catch (error) {
      throw new ConnectError(`cannot connect to RabbitMQ at ${endpoints.describe()}: ${(error as Error).message}`, endpoints.describe(), { cause: error });
    }
    return new RabbitTransport(options, model, endpoints);
  }

  /** The one AMQP connection every channel of this transport shares (subscriptions report through `status`). */
  connections(): readonly ConnectionHealth[] {
    const { name, state, since } = this.connectionState.snapshot();
    return [{ name, state, since, endpoint: this.endpoints.current() }];
  }

  observe(observer: BusObserver): () => void {
    return this.observer.add(observer);
  }

  /** Route of a core topic: its configured route, else the main topic exchange with the topic as routing key. */
  routeFor(topic: string): RabbitRoute {
    return this.options.routes[topic] ?? { exchange: this.options.exchange, type: 'topic' };
  }

  /**
   * Publishes on a confirm channel. "none": transient, resolves once written. "leader": transient,
   * resolves on the broker's confirms. "all": persistent (delivery mode 2), resolves on confirms.
   * Confirms of a batch are awaited together, never one by one; `drain` is honoured. A message the
   * broker returns as unroutable (mandatory) is reported as `receivers: 0` under "leader", and rejects
   * the publish (a PublishError) under "all": nothing stored it.
   */
  async publish(topic: string, messages: readonly TransportMessage[], options: TransportPublishOptions): Promise<TransportPublishResult> {
    const route = this.routeFor(topic);
    const result = await this.publishTo(route.exchange, route.type, route.routingKey ?? topic, topic, messages, options.guarantee);
    // "all" promises the message was made durable; a returned one is stored nowhere, whatever the
    // publisher's noReceivers policy says (that policy decides for "none" and "leader").
    if (result.receivers === 0 && options.guarantee === 'all') {
      throw new PublishError(
        `RabbitMQ returned message(s) to "${topic}" as unroutable (no queue bound to "${route.exchange}" for it): nothing stored them, so guarantee "all" is not met. Subscribe once (that declares the group's queue), or publish with guarantee "leader" to accept the loss`,
        topic,
      );
    }
    return result;
  }

  /**
   * Replays to one group: straight to the group's queue through the default exchange, so other groups'
   * queues do not get a copy. If no such queue exists (a pattern subscription's queue is named after
   * its pattern), through the topic's route instead; the replay-target header makes other groups skip it.
   */
  async publishToGroup(topic: string, group: string, messages: readonly TransportMessage[], options: TransportPublishOptions): Promise<TransportPublishResult> {
    const direct = await this.publishTo('', undefined, queueNameFor(topic, group), topic, messages, options.guarantee === 'none' ? 'leader' : options.guarantee);
    if (direct.receivers !== 0) return direct;
    return this.publish(topic, messages, options);
  }

  private async publishTo(
    exchange: string,
    type: RabbitRoute['type'] | undefined,
    routingKey: string,
    topic: string,
    messages: readonly TransportMessage[],
    guarantee: TransportPublishOptions['guarantee'],
  ): Promise<TransportPublishResult> {
    if (this.closed) throw new ClosedError('rabbitmq transport is closed');
    refuseOversizeMessages(topic, messages, this.options.maxMessageBytes);
    const deadline = Date.now() + this.options.publishTimeoutMs;
    const link = await this.publishLink(deadline);
    if (type && exchange !== '') await this.declareExchange(link, exchange, type);
    // One promise per batch, settled by counting the broker's confirms (no promise per message).
    let unroutable = 0;
    let pending = messages.length;
    let settle!: { resolve: () => void; reject: (error: Error) => void };
    const confirmed = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    if (pending === 0) settle.resolve();
    const onConfirm = (id: string) => (error: unknown) => {
      if (error) return settle.reject(new PublishError(`RabbitMQ nacked message ${id} on "${exchange}" / "${routingKey}"`, topic, { cause: error }));
      if (link.returned.delete(id)) unroutable++;
      if (--pending === 0) settle.resolve();
    };
    for (const message of messages) {
      const content = asBuffer(message.body);
      const written = link.channel.publish(exchange, routingKey, content, toPublishOptions(topic, routingKey, message, guarantee, this.signer), onConfirm(message.id));
      if (!written) {
        this.backpressureWaits++;
        await withDeadline(once(link.channel, 'drain'), deadline, () => new PublishError(`RabbitMQ applied backpressure for over ${this.options.publishTimeoutMs} ms`, topic));
      }
    }
    if (guarantee === 'none') {
      confirmed.catch(() => undefined);
      return {};
    }
    await withDeadline(confirmed, deadline, () => new PublishError(`no confirm from RabbitMQ within ${this.options.publishTimeoutMs} ms for ${messages.length} message(s) to "${topic}"`, topic));
    // Unroutable (mandatory + basic.return): nobody got it; the publisher's noReceivers policy decides.
    return unroutable === 0 ? {} : { receivers: 0 };
  }

  /** Dead letters: durable queue named like the DLQ topic, bound to the main exchange, then a confirmed persistent publish. */
  deadLetterPublisher(): RawPublisher {
    return {
      publish: async (dlqTopic, messages) => {
        const link = await this.publishLink(Date.now() + this.options.publishTimeoutMs);
        await this.declareExchange(link, this.options.exchange, 'topic');
        await this.declareQueue(link, dlqTopic, this.queueArguments(), [this.options.exchange, dlqTopic]);
        return this.publishTo(this.options.exchange, undefined, dlqTopic, dlqTopic, messages, 'all');
      },
    };
  }

  /**
   * Sends a copy of `message` to the per-delay retry queue of `queue` (confirmed), to come back after
   * `delayMs` as `nextAttempt`. Control headers are written from the verified values in `received`.
   */
  async sendToRetryQueue(queue: string, message: ConsumeMessage, received: ReceivedMessage, nextAttempt: number, delayMs: number): Promise<void> {
    const link = await this.publishLink(Date.now() + this.options.publishTimeoutMs);
    const retryQueue = retryQueueName(queue, delayMs);
    await this.declareQueue(link, retryQueue, {
      'x-message-ttl': delayMs,
      'x-dead-letter-exchange': '',
      'x-dead-letter-routing-key': queue,
      'x-expires': Math.max(delayMs * 2 + 60_000, 600_000),
    });
    const headers = { ...(message.properties.headers ?? {}) } as Record<string, string>;
    delete headers['x-delivery-count'];
    delete headers['x-death'];
    const properties = toPublishOptions(received.topic, retryQueue, { ...received.transport, headers }, message.properties.deliveryMode === 2 ? 'all' : 'leader', this.signer, nextAttempt);
    await new Promise<void>((resolve, reject) => {
      link.channel.publish('', retryQueue, message.content, { ...properties, mandatory: false }, (error) => (error ? reject(error) : resolve()));
    });
  }

  async subscribe(spec: TransportSubscribeSpec, listener: DeliveryListener): Promise<TransportSubscription> {
    if (this.closed) throw new ClosedError('rabbitmq transport is closed');
    const subscription = new RabbitSubscription(this, spec, listener, () => this.observer);
    await subscription.start();
    this.subscriptions.add(subscription);
    subscription.onEnded(() => this.subscriptions.delete(subscription));
    this.checkTopologyPeriodically();
    return subscription;
  }

  /** Arguments of the queues this transport declares (queue type, expiry). */
  queueArguments(): Record<string, unknown> {
    const args: Record<string, unknown> = {};
    if (this.options.queueType === 'quorum') args['x-queue-type'] = 'quorum';
    if (this.options.queueExpiresMs !== undefined) args['x-expires'] = this.options.queueExpiresMs;
    return args;
  }

  /** Declares the group queue of `spec` with its bindings (and its DLQ for quorum delivery limits) on `channel`. */
  async declareGroupQueue(channel: Channel, spec: TransportSubscribeSpec): Promise<string> {
    const queue = queueNameFor(spec.topic, spec.group);
    const route = this.routeOfSubscription(spec);
    await channel.assertExchange(route.exchange, route.type, { durable: true });
    const args = this.queueArguments();
    if (this.options.deliveryLimit !== undefined) {
      const dlq = `${queue}-dlq`;
      await channel.assertQueue(dlq, { durable: true, arguments: this.queueArguments() });
      Object.assign(args, {
        'x-delivery-limit': this.options.deliveryLimit,
        'x-dead-letter-exchange': '',
        'x-dead-letter-routing-key': dlq,
        'x-dead-letter-strategy': 'at-least-once',
        'x-overflow': 'reject-publish',
      });
    }
    await channel.assertQueue(queue, { durable: true, arguments: args });
    await this.bindGroupQueue(channel, spec, queue);
    return queue;
  }

  /** The exchange a subscription's queue is bound to: the main one for patterns, else the topic's route. */
  routeOfSubscription(spec: TransportSubscribeSpec): RabbitRoute {
    return spec.pattern ? { exchange: this.options.exchange, type: 'topic' } : this.routeFor(spec.topic);
  }

  /** Binds `queue` for `spec` (idempotent: binding again what exists changes nothing). */
  async bindGroupQueue(channel: Channel, spec: TransportSubscribeSpec, queue: string): Promise<void> {
    const route = this.routeOfSubscription(spec);
    if (route.type === 'headers') {
      const binding = route.headers?.[spec.group || 'default'] ?? route.headers?.default ?? { 'x-match': 'all' };
      await channel.bindQueue(queue, route.exchange, '', binding);
    } else {
      await channel.bindQueue(queue, route.exchange, route.type === 'fanout' ? '' : (route.routingKey ?? spec.topic));
    }
  }

  /**
   * A channel for topology checks (passive declares), shared by this transport's subscriptions and
   * opened again after the broker closed it (a failed passive check closes its channel).
   */
  topologyChannel(): Promise<Channel> {
    this.checking ??= this.model.createChannel().then(
      (channel) => {
        channel.on('error', () => undefined);
        channel.on('close', () => (this.checking = undefined));
        return channel;
      },
      (error: unknown) => {
        this.checking = undefined;
        throw error;
      },
    );
    return this.checking;
  }

  /**
   * Every `topologyCheckIntervalMs`: each subscription checks that its exchange and queue exist and binds
   * its queue again (see {@link RabbitSubscription.checkTopology}). One subscription at a time.
   */
  private checkTopologyPeriodically(): void {
    if (this.topologyTimer || this.options.topologyCheckIntervalMs === 0) return;
    const round = async () => {
      for (const subscription of [...this.subscriptions]) await subscription.checkTopology();
      if (!this.closed) this.topologyTimer = setTimeout(() => void round(), this.options.topologyCheckIntervalMs).unref();
    };
    this.topologyTimer = setTimeout(() => void round(), this.options.topologyCheckIntervalMs).unref();
  }

  /** A message to `exchange` / `routingKey` came back unroutable: a local subscription that should have had it lost its binding. */
  private onUnroutable(exchange: string, routingKey: string): void {
    for (const subscription of this.subscriptions)
      if (subscription.shouldReceive(exchange, routingKey)) subscription.topologyLost(new Error(`a message to "${exchange}" / "${routingKey}" was unroutable: the queue's binding is gone`));
  }

  /** A channel for a subscription (waits for the connection while it recovers). */
  createChannel(): Promise<Channel> {
    return this.model.createChannel();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.topologyTimer);
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    await this.model.close().catch(() => undefined);
  }

  private async declareExchange(link: PublishLink, exchange: string, type: RabbitRoute['type']): Promise<void> {
    const id = `exchange:${exchange}`;
    if (link.declared.has(id)) return;
    await link.channel.assertExchange(exchange, type, { durable: true });
    link.declared.add(id);
  }

  private async declareQueue(link: PublishLink, queue: string, args: Record<string, unknown>, binding?: [exchange: string, routingKey: string]): Promise<void> {
    const id = `queue:${queue}`;
    if (link.declared.has(id)) return;
    await link.channel.assertQueue(queue, { durable: true, arguments: args });
    if (binding) await link.channel.bindQueue(queue, binding[0], binding[1]);
    link.declared.add(id);
  }

  /** The confirm channel of the current connection, created on demand; waits while reconnecting, up to `deadline`. */
  private publishLink(deadline: number): Promise<PublishLink> {
    if (this.link) return Promise.resolve(this.link);
    this.linking ??= (async () => {
      const channel = await this.model.createConfirmChannel();
      const link: PublishLink = { channel, declared: new Set(), returned: new Set() };
      channel.on('return', (message: ConsumeMessage) => {
        if (typeof message.properties.messageId === 'string') link.returned.add(message.properties.messageId);
        this.onUnroutable(message.fields.exchange, message.fields.routingKey);
      });
      channel.on('error', () => undefined);
      channel.on('close', () => {
        if (this.link === link) this.link = undefined;
        this.linking = undefined;
      });
      this.link = link;
      return link;
    })().catch((error: unknown) => {
      this.linking = undefined;
      throw error;
    });
    return withDeadline(this.linking, deadline, () => new PublishError(`RabbitMQ unreachable: no connection within ${this.options.publishTimeoutMs} ms`, ''));
  }
}

/**
 * One consumer on a group queue, on its own channel (prefetch = concurrency). Survives connection
 * loss and server-side cancels by starting again on a new channel; deliveries unacked at that moment
 * are redelivered by the broker.
 */
class RabbitSubscription implements TransportSubscription {
  private channel: Channel | undefined;
  private consumerTag: string | undefined;
  private queue = '';
  private readonly inFlight = new InFlight();
  private state: 'active' | 'closing' | 'draining' | 'ended' = 'active';
  private ending: Promise<void> | undefined;
  private interruptedAt: number | undefined;
  private handedBackCount = 0;
  private restarting: Promise<void> | undefined;
  private endedCallbacks: (() => void)[] = [];
  private readonly receiveContext: ReceiveContext;

  constructor(
    private readonly transport: RabbitTransport,
    private readonly spec: TransportSubscribeSpec,
    private readonly listener: DeliveryListener,
    private readonly observer: () => BusObserver,
  ) {
    this.receiveContext = {
      subscribedTopic: spec.topic,
      pattern: spec.pattern ? compileTopicPattern(spec.topic) : undefined,
      quorum: transport.options.queueType === 'quorum',
      signer: transport.signer,
    };
  }

  async start(): Promise<void> {
    const channel = await this.transport.createChannel();
    channel.on('error', () => undefined);
    channel.on('close', () => {
      if (this.channel === channel) this.channel = undefined;
    });
    await channel.prefetch(this.spec.concurrency);
    this.queue = await this.transport.declareGroupQueue(channel, this.spec);
    this.sources.clear(); // they name the queue
    const { consumerTag } = await channel.consume(this.queue, (message) => this.onMessage(channel, message), { noAck: false });
    this.channel = channel;
    this.consumerTag = consumerTag;
    if (this.interruptedAt !== undefined) {
      this.observer().onEvent({ type: 'subscription-resumed', topic: this.spec.topic, transport: 'rabbitmq', gapMs: Date.now() - this.interruptedAt });
      this.interruptedAt = undefined;
    }
  }

  /** Live, or interrupted since the connection or the consumer was lost. RabbitMQ tells queue depth only on request: no lag. */
  status(): SubscriptionStatus {
    return this.interruptedAt !== undefined ? { state: 'interrupted', since: this.interruptedAt } : { state: 'live' };
  }

  interrupted(error: unknown): void {
    this.channel = undefined;
    if (this.state !== 'active' || this.interruptedAt !== undefined) return;
    this.interruptedAt = Date.now();
    this.observer().onEvent({ type: 'subscription-interrupted', topic: this.spec.topic, transport: 'rabbitmq', error });
  }

  /**
   * True when a message published to `exchange` with `routingKey` should have reached this
   * subscription's queue (direct/topic routes and patterns; fanout always; headers never: a headers
   * exchange returns what matches no binding by design).
   */
  shouldReceive(exchange: string, routingKey: string): boolean {
    if (this.state !== 'active' || this.interruptedAt !== undefined) return false;
    const route = this.transport.routeOfSubscription(this.spec);
    if (route.exchange !== exchange || route.type === 'headers') return false;
    if (route.type === 'fanout') return true;
    return this.receiveContext.pattern ? this.receiveContext.pattern.test(routingKey) : routingKey === (route.routingKey ?? this.spec.topic);
  }

  /**
   * Checks that this subscription's exchange and queue still exist (passive declares) and binds the
   * queue again (idempotent: it restores a binding that was removed while the exchange stayed). A
   * missing exchange or queue is {@link topologyLost}. Never throws.
   */
  async checkTopology(): Promise<void> {
    if (this.state !== 'active' || this.restarting || this.interruptedAt !== undefined || !this.channel) return;
    const route = this.transport.routeOfSubscription(this.spec);
    try {
      const channel = await this.transport.topologyChannel();
      await channel.checkExchange(route.exchange);
      await channel.checkQueue(this.queue);
      await this.transport.bindGroupQueue(channel, this.spec, this.queue);
    } catch (error) {
      if ((error as { code?: unknown } | undefined)?.code === 404) this.topologyLost(error);
      // Anything else (connection lost...) is reported by the connection's own events.
    }
  }

  /**
   * The exchange, the queue or the binding is gone (deleted under us): reported as
   * `subscription-interrupted`, then the consumer starts again on a new channel, declaring exchange,
   * queue and binding anew, and reports `subscription-resumed`. Unacked deliveries are redelivered.
   */
  topologyLost(error: unknown): void {
    if (this.state !== 'active' || this.restarting) return;
    const channel = this.channel;
    this.interrupted(error);
    if (channel) void channel.close().catch(() => undefined);
    this.restart();
  }

  /** Starts again on a new channel (after a reconnect or a server-side cancel). */
  restart(): void {
    if (this.state !== 'active' || this.restarting) return;
    this.restarting = (async () => {
      for (let delay = 100; this.state === 'active'; delay = Math.min(delay * 2, 5000)) {
        try {
          await this.start();
          return;
        } catch (error) {
          this.observer().onEvent({ type: 'internal-error', topic: this.spec.topic, context: 'rabbitmq resubscribe', error });
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
      }
    })().finally(() => (this.restarting = undefined));
  }

  private onMessage(channel: Channel, message: ConsumeMessage | null): void {
    if (message === null) {
      // The server cancelled the consumer (queue deleted, node down...): start again.
      if (this.channel === channel) this.channel = undefined;
      void channel.close().catch(() => undefined);
      this.interrupted(new Error('consumer cancelled by the server'));
      this.restart();
      return;
    }
    if (this.state === 'closing' || this.state === 'ended') {
      this.handedBackCount++;
      channel.nack(message, false, true); // received but not started: hand it back
      return;
    }
    if (this.receiveContext.pattern && message.fields.routingKey.endsWith(DEAD_LETTER_SUFFIX) && !this.spec.topic.endsWith(DEAD_LETTER_SUFFIX)) {
      // A dead letter published through the main exchange also matches the pattern's binding; the
      // DLQ queue has its own copy, and a pattern subscription never consumes dead letters.
      channel.ack(message);
      return;
    }
    const received = fromConsumeMessage(message, this.receiveContext);
    for (const { header, value } of received.untrusted) {
      this.observer().onEvent({ type: 'untrusted-header', topic: this.spec.topic, transport: 'rabbitmq', header, value, messageId: received.transport.id });
    }
    this.deliver(channel, message, received, received.attempt);
  }

  /** Source metadata by exchange, routing key and topic, shared by the deliveries that have the same (read-only). */
  private readonly sources = new Map<string, SourceMetadata>();

  private sourceOf(message: ConsumeMessage, topic: string): SourceMetadata {
    const { exchange, routingKey } = message.fields;
    const id = `${exchange}\u0000${routingKey}\u0000${topic}`;
    let source = this.sources.get(id);
    if (!source) {
      if (this.sources.size >= 1000) this.sources.clear(); // many topics through one pattern: keep it bounded
      source = Object.freeze({
        transport: 'rabbitmq',
        topic,
        group: this.spec.group,
        exchange,
        routingKey,
        queue: this.queue,
        ...(this.spec.pattern ? { pattern: this.spec.topic } : {}),
      });
      this.sources.set(id, source);
    }
    return source;
  }

  /** Hands `message` to the listener as `attempt`; settles it on the channel afterwards. */
  private deliver(channel: Channel, message: ConsumeMessage, received: ReceivedMessage, attempt: number): void {
    const delivery = new RabbitDelivery(this, channel, message, received, attempt, this.sourceOf(message, received.topic));
    this.inFlight.begin();
    let running: Promise<void> | void;
    try {
      running = this.listener(delivery);
    } catch {
      running = undefined;
    }
    if (running)
      running.then(
        () => this.afterDelivery(delivery),
        () => this.afterDelivery(delivery),
      );
    else this.afterDelivery(delivery);
  }

  /** A delivery the listener left unsettled is handed back (requeued). */
  private afterDelivery(delivery: RabbitDelivery): void {
    if (!delivery.settled) this.nackQuietly(delivery.channel, delivery.message);
    this.inFlight.end();
  }

  /**
   * `retryLater` of a delivery: a copy to the per-delay retry queue, then the ack. If the retry queue
   * refuses the copy (connection lost, a header table too large once our control headers are
   * added...), waits in process instead, holding this prefetch slot, so the attempt count still
   * advances and the message cannot loop.
   */
  async retryThroughQueue(delivery: RabbitDelivery, delayMs: number, nextAttempt: number): Promise<void> {
    const { channel, message, received } = delivery;
    const delay = Math.max(0, Math.round(delayMs));
    try {
      await this.transport.sendToRetryQueue(this.queue, message, received, nextAttempt, delay);
      channel.ack(message);
    } catch (error) {
      this.observer().onEvent({ type: 'internal-error', topic: this.spec.topic, context: 'rabbitmq retry queue publish failed: retrying in process', error });
      this.inFlight.begin();
      setTimeout(() => {
        this.inFlight.end();
        if (this.state === 'closing' || this.state === 'ended') {
          this.handedBackCount++;
          this.nackQuietly(channel, message);
          return;
        }
        this.deliver(channel, message, received, nextAttempt);
      }, delay);
    }
  }

  private nackQuietly(channel: Channel, message: ConsumeMessage): void {
    try {
      channel.nack(message, false, true);
    } catch {
      // channel gone: the broker requeues it
    }
  }

  onEnded(callback: () => void): void {
    this.endedCallbacks.push(callback);
  }

  /** Deliveries requeued because this subscription was closing when they arrived or were to be retried. */
  handedBack(): number {
    return this.handedBackCount;
  }

  close(): Promise<void> {
    return this.end('closing');
  }

  drain(): Promise<void> {
    return this.end('draining');
  }

  private end(mode: 'closing' | 'draining'): Promise<void> {
    // close() during a drain: deliveries arriving from now on are handed back.
    if (mode === 'closing' && this.state === 'draining') this.state = 'closing';
    this.ending ??= (async () => {
      this.state = mode;
      const channel = this.channel;
      if (channel && this.consumerTag) await channel.cancel(this.consumerTag).catch(() => undefined);
      await this.inFlight.idle();
      this.state = 'ended';
      if (channel) await channel.close().catch(() => undefined);
      for (const callback of this.endedCallbacks) callback();
    })();
    return this.ending;
  }
}

/** One delivery of an AMQP message; settles once, on the channel it arrived on. */
class RabbitDelivery extends TransportDelivery {
  settled = false;

  constructor(
    private readonly subscription: RabbitSubscription,
    readonly channel: Channel,
    readonly message: ConsumeMessage,
    readonly received: ReceivedMessage,
    attempt: number,
    source: SourceMetadata,
  ) {
    super(received.transport, attempt, source);
  }

  /** amqplib writes the ack at once: settled synchronously (the pipeline's fast path needs no promise). */
  ack(): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.channel.ack(this.message);
    return true;
  }

  async retryLater(delayMs: number, nextAttempt = this.attempt + 1): Promise<boolean> {
    if (this.settled) return false;
    this.settled = true;
    await this.subscription.retryThroughQueue(this, delayMs, nextAttempt);
    return true;
  }
}
