import { MEMORY_CAPABILITIES, MemoryBroker, createMemoryTransport } from '@switchboard/core';
import { runConformanceSuite } from '@switchboard/core/testing';

// One broker for the file; each transport the suite opens is a connection to it.
const broker = new MemoryBroker();

runConformanceSuite({
  name: 'memory',
  capabilities: MEMORY_CAPABILITIES,
  createTransport: async () => createMemoryTransport(broker),
  waitMs: 5000,
});

runConformanceSuite({
  name: 'memory, ordering "key"',
  capabilities: MEMORY_CAPABILITIES,
  createTransport: async () => createMemoryTransport(broker),
  waitMs: 5000,
  defaults: { ordering: 'key' },
});
