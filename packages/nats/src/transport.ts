import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type Consumer, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { CapabilityError, ClosedError, ConfigError, PublishError, type BusObserver, type Capabilities, type ConnectionHealth, type Transport } from '@switchboard/core';
import {
  ConnectError,
  ConnectionState,
  ObserverSet,
  redactUrl,
  refuseOversizeMessages,
  withDeadline,
  type DeliveryListener,
  type TransportMessage,
  type TransportPublishOptions,
  type TransportPublishResult,
  type TransportSubscribeSpec,
  type TransportSubscription,
} from '@switchboard/core/transport';
import { encodeHeaders, headersProblem } from './codec.js';
import type { NatsOptions } from './options.js';
import { durableName, filterOf, isPlainTopic, subjectOf } from './subjects.js';
import { NatsSubscription } from './subscription.js';

/**
 * NATS JetStream, declared as it is: messages are stored in a stream (file or memory, `replicas`
 * copies), a group is a durable pull consumer whose members compete, it keeps its position while no
 * member runs, a new group can start at the first stored message, messages are acknowledged after
 * handling, and a retry waits without holding a handler slot. Per-key order holds within one member
 * (ordered lanes; a retry holds its key) but not across members (the server hands messages to
 * whichever member fetches next), so it is not claimed. Patterns: `*` is NATS' `*`, `#` widens the
 * filter to `>` (see `filterOf`). Guarantees: `none` (core publish, not acknowledged), `leader` and
 * `all` (the stream's publish acknowledgement, given once `replicas` copies agree: the same on
 * JetStream).
 */
export function natsCapabilities(options: Pick<NatsOptions, 'maxMessageBytes'>): Capabilities {
  return Object.freeze<Capabilities>({
    persistent: true,
    durableGroups: true,
    consumerGroups: true,
    perKeyOrder: false,
    orderings: ['partition', 'key', 'none'],
    acknowledgements: true,
    delayedRedelivery: true,
    replay: true,
    patternSubscriptions: true,
    duplicatesOnRestart: true,
    backpressure: true,
    deliveryGuarantees: ['none', 'leader', 'all'],
    defaultGuarantee: 'all',
    maxMessageBytes: options.maxMessageBytes,
    // The server takes at most 64 KiB of headers per message; this leaves room for their encoding and ours.
    maxHeaderBytes: 60_000,
  });
}

export class NatsTransport implements Transport {
  readonly kind = 'nats';
  readonly capabilities: Capabilities;
  private readonly observer = new ObserverSet();
  private readonly subscriptions = new Set<NatsSubscription>();
  private readonly connection: ConnectionState;
  private closed = false;
  private readonly watching: Promise<void>;

  private constructor(
    private readonly options: NatsOptions,
    /** The connection: publishes, fetches and acknowledgements (NATS multiplexes them). Private: no @nats-io type reaches this package's declarations. */
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
  ) {
    this.capabilities = natsCapabilities(options);
    this.connection = new ConnectionState('connection', endpoints(options));
    this.connection.up();
    this.watching = this.watch();
  }

