/**
 * @switchboard/core — broker-agnostic publish/subscribe: the application API.
 *
 * Ports: {@link Publisher}, {@link Subscriber}, {@link Subscription}; {@link createBus} and
 * {@link createBusFromConfig}; codecs, contracts, retry policy, errors, events and observers, health and
 * shutdown, dead-letter operations, fallback and relay, deduplication, the in-memory transport.
 *
 * Transport authors: the SPI and its helpers are at `@switchboard/core/transport`; the conformance
 * suite at `@switchboard/core/testing`.
 */
export { newMessageId, type Headers, type Message, type OutgoingMessage, type SourceMetadata } from './ports/message.js';
export * from './ports/capabilities.js';
export * from './ports/errors.js';
export { bytesCodec, jsonCodec, textCodec, type Codec } from './ports/codec.js';
export { backoffDelay, DEFAULT_RETRY_POLICY, fixedBackoff, isRetryable, retryPolicySchema, type ErrorClassifier, type RetryPolicy, type RetryPolicyInput } from './ports/retry.js';
export type {
  DeadLetterSource,
  FinalFailure,
  GroupPublisher,
  Handler,
  Middleware,
  PublishOptions,
  PublishReceipt,
  Publisher,
  StoredDeadLetter,
  SubscribeOptions,
  Subscriber,
  Subscription,
  Transport,
} from './ports/ports.js';
export { defineTopic, isTopicContract, type ContractPublishOptions, type TopicContract } from './ports/contract.js';
export * from './ports/events.js';
export * from './ports/health.js';
export { combineObservers, consoleLogger, CountingObserver, loggingObserver, silentLogger, type Logger } from './observability/observer.js';
export { TRACEPARENT, TRACESTATE } from './observability/tracing.js';
export { DEAD_LETTER_SUFFIX, DeadLetterHeaders, DEFAULT_STACK_TRACE_LIMIT, defaultDeadLetterTopic, REPLAY_GROUP_HEADER, TRUNCATED_HEADERS_HEADER } from './pipeline/dead-letter.js';
export * from './pipeline/dedup.js';
export { createBus, type Bus, type BusOptions, type NoReceiversPolicy, type PublisherOptions, type SubscriberOptions, type SubscriptionDefaults } from './bus/bus.js';
export type { Envelope, EnvelopeOptions } from './ports/envelope.js';
export type { BatchFailure, BatchHandler, BatchOptions, BatchResult, BatchSubscribeOptions } from './ports/ports.js';
export { batchingHandler } from './bus/batch.js';
export { createRequester, isReplyTopic, REPLY_TOPIC_PREFIX, ReplyHeaders, type Requester, type RequestOptions, serveRequests } from './bus/request-reply.js';
export { closeOnSignals, healthHandler, shutdownBus, type Closable, type ShutdownReport } from './bus/lifecycle.js';
export {
  assertConfigData,
  busConfigSchema,
  configFromEnv,
  configFromFile,
  envOriginsOf,
  loadBusConfig,
  mergeConfig,
  parseBusConfig,
  subscriptionConfigSchema,
  type BusConfig,
  type BusConfigInput,
  type ConfigSources,
  type EnvOrigin,
  type SubscriptionConfig,
} from './config/config.js';
export { TransportRegistry, type AnyTransportFactory, type ResolvedTransportConfig, type TransportFactory } from './config/registry.js';
export * from './from-config.js';
export * from './transports/memory/memory-transport.js';
export * from './transports/memory/factory.js';
export * from './resilience/fallback-store.js';
export * from './resilience/relay.js';
export * from './resilience/outbox.js';
export { MemoryParkingLot, type NewParkedMessage, type ParkedMessage, type ParkingFilter, type ParkingLot } from './operations/parking-lot.js';
export * from './operations/dead-letter-consumer.js';
export * from './operations/asyncapi.js';
export * from './operations/dead-letter-walk.js';
export * from './operations/fingerprint.js';
export * from './operations/console-store.js';
