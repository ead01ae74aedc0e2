import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { CountingObserver, FallbackRelay, MemoryBroker, MemoryFallbackStore, MessageTooLargeError, createBus, createMemoryTransport, type Transport } from '@switchboard/core';
import { Recorder, runFallbackStoreSuite } from '@switchboard/core/testing';
import { PostgresFallbackStore } from '@switchboard/postgres';
import { dropTestTables, uniqueTableName } from '@switchboard/postgres/testing';
import { StoredForLaterError, withFallback } from '@switchboard/resilience';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
afterAll(async () => {
  await dropTestTables(pool);
  await pool.end();
});

runFallbackStoreSuite('memory', async () => new MemoryFallbackStore());
runFallbackStoreSuite('postgresql', async () => PostgresFallbackStore.open({ pool, table: uniqueTableName('sb_fallback') }));

/** A memory transport whose publishes fail while `down` (as a broker outage would). */
function flaky(transport: Transport): Transport & { down: boolean; attempts: number } {
  const wrapper = Object.create(transport) as Transport & { down: boolean; attempts: number };
  wrapper.down = false;
  wrapper.attempts = 0;
  wrapper.publish = async (topic, messages, options) => {
    wrapper.attempts++;
    if (wrapper.down) throw new Error('ECONNREFUSED');
    return transport.publish(topic, messages, options);
  };
  return wrapper;
}

