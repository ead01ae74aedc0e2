import { describe, expect, it } from 'vitest';
import { createBus, createRequester, serveRequests } from '@switchboard/core';
import { Recorder, uniqueName } from '@switchboard/core/testing';
import { testTransport } from './helpers.js';

describe('kafka publishing after a topic it published to was deleted', () => {
  it('a closed requester deletes its reply topic; the same bus still publishes to a topic new to it (kafkajs asked for the deleted topic in every metadata lookup)', async () => {
    const bus = createBus({ transport: await testTransport() });
    try {
      const topic = uniqueName('sb-kafka.deleted');
      await serveRequests<{ n: number }>(bus, `${topic}.rpc`, (m) => ({ doubled: m.value.n * 2 }), { group: 'rpc' });
      const requester = await createRequester(bus);
      expect((await requester.request<{ doubled: number }>(`${topic}.rpc`, { n: 21 }, { timeoutMs: 20_000 })).value.doubled).toBe(42);
      await requester.close(); // deletes the reply topic this bus's producer replied to
      const received = new Recorder<string>();
      await bus.subscriber.subscribe(`${topic}.after`, (m) => received.add(m.id), { group: 'after' });
      await bus.publisher.publish(`${topic}.after`, { id: 'after-delete', value: 1 });
      expect(await received.waitFor(1, 20_000)).toEqual(['after-delete']);
    } finally {
      await bus.close();
    }
  }, 60_000);
});
