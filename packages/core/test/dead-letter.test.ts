import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DeadLetterHeaders, REPLAY_GROUP_HEADER, TRUNCATED_HEADERS_HEADER } from '@switchboard/core';
import { bodilessDeadLetter, buildDeadLetter, fitDeadLetter, headerBytes, minimalDeadLetter, type Delivery } from '@switchboard/core/transport';

const delivery = (headers: Record<string, string>, body = new Uint8Array([1, 2, 3])): Delivery =>
  ({
    id: 'm-1',
    key: 'k',
    headers,
    body,
    timestamp: 1_700_000_000_000,
    attempt: 3,
    source: { transport: 'memory', topic: 'orders', group: 'g', partition: 2, offset: '41' },
    ack: () => true,
    retryLater: async () => true,
  }) as unknown as Delivery;
const details = {
  reason: 'retries-exhausted' as const,
  error: new Error('db down'),
  attempts: 3,
  retryable: true,
  firstFailureAt: 1_700_000_000_500,
  lastFailureAt: 1_700_000_001_000,
  stackTraceLimit: 4096,
};

describe('dead letters (pipeline/dead-letter)', () => {
  it('keeps id, key, body and the original headers; stamps the origin from the delivery; drops forged x-dlq-* and the replay target', () => {
    const letter = buildDeadLetter(delivery({ tenant: 't1', 'x-dlq-original-topic': 'forged', [REPLAY_GROUP_HEADER]: 'other' }), details);
    expect(letter).toMatchObject({ id: 'm-1', key: 'k', timestamp: 1_700_000_000_000 });
    expect(letter.headers).toMatchObject({
      tenant: 't1',
      [DeadLetterHeaders.originalTopic]: 'orders',
      [DeadLetterHeaders.originalGroup]: 'g',
      [DeadLetterHeaders.originalPartition]: '2',
      [DeadLetterHeaders.originalOffset]: '41',
      [DeadLetterHeaders.attempts]: '3',
      [DeadLetterHeaders.reason]: 'retries-exhausted',
      [DeadLetterHeaders.errorMessage]: 'db down',
      [DeadLetterHeaders.retryable]: 'true',
    });
    expect(letter.headers[REPLAY_GROUP_HEADER]).toBeUndefined();
  });

  it('cuts a letter to a header limit and names what it cut; leaves one that fits alone', () => {
    const letter = buildDeadLetter(delivery({ big: 'x'.repeat(20_000), small: 'y' }), details);
    expect(fitDeadLetter(letter, undefined)).toBe(letter);
    const fitted = fitDeadLetter(letter, 8_000);
    expect(headerBytes(fitted.headers)).toBeLessThanOrEqual(8_000);
    expect(fitted.headers[TRUNCATED_HEADERS_HEADER]).toContain('big');
    expect(fitted.headers.small).toBe('y');
  });

  it('minimal letter: origin, reason and a short error, the body kept; bodiless letter: no body, its size and SHA-256 in headers', () => {
    const body = new Uint8Array(5000).fill(7);
    const letter = buildDeadLetter(delivery({ tenant: 't1' }, body), details);
    const minimal = minimalDeadLetter(letter);
    expect(minimal.headers.tenant).toBeUndefined();
    expect(minimal.headers[DeadLetterHeaders.originalTopic]).toBe('orders');
    expect(minimal.body).toBe(body);
    const bodiless = bodilessDeadLetter(letter);
    expect(bodiless.body.byteLength).toBe(0);
    expect(bodiless.headers[DeadLetterHeaders.bodyBytes]).toBe('5000');
    expect(bodiless.headers[DeadLetterHeaders.bodySha256]).toBe(createHash('sha256').update(body).digest('hex'));
    expect(bodiless.headers[DeadLetterHeaders.reason]).toBe('retries-exhausted');
  });
});
