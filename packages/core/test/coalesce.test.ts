import { describe, expect, it } from 'vitest';
import { PublishCoalescer, type RawPublisher, type TransportMessage } from '@switchboard/core/transport';

const message = (id: string): TransportMessage => ({ id, headers: {}, body: new Uint8Array(), timestamp: 0 });

describe('PublishCoalescer', () => {
  it('sends same-tick publishes to one topic as one ordered batch, and settles every caller', async () => {
    const calls: { topic: string; ids: string[] }[] = [];
    const coalescer = new PublishCoalescer({ publish: async (topic, messages) => (calls.push({ topic, ids: messages.map((m) => m.id) }), { receivers: 2 }) });
    const results = await Promise.all([
      coalescer.publish('a', [message('1')], { guarantee: 'all' }),
      coalescer.publish('a', [message('2'), message('3')], { guarantee: 'all' }),
      coalescer.publish('b', [message('4')], { guarantee: 'all' }),
      coalescer.publish('a', [message('5')], { guarantee: 'none' }),
    ]);
    expect(calls).toEqual([
      { topic: 'a', ids: ['1', '2', '3'] },
      { topic: 'b', ids: ['4'] },
      { topic: 'a', ids: ['5'] },
    ]);
    expect(results.every((r) => r.receivers === 2)).toBe(true);
  });

  it('caps a batch at maxBatch and rejects every caller of a failed batch', async () => {
    const sizes: number[] = [];
    const failing: RawPublisher = {
      publish: async (_t, messages) => {
        sizes.push(messages.length);
        throw new Error('broker down');
      },
    };
    const coalescer = new PublishCoalescer(failing, 2);
    const outcomes = await Promise.allSettled([1, 2, 3].map((i) => coalescer.publish('t', [message(String(i))], { guarantee: 'all' })));
    expect(sizes).toEqual([2, 1]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected']);
  });
});
