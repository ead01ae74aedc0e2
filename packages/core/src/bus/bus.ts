import type { DeliveryGuarantee } from '../ports/capabilities.js';
import { jsonCodec, type Codec } from '../ports/codec.js';
import { DEFAULT_STACK_TRACE_LIMIT, REPLAY_GROUP_HEADER, defaultDeadLetterTopic } from '../pipeline/dead-letter.js';
import { guaranteeIssue, subscriptionCapabilityIssues } from '../kit/capability-checks.js';
import { CapabilityError, ClosedError, ConfigError, PublishError } from '../ports/errors.js';
import { subscribeOptionsSchema } from '../ports/subscribe-options.js';
import { configErrorFromZod } from '../kit/parse-options.js';
import { assertOutgoing, newMessageId, type OutgoingMessage, type TransportMessage } from '../ports/message.js';
import { combineObservers, loggingObserver, type Logger } from '../observability/observer.js';
import type { BusObserver } from '../ports/events.js';
import { createDeliveryProcessor } from '../pipeline/pipeline.js';
import type { Span } from '@opentelemetry/api';
import { PublishCoalescer } from './coalesce.js';
import { REPLY_TOPIC_PREFIX } from './request-reply.js';
import { batchingHandler, batchOptionsSchema } from './batch.js';
import type { BatchHandler, BatchSubscribeOptions } from '../ports/ports.js';
import { HealthTracker, type ObservedSubscription } from './lifecycle.js';
import type { BusHealth } from '../ports/health.js';
import { assertValidForContract, isTopicContract, type ContractPublishOptions, type TopicContract } from '../ports/contract.js';
import { InFlight } from '../util/in-flight.js';
import { endSpan, serverOf, startPublishSpan, withTraceHeaders, type ServerAddress } from '../observability/tracing.js';
import type {
  GroupPublisher,
  Handler,
  Middleware,
  Publisher,
  PublishOptions,
  PublishReceipt,
  RawPublisher,
  SubscribeOptions,
  Subscriber,
  Subscription,
  Transport,
  TransportPublishOptions,
  TransportPublishResult,
  TransportSubscription,
} from '../ports/ports.js';
import { retryPolicySchema } from '../ports/retry.js';
import { envelopeSchema, type Envelope, type EnvelopeOptions } from '../ports/envelope.js';

export interface PublisherOptions {
  /** Default: the transport's `capabilities.defaultGuarantee`. Refused if the transport cannot meet it. */
  readonly guarantee?: DeliveryGuarantee;
  readonly codec?: Codec;
  readonly observer?: BusObserver;
  /**
   * What a publish that reached no receiver means (Redis Pub/Sub with no subscriber, RabbitMQ
   * unroutable, memory topic with no group): `warn` (default: resolve, report `no-receivers`),
   * `reject` (a PublishError: the message is gone), `ignore` (resolve silently).
   */
  readonly noReceivers?: NoReceiversPolicy;
  /**
   * Batch publishes issued in the same tick into one transport call (default true, up to 1000
   * messages): many one-message publishes cost about what one batch does.
   */
  readonly coalesce?: boolean;
  /**
   * What each message carries on the wire besides its key, headers and payload. The default carries
   * everything; `{ id: 'given' }` (for the bus, or per topic under `topics`) leaves generated ids off
   * the wire (see {@link EnvelopeOptions}).
   */
  readonly envelope?: Envelope;
}

export type NoReceiversPolicy = 'ignore' | 'warn' | 'reject';

/** The longest delay a publish may ask for: 30 days. */
export const MAX_DELAY_MS = 30 * 24 * 3600_000;

/** The envelope's choices for one topic, as the flags set on its transport messages. */
interface LeanFields {
  readonly localIds: boolean;
  readonly brokerTimestamp: boolean;
}

function leanFieldsOf(fields: { readonly [F in keyof EnvelopeOptions]?: EnvelopeOptions[F] | undefined }): LeanFields {
  return { localIds: fields.id === 'given', brokerTimestamp: fields.timestamp === 'broker' };
}

