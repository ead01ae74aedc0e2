import { describe, expect, it } from 'vitest';
import { failureFingerprint, letterKeyOf, normaliseErrorMessage } from '../src/index.js';

describe('failure fingerprints', () => {
  it('groups one kind of failure whatever its ids, numbers, quoted values and times', () => {
    expect(normaliseErrorMessage('order 42 not found for customer "c-42" at 2026-12-06T08:27:30.123Z (id 3f0c8a6e-1b2c-4d5e-8f90-1234567890ab, 0xdeadbeef01)')).toBe(
      'order <n> not found for customer <str> at <time> (id <uuid>, <hex>)',
    );
    const a = failureFingerprint({ reason: 'non-retryable', errorName: 'NotFound', errorMessage: 'order 1 missing' });
    expect(failureFingerprint({ reason: 'non-retryable', errorName: 'NotFound', errorMessage: 'order 977 missing' })).toBe(a);
    expect(failureFingerprint({ reason: 'retries-exhausted', errorName: 'NotFound', errorMessage: 'order 1 missing' })).not.toBe(a);
    expect(failureFingerprint({ reason: 'non-retryable', errorName: 'TypeError', errorMessage: 'order 1 missing' })).not.toBe(a);
    expect(normaliseErrorMessage('x'.repeat(10_000))).toHaveLength(300);
  });

  it('keys one dead-lettering: a new failure of the same message is a new letter, a duplicate copy is not', () => {
    const letter = { id: 'm-1', timestamp: 1, headers: { 'x-dlq-last-failure-at': '2026-12-06T08:00:00.000Z', 'x-dlq-attempts': '3' } };
    expect(letterKeyOf('orders-dlq', letter)).toBe(letterKeyOf('orders-dlq', { ...letter, timestamp: 2 }));
    expect(letterKeyOf('orders-dlq', { ...letter, headers: { ...letter.headers, 'x-dlq-last-failure-at': '2026-12-06T09:00:00.000Z' } })).not.toBe(letterKeyOf('orders-dlq', letter));
    expect(letterKeyOf('other-dlq', letter)).not.toBe(letterKeyOf('orders-dlq', letter));
  });
});
