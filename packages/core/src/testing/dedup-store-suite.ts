import { describe, expect, it } from 'vitest';
import { createBus } from '../bus/bus.js';
import { DuplicateInProgressError, deduplicate, type DeduplicationStore } from '../pipeline/dedup.js';
import { createMemoryTransport } from '../transports/memory/memory-transport.js';
import { CountingObserver } from '../observability/observer.js';
import { Recorder, uniqueName } from './recorder.js';

/** The contract every deduplication store keeps, run against each real store (memory, Redis, PostgreSQL). */
export function runDeduplicationStoreSuite(name: string, openStore: () => Promise<DeduplicationStore>): void {
  describe(`deduplication store contract: ${name}`, () => {
    it('claims a key once: then busy while claimed, done once completed, claimable again after release or lease expiry', async () => {
      const store = await openStore();
      const [a, b, c] = [uniqueName('a'), uniqueName('b'), uniqueName('c')];
      expect(await store.claim(a, 60_000)).toBe('claimed');
      expect(await store.claim(a, 60_000)).toBe('busy');
      await store.complete(a, 60_000);
      expect(await store.claim(a, 60_000)).toBe('done');
      expect(await store.claim(b, 60_000)).toBe('claimed');
      await store.release(b);
      expect(await store.claim(b, 60_000)).toBe('claimed');
      await store.release(a); // releasing a completed key changes nothing
      expect(await store.claim(a, 60_000)).toBe('done');
      expect(await store.claim(c, 50)).toBe('claimed');
      await new Promise((resolve) => setTimeout(resolve, 120)); // the lease (50 ms) lapses: a crashed claimer
      expect(await store.claim(c, 60_000)).toBe('claimed');
    });

    it('deduplicate(): each id handled once, a failed attempt released for its retry, concurrent duplicates handled once', async () => {
      const store = await openStore();
      const counts = new CountingObserver();
      const bus = createBus({ transport: createMemoryTransport(), observer: counts });
      const topic = uniqueName('dedup');
      const handled = new Recorder<string>();
      let failOnce = true;
      const skipped: string[] = [];
      await bus.subscriber.subscribe(
        topic,
        deduplicate(
          async (m) => {
            if (m.id.endsWith('-flaky') && failOnce) {
              failOnce = false;
              throw new Error('database timeout');
            }
            await new Promise((resolve) => setTimeout(resolve, 20));
            handled.add(m.id);
          },
          { store, onDuplicate: (m) => skipped.push(m.id) },
        ),
        { concurrency: 8, ordering: 'none', retry: { maxAttempts: 5, initialIntervalMs: 30, maxIntervalMs: 100 } },
      );
      const one = `${topic}-one`;
      const flaky = `${topic}-flaky`;
      // The same id four times at once (a producer retry, a replay...), and one that fails once.
      await bus.publisher.publish(
        topic,
        [one, one, one, one, flaky].map((id, i) => ({ id, value: i })),
      );
      await handled.waitFor(2, 5000);
      await counts.waitFor('success', 5); // every delivery settled
      expect(handled.items.sort()).toEqual([flaky, one].sort());
      expect(skipped.filter((id) => id === one).length).toBeGreaterThanOrEqual(1);
      expect(counts.count('dead-lettered')).toBe(0);
      await bus.close();
    });

    it('a duplicate arriving while the first is still handled waits (retried), then is skipped', async () => {
      const store = await openStore();
      const key = uniqueName('busy');
      expect(await store.claim(key, 60_000)).toBe('claimed');
      const handler = deduplicate(async () => {}, { store });
      await expect(handler({ id: key } as never)).rejects.toThrow(DuplicateInProgressError);
      await store.complete(key, 60_000);
      await expect(handler({ id: key } as never)).resolves.toBeUndefined();
    });
  });
}
