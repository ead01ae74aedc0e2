import * as fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, CountingObserver, DeadLetterHeaders, TRUNCATED_HEADERS_HEADER, createBus, createMemoryTransport, jsonCodec } from '@switchboard/core';
import { buildDeadLetter, createDeliveryProcessor, describeFailure, fitDeadLetter, type Delivery, type RawPublisher, type TransportMessage } from '@switchboard/core/transport';
import { hostileThrownValues } from '@switchboard/core/testing';

/** Any value a handler may throw: fast-check's `anything`, plus the hand-made hostile ones. */
const thrownValue = fc.oneof(
  fc.anything({ withBigInt: true, withBoxedValues: true, withMap: true, withSet: true, withNullPrototype: true }),
  fc.constantFrom(...hostileThrownValues().map((h) => h.value)),
);
const headerMap = fc.dictionary(fc.string({ maxLength: 30 }), fc.string({ maxLength: 200 }), { maxKeys: 12 });

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
beforeAll(() => void process.on('unhandledRejection', onUnhandled));
afterAll(() => void process.off('unhandledRejection', onUnhandled));

describe('describeFailure', () => {
  it('never throws and bounds every string, whatever was thrown', () => {
    fc.assert(
      fc.property(thrownValue, fc.integer({ min: 0, max: 5000 }), (value, limit) => {
        const d = describeFailure(value, limit);
        expect(typeof d.name).toBe('string');
        expect(d.message.length).toBeLessThanOrEqual(Math.max(limit, 0));
        expect(d.stack.length).toBeLessThanOrEqual(Math.max(limit, 0));
      }),
      { numRuns: 500 },
    );
  });
});

describe('dead letters', () => {
  it('build without throwing from any header map, time and thrown value, and never carry incoming x-dlq-* or replay headers', () => {
    fc.assert(
      fc.property(headerMap, thrownValue, fc.double(), fc.double(), (headers, error, first, last) => {
        const forged = { ...headers, 'x-dlq-original-topic': 'elsewhere', 'x-sb-replay-group': 'other' };
        const delivery = { id: 'm', headers: forged, body: new Uint8Array([1]), timestamp: first, attempt: 1, source: { transport: 'memory', topic: 'real' } } as unknown as Delivery;
        const letter = buildDeadLetter(delivery, { reason: 'non-retryable', error, attempts: 1, retryable: false, firstFailureAt: first, lastFailureAt: last, stackTraceLimit: 4096 });
        expect(letter.headers[DeadLetterHeaders.originalTopic]).toBe('real');
        expect(letter.headers['x-sb-replay-group']).toBeUndefined();
        expect(Number.isNaN(Date.parse(letter.headers[DeadLetterHeaders.firstFailureAt]!))).toBe(false);
        expect(Number.isSafeInteger(letter.timestamp)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('fit the destination header limit: a 64.5 KB original header is cut and named', () => {
    const delivery = {
      id: 'm',
      headers: { 'x-big': 'h'.repeat(64_500), small: 'kept' },
      body: new Uint8Array(),
      timestamp: Date.now(),
      attempt: 3,
      source: { transport: 'rabbitmq', topic: 't' },
    } as unknown as Delivery;
    const letter = fitDeadLetter(
      buildDeadLetter(delivery, { reason: 'retries-exhausted', error: new Error('x'.repeat(10_000)), attempts: 3, retryable: true, firstFailureAt: 0, lastFailureAt: 1, stackTraceLimit: 4096 }),
      60_000,
    );
    const bytes = Object.entries(letter.headers).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v) + 8, 0);
    expect(bytes).toBeLessThanOrEqual(60_000);
    expect(letter.headers.small).toBe('kept');
    expect(letter.headers['x-big']!.length).toBeLessThanOrEqual(256);
    expect(letter.headers[TRUNCATED_HEADERS_HEADER]).toBe('x-big');
  });
});

describe('the pipeline is total (property-based, memory)', () => {
  it('ends every message acked after success or after a confirmed dead letter, with at most maxAttempts handler calls, for any thrown values and headers', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.constant({ ok: true as const }),
            thrownValue.map((value) => ({ ok: false as const, value })),
          ),
          { minLength: 1, maxLength: 5 },
        ),
        headerMap,
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 2 }),
        fc.integer({ min: -3, max: 9 }),
        async (outcomes, headers, maxAttempts, dlqFailures, reportedAttempt) => {
          let calls = 0;
          let failuresLeft = dlqFailures;
          const letters: TransportMessage[] = [];
          const dlq: RawPublisher = {
            publish: async (_topic, messages) => {
              if (failuresLeft-- > 0) throw new Error('DLQ down');
              letters.push(...messages);
              return {};
            },
          };
          const settled: string[] = [];
          const process = createDeliveryProcessor({
            topic: 't',
            group: 'g',
            handler: () => {
              const outcome = outcomes[Math.min(calls, outcomes.length - 1)]!;
              calls++;
              if (!outcome.ok) throw outcome.value;
            },
            codec: jsonCodec,
            retry: { maxAttempts, initialIntervalMs: 1, multiplier: 1, maxIntervalMs: 1, jitter: 0 },
            retryMode: 'in-process',
            deadLetter: { topic: 't-dlq', publisher: dlq },
            stackTraceLimit: 4096,
            observer: new CountingObserver(),
            signal: new AbortController().signal,
          });
          const delivery: Delivery = {
            id: 'id-1',
            headers,
            body: jsonCodec.encode({ n: 1 }),
            timestamp: Date.now(),
            attempt: reportedAttempt, // a transport reporting a forged or corrupted attempt
            source: { transport: 'memory', topic: 't', group: 'g' },
            ack: async () => (settled.push('ack'), true),
            retryLater: async () => (settled.push('retryLater'), true),
          };
          await process(delivery);
          expect(settled).toEqual(['ack']);
          expect(calls).toBeLessThanOrEqual(maxAttempts);
          expect(calls).toBeGreaterThanOrEqual(1);
          const succeeded = outcomes.slice(0, calls).some((o) => o.ok);
          expect(letters.length).toBe(succeeded ? 0 : 1); // acked after a success, or after the confirmed dead letter
        },
      ),
      { numRuns: 300 },
    );
    expect(unhandled).toEqual([]);
  });

  it('keeps the event loop responsive and settles everything through a real memory bus under hostile throws and headers', async () => {
    const counts = new CountingObserver();
    const bus = createBus({ transport: createMemoryTransport(), observer: counts });
    const samples = fc.sample(fc.record({ headers: headerMap, throws: fc.option(thrownValue, { nil: undefined, freq: 2 }) }), { numRuns: 200, seed: 42 });
    const calls = new Map<string, number>();
    await bus.subscriber.subscribe(
      'hostile',
      (m) => {
        calls.set(m.id, (calls.get(m.id) ?? 0) + 1);
        const thrown = samples[Number(m.id)]!.throws;
        if (thrown !== undefined) throw thrown;
      },
      { group: 'g', concurrency: 4, retry: { maxAttempts: 2, initialIntervalMs: 1, maxIntervalMs: 1 } },
    );
    const letters: string[] = [];
    await bus.subscriber.subscribe('hostile-dlq', (m) => void letters.push(m.id), { group: 'dlq', codec: { contentType: 'bytes', encode: (v) => v as Uint8Array, decode: (b) => b } });
    let maxGap = 0;
    let last = performance.now();
    const ticker = setInterval(() => {
      maxGap = Math.max(maxGap, performance.now() - last);
      last = performance.now();
    }, 5);
    await bus.publisher.publish(
      'hostile',
      samples.map((s, i) => ({ id: String(i), headers: s.headers, value: i })),
    );
    const failing = samples.filter((s) => s.throws !== undefined).length;
    const deadline = Date.now() + 20_000;
    // Successes: the messages that did not throw, plus the DLQ reader's handling of each dead letter.
    while ((letters.length < failing || counts.count('success') < samples.length) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    clearInterval(ticker);
    expect(letters.length).toBe(failing);
    expect(counts.count('success')).toBe(samples.length);
    for (const [i, sample] of samples.entries()) expect(calls.get(String(i))).toBe(sample.throws !== undefined ? 2 : 1);
    expect(maxGap).toBeLessThan(1000);
    expect(unhandled).toEqual([]);
    await bus.close();
  });
});

