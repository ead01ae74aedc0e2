/**
 * @switchboard/core/transport — the transport SPI and the helpers adapters are built from. Application
 * code imports `@switchboard/core`; an adapter implements {@link Transport} with these.
 *
 * Contracts live on each name: {@link Transport} and {@link Delivery} (what publish, subscribe, ack and
 * retryLater promise), {@link Capabilities} (declared honestly: config validation and the conformance
 * suite rely on them), and the helpers (a scheduler that keeps per-key order, connection state for
 * health, deadlines, option parsing that names fields, size limits, dead-letter builders).
 */
export type { Headers, Delivery, SourceMetadata, TransportMessage } from './ports/message.js';
export { newMessageId, TransportDelivery, withIdOnWire } from './ports/message.js';
export type {
  DeadLetterSource,
  DeliveryListener,
  RawPublisher,
  StoredDeadLetter,
  Transport,
  TransportPublishOptions,
  TransportPublishResult,
  TransportSubscribeSpec,
  TransportSubscription,
} from './ports/ports.js';
export * from './ports/capabilities.js';
export * from './ports/errors.js';
export * from './ports/events.js';
export * from './ports/health.js';
export { asBuffer, decodeOrThrow } from './ports/codec.js';
export { retryPolicyFieldsSchema } from './ports/retry.js';
export { assertValidForContract, schemaValidationError } from './ports/contract.js';
export * from './ports/subscribe-options.js';
export * from './util/deadline.js';
export * from './util/failure.js';
export * from './util/in-flight.js';
export * from './util/redact.js';
export * from './util/signing.js';
export * from './util/topic-pattern.js';
export * from './kit/capability-checks.js';
export * from './kit/connection-state.js';
export * from './kit/header-text.js';
export * from './kit/lanes.js';
export * from './kit/message-size.js';
export * from './kit/parse-options.js';
export * from './kit/subscription-kit.js';
export { ObserverSet } from './observability/observer.js';
export * from './observability/tracing.js';
export * from './pipeline/dead-letter.js';
export * from './pipeline/pipeline.js';
export { assertGuaranteeSupported, PipelineSubscriber, TransportPublisher } from './bus/bus.js';
export { HealthTracker, type ObservedSubscription } from './bus/lifecycle.js';
export { PublishCoalescer } from './bus/coalesce.js';
export { parseWithEnv, toConfigError } from './config/config.js';
export { resolveTransportConfig, resolveTransportFactory } from './from-config.js';
export type { AnyTransportFactory, TransportFactory } from './config/registry.js';
export { matchesFilter } from './operations/parking-lot.js';
