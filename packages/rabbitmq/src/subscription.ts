import type { Channel, ConsumeMessage } from 'amqplib';
import { DEAD_LETTER_SUFFIX, type BusObserver, type SourceMetadata, type SubscriptionStatus } from '@switchboard/core';
import {
  TransportDelivery,
  InFlight,
  compileTopicPattern,
  withDeadline,
  type ControlSigner,
  type DeliveryListener,
  type TransportSubscribeSpec,
  type TransportSubscription,
} from '@switchboard/core/transport';
import { ChannelAcks } from './acks.js';
import { fromConsumeMessage, type ReceivedMessage, type ReceiveContext } from './codec.js';
import type { RabbitOptions, RabbitRoute } from './options.js';

/**
 * What a subscription needs from its transport: channels, the group queue's topology (declare, route,
 * bind, the shared channel for passive checks), the retry queues, and the options and signer its
 * messages are read with. The transport implements it; nothing else of the transport is reachable.
 */
export interface SubscriptionContext {
  readonly options: Pick<RabbitOptions, 'queueType' | 'prefetch' | 'publishTimeoutMs'>;
  readonly signer: ControlSigner | undefined;
  createChannel(): Promise<Channel>;
  declareGroupQueue(channel: Channel, spec: TransportSubscribeSpec): Promise<string>;
  routeOfSubscription(spec: TransportSubscribeSpec): RabbitRoute;
  bindGroupQueue(channel: Channel, spec: TransportSubscribeSpec, queue: string): Promise<void>;
  topologyChannel(): Promise<Channel>;
  sendToRetryQueue(queue: string, message: ConsumeMessage, received: ReceivedMessage, nextAttempt: number, delayMs: number): Promise<void>;
  /** True once a bounded wait on this connection went unanswered, until it connects again: closes then wait for nothing more. */
  readonly unanswered: boolean;
  /** A bounded wait on the connection went unanswered (see {@link unanswered}). */
  noticeUnanswered(): void;
}

/** A delivery received beyond the concurrency, waiting in process for a handler slot. */
interface WaitingDelivery {
  readonly acks: ChannelAcks;
  readonly message: ConsumeMessage;
  readonly received: ReceivedMessage;
  readonly attempt: number;
}

/**
 * One consumer on a group queue, on its own channel with prefetch max(`prefetch`, concurrency). At
 * most `concurrency` deliveries are in the listener at once; what the broker sent beyond waits in
 * process, in arrival order (a close hands it back, a lost channel drops it: the broker redelivers
 * both). Survives connection loss and server-side cancels by starting again on a new channel;
 * deliveries unacked at that moment are redelivered by the broker.
 */
export class RabbitSubscription implements TransportSubscription {
  private channel: Channel | undefined;
  /** The acks of the current channel (see {@link ChannelAcks}): every delivery is settled through them. */
  private acks: ChannelAcks | undefined;
  private consumerTag: string | undefined;
  private queue = '';
  /** Counts deliveries in the listener, waiting for a slot, or waiting for an in-process retry: closing waits for it. */
  private readonly inFlight = new InFlight();
  /** Deliveries in the listener now (at most the concurrency). */
  private running = 0;
  /** Received beyond the concurrency, oldest first. */
  private waiting: WaitingDelivery[] = [];
  private state: 'active' | 'closing' | 'draining' | 'ended' = 'active';
  private ending: Promise<void> | undefined;
  private interruptedAt: number | undefined;
  private handedBackCount = 0;
  /** Set once closing or draining cancelled the consumer: the broker sends it nothing more. */
  private cancelled = false;
  private restarting: Promise<void> | undefined;
  private endedCallbacks: (() => void)[] = [];
  private readonly receiveContext: ReceiveContext;
  /** The channel's prefetch: max(`prefetch`, concurrency). Above the concurrency, deliveries can wait in process. */
  private readonly prefetch: number;

  constructor(
    private readonly transport: SubscriptionContext,
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
    this.prefetch = Math.max(transport.options.prefetch ?? 0, spec.concurrency);
  }

