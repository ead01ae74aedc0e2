/** @switchboard/core/testing — the conformance suite and event-driven test helpers (needs vitest). */
export * from './conformance.js';
export * from './recorder.js';
export * from './fallback-store-suite.js';
export * from './tracing.js';
export * from './hostile.js';
export * from './dedup-store-suite.js';
export * from './outbox-store-suite.js';
export * from './harness.js';
export * from './broker-link.js';
