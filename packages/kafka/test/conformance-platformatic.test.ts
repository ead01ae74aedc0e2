import { describe, it } from 'vitest';
import { runConformanceSuite } from '@switchboard/core/testing';
import { platformaticRunsOn } from '@switchboard/kafka';
import { target } from './conformance-target.js';
import { TEST_DRIVER, testTransport } from './helpers.js';

// Every scenario again with driver "platformatic" (@platformatic/kafka 2 produces, consumes and
// administers). `pnpm test:kafka-platformatic` runs the whole Kafka project on that driver instead.
if (TEST_DRIVER === 'platformatic') {
  describe.skip('kafka, driver "platformatic" (the whole project already runs on it)', () => it('conformance', () => undefined));
} else if (platformaticRunsOn()) {
  runConformanceSuite({ ...target, name: 'kafka, driver "platformatic"', createTransport: () => testTransport({ driver: 'platformatic' }) });
} else {
  describe.skip(`kafka, driver "platformatic": needs Node >= 22.22 (@platformatic/kafka 2); this is Node ${process.versions.node}`, () => it('conformance', () => undefined));
}
