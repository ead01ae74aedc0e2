import { MEMORY_CAPABILITIES, MemoryBroker, createMemoryTransport } from '@switchboard/core';
import { runConformanceSuite } from '@switchboard/core/testing';

// One broker for the file; each transport the suite opens is a connection to it.
const broker = new MemoryBroker();

runConformanceSuite({
  name: 'memory',
  capabilities: MEMORY_CAPABILITIES,
  createTransport: async () => createMemoryTransport(broker),
  brokerLink: { unavailable: 'no broker: the memory transport has no connection to lose' },
  ephemeralStateLeft: async (_transport, topic, group) => broker.hasGroup(topic, group),
  waitMs: 5000,
});

runConformanceSuite({
  name: 'memory, ordering "key"',
  capabilities: MEMORY_CAPABILITIES,
  createTransport: async () => createMemoryTransport(broker),
  brokerLink: { unavailable: 'no broker: the memory transport has no connection to lose' },
  waitMs: 5000,
  defaults: { ordering: 'key' },
});

// With a size limit, as a broker has one: the oversize dead-letter scenario runs too.
runConformanceSuite({
  name: 'memory, maxMessageBytes 256 KiB',
  capabilities: { ...MEMORY_CAPABILITIES, maxMessageBytes: 256 * 1024 },
  createTransport: async () => createMemoryTransport(broker, { maxMessageBytes: 256 * 1024 }),
  brokerLink: { unavailable: 'no broker: the memory transport has no connection to lose' },
  waitMs: 5000,
});
