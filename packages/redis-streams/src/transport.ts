import type { Redis } from 'ioredis';
import { CapabilityError, ClosedError, PublishError, type BusObserver, type Capabilities, type ConnectionHealth, type Transport } from '@switchboard/core';
import {
  ConnectionState,
  ObserverSet,
  endpointOf,
  refuseOversizeMessages,
  type DeliveryListener,
  type TransportMessage,
  type TransportPublishOptions,
  type TransportPublishResult,
  type TransportSubscribeSpec,
  type TransportSubscription,
} from '@switchboard/core/transport';
import { defineScripts, openConnection } from './connection.js';
import { entryFields } from './entry.js';
import type { RedisStreamsOptions } from './options.js';
import { StreamSubscription } from './subscription.js';

/**
 * Redis Streams, declared as it is: entries are kept (as durable as the server's persistence: AOF or
 * RDB), consumer groups compete and keep their position while no member runs, a new group can start
 * from the beginning, entries are acknowledged after handling, and a retry is redelivered after its
 * delay without holding a handler slot. Per-key order holds within one member (ordered lanes, a
 * retry holds its key) but not across the members of a group (entries are dealt to whoever reads
 * next), so it is not claimed. No pattern subscriptions (a stream is a key, not a subject).
 * Guarantees: `none` (XADD not awaited), `leader` (XADD answered), `all` only with `replicas` > 0
 * (XADD, then WAIT for that many replicas).
 */
export function redisStreamsCapabilities(options: Pick<RedisStreamsOptions, 'maxMessageBytes' | 'replicas'>): Capabilities {
  return Object.freeze<Capabilities>({
    persistent: true,
    durableGroups: true,
    consumerGroups: true,
    perKeyOrder: false,
    orderings: ['partition', 'key', 'none'],
    acknowledgements: true,
    delayedRedelivery: true,
    replay: true,
    patternSubscriptions: false,
    duplicatesOnRestart: true,
    backpressure: true,
    deliveryGuarantees: options.replicas > 0 ? ['none', 'leader', 'all'] : ['none', 'leader'],
    defaultGuarantee: 'leader',
    maxMessageBytes: options.maxMessageBytes,
  });
}

export class RedisStreamsTransport implements Transport {
  readonly kind = 'redis-streams';
  readonly capabilities: Capabilities;
  private readonly observer = new ObserverSet();
  private readonly subscriptions = new Set<StreamSubscription>();
  private readonly commandsState: ConnectionState;
  private readonly readerStates = new Set<ConnectionState>();
  private closed = false;

  private constructor(
    private readonly options: RedisStreamsOptions,
    /** Publishes, acknowledges, claims (fails fast while disconnected); blocking reads have their own connections. */
    readonly commands: Redis & { moveOwned(stream: string, ...args: (string | number)[]): Promise<number> },
  ) {
    this.capabilities = redisStreamsCapabilities(options);

    this.commandsState = new ConnectionState('commands', endpointOf(options.url));
    commands.on('close', () => this.commandsState.down());
    commands.on('ready', () => this.commandsState.up());
  }

  /** Connects the command connection. Rejects with a clear error (URL redacted) if Redis does not answer. */
  static async connect(options: RedisStreamsOptions): Promise<RedisStreamsTransport> {
    return new RedisStreamsTransport(options, defineScripts(await openConnection(options, 'commands')));
  }

  observe(observer: BusObserver): () => void {
    return this.observer.add(observer);
  }

  connections(): readonly ConnectionHealth[] {
    return [this.commandsState, ...this.readerStates].map((c) => c.snapshot());
  }

