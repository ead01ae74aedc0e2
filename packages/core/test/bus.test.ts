import { describe, expect, it } from 'vitest';
import { ClosedError, ConfigError, CountingObserver, PublishError, createBus, createMemoryTransport } from '@switchboard/core';
import { Recorder } from '@switchboard/core/testing';

describe('bus (bus/bus)', () => {
  it('publish resolves with the ids and the receivers reached; a subscriber gets the message', async () => {
    const bus = createBus({ transport: createMemoryTransport() });
    const got = new Recorder<string>();
    await bus.subscriber.subscribe('orders', (m) => got.add(m.id), { group: 'g' });
    const receipt = await bus.publisher.publish('orders', [{ id: 'a', value: 1 }, { value: 2 }]);
    expect(receipt.ids[0]).toBe('a');
    expect(receipt.ids).toHaveLength(2);
    expect(receipt.receivers).toBe(1);
    await got.waitFor(2, 5000);
    await bus.close();
  });

  it('no receivers: warn (an event), reject (a PublishError) or ignore, as the publisher is told', async () => {
    const counts = new CountingObserver();
    const warn = createBus({ transport: createMemoryTransport(), observer: counts });
    await warn.publisher.publish('nobody', { value: 1 });
    expect(counts.count('no-receivers')).toBe(1);
    const reject = createBus({ transport: createMemoryTransport(), publisher: { noReceivers: 'reject' } });
    await expect(reject.publisher.publish('nobody', { value: 1 })).rejects.toBeInstanceOf(PublishError);
    await Promise.all([warn.close(), reject.close()]);
  });

  it('refuses a publish without a topic naming the field: an empty name, or neither a name nor a contract (an empty topic was published to on memory and Redis)', async () => {
    const bus = createBus({ transport: createMemoryTransport() });
    await expect(bus.publisher.publish('', { value: 1 })).rejects.toThrowError(ConfigError);
    await expect(bus.publisher.publish('', { value: 1 })).rejects.toThrowError(/topic: must be a non-empty string/);
    await expect(bus.publisher.publish(undefined as never, { value: 1 })).rejects.toThrowError(/topic: must be a non-empty string or a contract/);
    await expect(bus.publisher.publishToGroup('', 'g', { value: 1 })).rejects.toThrowError(/topic: must be a non-empty string/);
    await bus.close();
  });

  it('refuses, naming the field, an outgoing message no transport can carry as given (a JavaScript caller is not held to the types)', async () => {
    const bus = createBus({ transport: createMemoryTransport() });
    const refused = async (message: unknown) => String(await bus.publisher.publish('t', message as never).catch((error: unknown) => error));
    expect(await refused({ value: 1, headers: { trace: 5 } })).toMatch(/ConfigError.*headers\.trace: must be a string \(got number\)/s);
    expect(await refused({ value: 1, headers: { trace: undefined } })).toMatch(/headers\.trace: must be a string \(got undefined\)/);
    expect(await refused({ value: 1, headers: 'a=b' })).toMatch(/headers: must be an object of strings \(got string\)/);
    expect(await refused({ value: 1, headers: new Map([['a', 'b']]) })).toMatch(/headers: must be an object of strings \(got a Map\)/);
    expect(await refused({ value: 1, key: 7 })).toMatch(/key: must be a string \(got number\)/);
    expect(await refused({ value: 1, id: '' })).toMatch(/id: must be a non-empty string/);
    expect(await refused({ value: 1, timestamp: 'yesterday' })).toMatch(/timestamp: must be a number/);
    expect(await refused({ payload: 'text' })).toMatch(/payload: must be bytes/);
    expect(await refused([{ value: 1 }, null])).toMatch(/message: must be an object/);
    const fine = await bus.publisher.publish('t', { id: 'ok', key: '', headers: { trace: 'x' }, timestamp: 0, payload: new Uint8Array([0x31]) });
    expect(fine.ids).toEqual(['ok']);
    await bus.close();
  });

  it('refuses bad subscribe options naming the field, and anything after close with a ClosedError', async () => {
    const bus = createBus({ transport: createMemoryTransport() });
    await expect(bus.subscriber.subscribe('t', () => undefined, { concurrency: 0 })).rejects.toThrowError(ConfigError);
    await expect(bus.subscriber.subscribe('t', () => undefined, { retry: { maxAttempts: -1 } })).rejects.toThrowError(/retry\.maxAttempts/);
    await expect(bus.subscriber.subscribe('t', () => undefined, null as never)).rejects.toThrowError(/options: must be an object of subscribe options \(got null\)/);
    await bus.close();
    await bus.close(); // idempotent
    await expect(bus.publisher.publish('t', { value: 1 })).rejects.toBeInstanceOf(ClosedError);
  });
});
