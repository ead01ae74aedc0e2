import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { MEMORY_CAPABILITIES, MemoryBroker, MemoryTransport, TransportRegistry, createBusFromConfig, parseBusConfig, type Transport, type TransportFactory } from '@switchboard/core';
import type { Delivery } from '@switchboard/core/transport';
import { runConformanceSuite } from '@switchboard/core/testing';

/**
 * A third-party adapter, written here as a user would in their own package: its own kind, options
 * schema and capabilities, delegating the work to an in-process broker. Core knows nothing about it.
 */
class LoopbackTransport implements Transport {
  readonly kind = 'loopback';
  readonly capabilities = MEMORY_CAPABILITIES;
  private readonly inner: MemoryTransport;

  constructor(
    readonly options: { readonly highWaterMark: number },
    broker: MemoryBroker,
  ) {
    this.inner = new MemoryTransport(broker);
  }

  publish: Transport['publish'] = (topic, messages, options) => this.inner.publish(topic, messages, options);

  subscribe: Transport['subscribe'] = (spec, listener) =>
    this.inner.subscribe(spec, (delivery) => {
      const own: Delivery = {
        id: delivery.id,
        key: delivery.key,
        headers: delivery.headers,
        body: delivery.body,
        timestamp: delivery.timestamp,
        attempt: delivery.attempt,
        source: { ...delivery.source, transport: 'loopback' },
        ack: () => delivery.ack(),
        retryLater: (delayMs, nextAttempt) => delivery.retryLater(delayMs, nextAttempt),
      };
      return listener(own);
    });

  close = () => this.inner.close();
}

/** Like clients of one server: every transport the factory creates connects to the same broker. */
const brokers = new Map<number, MemoryBroker>();
const loopbackTransport: TransportFactory<{ highWaterMark: number }> = {
  kind: 'loopback',
  optionsSchema: z.object({ highWaterMark: z.number().int().min(1).default(1000) }).strict(),
  capabilities: () => MEMORY_CAPABILITIES,
  create: async (options) => {
    let broker = brokers.get(options.highWaterMark);
    if (!broker) brokers.set(options.highWaterMark, (broker = new MemoryBroker(options.highWaterMark)));
    return new LoopbackTransport(options, broker);
  },
};

describe('an adapter from another package', () => {
  it('plugs in through the registry: transport.kind picks it, its options schema validates the config', async () => {
    const registry = new TransportRegistry().register(loopbackTransport);
    const bus = await createBusFromConfig(parseBusConfig({ transport: { kind: 'loopback', highWaterMark: 50 } }), { registry });
    expect(bus.transport.kind).toBe('loopback');
    expect((bus.transport as LoopbackTransport).options.highWaterMark).toBe(50);
    await bus.close();
    await expect(createBusFromConfig(parseBusConfig({ transport: { kind: 'loopback', highWaterMark: 0 } }), { transports: [loopbackTransport] })).rejects.toThrow(/transport\.highWaterMark/);
  });
});

runConformanceSuite({
  name: 'third-party loopback adapter',
  capabilities: MEMORY_CAPABILITIES,
  createTransport: () => loopbackTransport.create({ highWaterMark: 10_000 }),
});
