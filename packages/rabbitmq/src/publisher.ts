import { once } from 'node:events';
import type { Channel, ConfirmChannel, ConsumeMessage, RecoveringChannelModel } from 'amqplib';
import { ClosedError, ConfigError, PublishError } from '@switchboard/core';
import {
  asBuffer,
  refuseOversizeMessages,
  withDeadline,
  type ControlSigner,
  type RawPublisher,
  type TransportMessage,
  type TransportPublishOptions,
  type TransportPublishResult,
} from '@switchboard/core/transport';
import { publishOptionsProblem, toPublishOptions, type ReceivedMessage } from './codec.js';
import { delayExchangeName, retryQueueName } from './names.js';
import type { RabbitOptions, RabbitRoute } from './options.js';

/** Which channel a publish goes through: confirms for guarantees "leader" and "all", a plain channel for "none". */
type ChannelMode = 'confirm' | 'plain';

interface PublishLink {
  readonly mode: ChannelMode;
  /** A ConfirmChannel when `mode` is "confirm". */
  readonly channel: Channel;
  /** Exchanges and queues already declared on this connection. */
  readonly declared: Set<string>;
  /** messageIds the broker returned as unroutable (basic.return precedes the confirm). */
  readonly returned: Set<string>;
}

/** What the publisher needs from its transport. */
export interface PublisherContext {
  readonly options: RabbitOptions;
  readonly model: RecoveringChannelModel;
  readonly signer: ControlSigner | undefined;
  isClosed(): boolean;
  queueArguments(): Record<string, unknown>;
  /** A message came back unroutable (basic.return) from `exchange` / `routingKey`. */
  onUnroutable(exchange: string, routingKey: string): void;
}

/**
 * The publisher of a transport: one confirm channel per connection for guarantees "leader" and "all"
 * (confirms counted per batch, no promise per message) and, opened only when used, one plain channel
 * for guarantee "none" (the broker sends no confirm at all: "none" asks for none). Channels open on
 * demand and are waited for while reconnecting; `drain` honoured, unroutable returns reported on both
 * (mandatory); dead letters and retry copies go through the confirm channel.
 */
export class ConfirmPublisher {
  /** Times a publish waited for the channel's `drain` (amqplib's write buffer was full). */
  backpressureWaits = 0;
  private readonly links = new Map<ChannelMode, PublishLink>();
  private readonly linking = new Map<ChannelMode, Promise<PublishLink>>();

  constructor(private readonly context: PublisherContext) {}

  /** The connection was lost: the next publish opens its channel on the new one. */
  reset(): void {
    this.links.clear();
    this.linking.clear();
  }

  async publishTo(
    exchange: string,
    type: RabbitRoute['type'] | undefined,
    routingKey: string,
    topic: string,
    messages: readonly TransportMessage[],
    guarantee: TransportPublishOptions['guarantee'],
  ): Promise<TransportPublishResult> {
    if (this.context.isClosed()) throw new ClosedError('rabbitmq transport is closed');
    refuseOversizeMessages(topic, messages, this.context.options.maxMessageBytes);
    const deadline = Date.now() + this.context.options.publishTimeoutMs;
    const link = await this.publishLink(deadline, guarantee === 'none' ? 'plain' : 'confirm');
    if (type && exchange !== '') await this.declareExchange(link, exchange, type);
    if (link.mode === 'plain') {
      await this.writeAll(link, exchange, routingKey, topic, messages, guarantee, deadline);
      return {};
    }
    // One promise per batch, settled by counting the broker's confirms (no promise per message).
    let unroutable = 0;
    let pending = messages.length;
    let settle!: { resolve: () => void; reject: (error: Error) => void };
    const confirmed = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    if (pending === 0) settle.resolve();
    const onConfirm = (id: string) => (error: unknown) => {
      // amqplib reports a broker's nack and a channel lost with the confirm outstanding the same way: its message says which.
      if (error)
        return settle.reject(new PublishError(`RabbitMQ did not confirm message ${id} on "${exchange}" / "${routingKey}": ${(error as Error)?.message ?? String(error)}`, topic, { cause: error }));
      if (link.returned.delete(id)) unroutable++;
      if (--pending === 0) settle.resolve();
    };
    await this.writeAll(link, exchange, routingKey, topic, messages, guarantee, deadline, onConfirm);
    await withDeadline(
      confirmed,
      deadline,
      () => new PublishError(`no confirm from RabbitMQ within ${this.context.options.publishTimeoutMs} ms for ${messages.length} message(s) to "${topic}"`, topic),
    );
    // Unroutable (mandatory + basic.return): nobody got it; the publisher's noReceivers policy decides.
    return unroutable === 0 ? {} : { receivers: 0 };
  }

