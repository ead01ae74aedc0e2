/**
 * @switchboard/core — broker-agnostic publish/subscribe.
 *
 * Application ports: {@link Publisher}, {@link Subscriber}, {@link Subscription}.
 * Transport SPI (for adapters): {@link Transport}, {@link Delivery}, {@link Capabilities}.
 * The one consumer pipeline: {@link createDeliveryProcessor} (used by {@link PipelineSubscriber}).
 */
export * from './message.js';
export * from './capabilities.js';
export * from './errors.js';
export * from './codec.js';
export * from './retry.js';
export * from './observer.js';
export * from './dead-letter.js';
export * from './message-size.js';
export * from './ports.js';
export * from './contract.js';
export * from './lifecycle.js';
export * from './dedup.js';
export * from './pipeline.js';
export * from './lanes.js';
export * from './topic-pattern.js';
export * from './capability-checks.js';
export * from './bus.js';
export * from './config.js';
export { TransportRegistry, type AnyTransportFactory, type ResolvedTransportConfig, type TransportFactory } from './registry.js';
export * from './from-config.js';
export * from './memory/memory-transport.js';
export * from './redact.js';
export * from './deadline.js';
export * from './coalesce.js';
export * from './resilience/fallback-store.js';
export * from './resilience/relay.js';
export * from './operations/parking-lot.js';
export * from './operations/dead-letter-consumer.js';
export * from './observability/tracing.js';
export * from './in-flight.js';
export * from './failure.js';
export * from './signing.js';
export * from './events.js';
export * from './health.js';
export * from './connection-state.js';
export * from './subscribe-options.js';
export * from './memory/factory.js';