/** Refuses, with the reason, a guarantee the transport cannot meet. */
export function assertGuaranteeSupported(transport: Transport, guarantee: DeliveryGuarantee): void {
  const issue = guaranteeIssue(transport.kind, transport.capabilities, guarantee);
  if (issue) throw new CapabilityError([issue]);
}

/** The application {@link Publisher} over a transport: encodes, stamps ids and timestamps, reports events. */
export class TransportPublisher implements Publisher, GroupPublisher {
  readonly guarantee: DeliveryGuarantee;
  private readonly codec: Codec;
  private readonly observer: BusObserver;
  private readonly noReceivers: NoReceiversPolicy;
  private readonly sink: RawPublisher;
  private closed = false;
  private readonly inFlight = new InFlight();
  private readonly envelope: LeanFields;
  private readonly envelopeByTopic: ReadonlyMap<string, LeanFields>;
  /** The transport options of a publish without a delivery time (one object, reused). */
  private readonly publishOptions: TransportPublishOptions;
  /** The same for a reply topic: never created by the publish (see {@link TransportPublishOptions.existingOnly}). */
  private readonly replyPublishOptions: TransportPublishOptions;

  constructor(
    private readonly transport: Transport,
    options: PublisherOptions = {},
  ) {
    this.guarantee = options.guarantee ?? transport.capabilities.defaultGuarantee;
    assertGuaranteeSupported(transport, this.guarantee);
    this.publishOptions = { guarantee: this.guarantee };
    this.replyPublishOptions = { guarantee: this.guarantee, existingOnly: true };
    this.codec = options.codec ?? jsonCodec;
    this.observer = options.observer ?? combineObservers();
    this.noReceivers = options.noReceivers ?? 'warn';
    this.sink = options.coalesce === false ? transport : new PublishCoalescer(transport);
    const envelope = envelopeSchema.safeParse(options.envelope ?? {});
    if (!envelope.success) throw configErrorFromZod(envelope.error, 'envelope');
    const { topics, ...fields } = envelope.data;
    this.envelope = leanFieldsOf(fields);
    this.envelopeByTopic = new Map(Object.entries(topics ?? {}).map(([topic, own]) => [topic, leanFieldsOf({ ...fields, ...own })]));
  }

  /** What the envelope leaves off the wire for `topic`. */
  private leanFieldsFor(topic: string): LeanFields {
    return this.envelopeByTopic.size === 0 ? this.envelope : (this.envelopeByTopic.get(topic) ?? this.envelope);
  }

