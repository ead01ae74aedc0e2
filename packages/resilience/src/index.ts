/**
 * @switchboard/resilience — producer resilience for any transport: `withFallback` wraps a transport in
 * a circuit breaker (cockatiel) and diverts publishes to a fallback store while the broker is down;
 * `FallbackRelay` (in @switchboard/core) sends them on later.
 */
export * from './fallback-transport.js';
