/** @switchboard/cli/testing — the dead-letter lifecycle scenario (DLQ consumer, parking lot, replay, metrics, CLI) and a CLI runner. */
export * from './lifecycle-scenario.js';
export * from './lifecycle-suite.js';