  /** Connects and makes sure the stream exists. Rejects with a clear error (credentials redacted) when the server does not answer or JetStream is off. */
  static async connect(options: NatsOptions): Promise<NatsTransport> {
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: options.servers,
        timeout: options.connectTimeoutMs,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        pingInterval: options.pingIntervalMs,
        maxPingOut: 2,
        name: 'switchboard',
        ...(options.user !== undefined ? { user: options.user } : {}),
        ...(options.pass !== undefined ? { pass: options.pass } : {}),
        ...(options.token !== undefined ? { token: options.token } : {}),
      });
    } catch (error) {
      throw new ConnectError(`cannot connect to NATS at ${endpoints(options)} within ${options.connectTimeoutMs} ms: ${(error as Error).message}`, endpoints(options), { cause: error });
    }
    try {
      const jsm = await jetstreamManager(nc, { timeout: options.publishTimeoutMs });
      await ensureStream(jsm, options);
      return new NatsTransport(options, nc, jetstream(nc, { timeout: options.publishTimeoutMs }), jsm);
    } catch (error) {
      await nc.close().catch(() => undefined);
      if (error instanceof ConfigError) throw error;
      throw new ConnectError(`NATS at ${endpoints(options)} has no usable JetStream: ${(error as Error).message}`, endpoints(options), { cause: error });
    }
  }

  /** Connection events: interrupted / resumed for every subscription, health. */
  private async watch(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type === 'disconnect') {
        this.connection.down();
        for (const s of this.subscriptions) s.interrupted();
      } else if (status.type === 'reconnect') {
        this.connection.up();
        for (const s of this.subscriptions) s.resumed();
      }
    }
  }

  observe(observer: BusObserver): () => void {
    return this.observer.add(observer);
  }

  /** A topic is a NATS subject: dot-separated tokens without spaces, `*` or `>`. */
  topicProblem(topic: string): string | undefined {
    return isPlainTopic(topic) ? undefined : `"${topic}" is not a NATS subject (dot-separated tokens, no spaces, "*" or ">")`;
  }

  connections(): readonly ConnectionHealth[] {
    return [this.connection.snapshot()];
  }

  /**
   * `none`: core publish (buffered by the client while reconnecting, never acknowledged). `leader` /
   * `all`: JetStream publish, each message acknowledged by the stream, in order; the message id is
   * `Nats-Msg-Id`, so a producer's retry within the duplicate window is stored once. While
   * disconnected an acknowledged publish fails at once instead of waiting for the timeout.
   */
  async publish(topic: string, messages: readonly TransportMessage[], options: TransportPublishOptions): Promise<TransportPublishResult> {
    if (this.closed) throw new ClosedError('nats transport is closed');
    const badName = this.topicProblem(topic);
    if (badName) throw new ConfigError([{ path: 'topic', message: badName }]);
    refuseOversizeMessages(topic, messages, this.options.maxMessageBytes);
    for (const message of messages) {
      const problem = headersProblem(topic, message);
      if (problem) throw new ConfigError([problem]);
    }
    const subject = subjectOf(this.options.subjectPrefix, topic);
    // The stream stores whatever matches its subjects: a reply topic nobody reads (its requester closed,
    // or a forged x-reply-to) would keep the reply. Its reader is the requester's consumer, whose group
    // is the reply topic itself (core's request/reply).
    if (
      options.existingOnly &&
      !(await this.jsm.consumers.info(this.options.stream, durableName(topic, subject)).then(
        () => true,
        () => false,
      ))
    )
      return { receivers: 0 };
    if (options.guarantee === 'none') {
      for (const message of messages) this.nc.publish(subject, message.body, { headers: encodeHeaders(topic, message) });
      return {};
    }
    if (this.connection.snapshot().state === 'down' || this.nc.isClosed()) {
      throw new PublishError(`nats: not connected to ${endpoints(this.options)}: ${messages.length} message(s) to ${topic} not published`, topic);
    }
    try {
      await Promise.all(messages.map((message) => this.js.publish(subject, message.body, { headers: encodeHeaders(topic, message), timeout: this.options.publishTimeoutMs })));
    } catch (error) {
      throw new PublishError(`nats: ${messages.length} message(s) to ${topic} not acknowledged by stream ${this.options.stream}: ${(error as Error).message}`, topic, { cause: error });
    }
    return {};
  }

  /** One member of the group's durable consumer; resolves once the consumer exists and fetching started. */
  async subscribe(spec: TransportSubscribeSpec, listener: DeliveryListener): Promise<TransportSubscription> {
    if (this.closed) throw new ClosedError('nats transport is closed');
    if (!spec.pattern && !isPlainTopic(spec.topic))
      throw new CapabilityError([{ path: 'topic', message: `nats: "${spec.topic}" is not a NATS subject (dot-separated tokens, no spaces, "*" or ">")` }]);
    const group = spec.group || 'default';
    const filter = filterOf(this.options.subjectPrefix, spec.topic, spec.pattern);
    const durable = durableName(group, filter);
    const consumer = (recreate: boolean) => this.ensureConsumer(durable, filter, spec.startFrom, recreate, spec.ephemeral === true);
    const subscription = new NatsSubscription(
      { options: this.options, consumer, observer: () => this.observer, connected: () => this.connection.snapshot().state === 'up' },
      spec,
      listener,
      this.options.stream,
      this.options.subjectPrefix,
      await consumer(false),
    );
    subscription.start();
    this.subscriptions.add(subscription);
    const forget = () => this.subscriptions.delete(subscription);
    // Ephemeral: the subscription owns its subject: its consumer and the subject's messages go once it closed.
    const remove = async () => {
      if (!spec.ephemeral) return;
      await this.jsm.consumers
        .delete(this.options.stream, durable)
        .then(() => this.jsm.streams.purge(this.options.stream, { filter }))
        .catch((error: unknown) => this.observer.onEvent({ type: 'internal-error', topic: spec.topic, context: "deleting an ephemeral subscription's consumer", error }));
    };
    return {
      close: () => subscription.close().finally(forget).then(remove),
      drain: () => subscription.drain().finally(forget).then(remove),
      status: () => subscription.status(),
      handedBack: () => subscription.handedBack(),
    };
  }

  /**
   * The group's durable consumer, created when missing: explicit acks, `ackWaitMs`, no delivery
   * limit (the pipeline dead-letters after `maxAttempts`; a server-side limit would drop the message
   * without a dead letter), starting at new messages (`latest`) or the first stored one (`earliest`).
   * An ephemeral subscription's consumer is removed by the server after a minute without a reader.
   */
  private async ensureConsumer(durable: string, filter: string, startFrom: 'earliest' | 'latest', recreate: boolean, ephemeral = false): Promise<Consumer> {
    const { stream } = this.options;
    if (recreate) await ensureStream(this.jsm, this.options);
    const existing = await this.jsm.consumers.info(stream, durable).catch(() => undefined);
    if (!existing) {
      await this.jsm.consumers.add(stream, {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: startFrom === 'earliest' ? DeliverPolicy.All : DeliverPolicy.New,
        filter_subject: filter,
        ack_wait: nanos(this.options.ackWaitMs),
        max_deliver: -1,
        max_ack_pending: 10_000,
        // An ephemeral subscription's consumer also goes when its process died (unused for a minute).
        ...(ephemeral ? { inactive_threshold: nanos(60_000) } : {}),
      });
    }
    return this.js.consumers.get(stream, durable);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    this.subscriptions.clear();
    // Drain flushes what was published and the acknowledgements and hand-backs just sent. While the
    // server does not answer it never ends: past publishTimeoutMs the connection is closed without it
    // (unsent acks: those messages come again after ackWaitMs; publishes were each acknowledged or failed).
    await withDeadline(this.nc.drain(), Date.now() + this.options.publishTimeoutMs, () => new Error('drain did not end')).catch(() => this.nc.close());
    await this.watching.catch(() => undefined);
  }
}

