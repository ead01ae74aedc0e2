import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { CountingObserver, DEFAULT_RETRY_POLICY, DecodeError, NonRetryableError, SchemaValidationError, backoffDelay, fixedBackoff, isRetryable, jsonCodec } from '@switchboard/core';
import { createDeliveryProcessor, type Delivery, type RawPublisher, type TransportMessage } from '@switchboard/core/transport';

describe('backoffDelay', () => {
  it('defaults to the seed: 3 attempts, 1000 ms, x2.0, capped at 10000 ms', () => {
    expect(DEFAULT_RETRY_POLICY).toEqual({ maxAttempts: 3, initialIntervalMs: 1000, multiplier: 2, maxIntervalMs: 10_000, jitter: 0 });
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(DEFAULT_RETRY_POLICY, n))).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
  });

  it('gives a fixed backoff with multiplier 1 (seed 1: 2 s x 3 retries)', () => {
    const policy = fixedBackoff(2000, 3);
    expect(policy.maxAttempts).toBe(4);
    expect([1, 2, 3].map((n) => backoffDelay(policy, n))).toEqual([2000, 2000, 2000]);
  });

  it('spreads by ±jitter and never exceeds the cap', () => {
    const policy = { ...DEFAULT_RETRY_POLICY, jitter: 0.5 };
    expect(backoffDelay(policy, 1, () => 0)).toBe(500);
    expect(backoffDelay(policy, 1, () => 1)).toBe(1500);
    expect(backoffDelay(policy, 5, () => 1)).toBe(10_000);
  });
});

describe('isRetryable', () => {
  it('never retries NonRetryableError, decode or schema errors, whatever the classifier says', () => {
    const always = () => true;
    expect(isRetryable(new NonRetryableError('gone'), always)).toBe(false);
    expect(isRetryable(new DecodeError('bad json'), always)).toBe(false);
    expect(isRetryable(new SchemaValidationError('bad shape', []), always)).toBe(false);
  });

  it('takes an own retryable flag at its word, then the classifier, then defaults to retryable', () => {
    expect(isRetryable(Object.assign(new Error('x'), { retryable: false }))).toBe(false);
    expect(isRetryable(Object.assign(new Error('x'), { retryable: true }), () => false)).toBe(true);
    const classifier = (e: unknown) => ((e as { code?: string }).code === 'NOT_FOUND' ? false : undefined);
    expect(isRetryable(Object.assign(new Error('x'), { code: 'NOT_FOUND' }), classifier)).toBe(false);
    expect(isRetryable(new Error('timeout'), classifier)).toBe(true);
    expect(isRetryable('a string thrown')).toBe(true);
  });
});

/** A delivery that records how it was settled. */
function fakeDelivery(body: unknown, attempt = 1) {
  const settled: string[] = [];
  const delivery: Delivery = {
    id: 'm-1',
    headers: {},
    body: jsonCodec.encode(body),
    timestamp: 0,
    attempt,
    source: { transport: 'test', topic: 't', partition: 0, offset: '7' },
    ack: async () => (settled.push('ack'), true),
    retryLater: async (ms) => (settled.push(`retryLater:${ms}`), true),
  };
  return { delivery, settled };
}

