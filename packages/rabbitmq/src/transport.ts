import * as amqplib from 'amqplib';
import type { Channel, ConsumeMessage, RecoveringChannelModel } from 'amqplib';
import { ClosedError, ConfigError, PublishError, type BusObserver, type Capabilities, type ConnectionHealth, type Transport } from '@switchboard/core';
import {
  ConnectionState,
  ObserverSet,
  withDeadline,
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
import type { ReceivedMessage } from './codec.js';
import { Endpoints } from './endpoints.js';
import { RabbitSubscription } from './subscription.js';
import { RabbitTopology } from './topology.js';
import { ConfirmPublisher } from './publisher.js';
import { amqpNameProblem, queueNameFor } from './names.js';
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
    delayedDelivery: true,
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

export class RabbitTransport implements Transport {
  readonly kind = 'rabbitmq';
  readonly capabilities: Capabilities;
  /** Observers of every bus using this transport. */
  private readonly observer = new ObserverSet();
  /** The confirm publisher (one confirm channel per connection). */
  private readonly publisher: ConfirmPublisher;
  private readonly subscriptions = new Set<RabbitSubscription>();
  private closed = false;
  /** Signs and verifies control headers when a signing key is configured. */
  readonly signer: ControlSigner | undefined;
  /** Routes, queue arguments, group queues and their bindings, the channel for passive checks. */
  readonly topology: RabbitTopology;
  private topologyTimer: NodeJS.Timeout | undefined;
  /** See {@link unanswered}. */
  private waitWentUnanswered = false;

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
    this.publisher = new ConfirmPublisher({
      options,
      model,
      signer: this.signer,
      isClosed: () => this.closed,
      queueArguments: () => this.queueArguments(),
      onUnroutable: (exchange, routingKey) => this.onUnroutable(exchange, routingKey),
    });
    model.on('disconnect', (error: Error) => {
      this.connectionState.down();
      this.publisher.reset();
      for (const subscription of this.subscriptions) subscription.interrupted(error);
    });
    model.on('connect', () => {
      this.connectionState.up();
      this.waitWentUnanswered = false;
      for (const subscription of this.subscriptions) subscription.restart();
    });
    model.on('error', () => {
      // surfaced through disconnect / failing operations; never log the URL
    });
  }

  /** Connects (recovering connection). Rejects with a clear error, URL redacted, if the broker does not answer. */
  static async connect(options: RabbitOptions): Promise<RabbitTransport> {
    const endpoints = new Endpoints(options.url, options.heartbeatSeconds);
    let model: RecoveringChannelModel;
    try {
      model = await amqplib.connect(endpoints.target(), {
        timeout: options.connectTimeoutMs,
        ...(options.connectionName !== undefined ? { clientProperties: { connection_name: options.connectionName } } : {}),
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
  /** A topic's routing key (and a dead-letter topic's queue, named like it) as RabbitMQ holds names. */
  topicProblem(topic: string): string | undefined {
    return amqpNameProblem('the routing key', this.routeFor(topic).routingKey ?? topic) ?? amqpNameProblem('the queue', topic);
  }

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
   * the publish (a PublishError) under "all": nothing stored it. With `existingOnly` (a reply) it is
   * `receivers: 0` under every guarantee.
   */
  async publish(topic: string, messages: readonly TransportMessage[], options: TransportPublishOptions): Promise<TransportPublishResult> {
    const route = this.routeFor(topic);
    const badName = amqpNameProblem('the routing key', route.routingKey ?? topic);
    if (badName) throw new ConfigError([{ path: 'topic', message: badName }]);
    const delayMs = (options.deliverAt ?? 0) - Date.now();
    if (delayMs > 0) return this.publisher.publishDelayed(route.exchange, route.type, route.routingKey ?? topic, topic, messages, options.guarantee, delayMs);
    const result = await this.publisher.publishTo(route.exchange, route.type, route.routingKey ?? topic, topic, messages, options.guarantee);
    // "all" promises the message was made durable; a returned one is stored nowhere, whatever the
    // publisher's noReceivers policy says (that policy decides for "none" and "leader"). A publish that
    // must not create its destination (a reply: its requester may be gone, or x-reply-to forged) asks
    // only "to the queue if one exists", so a returned one is `receivers: 0` there, not a failure.
    if (result.receivers === 0 && options.guarantee === 'all' && !options.existingOnly) {
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
    const badName = amqpNameProblem("the group's queue", queueNameFor(topic, group));
    if (badName) throw new ConfigError([{ path: 'topic', message: badName }]);
    const direct = await this.publisher.publishTo('', undefined, queueNameFor(topic, group), topic, messages, options.guarantee === 'none' ? 'leader' : options.guarantee);
    if (direct.receivers !== 0) return direct;
    return this.publish(topic, messages, options);
  }

  /** Times a publish waited for the channel's `drain` (amqplib's write buffer was full). */
  get backpressureWaits(): number {
    return this.publisher.backpressureWaits;
  }

  /** Dead letters: durable queue named like the DLQ topic, bound to the main exchange, then a confirmed persistent publish. */
  deadLetterPublisher(): RawPublisher {
    return this.publisher.deadLetterPublisher();
  }

  /** A copy of `message` to the per-delay retry queue of `queue` (see {@link ConfirmPublisher.sendToRetryQueue}). */
  sendToRetryQueue(queue: string, message: ConsumeMessage, received: ReceivedMessage, nextAttempt: number, delayMs: number): Promise<void> {
    return this.publisher.sendToRetryQueue(queue, message, received, nextAttempt, delayMs);
  }

  async subscribe(spec: TransportSubscribeSpec, listener: DeliveryListener): Promise<TransportSubscription> {
    if (this.closed) throw new ClosedError('rabbitmq transport is closed');
    this.topology.checkSubscribable(spec);
    const subscription = new RabbitSubscription(this, spec, listener, () => this.observer);
    await subscription.start();
    this.subscriptions.add(subscription);
    subscription.onEnded(() => this.subscriptions.delete(subscription));
    this.checkTopologyPeriodically();
    return subscription;
  }

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

  /**
   * A bounded wait on the connection (a subscription's cancel or channel close) went unanswered since
   * it last connected: the broker is not answering (a partition, most likely). Later closes wait for
   * nothing more, and `close()` destroys the socket at once instead of waiting for its close-ok.
   */
  get unanswered(): boolean {
    return this.waitWentUnanswered;
  }

  noticeUnanswered(): void {
    this.waitWentUnanswered = true;
  }

  /** A channel for a subscription (waits for the connection while it recovers). */
  createChannel(): Promise<Channel> {
    return this.model.createChannel();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.topologyTimer);
    const socket = socketOf(this.model);
    const closing = (async () => {
      await Promise.all([...this.subscriptions].map((s) => s.close()));
      await this.model.close().catch(() => undefined);
    })();
    // A broker that stops answering without closing the connection (a network partition) never sends
    // the cancel-ok and close-ok these wait for, until heartbeats notice (two to three intervals:
    // 20-30 s at heartbeatSeconds 10). Past publishTimeoutMs the socket is destroyed instead, at once when a
    // subscription's close already went unanswered: what was not acknowledged comes again (the broker
    // requeues a lost connection's messages).
    const deadline = this.unanswered ? 0 : Date.now() + this.options.publishTimeoutMs;
    await withDeadline(closing, deadline, () => new Error('close did not end')).catch(() => {
      void this.model.close().catch(() => undefined); // stops recovery first (idempotent): a destroyed socket is not reconnected
      socket?.destroy();
    });
  }
}

/** The socket under amqplib's recovering model (its internal fields in amqplib 2.3; undefined if they move). */
function socketOf(model: RecoveringChannelModel): { destroy(): void } | undefined {
  return (model as unknown as { _core?: { _model?: { connection?: { stream?: { destroy(): void } } } } })._core?._model?.connection?.stream;
}
