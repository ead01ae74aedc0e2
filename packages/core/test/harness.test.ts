import { describe, expect, it } from 'vitest';
import { NonRetryableError } from '@switchboard/core';
import { createTestHarness } from '@switchboard/core/testing';

describe('test harness (memory bus with spies)', () => {
  it('records publishes, handled and failed calls, and dead letters with their reason', async () => {
    const harness = createTestHarness({ defaults: { retry: { maxAttempts: 2, initialIntervalMs: 1, multiplier: 1, maxIntervalMs: 1 } } });
    try {
      await harness.subscriber.subscribe<{ sku: string }>('orders', (m) => {
        if (m.value.sku === 'gone') throw new NonRetryableError('no such product');
        if (m.value.sku === 'flaky' && m.attempt === 1) throw new Error('database timeout');
      });
      await harness.publisher.publish('orders', [
        { id: 'o-1', key: 'k', value: { sku: 'ok' } },
        { id: 'o-2', value: { sku: 'flaky' } },
        { id: 'o-3', value: { sku: 'gone' } },
      ]);
      expect((await harness.handled('orders', (m) => m.id === 'o-1')).value).toEqual({ sku: 'ok' });
      const flaky = await harness.handled('orders', (m) => m.id === 'o-2');
      expect(flaky.attempt).toBe(2);
      const failure = await harness.failed('orders', (m) => m.id === 'o-2');
      expect((failure.error as Error).message).toBe('database timeout');
      const letter = await harness.deadLettered('orders');
      expect(letter).toMatchObject({ id: 'o-3', originalTopic: 'orders', reason: 'non-retryable', errorMessage: 'no such product', attempts: 1, value: { sku: 'gone' } });
      expect(harness.published('orders').map((m) => [m.id, m.key])).toEqual([
        ['o-1', 'k'],
        ['o-2', undefined],
        ['o-3', undefined],
      ]);
    } finally {
      await harness.close();
    }
  });

  it('a wait that runs out says what it saw instead', async () => {
    const harness = createTestHarness({ timeoutMs: 200 });
    try {
      await harness.subscriber.subscribe('mail', () => undefined);
      await harness.publisher.publish('mail', { id: 'm-1', value: 1 });
      await harness.handled('mail');
      await expect(harness.handled('mail', (m) => m.id === 'm-2')).rejects.toThrowError(
        'timed out after 200 ms waiting for a handled message on "mail" that matches; handled so far: m-1; failed: none',
      );
      await expect(harness.deadLettered('mail', undefined, 50)).rejects.toThrowError('timed out after 50 ms waiting for a dead letter of "mail" (on "mail-dlq"); dead-lettered so far: none');
    } finally {
      await harness.close();
    }
  });
});