/** The servers, credentials redacted, for messages and health. */
function endpoints(options: NatsOptions): string {
  return options.servers.map((s) => redactUrl(s.includes('://') ? s : `nats://${s}`)).join(',');
}

/** Creates the stream when missing (and allowed), else checks it captures the prefix. */
async function ensureStream(jsm: JetStreamManager, options: NatsOptions): Promise<void> {
  const wanted = `${options.subjectPrefix}.>`;
  const info = await jsm.streams.info(options.stream).catch((error: unknown) => {
    if (/stream not found/i.test(String((error as Error)?.message))) return undefined;
    throw error;
  });
  if (!info) {
    if (!options.createStream) throw new ConfigError([{ path: 'transport.stream', message: `stream "${options.stream}" does not exist on the server and createStream is false` }]);
    await jsm.streams.add({
      name: options.stream,
      subjects: [wanted],
      retention: options.retention === 'interest' ? RetentionPolicy.Interest : RetentionPolicy.Limits,
      storage: options.storage === 'memory' ? StorageType.Memory : StorageType.File,
      num_replicas: options.replicas,
      max_age: nanos(options.maxAgeMs),
      max_bytes: options.maxBytes,
      duplicate_window: nanos(options.duplicateWindowMs),
    });
    return;
  }
  if (!info.config.subjects?.includes(wanted)) {
    throw new ConfigError([{ path: 'transport.subjectPrefix', message: `stream "${options.stream}" captures ${JSON.stringify(info.config.subjects ?? [])}, not "${wanted}"` }]);
  }
}
