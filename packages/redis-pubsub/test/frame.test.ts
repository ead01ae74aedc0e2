import * as fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { createBus, type Message } from '@switchboard/core';
import type { TransportMessage } from '@switchboard/core/transport';
import { Recorder, uniqueName } from '@switchboard/core/testing';
import { createRedisPubSubTransport, decodeFrame, encodeFrame } from '@switchboard/redis-pubsub';
import { REDIS_URL } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const message = fc.record({
  id: fc.string({ minLength: 1, maxLength: 64, unit: 'grapheme' }),
  key: fc.option(fc.string({ maxLength: 64, unit: 'grapheme' }), { nil: undefined }),
  headers: fc.dictionary(fc.string({ maxLength: 32, unit: 'grapheme' }), fc.string({ maxLength: 256, unit: 'grapheme' }), { maxKeys: 12 }),
  body: fc.uint8Array({ maxLength: 512 }),
  timestamp: fc.integer({ min: 0, max: 4_102_444_800_000 }),
});

const comparable = (m: TransportMessage) => ({ id: m.id, key: m.key, headers: { ...m.headers }, body: Buffer.from(m.body).toString('hex'), timestamp: m.timestamp });

describe('redis frame versions', () => {
  it('version 2 (binary) and version 1 (JSON header) both round-trip every field', () => {
    fc.assert(
      fc.property(message, fc.constantFrom(1 as const, 2 as const), (m, version) => {
        const decoded = decodeFrame(encodeFrame(m, version));
        expect(comparable(decoded)).toEqual(comparable({ ...m, ...(m.key === undefined ? {} : { key: m.key }) }));
      }),
      { numRuns: 300 },
    );
  });

  it('version 2 is smaller than version 1 for the same message', () => {
    const m = { id: 'AbCdEfGhIjKlMnOp1a', headers: { traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` }, body: Buffer.from('{"orderId":"o-1"}'), timestamp: Date.now() };
    expect(encodeFrame(m, 2).length).toBeLessThan(encodeFrame(m, 1).length);
  });

  it('never throws on hostile bytes: a frame that does not parse is a foreign payload, kept whole', () => {
    fc.assert(
      fc.property(fc.constantFrom('SB1', 'SB2', 'SB', 'XX'), fc.uint8Array({ maxLength: 64 }), (magic, rest) => {
        const frame = Buffer.concat([Buffer.from(magic), rest]);
        const decoded = decodeFrame(frame);
        expect(typeof decoded.id).toBe('string');
        expect(decoded.id.length).toBeGreaterThan(0);
        expect(Number.isSafeInteger(decoded.timestamp)).toBe(true);
      }),
      { numRuns: 2000 },
    );
    const truncated = encodeFrame({ id: 'x', headers: { a: 'b' }, body: Buffer.from('payload'), timestamp: 1 }, 2).subarray(0, 20);
    expect(decodeFrame(truncated).body).toEqual(truncated);
  });

  it('rolling upgrade on a real server: a consumer reads producers writing version 1 (0.1.x, or wireFormat 1) and version 2 alike', async () => {
    const channel = uniqueName('sb-redis.upgrade');
    const consumer = createBus({ transport: await createRedisPubSubTransport({ url: REDIS_URL }) });
    const oldProducer = createBus({ transport: await createRedisPubSubTransport({ url: REDIS_URL, wireFormat: 1 }) });
    const newProducer = createBus({ transport: await createRedisPubSubTransport({ url: REDIS_URL }) });
    cleanups.push(
      () => consumer.close(),
      () => oldProducer.close(),
      () => newProducer.close(),
    );
    const wire = new Redis(REDIS_URL);
    cleanups.push(async () => void wire.disconnect());
    const frames = new Recorder<string>();
    wire.on('messageBuffer', (_channel: Buffer, frame: Buffer) => frames.add(frame.subarray(0, 3).toString()));
    await wire.subscribe(channel);
    const got = new Recorder<Message<{ n: number }>>();
    await consumer.subscriber.subscribe<{ n: number }>(channel, (m) => got.add(m));
    await oldProducer.publisher.publish(channel, { id: 'from-v1', key: 'k1', headers: { tenant: 'a' }, value: { n: 1 }, timestamp: 1_700_000_000_000 });
    await newProducer.publisher.publish(channel, { id: 'from-v2', key: 'k2', headers: { tenant: 'b' }, value: { n: 2 }, timestamp: 1_700_000_000_001 });
    await got.waitFor(2, 5000);
    expect(await frames.waitFor(2, 5000)).toEqual(['SB1', 'SB2']);
    expect(got.items.map((m) => [m.id, m.key, m.headers.tenant, m.value.n, m.timestamp])).toEqual([
      ['from-v1', 'k1', 'a', 1, 1_700_000_000_000],
      ['from-v2', 'k2', 'b', 2, 1_700_000_000_001],
    ]);
  });
});
