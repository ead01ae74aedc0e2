/**
 * @switchboard/core — broker-agnostic publish/subscribe.
 *
 * Application ports: {@link Publisher}, {@link Subscriber}, {@link Subscription}.
 * Transport SPI (for adapters): {@link Transport}, {@link Delivery}, {@link Capabilities}.
 * The one consumer pipeline: {@link createDeliveryProcessor} (used by {@link PipelineSubscriber}).
 */
export * from './ports/message.js';
export * from './ports/capabilities.js';
export * from './ports/errors.js';
export * from './ports/codec.js';
export * from './ports/retry.js';
export * from './observability/observer.js';
export * from './pipeline/dead-letter.js';
export * from './kit/message-size.js';
export * from './ports/ports.js';
export * from './ports/contract.js';
export * from './bus/lifecycle.js';
export * from './pipeline/dedup.js';
export * from './pipeline/pipeline.js';
export * from './kit/lanes.js';
export * from './util/topic-pattern.js';
export * from './kit/capability-checks.js';
export * from './bus/bus.js';
export * from './config/config.js';
export { TransportRegistry, type AnyTransportFactory, type ResolvedTransportConfig, type TransportFactory } from './config/registry.js';
export * from './from-config.js';
export * from './transports/memory/memory-transport.js';
export * from './util/redact.js';
export * from './util/deadline.js';
export * from './bus/coalesce.js';
export * from './resilience/fallback-store.js';
export * from './resilience/relay.js';
export * from './operations/parking-lot.js';
export * from './operations/dead-letter-consumer.js';
export * from './observability/tracing.js';
export * from './util/in-flight.js';
export * from './util/failure.js';
export * from './util/signing.js';
export * from './ports/events.js';
export * from './ports/health.js';
export * from './kit/connection-state.js';
export * from './ports/subscribe-options.js';
export * from './transports/memory/factory.js';
export * from './kit/parse-options.js';