  publish<T>(topic: string, messages: OutgoingMessage<T> | readonly OutgoingMessage<T>[], options?: PublishOptions): Promise<PublishReceipt>;
  publish<Out, In>(contract: TopicContract<Out, In>, value: In, options?: ContractPublishOptions): Promise<PublishReceipt>;
  publish(target: string | TopicContract<unknown, unknown>, messages: unknown, options?: ContractPublishOptions & PublishOptions): Promise<PublishReceipt> {
    try {
      const deliverAt = this.deliverAtOf(options);
      if (typeof target === 'string' && target !== '') return this.send(target, messages as OutgoingMessage<unknown> | readonly OutgoingMessage<unknown>[], undefined, deliverAt);
      if (typeof target !== 'object' || target === null || typeof target.name !== 'string') {
        throw new ConfigError([{ path: 'topic', message: 'must be a non-empty string or a contract from defineTopic' }]);
      }
      if (target.validateOnPublish) assertValidForContract(target, messages);
      const { delayMs: _delay, deliverAt: _at, ...fields } = options ?? {};
      const key = fields.key ?? target.key?.(messages);
      return this.send(target.name, { ...fields, ...(key !== undefined ? { key } : {}), value: messages }, undefined, deliverAt);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The delivery time a publish asks for (ms since the epoch), checked against the transport's capability; undefined = now. */
  private deliverAtOf(options: PublishOptions | undefined): number | undefined {
    if (options?.delayMs === undefined && options?.deliverAt === undefined) return undefined;
    const field = options.delayMs !== undefined ? 'delayMs' : 'deliverAt';
    if (options.delayMs !== undefined && options.deliverAt !== undefined) throw new ConfigError([{ path: 'delayMs', message: 'give delayMs or deliverAt, not both' }]);
    if (!this.transport.capabilities.delayedDelivery) {
      throw new CapabilityError([
        { path: field, message: `transport "${this.transport.kind}" cannot hold a message for later delivery (capability delayedDelivery): memory, rabbitmq and postgres can` },
      ]);
    }
    const now = Date.now();
    const at = options.delayMs !== undefined ? now + options.delayMs : options.deliverAt instanceof Date ? options.deliverAt.getTime() : options.deliverAt!;
    const delay = at - now;
    if (!Number.isFinite(at) || (options.delayMs !== undefined && (!Number.isInteger(options.delayMs) || options.delayMs < 0)) || delay > MAX_DELAY_MS) {
      throw new ConfigError([{ path: field, message: `a delay from 0 to 30 days (got ${options.delayMs ?? String(options.deliverAt)})` }]);
    }
    return Math.max(at, now);
  }

  /**
   * Publishes to one consumer group of `topic`: through the transport's `publishToGroup` where it has
   * one, else to the topic; either way stamped with the replay-target header, so other groups skip it.
   */
  publishToGroup<T>(topic: string, group: string, messages: OutgoingMessage<T> | readonly OutgoingMessage<T>[]): Promise<PublishReceipt> {
    const unnamed = unnamedTopic(topic);
    if (unnamed) return Promise.reject(unnamed);
    const list = Array.isArray(messages) ? (messages as readonly OutgoingMessage<T>[]) : [messages as OutgoingMessage<T>];
    return this.send(
      topic,
      list.map((m) => ({ ...m, headers: { ...m.headers, [REPLAY_GROUP_HEADER]: group } })),
      group,
    );
  }

  /**
   * Encodes and hands the messages to the transport (through the coalescer unless in a transaction or
   * delayed). Not an async function: this is the per-publish path, and one `then` on the transport's
   * promise costs less than an async frame awaiting it. Every failure, thrown or rejected, comes back
   * as a rejection: an encoding error as it is, a transport failure as a {@link PublishError}.
   */
  private send<T>(topic: string, messages: OutgoingMessage<T> | readonly OutgoingMessage<T>[], group: string | undefined, deliverAt?: number): Promise<PublishReceipt> {
    if (this.closed) return Promise.reject(new ClosedError('publisher is closed'));
    const many = Array.isArray(messages);
    const span = startPublishSpan(topic, this.transport.kind, many ? messages.length : 1);
    const stampedAt = Date.now(); // one clock read per call: the messages of a batch share their timestamp
    const lean = this.leanFieldsFor(topic);
    let encoded: TransportMessage[];
    try {
      encoded = many
        ? (messages as readonly OutgoingMessage<T>[]).map((m) => this.toTransportMessage(m, span, stampedAt, lean))
        : [this.toTransportMessage(messages as OutgoingMessage<T>, span, stampedAt, lean)];
    } catch (error) {
      endSpan(span, error);
      return Promise.reject(error);
    }
    this.inFlight.begin();
    let sent: Promise<TransportPublishResult>;
    try {
      const reply = topic.startsWith(REPLY_TOPIC_PREFIX);
      const options = deliverAt !== undefined ? { guarantee: this.guarantee, deliverAt, ...(reply ? { existingOnly: true } : {}) } : reply ? this.replyPublishOptions : this.publishOptions;
      // Inside a transactional delivery the publish joins its transaction, and a delayed publish has
      // options of its own: both go straight to the transport, never coalesced with other publishes.
      const sink = this.transport.inTransaction?.() || deliverAt !== undefined ? this.transport : this.sink;
      sent = group !== undefined && this.transport.publishToGroup ? this.transport.publishToGroup(topic, group, encoded, options) : sink.publish(topic, encoded, options);
    } catch (error) {
      sent = Promise.reject(error);
    }
    return sent.then(
      (result) => {
        try {
          return this.receiptOf(topic, encoded, span, result);
        } catch (error) {
          throw this.failed(topic, encoded, span, error);
        } finally {
          this.inFlight.end();
        }
      },
      (error: unknown) => {
        this.inFlight.end();
        throw this.failed(topic, encoded, span, error);
      },
    );
  }

  /** The receipt of a publish the transport took; applies the noReceivers policy (which may throw). */
  private receiptOf(topic: string, encoded: readonly TransportMessage[], span: Span | undefined, result: TransportPublishResult): PublishReceipt {
    endSpan(span);
    if (result.stored) {
      return { ids: encoded.map((m) => m.id), status: 'stored' };
    }
    if (result.receivers === 0 && this.noReceivers !== 'ignore') {
      this.observer.onEvent({ type: 'no-receivers', topic, count: encoded.length });
      if (this.noReceivers === 'reject') throw new PublishError(`no receiver for "${topic}" on ${this.transport.kind}: the message reached nobody and is lost`, topic);
    }
    const ids = encoded.length === 1 ? [encoded[0]!.id] : encoded.map((m) => m.id);
    const { receivers } = result;
    // One object shape each way (no spread of an empty object on every call: this is the per-publish path).
    this.observer.onEvent(receivers !== undefined ? { type: 'published', topic, count: encoded.length, receivers } : { type: 'published', topic, count: encoded.length });
    return receivers !== undefined ? { ids, status: 'delivered', receivers } : { ids, status: 'delivered' };
  }

  /**
   * A failed publish: the span ended with the error, `publish-failed` reported; the error to throw: a
   * {@link PublishError}, or the caller's own mistake as it is (a {@link ConfigError} naming the field).
   */
  private failed(topic: string, encoded: readonly TransportMessage[], span: Span | undefined, error: unknown): Error {
    endSpan(span, error);
    this.observer.onEvent({ type: 'publish-failed', topic, count: encoded.length, error });
    if (error instanceof PublishError || error instanceof ConfigError) return error;
    return new PublishError(`publish to "${topic}" on ${this.transport.kind} failed (guarantee "${this.guarantee}"): ${(error as Error)?.message ?? error}`, topic, { cause: error });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.inFlight.idle();
  }

  private toTransportMessage<T>(message: OutgoingMessage<T>, span: Span | undefined, stampedAt: number, lean: LeanFields): TransportMessage {
    assertOutgoing(message);
    const body = message.payload ?? this.codec.encode(message.value);
    const headers = message.headers ?? {};
    // Optional fields set only when present (assigned, not spread: this runs once per message).
    const out: { -readonly [F in keyof TransportMessage]: TransportMessage[F] } = {
      id: message.id ?? newMessageId(),
      headers: span ? withTraceHeaders(headers, span) : headers,
      body,
      timestamp: message.timestamp ?? stampedAt,
    };
    if (message.key !== undefined) out.key = message.key;
    if (lean.localIds && message.id === undefined) out.localId = true;
    if (lean.brokerTimestamp && message.timestamp === undefined) out.brokerTimestamp = true;
    return out;
  }
}

/** The error for a topic that is not a non-empty string (publishing to a group, subscribing), or undefined. */
function unnamedTopic(topic: unknown): ConfigError | undefined {
  return typeof topic === 'string' && topic !== '' ? undefined : new ConfigError([{ path: 'topic', message: 'must be a non-empty string' }]);
}

/** The first broker endpoint the transport reports, for trace attributes (`server.address`, `server.port`). */
function serverAddressOf(transport: Transport): { server?: ServerAddress } {
  const endpoint = transport.connections?.().find((c) => c.endpoint !== undefined)?.endpoint;
  return endpoint !== undefined ? { server: serverOf(endpoint) } : {};
}

/** Defaults applied to every subscription of a subscriber (each subscription may override). */
export type SubscriptionDefaults = Omit<SubscribeOptions, 'schema' | 'pattern'>;

export interface SubscriberOptions {
  readonly observer?: BusObserver;
  readonly defaults?: SubscriptionDefaults;
}

/** The application {@link Subscriber} over a transport: every subscription runs the core pipeline. */
export class PipelineSubscriber implements Subscriber {
  private readonly subscriptions = new Set<ObservedSubscription>();
  /** Transport subscribes under way: `close()` waits for them, and each closes what it started. */
  private readonly starting = new Set<Promise<TransportSubscription>>();
  private readonly observer: BusObserver;
  private closed = false;

  constructor(
    private readonly transport: Transport,
    private readonly options: SubscriberOptions = {},
  ) {
    this.observer = options.observer ?? combineObservers();
  }

  subscribe<T = unknown>(topic: string, handler: Handler<T>, options?: SubscribeOptions<T>): Promise<Subscription>;
  subscribe<Out, In>(contract: TopicContract<Out, In>, handler: Handler<Out>, options?: Omit<SubscribeOptions<Out>, 'schema' | 'pattern'>): Promise<Subscription>;
  subscribe(target: string | TopicContract<unknown, unknown>, handler: Handler<unknown>, options: SubscribeOptions<unknown> = {}): Promise<Subscription> {
    if (isTopicContract(target)) return this.subscribeTopic(target.name, handler, { ...options, schema: target.schema as SubscribeOptions<unknown>['schema'] & object, pattern: false });
    return this.subscribeTopic(target, handler, options);
  }

  subscribeBatch<T = unknown>(topic: string, handler: BatchHandler<T>, options: BatchSubscribeOptions<T>): Promise<Subscription>;
  subscribeBatch<Out, In>(contract: TopicContract<Out, In>, handler: BatchHandler<Out>, options: Omit<BatchSubscribeOptions<Out>, 'schema' | 'pattern'>): Promise<Subscription>;
  async subscribeBatch(target: string | TopicContract<unknown, unknown>, handler: BatchHandler<unknown>, options: BatchSubscribeOptions<unknown>): Promise<Subscription> {
    if (typeof handler !== 'function') throw new ConfigError([{ path: 'handler', message: 'must be a function' }]);
    const { batch: batchInput, ...rest } = (options ?? {}) as BatchSubscribeOptions<unknown> & { transactional?: unknown };
    const batch = batchOptionsSchema.safeParse(batchInput);
    if (!batch.success) throw configErrorFromZod(batch.error, 'batch');
    const problems: { path: string; message: string }[] = [];
    const orderings = this.transport.capabilities.orderings;
    const ordering = rest.ordering ?? (orderings.includes('key') ? 'key' : orderings.includes('none') ? 'none' : undefined);
    if (ordering === undefined || !orderings.includes(ordering)) {
      problems.push({ path: 'batch', message: `transport "${this.transport.kind}" handles one message at a time per subscription (orderings: ${orderings.join(', ')}): no batches` });
    } else if ((rest.ordering as string | undefined) === 'partition') {
      problems.push({ path: 'ordering', message: "a batch subscription orders by key or not at all ('partition' handles one message at a time)" });
    }
    if (rest.transactional) problems.push({ path: 'transactional', message: 'not with batch handlers (one transaction per message)' });
    const concurrency = rest.concurrency ?? batch.data.maxSize;
    if (concurrency < batch.data.maxSize) problems.push({ path: 'batch.maxSize', message: `larger than concurrency (${concurrency}): a batch holds at most \`concurrency\` messages in flight` });
    if (problems.length > 0 || ordering === undefined) throw new CapabilityError(problems);
    const perMessage = batchingHandler(handler, batch.data);
    return this.subscribe(target as string, perMessage, { ...(rest as SubscribeOptions<unknown>), ordering, concurrency });
  }

  private async subscribeTopic<T>(topic: string, handler: Handler<T>, options: SubscribeOptions<T>): Promise<Subscription> {
    if (this.closed) throw new ClosedError('subscriber is closed');
    const unnamed = unnamedTopic(topic);
    if (unnamed) throw unnamed;
    if (typeof handler !== 'function') throw new ConfigError([{ path: 'handler', message: 'must be a function' }]);
    if (typeof options !== 'object' || options === null)
      throw new ConfigError([{ path: 'options', message: `must be an object of subscribe options (got ${options === null ? 'null' : typeof options})` }]);
    const defaults = this.options.defaults ?? {};
    // Retry fields merge one by one; middleware adds up: the subscriber's defaults first, then the subscription's.
    const use = [...((defaults.use ?? []) as readonly Middleware<T>[]), ...(options.use ?? [])];
    const merged: SubscribeOptions<T> = { ...(defaults as SubscribeOptions<T>), ...options, retry: { ...defaults.retry, ...options.retry }, ...(use.length > 0 ? { use } : {}) };
    const checked = subscribeOptionsSchema.safeParse(merged);
    if (!checked.success) throw configErrorFromZod(checked.error);
    const caps = this.transport.capabilities;
    const problems = subscriptionCapabilityIssues(this.transport.kind, caps, merged);
    if (problems.length > 0) throw new CapabilityError(problems);

    const parsedRetry = retryPolicySchema.safeParse(merged.retry ?? {});
    if (!parsedRetry.success) throw configErrorFromZod(parsedRetry.error, 'retry');
    const retry = parsedRetry.data;
    const group = merged.group ?? (caps.consumerGroups ? 'default' : undefined);
    const pattern = merged.pattern ?? false;
    // A pattern subscription dead-letters each message to the DLQ of its concrete topic.
    const deadLetterTopic = merged.deadLetter === false ? false : (merged.deadLetter ?? (pattern ? defaultDeadLetterTopic : defaultDeadLetterTopic(topic)));
    // A dead-letter topic the broker cannot name would fail at the first dead letter, and again every
    // retry of it: refused now, naming the field that made it.
    const deadLetterProblem = typeof deadLetterTopic === 'string' ? this.transport.topicProblem?.(deadLetterTopic) : undefined;
    if (deadLetterProblem) throw new ConfigError([{ path: merged.deadLetter !== undefined ? 'deadLetter' : 'topic', message: `the dead-letter topic: ${deadLetterProblem}` }]);
    const retryMode = merged.retryMode ?? (caps.delayedRedelivery ? 'transport' : 'in-process');
    const aborter = new AbortController();
    const listener = createDeliveryProcessor<T>({
      topic,
      ...(group !== undefined ? { group } : {}),
      handler,
      ...(merged.use ? { use: merged.use } : {}),
      codec: merged.codec ?? jsonCodec,
      ...(merged.schema ? { schema: merged.schema } : {}),
      retry,
      retryMode,
      // Handing back a failed dead letter with retryLater holds back only a partition or key lane where
      // the transport orders by key; elsewhere (competing consumers) it waits in its slot.
      deadLetterRetryMode: retryMode === 'transport' && caps.perKeyOrder ? 'transport' : 'in-process',
      ...(merged.classify ? { classify: merged.classify } : {}),
      deadLetter: deadLetterTopic === false ? false : this.deadLetterDestination(deadLetterTopic),
      ...(caps.maxHeaderBytes !== undefined ? { maxDeadLetterHeaderBytes: caps.maxHeaderBytes } : {}),
      ...(merged.onFinalFailure ? { onFinalFailure: merged.onFinalFailure } : {}),
      stackTraceLimit: merged.stackTraceLimit ?? DEFAULT_STACK_TRACE_LIMIT,
      ...serverAddressOf(this.transport),
      observer: this.observer,
      signal: aborter.signal,
    });
    const starting = this.transport.subscribe(
      {
        topic,
        pattern,
        group: group ?? '',
        concurrency: merged.concurrency ?? 1,
        ordering: merged.ordering ?? caps.orderings[0] ?? 'partition',
        startFrom: merged.startFrom ?? 'latest',
        ...(merged.transactional ? { transactional: true } : {}),
        ...(merged.ephemeral ? { ephemeral: true } : {}),
      },
      listener,
    );
    this.starting.add(starting);
    let inner: TransportSubscription;
    try {
      inner = await starting;
    } catch (error) {
      // Closed meanwhile: the transport's own error (a connection closed under it) says less than this.
      if (this.closed) throw new ClosedError(`subscriber closed while subscribing to "${topic}"`, { cause: error });
      throw error;
    } finally {
      this.starting.delete(starting);
    }
    if (this.closed) {
      // close() came while the transport was subscribing: this one is closed too, never left running.
      aborter.abort();
      await inner.close().catch(() => undefined);
      throw new ClosedError(`subscriber closed while subscribing to "${topic}"`);
    }
    // close() during a drain escalates it: backoff waits stop and what was not started is handed back.
    let closing: Promise<void> | undefined;
    let draining: Promise<void> | undefined;
    const subscription: ObservedSubscription = {
      topic,
      ...(group !== undefined ? { group } : {}),
      ...(inner.status ? { status: () => inner.status!() } : {}),
      ...(inner.handedBack ? { handedBack: () => inner.handedBack!() } : {}),
      close: () =>
        (closing ??= (async () => {
          aborter.abort();
          await inner.close();
          await draining?.catch(() => undefined);
          this.subscriptions.delete(subscription);
        })()),
      drain: () =>
        (draining ??=
          closing ??
          (async () => {
            await inner.drain();
            aborter.abort();
            this.subscriptions.delete(subscription);
          })()),
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  /**
   * Where this transport's dead letters go: its own dead-letter publisher when it has one (that one
   * takes `all`), else the transport with the strongest guarantee it declares.
   */
  private deadLetterDestination(topic: string | ((concreteTopic: string) => string)) {
    const own = this.transport.deadLetterPublisher?.();
    if (own) return { topic, publisher: own, guarantee: 'all' as const };
    const offered = this.transport.capabilities.deliveryGuarantees;
    const guarantee = (['all', 'leader', 'none'] as const).find((g) => offered.includes(g)) ?? 'all';
    return { topic, publisher: this.transport, guarantee };
  }

  /** The subscriptions made through this subscriber and not closed yet. */
  list(): readonly ObservedSubscription[] {
    return [...this.subscriptions];
  }

  async close(): Promise<void> {
    this.closed = true;
    // Subscribes under way end first (each closes what it started, whenever it ends: nothing runs
    // after close). Waited for at most 30 s, so a transport whose subscribe hangs cannot hang close.
    if (this.starting.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([Promise.allSettled([...this.starting]), new Promise((resolve) => (timer = setTimeout(resolve, 30_000)))]);
      clearTimeout(timer);
    }
    await Promise.all([...this.subscriptions].map((s) => s.close()));
  }
}

export interface BusOptions extends SubscriberOptions {
  readonly transport: Transport;
  /** Seed log lines ("failed, will retry", "retrying (n)", "final failure") go here. */
  readonly logger?: Logger;
  readonly publisher?: Omit<PublisherOptions, 'observer'>;
}

/** A transport with its publisher and subscriber, sharing one observer. */
export interface Bus {
  readonly transport: Transport;
  readonly publisher: Publisher;
  readonly subscriber: Subscriber;
  readonly observer: BusObserver;
  /** The live subscriptions made through this bus. */
  subscriptions(): readonly Subscription[];
  /**
   * Per-subscription state (live, or interrupted since when; lag where the transport knows it) and
   * per-connection state, as the transport last saw them. Synchronous: cheap enough for every probe.
   */
  health(): BusHealth;
  /** Closes subscriptions, then the publisher, then the transport. */
  close(): Promise<void>;
}

export function createBus(options: BusOptions): Bus {
  const health = new HealthTracker();
  // Health first: an observer reacting to an interruption already sees it in `health()`.
  const observer = combineObservers(health, options.observer, options.logger ? loggingObserver(options.logger) : undefined);
  const stopObserving = options.transport.observe?.(observer);
  const publisher = new TransportPublisher(options.transport, { ...options.publisher, observer });
  const subscriber = new PipelineSubscriber(options.transport, { observer, ...(options.defaults ? { defaults: options.defaults } : {}) });
  let closed = false;
  return {
    transport: options.transport,
    publisher,
    subscriber,
    observer,
    subscriptions: () => subscriber.list(),
    health: () => health.report(options.transport, subscriber.list(), closed),
    async close() {
      closed = true;
      await subscriber.close();
      await publisher.close();
      stopObserving?.();
      await options.transport.close();
    },
  };
}
