import { z, type ZodType } from 'zod';
import type { TransportFactory } from '../../config/registry.js';
import { MEMORY_CAPABILITIES, MemoryTransport } from './memory-transport.js';

/** The embedded transport, always registered. */
export const memoryTransportFactory: TransportFactory<Record<string, never>> = {
  kind: 'memory',
  optionsSchema: z.object({}).strict() as unknown as ZodType<Record<string, never>>,
  capabilities: () => MEMORY_CAPABILITIES,
  create: async () => new MemoryTransport(),
};
