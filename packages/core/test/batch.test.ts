import { describe, expect, it } from 'vitest';
import { CountingObserver, createBus, createMemoryTransport, type Message } from '@switchboard/core';

describe('batch handlers (bus/batch)', () => {
  it('a result that cannot say which messages failed fails the whole batch, naming why (each was acknowledged as handled)', async () => {
    const unreadable: [string, (messages: readonly Message[]) => unknown][] = [
      ['failed is not a list', () => ({ failed: 'm1' })],
      ['an entry of another batch', () => ({ failed: [{ message: { id: 'elsewhere' }, error: new Error('x') }] })],
      ['an empty entry', () => ({ failed: [null] })],
    ];
    for (const [name, result] of unreadable) {
      const counts = new CountingObserver();
      const errors: unknown[] = [];
      const bus = createBus({ transport: createMemoryTransport(), observer: counts });
      await bus.subscriber.subscribeBatch('b', async (messages) => result(messages) as never, {
        batch: { maxSize: 10, maxWaitMs: 5 },
        retry: { maxAttempts: 2, initialIntervalMs: 1 },
        deadLetter: false,
        onFinalFailure: (failure) => void errors.push(failure.error),
      });
      await bus.publisher.publish('b', [
        { id: 'm1', value: 1 },
        { id: 'm2', value: 2 },
      ]);
      await counts.waitFor('final-failure', 2);
      expect(counts.count('success'), name).toBe(0);
      expect(String(errors[0]), name).toMatch(/the batch handler's result cannot say which messages failed/);
      await bus.close();
    }
  });

  it('a result without `failed` (nothing, or what the last call returned) means every message was handled; failures are matched by message id', async () => {
    const counts = new CountingObserver();
    const bus = createBus({ transport: createMemoryTransport(), observer: counts });
    let call = 0;
    await bus.subscriber.subscribeBatch('b', async (messages) => (++call === 1 ? { failed: [{ message: { ...messages[1]! }, error: new Error('second') }] } : 42) as never, {
      batch: { maxSize: 10, maxWaitMs: 5 },
      retry: { maxAttempts: 2, initialIntervalMs: 1 },
    });
    await bus.publisher.publish('b', [
      { id: 'm1', value: 1 },
      { id: 'm2', value: 2 },
    ]);
    await counts.waitFor('success', 2);
    expect(counts.count('retry-attempt')).toBe(1); // m2 again, alone, in a later batch
    expect(counts.count('final-failure')).toBe(0);
    await bus.close();
  });
});