describe('pipeline timing (fake timers)', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('waits 1000 then 2000 ms in-process between the seed default attempts, then dead-letters', async () => {
    const calls: number[] = [];
    const published: TransportMessage[] = [];
    const dlq: RawPublisher = { publish: async (_t, m) => (published.push(...m), {}) };
    const observer = new CountingObserver();
    const process = createDeliveryProcessor({
      topic: 't',
      handler: () => {
        calls.push(Date.now());
        throw new Error('db down');
      },
      codec: jsonCodec,
      retry: DEFAULT_RETRY_POLICY,
      retryMode: 'in-process',
      deadLetter: { topic: 't-dlq', publisher: dlq },
      stackTraceLimit: 100,
      observer,
      signal: new AbortController().signal,
    });
    const { delivery, settled } = fakeDelivery({ a: 1 });
    const start = Date.now();
    const done = process(delivery);
    await vi.advanceTimersByTimeAsync(999);
    expect(calls.length).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls.length).toBe(2);
    await vi.advanceTimersByTimeAsync(1999);
    expect(calls.length).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    await done;
    expect(calls.map((t) => t - start)).toEqual([0, 1000, 3000]);
    expect(published).toHaveLength(1);
    expect(published[0]!.headers['x-dlq-error-stack']!.length).toBeLessThanOrEqual(100);
    expect(settled).toEqual(['ack']);
    expect(observer.snapshot()).toMatchObject({ 'retry-attempt': 2, 'will-retry': 2, 'final-failure': 1, 'dead-lettered': 1 });
  });

  it('hands the wait to the transport in transport mode (no handler slot held)', async () => {
    const process = createDeliveryProcessor({
      topic: 't',
      handler: () => {
        throw new Error('timeout');
      },
      codec: jsonCodec,
      retry: DEFAULT_RETRY_POLICY,
      retryMode: 'transport',
      deadLetter: false,
      stackTraceLimit: 100,
      observer: new CountingObserver(),
      signal: new AbortController().signal,
    });
    const first = fakeDelivery({}, 1);
    await process(first.delivery);
    const second = fakeDelivery({}, 2);
    await process(second.delivery);
    expect(first.settled).toEqual(['retryLater:1000']);
    expect(second.settled).toEqual(['retryLater:2000']);
  });

  it('does not ack when the dead-letter publish fails: it retries the DLQ after maxIntervalMs', async () => {
    let down = true; // the broker is down until the test brings it back
    const published: TransportMessage[] = [];
    const dlq: RawPublisher = {
      publish: async (_t, m) => {
        if (down) throw new Error('broker down');
        published.push(...m);
        return {};
      },
    };
    const observer = new CountingObserver();
    const process = createDeliveryProcessor({
      topic: 't',
      handler: () => undefined,
      codec: jsonCodec,
      schema: z.object({ n: z.number() }),
      retry: DEFAULT_RETRY_POLICY,
      retryMode: 'in-process',
      deadLetter: { topic: 't-dlq', publisher: dlq },
      stackTraceLimit: 100,
      observer,
      signal: new AbortController().signal,
    });
    const { delivery, settled } = fakeDelivery({ n: 'not a number' });
    const done = process(delivery);
    await vi.advanceTimersByTimeAsync(0);
    expect(settled).toEqual([]);
    expect(observer.count('publish-failed')).toBe(2); // the full letter, then the minimal one
    await vi.advanceTimersByTimeAsync(10_000);
    expect(observer.count('publish-failed')).toBe(4); // tried again after maxIntervalMs, not before
    expect(settled).toEqual([]);
    down = false;
    await vi.advanceTimersByTimeAsync(10_000);
    await done;
    expect(published).toHaveLength(1);
    expect(published[0]!.headers['x-dlq-reason']).toBe('validation-failed');
    expect(published[0]!.headers['x-dlq-truncated-headers']).toBeUndefined(); // the full letter, once the broker is back
    expect(settled).toEqual(['ack']);
  });

  it('sends a minimal dead letter when the destination refuses the full one, and never calls the handler again', async () => {
    const published: TransportMessage[] = [];
    const dlq: RawPublisher = {
      publish: async (_t, m) => {
        if (m.some((letter) => letter.headers['x-dlq-error-stack'] !== undefined)) throw new Error('frame too large');
        published.push(...m);
        return {};
      },
    };
    let calls = 0;
    const process = createDeliveryProcessor({
      topic: 't',
      handler: () => {
        calls++;
        throw new Error('boom');
      },
      codec: jsonCodec,
      retry: { ...DEFAULT_RETRY_POLICY, maxAttempts: 1 },
      retryMode: 'in-process',
      deadLetterRetryMode: 'in-process',
      deadLetter: { topic: 't-dlq', publisher: dlq },
      stackTraceLimit: 100,
      observer: new CountingObserver(),
      signal: new AbortController().signal,
    });
    const { delivery, settled } = fakeDelivery({ n: 1 });
    await process(delivery);
    expect(calls).toBe(1);
    expect(published).toHaveLength(1);
    expect(published[0]!.headers['x-dlq-reason']).toBe('retries-exhausted');
    expect(published[0]!.headers['x-dlq-truncated-headers']).toMatch(/minimal letter/);
    expect(settled).toEqual(['ack']);
  });

  it('leaves the delivery unsettled when the subscription closes during a backoff', async () => {
    const aborter = new AbortController();
    const process = createDeliveryProcessor({
      topic: 't',
      handler: () => {
        throw new Error('timeout');
      },
      codec: jsonCodec,
      retry: DEFAULT_RETRY_POLICY,
      retryMode: 'in-process',
      deadLetter: false,
      stackTraceLimit: 100,
      observer: new CountingObserver(),
      signal: aborter.signal,
    });
    const { delivery, settled } = fakeDelivery({});
    const done = process(delivery);
    await vi.advanceTimersByTimeAsync(10);
    aborter.abort();
    await done;
    expect(settled).toEqual([]);
  });
});

describe('broker-kept delivery count', () => {
  function processorFor(handler: () => void, published: TransportMessage[], guarantees: string[]) {
    const dlq: RawPublisher = { publish: async (_t, m, o) => (guarantees.push(o.guarantee), published.push(...m), {}) };
    return createDeliveryProcessor({
      topic: 't',
      handler,
      codec: jsonCodec,
      retry: { ...DEFAULT_RETRY_POLICY, maxAttempts: 3 },
      retryMode: 'transport',
      deadLetter: { topic: 't-dlq', publisher: dlq, guarantee: 'leader' },
      stackTraceLimit: 100,
      observer: new CountingObserver(),
      signal: new AbortController().signal,
    });
  }

  it('gives up a delivery the broker handed out more than maxAttempts times without calling the handler', async () => {
    const calls: number[] = [];
    const published: TransportMessage[] = [];
    const guarantees: string[] = [];
    const process = processorFor(() => void calls.push(1), published, guarantees);
    const { delivery, settled } = fakeDelivery({ a: 1 }, 1);
    await process({ ...delivery, deliveryCount: 4 });
    expect(calls).toEqual([]);
    expect(settled).toEqual(['ack']);
    expect(published).toHaveLength(1);
    expect(published[0]!.headers['x-dlq-reason']).toBe('retries-exhausted');
    expect(published[0]!.headers['x-dlq-attempts']).toBe('4');
    expect(published[0]!.headers['x-dlq-error-message']).toContain('delivered 4 times');
    expect(guarantees).toEqual(['leader']);
  });

  it('calls the handler while the count is within maxAttempts', async () => {
    const calls: number[] = [];
    const published: TransportMessage[] = [];
    const process = processorFor(() => void calls.push(1), published, []);
    const { delivery, settled } = fakeDelivery({ a: 1 }, 3);
    await process({ ...delivery, deliveryCount: 3 });
    expect(calls).toEqual([1]);
    expect(settled).toEqual(['ack']);
    expect(published).toEqual([]);
  });
});
