/** @switchboard/resilience/testing — the broker-outage scenario every transport runs (needs vitest and a broker it may stop). */
export * from './outage-scenario.js';
export * from './outage-suite.js';