describe('subscribe options given directly are validated like config', () => {
  const bus = createBus({ transport: createMemoryTransport() });
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['concurrency NaN', { concurrency: Number.NaN }, /concurrency/],
    ['concurrency 0', { concurrency: 0 }, /concurrency/],
    ['concurrency -3', { concurrency: -3 }, /concurrency/],
    ['concurrency 1.5', { concurrency: 1.5 }, /concurrency/],
    ['stackTraceLimit -1', { stackTraceLimit: -1 }, /stackTraceLimit/],
    ["retryMode 'later'", { retryMode: 'later' }, /retryMode/],
    ["group ''", { group: '' }, /group/],
    ['maxIntervalMs below initialIntervalMs', { retry: { initialIntervalMs: 5000, maxIntervalMs: 100 } }, /retry\.maxIntervalMs: must be at least initialIntervalMs/],
    ['retry.maxAttempts 0', { retry: { maxAttempts: 0 } }, /retry\.maxAttempts/],
    ['an unknown option', { concurency: 3 }, /concurency/],
    ['a codec without decode', { codec: { encode: () => new Uint8Array() } }, /codec/],
  ];
  for (const [name, options, path] of cases) {
    it(`refuses ${name}, naming the field`, async () => {
      const attempt = bus.subscriber.subscribe('t', () => undefined, options as never);
      await expect(attempt).rejects.toBeInstanceOf(ConfigError);
      await expect(attempt).rejects.toThrow(path);
    });
  }
  it('still publishes and delivers after refused subscriptions (nothing half-registered)', async () => {
    const got: unknown[] = [];
    await bus.subscriber.subscribe('t', (m) => void got.push(m.value));
    await bus.publisher.publish('t', { value: 1 });
    for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(got).toEqual([1]);
  });
});
