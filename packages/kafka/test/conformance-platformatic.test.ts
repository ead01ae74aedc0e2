import { describe, it } from 'vitest';
import { runConformanceSuite } from '@switchboard/core/testing';
import { kafkaCapabilities, platformaticRunsOn } from '@switchboard/kafka';
import { target } from './conformance-target.js';
import { testTransport } from './helpers.js';

// Every scenario again with driver "platformatic" (@platformatic/kafka 2 produces, consumes and
// administers), whatever driver the rest of the project runs on.
if (platformaticRunsOn()) {
  runConformanceSuite({ ...target, name: 'kafka, driver "platformatic"', capabilities: kafkaCapabilities('platformatic'), createTransport: () => testTransport({ driver: 'platformatic' }) });
} else {
  describe.skip(`kafka, driver "platformatic": needs Node >= 22.22 (@platformatic/kafka 2); this is Node ${process.versions.node}`, () => it('conformance', () => undefined));
}