  async start(): Promise<void> {
    const channel = await this.transport.createChannel();
    channel.on('error', () => undefined);
    channel.on('close', () => {
      if (this.channel === channel) this.channel = undefined;
      this.dropWaiting(channel);
    });
    await channel.prefetch(this.prefetch);
    this.queue = await this.transport.declareGroupQueue(channel, this.spec);
    this.sources.clear(); // they name the queue
    const acks = new ChannelAcks(channel);
    const { consumerTag } = await channel.consume(this.queue, (message) => this.onMessage(channel, acks, message), { noAck: false });
    this.channel = channel;
    this.acks = acks;
    this.consumerTag = consumerTag;
    if (this.interruptedAt !== undefined) {
      this.observer().onEvent({ type: 'subscription-resumed', topic: this.spec.topic, transport: 'rabbitmq', gapMs: Date.now() - this.interruptedAt });
      this.interruptedAt = undefined;
    }
  }

  /**
   * Live, or interrupted since the connection or the consumer was lost. With `prefetch` above the
   * concurrency, live also tells the deliveries waiting in process for a handler (`buffered`); without,
   * none ever waits and it is left out. RabbitMQ tells queue depth only on request: no lag.
   */
  status(): SubscriptionStatus {
    if (this.interruptedAt !== undefined) return { state: 'interrupted', since: this.interruptedAt };
    return this.prefetch > this.spec.concurrency ? { state: 'live', buffered: this.waiting.length } : { state: 'live' };
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
      if (route.type !== 'queue') await channel.checkExchange(route.exchange);
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

  private onMessage(channel: Channel, acks: ChannelAcks, message: ConsumeMessage | null): void {
    if (message === null) {
      // The server cancelled the consumer (queue deleted, node down...): start again.
      if (this.channel === channel) this.channel = undefined;
      void channel.close().catch(() => undefined);
      this.interrupted(new Error('consumer cancelled by the server'));
      this.restart();
      return;
    }
    acks.track(message);
    if (this.cancelled) {
      this.handedBackCount++;
      this.nackQuietly(acks, message); // arrived after the cancel: hand it back
      return;
    }
    if (this.receiveContext.pattern && message.fields.routingKey.endsWith(DEAD_LETTER_SUFFIX) && !this.spec.topic.endsWith(DEAD_LETTER_SUFFIX)) {
      // A dead letter published through the main exchange also matches the pattern's binding; the
      // DLQ queue has its own copy, and a pattern subscription never consumes dead letters.
      acks.ack(message);
      return;
    }
    const received = fromConsumeMessage(message, this.receiveContext);
    for (const { header, value } of received.untrusted) {
      this.observer().onEvent({ type: 'untrusted-header', topic: this.spec.topic, transport: 'rabbitmq', header, value, messageId: received.transport.id });
    }
    this.admit(acks, message, received, received.attempt);
  }

  /**
   * Hands the delivery to the listener now if a slot is free, else queues it behind the others
   * waiting. Closing, it only queues: what waits is handed back once the consumer is cancelled (a nack
   * before that would requeue it to this same consumer).
   */
  private admit(acks: ChannelAcks, message: ConsumeMessage, received: ReceivedMessage, attempt: number): void {
    if (this.running < this.spec.concurrency && this.waiting.length === 0 && (this.state === 'active' || this.state === 'draining')) {
      this.deliver(acks, message, received, attempt);
      return;
    }
    this.inFlight.begin();
    this.waiting.push({ acks, message, received, attempt });
  }

  /** A slot came free: starts the oldest waiting deliveries while slots are free (not once closing: those are handed back). */
  private startWaiting(): void {
    while (this.running < this.spec.concurrency && this.waiting.length > 0 && (this.state === 'active' || this.state === 'draining')) {
      const next = this.waiting.shift()!;
      this.deliver(next.acks, next.message, next.received, next.attempt);
      this.inFlight.end();
    }
  }

  /** Closing, the consumer cancelled: what waits for a slot goes back to the queue unstarted (requeued; counted in {@link handedBack}). */
  private handBackWaiting(): void {
    if (!this.cancelled) return; // the cancel's end hands them back
    const waiting = this.waiting;
    this.waiting = [];
    for (const entry of waiting) {
      this.handedBackCount++;
      this.nackQuietly(entry.acks, entry.message);
      this.inFlight.end();
    }
  }

  /** `channel` closed: its waiting deliveries cannot be acked any more and the broker redelivers them, so they are not started. */
  private dropWaiting(channel: Channel): void {
    if (this.waiting.length === 0) return;
    const kept: WaitingDelivery[] = [];
    for (const entry of this.waiting) {
      if (entry.acks.channel === channel) this.inFlight.end();
      else kept.push(entry);
    }
    this.waiting = kept;
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
  private deliver(acks: ChannelAcks, message: ConsumeMessage, received: ReceivedMessage, attempt: number): void {
    const delivery = new RabbitDelivery(this, acks, message, received, attempt, this.sourceOf(message, received.topic));
    this.inFlight.begin();
    this.running++;
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
    if (!delivery.settled) this.nackQuietly(delivery.acks, delivery.message);
    this.running--;
    if (this.waiting.length > 0) this.startWaiting();
    this.inFlight.end();
  }

  /**
   * `retryLater` of a delivery: a copy to the per-delay retry queue, then the ack. If the retry queue
   * refuses the copy (connection lost, a header table too large once our control headers are
   * added...), waits in process instead, holding this prefetch slot, so the attempt count still
   * advances and the message cannot loop.
   */
  async retryThroughQueue(delivery: RabbitDelivery, delayMs: number, nextAttempt: number): Promise<void> {
    const { acks, message, received } = delivery;
    const delay = Math.max(0, Math.round(delayMs));
    try {
      await this.transport.sendToRetryQueue(this.queue, message, received, nextAttempt, delay);
      acks.ack(message);
    } catch (error) {
      this.observer().onEvent({ type: 'internal-error', topic: this.spec.topic, context: 'rabbitmq retry queue publish failed: retrying in process', error });
      this.inFlight.begin();
      setTimeout(() => {
        this.admit(acks, message, received, nextAttempt);
        if (this.state === 'closing' || this.state === 'ended') this.handBackWaiting();
        this.inFlight.end(); // after admit counted it again: a drain waiting for idle does not end in between
      }, delay);
    }
  }

  private nackQuietly(acks: ChannelAcks, message: ConsumeMessage): void {
    try {
      acks.nack(message, true);
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
    // close() during a drain: deliveries arriving from now on, and those waiting for a slot, are handed back.
    if (mode === 'closing' && this.state === 'draining') {
      this.state = 'closing';
      this.handBackWaiting();
    }
    this.ending ??= (async () => {
      this.state = mode;
      const channel = this.channel;
      const acks = this.acks;
      // Each wait on the broker is bounded (publishTimeoutMs), and once one went unanswered, on this
      // subscription or another of the connection, the next is not waited for: a broker that stopped
      // answering without closing the connection (a partition) would leave them pending until
      // heartbeats notice, two to three heartbeatSeconds later.
      const noAnswer = new Error('no answer');
      const answered = (request: Promise<unknown>) =>
        withDeadline(request, this.transport.unanswered ? 0 : Date.now() + this.transport.options.publishTimeoutMs, () => noAnswer).catch((error: unknown) => {
          if (error === noAnswer) this.transport.noticeUnanswered();
        });
      if (channel && this.consumerTag) await answered(channel.cancel(this.consumerTag));
      this.cancelled = true;
      if (this.state === 'closing') this.handBackWaiting();
      await this.inFlight.idle();
      this.state = 'ended';
      acks?.flush(); // the last acks go out before the channel closes (else the broker redelivers them)
      if (channel) await answered(channel.close());
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
    readonly acks: ChannelAcks,
    readonly message: ConsumeMessage,
    readonly received: ReceivedMessage,
    attempt: number,
    source: SourceMetadata,
  ) {
    super(received.transport, attempt, source);
  }

  /** Settled synchronously (the pipeline's fast path needs no promise); the ack frame goes out at the end of the event-loop turn ({@link ChannelAcks}). */
  ack(): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.acks.ack(this.message);
    return true;
  }

  async retryLater(delayMs: number, nextAttempt = this.attempt + 1): Promise<boolean> {
    if (this.settled) return false;
    this.settled = true;
    await this.subscription.retryThroughQueue(this, delayMs, nextAttempt);
    return true;
  }
}
