import { once } from 'node:events';
import * as amqplib from 'amqplib';
import type { Channel, ConfirmChannel, ConsumeMessage, RecoveringChannelModel } from 'amqplib';
import { ClosedError, PublishError, type BusObserver, type Capabilities, type ConnectionHealth, type Transport } from '@switchboard/core';
import {
  asBuffer,
  ConnectionState,
  withDeadline,
  refuseOversizeMessages,
  ObserverSet,
  createControlSigner,
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
import { toPublishOptions, type ReceivedMessage } from './codec.js';
import { Endpoints } from './endpoints.js';
import { RabbitSubscription } from './subscription.js';
import { RabbitTopology } from './topology.js';
import { queueNameFor, retryQueueName } from './names.js';
export { queueNameFor, retryQueueName } from './names.js';
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
  /** Routes, queue arguments, group queues and their bindings, the channel for passive checks. */
  readonly topology: RabbitTopology;
  private topologyTimer: NodeJS.Timeout | undefined;

  /** The AMQP connection: down from a disconnect until the recovering model connects again. */
  private readonly connectionState: ConnectionState;

  private constructor(
    readonly options: RabbitOptions,
    private readonly model: RecoveringChannelModel,
    private readonly endpoints: Endpoints,
  ) {
    this.capabilities = rabbitCapabilities(options);
    this.topology = new RabbitTopology(options, model);
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

  /**
   * Every `topologyCheckIntervalMs`: each subscription checks that its exchange and queue exist and binds
   * its queue again (see {@link RabbitSubscription.checkTopology}). One subscription at a time.
   */
  /** Route of a core topic: its configured route, else the main topic exchange with the topic as routing key. */
  routeFor(topic: string): RabbitRoute {
    return this.topology.routeFor(topic);
  }

  queueArguments(): Record<string, unknown> {
    return this.topology.queueArguments();
  }

  declareGroupQueue(channel: Channel, spec: TransportSubscribeSpec): Promise<string> {
    return this.topology.declareGroupQueue(channel, spec);
  }

  routeOfSubscription(spec: TransportSubscribeSpec): RabbitRoute {
    return this.topology.routeOfSubscription(spec);
  }

  bindGroupQueue(channel: Channel, spec: TransportSubscribeSpec, queue: string): Promise<void> {
    return this.topology.bindGroupQueue(channel, spec, queue);
  }

  topologyChannel(): Promise<Channel> {
    return this.topology.topologyChannel();
  }

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