describe('fallback transport and relay (in-memory broker)', () => {
  it('opens the breaker after the configured consecutive failures, stores instead of losing, closes after recovery', async () => {
    const broker = new MemoryBroker();
    const inner = flaky(createMemoryTransport(broker));
    const store = new MemoryFallbackStore();
    const counts = new CountingObserver();
    const transport = withFallback(inner, { store, breaker: { consecutiveFailures: 3, openMs: 200 } });
    const bus = createBus({ transport, observer: counts });
    const received = new Recorder<string>();
    await bus.subscriber.subscribe('orders', (m) => received.add(m.id), { group: 'g' });

    inner.down = true;
    const receipts = [];
    for (let i = 0; i < 10; i++) receipts.push(await bus.publisher.publish('orders', { id: `o-${i}`, key: 'k', value: i }));
    expect(receipts.every((r) => r.status === 'stored')).toBe(true);
    expect(inner.attempts).toBe(3); // after 3 failures the breaker is open: no more calls reach the broker
    expect(transport.breakerState).toBe('open');
    expect(counts.count('publish-diverted')).toBe(10);
    expect(await store.depth()).toBe(10);

    inner.down = false;
    const relay = new FallbackRelay({ store, transport: inner, observer: counts });
    expect(await relay.drainOnce()).toEqual({ relayed: 10, empty: true, failed: false });
    await received.waitFor(10, 5000);
    expect(received.items).toEqual(Array.from({ length: 10 }, (_, i) => `o-${i}`)); // per-key order kept
    await new Promise((resolve) => setTimeout(resolve, 250)); // the breaker's own open period (openMs 200)
    expect((await bus.publisher.publish('orders', { id: 'after', value: 1 })).status).toBe('delivered');
    expect(transport.breakerState).toBe('closed');
    expect(counts.count('breaker-state')).toBeGreaterThanOrEqual(3); // open, half-open, closed
    await bus.close();
  });

  it("stores a diverted message with its id even when the envelope leaves generated ids off the wire: the relay's resends are recognisable", async () => {
    const broker = new MemoryBroker();
    const inner = flaky(createMemoryTransport(broker));
    const store = new MemoryFallbackStore();
    const transport = withFallback(inner, { store, breaker: { consecutiveFailures: 3, openMs: 200 } });
    const bus = createBus({ transport, publisher: { envelope: { id: 'given' } } });
    const received = new Recorder<string>();
    await bus.subscriber.subscribe('orders', (m) => received.add(m.id), { group: 'g' });
    inner.down = true;
    const receipt = await bus.publisher.publish('orders', { value: 1 });
    expect(receipt.status).toBe('stored');
    inner.down = false;
    expect(await new FallbackRelay({ store, transport: inner }).drainOnce()).toMatchObject({ relayed: 1 });
    expect(await received.waitFor(1, 5000)).toEqual([receipt.ids[0]]);
    await bus.close();
  });

  it("a publish refused for what it asked (a message over the size limit) rejects as it is: not stored, not counted by the breaker (six had opened it for everyone's publishes)", async () => {
    const store = new MemoryFallbackStore();
    const counts = new CountingObserver();
    const transport = withFallback(createMemoryTransport({ maxMessageBytes: 100 }), { store, breaker: { consecutiveFailures: 3 } });
    const bus = createBus({ transport, observer: counts });
    const received = new Recorder<string>();
    await bus.subscriber.subscribe('sized', (m) => received.add(m.id));
    for (let i = 0; i < 6; i++) await expect(bus.publisher.publish('sized', { value: 'x'.repeat(500) })).rejects.toBeInstanceOf(MessageTooLargeError);
    expect(await store.depth()).toBe(0);
    expect(counts.count('publish-diverted')).toBe(0);
    expect(transport.breakerState).toBe('closed');
    const fits = await bus.publisher.publish('sized', { id: 'fits', value: 1 });
    expect(fits.status).toBe('delivered');
    await received.waitFor(1, 5000);
    await bus.close();
  });

  it('rejects with StoredForLaterError when the caller chose so, and still stores', async () => {
    const inner = flaky(createMemoryTransport());
    inner.down = true;
    const store = new MemoryFallbackStore();
    const bus = createBus({ transport: withFallback(inner, { store, whenStored: 'reject' }) });
    await expect(bus.publisher.publish('t', { id: 'x', value: 1 })).rejects.toBeInstanceOf(StoredForLaterError);
    expect((await store.peek(1))[0]!.message.id).toBe('x');
  });

  it('rejects when the store fails too: nothing is dropped silently', async () => {
    const inner = flaky(createMemoryTransport());
    inner.down = true;
    const store = new MemoryFallbackStore();
    store.append = async () => {
      throw new Error('disk full');
    };
    const bus = createBus({ transport: withFallback(inner, { store }) });
    await expect(bus.publisher.publish('t', { value: 1 })).rejects.toThrowError(/fallback store failed too: disk full/);
  });

  it('counts a hanging broker as a failure after publishTimeoutMs', async () => {
    const hanging = Object.assign(Object.create(createMemoryTransport()) as Transport, { publish: () => new Promise<never>(() => {}) });
    const store = new MemoryFallbackStore();
    const bus = createBus({ transport: withFallback(hanging, { store, publishTimeoutMs: 100 }) });
    const started = Date.now();
    expect((await bus.publisher.publish('t', { value: 1 })).status).toBe('stored');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it.each([
    ['memory', async () => new MemoryFallbackStore()],
    ['postgresql', () => PostgresFallbackStore.open({ pool, table: uniqueTableName('sb_relay') })],
  ])('two relays on one %s store do not double-send; a relay stopped mid-drain loses nothing', async (_name, openStore) => {
    const broker = new MemoryBroker();
    const target = createMemoryTransport(broker);
    const store = await openStore();
    await store.append(
      Array.from({ length: 1000 }, (_, i) => ({
        topic: 'relay',
        message: { id: `r-${i}`, headers: {}, body: Buffer.from('1'), timestamp: 0 },
        guarantee: 'leader' as const,
        via: 'publish' as const,
        firstFailureAt: Date.now(),
        attempts: 1,
      })),
    );
    const seen = new Recorder<string>();
    const listener = createBus({ transport: createMemoryTransport(broker) });
    await listener.subscriber.subscribe('relay', (m) => seen.add(m.id), { group: 'g' });
    const a = new FallbackRelay({ store, transport: target, batchSize: 50, pollIntervalMs: 5 });
    const b = new FallbackRelay({ store, transport: target, batchSize: 50, pollIntervalMs: 5 });
    a.start();
    b.start();
    await seen.waitFor(300, 5000);
    await a.stop(); // "killed" mid-drain: b takes over once a's lease is released
    await seen.waitFor(1000, 20_000);
    await b.stop();
    expect(new Set(seen.items).size).toBe(1000);
    expect(seen.count).toBe(1000); // no double send
    expect(await store.depth()).toBe(0);
    await listener.close();
  });

  it('a stored record the transport refuses for what it is (over its size limit) stays stored, and the relay goes on past it (it held up every record behind it)', async () => {
    const store = new MemoryFallbackStore();
    const counts = new CountingObserver();
    const broker = new MemoryBroker();
    const record = (id: string, bytes: number) => ({
      topic: 't',
      message: { id, headers: {}, body: Buffer.from(JSON.stringify('x'.repeat(bytes))), timestamp: Date.now() },
      guarantee: 'leader' as const,
      via: 'publish' as const,
      firstFailureAt: Date.now(),
      attempts: 1,
    });
    // Stored while the breaker was open: the oversize one was never tried.
    await store.append([record('too-big', 500), record('after-1', 10)]);
    await store.append([record('after-2', 10)]);
    const received = new Recorder<string>();
    const reader = createBus({ transport: createMemoryTransport(broker) });
    await reader.subscriber.subscribe('t', (m) => received.add(m.id));
    const relay = new FallbackRelay({ store, transport: createMemoryTransport(broker, { maxMessageBytes: 100 }), observer: counts });
    const pass = await relay.drainOnce();
    await received.waitFor(2, 5000);
    expect(received.items).toEqual(['after-1', 'after-2']);
    expect(pass).toMatchObject({ relayed: 2, empty: false, failed: true });
    expect(counts.count('relay-failed')).toBe(1);
    const left = await store.peek(10);
    expect(left.map((r) => r.message.id)).toEqual(['too-big']);
    expect(left[0]!.attempts).toBe(2);
    await reader.close();
  });

  it('moves records past the retention limit aside and counts them', async () => {
    const store = new MemoryFallbackStore();
    const counts = new CountingObserver();
    await store.append([{ topic: 't', message: { id: 'old', headers: {}, body: Buffer.from('1'), timestamp: 0 }, guarantee: 'all', via: 'publish', firstFailureAt: Date.now() - 10_000, attempts: 1 }]);
    const relay = new FallbackRelay({ store, transport: createMemoryTransport(), retentionMs: 1000, observer: counts });
    await relay.drainOnce();
    expect(counts.count('fallback-expired')).toBe(1);
    expect((await store.expired(10)).map((r) => r.message.id)).toEqual(['old']);
  });
});