  /** XADD each message (pipelined for a batch, in order); with `all`, then WAIT for `replicas`. */
  async publish(stream: string, messages: readonly TransportMessage[], options: TransportPublishOptions): Promise<TransportPublishResult> {
    if (this.closed) throw new ClosedError('redis-streams transport is closed');
    refuseOversizeMessages(stream, messages, this.options.maxMessageBytes);
    if (options.guarantee === 'all' && this.options.replicas === 0) {
      throw new CapabilityError([{ path: 'publish.guarantee', message: 'redis-streams: "all" needs the transport option "replicas" > 0 (a lone server cannot confirm a copy)' }]);
    }
    const sent = this.append(stream, messages, options.existingOnly === true);
    if (options.guarantee === 'none') {
      sent.catch((error: unknown) => this.observer.onEvent({ type: 'publish-failed', topic: stream, count: messages.length, error }));
      return {};
    }
    // Written nowhere: the stream did not exist and `existingOnly` forbade creating it.
    if (!(await sent)) return { receivers: 0 };
    if (options.guarantee === 'all') {
      const confirmed = await this.commands.wait(this.options.replicas, this.options.replicaTimeoutMs);
      if (confirmed < this.options.replicas) {
        throw new PublishError(
          `redis-streams: ${confirmed} of ${this.options.replicas} replicas confirmed ${messages.length} message(s) on ${stream} within ${this.options.replicaTimeoutMs} ms`,
          stream,
        );
      }
    }
    return {};
  }

  /** The XADD trim rule: `MAXLEN ~ n`, `MINID <now - maxAgeMs>`, or none. */
  private trim(): string[] {
    if (this.options.maxLen > 0) return ['MAXLEN', '~', String(this.options.maxLen)];
    if (this.options.maxAgeMs > 0) return ['MINID', String(Date.now() - this.options.maxAgeMs)];
    return [];
  }

  /**
   * XADDs every message (pipelined when several); false when `existingOnly` and the stream did not
   * exist (NOMKSTREAM: Redis then writes nothing and answers nil).
   */
  private async append(stream: string, messages: readonly TransportMessage[], existingOnly: boolean): Promise<boolean> {
    const options = existingOnly ? ['NOMKSTREAM', ...this.trim()] : this.trim();
    if (messages.length === 1) return (await this.commands.xadd(stream, ...options, '*', ...entryFields(messages[0]!))) !== null;
    const pipeline = this.commands.pipeline();
    for (const message of messages) pipeline.xadd(stream, ...options, '*', ...entryFields(message));
    const results = (await pipeline.exec()) ?? [];
    const failed = results.find(([error]) => error);
    if (failed) throw failed[0];
    return results.every(([, id]) => id !== null);
  }

  /** One group member on `spec.topic` (a stream), with its own reading connection; resolves once the group exists and reading started. */
  async subscribe(spec: TransportSubscribeSpec, listener: DeliveryListener): Promise<TransportSubscription> {
    if (this.closed) throw new ClosedError('redis-streams transport is closed');
    if (spec.pattern) throw new CapabilityError([{ path: 'pattern', message: 'redis-streams: pattern subscriptions are not supported (a stream is one key)' }]);
    const readerState = new ConnectionState(`reader ${spec.topic}`, endpointOf(this.options.url));
    const subscription = new StreamSubscription(
      {
        options: this.options,
        commands: this.commands,
        openReader: async () => {
          const reader = await openConnection(this.options, 'reader');
          reader.on('close', () => readerState.down());
          reader.on('ready', () => readerState.up());
          return reader;
        },
        observer: () => this.observer,
      },
      spec,
      listener,
    );
    await subscription.start();
    this.readerStates.add(readerState);
    this.subscriptions.add(subscription);
    const forget = () => {
      this.subscriptions.delete(subscription);
      this.readerStates.delete(readerState);
    };
    // Ephemeral: the subscription owns its stream, deleted (group and entries with it) once it closed.
    const removeStream = async () => {
      if (spec.ephemeral)
        await this.commands
          .del(spec.topic)
          .catch((error: unknown) => this.observer.onEvent({ type: 'internal-error', topic: spec.topic, context: "deleting an ephemeral subscription's stream", error }));
    };
    return {
      close: () => subscription.close().finally(forget).then(removeStream),
      drain: () => subscription.drain().finally(forget).then(removeStream),
      status: () => subscription.status(),
      handedBack: () => subscription.handedBack(),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    this.subscriptions.clear();
    await this.commands.quit().catch(() => this.commands.disconnect());
  }
}
