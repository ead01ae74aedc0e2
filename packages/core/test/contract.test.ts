import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CountingObserver, SchemaValidationError, createBus, createMemoryTransport, defineTopic, type Message } from '@switchboard/core';
import { Recorder } from '@switchboard/core/testing';

const OrderPlaced = defineTopic({
  name: 'orders.placed',
  schema: z.object({ orderId: z.string(), quantity: z.number().int().positive(), note: z.string().default('') }),
  key: (order) => order.orderId,
});

describe('typed topic contracts', () => {
  it('publish(contract, value) and subscribe(contract, handler): keyed by the contract, validated and defaulted on consume', async () => {
    const counts = new CountingObserver();
    const bus = createBus({ transport: createMemoryTransport(), observer: counts });
    const received = new Recorder<Message<{ orderId: string; quantity: number; note: string }>>();
    const letters = new Recorder<Message>();
    await bus.subscriber.subscribe(OrderPlaced, (m) => received.add(m), { group: 'billing' });
    await bus.subscriber.subscribe(`${OrderPlaced.name}-dlq`, (m) => letters.add(m), { group: 'dlq' });
    await bus.publisher.publish(OrderPlaced, { orderId: 'o-1', quantity: 2 });
    // A producer that bypasses the contract (any client can write to the topic): refused on consume.
    await bus.publisher.publish(OrderPlaced.name, { id: 'bad', value: { orderId: 'o-2', quantity: -1 } });
    const [message] = await received.waitFor(1, 5000);
    expect(message!.key).toBe('o-1');
    expect(message!.value).toEqual({ orderId: 'o-1', quantity: 2, note: '' });
    const [letter] = await letters.waitFor(1, 5000);
    expect(letter!.id).toBe('bad');
    expect(letter!.headers['x-dlq-reason']).toBe('validation-failed');
    expect(letter!.headers['x-dlq-error-message']).toContain('quantity');
    expect(received.count).toBe(1);
    await bus.close();
  });

  it('validateOnPublish refuses an invalid value before it reaches the broker, naming the field', async () => {
    const Strict = defineTopic({ name: 'strict', schema: z.object({ n: z.number().int() }), validateOnPublish: true });
    const counts = new CountingObserver();
    const bus = createBus({ transport: createMemoryTransport(), observer: counts });
    const received = new Recorder<Message>();
    await bus.subscriber.subscribe('strict', (m) => received.add(m));
    await expect(bus.publisher.publish(Strict, { n: 1.5 } as never)).rejects.toThrow(SchemaValidationError);
    await expect(bus.publisher.publish(Strict, { n: 1.5 } as never)).rejects.toThrow(/value for "strict" failed schema validation: n: /);
    expect(counts.count('published')).toBe(0);
    await bus.publisher.publish(Strict, { n: 1 }, { id: 'ok', key: 'explicit' });
    const [message] = await received.waitFor(1, 5000);
    expect(message!.id).toBe('ok');
    expect(message!.key).toBe('explicit');
    await bus.close();
  });

  it('a mismatched payload does not compile (type tests, strict tsc)', async () => {
    const tsc = fileURLToPath(new URL('../../../node_modules/typescript/bin/tsc', import.meta.url));
    const project = fileURLToPath(new URL('./types/tsconfig.json', import.meta.url));
    const result = await promisify(execFile)(process.execPath, [tsc, '-p', project]).then(
      () => '',
      (error: { stdout?: string }) => error.stdout ?? String(error),
    );
    expect(result).toBe('');
  }, 120_000);
});