  /** Writes each message to the channel (with its confirm callback on a confirm channel), waiting for `drain` when amqplib's buffer is full. */
  private async writeAll(
    link: PublishLink,
    exchange: string,
    routingKey: string,
    topic: string,
    messages: readonly TransportMessage[],
    guarantee: TransportPublishOptions['guarantee'],
    deadline: number,
    onConfirm?: (id: string) => (error: unknown) => void,
  ): Promise<void> {
    // Every message encoded and checked before any is written: none of a refused batch goes out.
    const encoded = messages.map((message) => {
      const properties = toPublishOptions(topic, routingKey, message, guarantee, this.context.signer);
      const problem = publishOptionsProblem(properties);
      if (problem) throw new ConfigError([problem]);
      return properties;
    });
    for (const [i, message] of messages.entries()) {
      const content = asBuffer(message.body);
      const properties = encoded[i]!;
      const written = onConfirm
        ? (link.channel as ConfirmChannel).publish(exchange, routingKey, content, properties, onConfirm(message.id))
        : link.channel.publish(exchange, routingKey, content, properties);
      if (!written) {
        this.backpressureWaits++;
        await withDeadline(once(link.channel, 'drain'), deadline, () => new PublishError(`RabbitMQ applied backpressure for over ${this.context.options.publishTimeoutMs} ms`, topic));
      }
    }
  }

  /**
   * A delayed publish: into the fanout exchange and queue of that delay (`<exchange>.delay.<ms>`, the
   * delay rounded up to 10 ms), whose TTL dead-letters each message back to `exchange` with its own
   * routing key when its time comes. One queue per delay keeps every queue FIFO by due time. Confirmed
   * like any publish (persistent with guarantee "all"); the queue expires when unused for twice its delay
   * plus a minute (at least 10 min), after its messages left.
   */
  async publishDelayed(
    exchange: string,
    type: RabbitRoute['type'] | undefined,
    routingKey: string,
    topic: string,
    messages: readonly TransportMessage[],
    guarantee: TransportPublishOptions['guarantee'],
    delayMs: number,
  ): Promise<TransportPublishResult> {
    if (this.context.isClosed()) throw new ClosedError('rabbitmq transport is closed');
    const link = await this.publishLink(Date.now() + this.context.options.publishTimeoutMs, 'confirm');
    if (type && exchange !== '') await this.declareExchange(link, exchange, type);
    const delay = Math.ceil(delayMs / 10) * 10;
    const holding = delayExchangeName(exchange, delay);
    await this.declareExchange(link, holding, 'fanout');
    await this.declareQueue(link, holding, { 'x-message-ttl': delay, 'x-dead-letter-exchange': exchange, 'x-expires': Math.max(delay * 2 + 60_000, 600_000) }, [holding, '']);
    await this.publishTo(holding, undefined, routingKey, topic, messages, guarantee);
    return {}; // who receives it is known only when it is due
  }

  /** Dead letters: durable queue named like the DLQ topic, bound to the main exchange, then a confirmed persistent publish. */
  deadLetterPublisher(): RawPublisher {
    return {
      publish: async (dlqTopic, messages) => {
        const link = await this.publishLink(Date.now() + this.context.options.publishTimeoutMs, 'confirm');
        await this.declareExchange(link, this.context.options.exchange, 'topic');
        await this.declareQueue(link, dlqTopic, this.context.queueArguments(), [this.context.options.exchange, dlqTopic]);
        return this.publishTo(this.context.options.exchange, undefined, dlqTopic, dlqTopic, messages, 'all');
      },
    };
  }

  /**
   * Sends a copy of `message` to the per-delay retry queue of `queue` (confirmed), to come back after
   * `delayMs` as `nextAttempt`. Control headers are written from the verified values in `received`.
   */
  async sendToRetryQueue(queue: string, message: ConsumeMessage, received: ReceivedMessage, nextAttempt: number, delayMs: number): Promise<void> {
    const link = await this.publishLink(Date.now() + this.context.options.publishTimeoutMs, 'confirm');
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
    const properties = toPublishOptions(received.topic, retryQueue, { ...received.transport, headers }, message.properties.deliveryMode === 2 ? 'all' : 'leader', this.context.signer, nextAttempt);
    await new Promise<void>((resolve, reject) => {
      (link.channel as ConfirmChannel).publish('', retryQueue, message.content, { ...properties, mandatory: false }, (error) => (error ? reject(error) : resolve()));
    });
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

  /** The channel of `mode` on the current connection, created on demand; waits while reconnecting, up to `deadline`. */
  private publishLink(deadline: number, mode: ChannelMode): Promise<PublishLink> {
    const open = this.links.get(mode);
    if (open) return Promise.resolve(open);
    let linking = this.linking.get(mode);
    if (!linking) {
      linking = (async () => {
        const channel = mode === 'confirm' ? await this.context.model.createConfirmChannel() : await this.context.model.createChannel();
        const link: PublishLink = { mode, channel, declared: new Set(), returned: new Set() };
        channel.on('return', (message: ConsumeMessage) => {
          if (mode === 'confirm' && typeof message.properties.messageId === 'string') link.returned.add(message.properties.messageId);
          this.context.onUnroutable(message.fields.exchange, message.fields.routingKey);
        });
        channel.on('error', () => undefined);
        channel.on('close', () => {
          if (this.links.get(mode) === link) this.links.delete(mode);
          if (this.linking.get(mode) === linking) this.linking.delete(mode);
        });
        this.links.set(mode, link);
        return link;
      })().catch((error: unknown) => {
        // Only this attempt's entry: after a reset() a newer attempt may be under way in its place.
        if (this.linking.get(mode) === linking) this.linking.delete(mode);
        throw error;
      });
      this.linking.set(mode, linking);
    }
    return withDeadline(linking, deadline, () => new PublishError(`RabbitMQ unreachable: no connection within ${this.context.options.publishTimeoutMs} ms`, ''));
  }
}
