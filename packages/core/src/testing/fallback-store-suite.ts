import { afterEach, describe, expect, it } from 'vitest';
import type { FallbackRecord, FallbackStore } from '../resilience/fallback-store.js';

const record = (i: number, overrides: Partial<FallbackRecord> = {}): FallbackRecord => ({
  topic: `topic-${i % 2}`,
  message: { id: `id-${i}`, key: `key-${i % 3}`, headers: { h: String(i), 'x-unicode': '한국어' }, body: Buffer.from([i % 256, 0, 255]), timestamp: 1_700_000_000_000 + i },
  guarantee: 'all',
  via: 'publish',
  firstFailureAt: Date.now(),
  attempts: 1,
  ...overrides,
});

/** The contract every fallback store keeps, run against each real store (memory, Redis, PostgreSQL). */
export function runFallbackStoreSuite(name: string, openStore: () => Promise<FallbackStore>): void {
  describe(`fallback store contract: ${name}`, () => {
    const opened: FallbackStore[] = [];
    const open = async () => {
      const store = await openStore();
      opened.push(store);
      return store;
    };
    afterEach(async () => {
      for (const store of opened.splice(0)) await store.close?.();
    });

    it('keeps records intact and in append order; removes only what it is told', async () => {
      const store = await open();
      await store.append([record(1), record(2), record(3, { via: 'dead-letter', guarantee: 'leader' })]);
      await store.append([record(4)]);
      const all = await store.peek(10);
      expect(all.map((r) => r.message.id)).toEqual(['id-1', 'id-2', 'id-3', 'id-4']);
      expect(all[2]).toMatchObject({ topic: 'topic-1', guarantee: 'leader', via: 'dead-letter', attempts: 1 });
      expect(all[0]!.message).toMatchObject({ id: 'id-1', key: 'key-1', headers: { h: '1', 'x-unicode': '한국어' }, timestamp: 1_700_000_000_001 });
      expect(Buffer.from(all[0]!.message.body).equals(Buffer.from([1, 0, 255]))).toBe(true);
      expect(await store.depth()).toBe(4);
      expect((await store.peek(2)).map((r) => r.message.id)).toEqual(['id-1', 'id-2']);
      await store.remove([all[0]!.seq, all[2]!.seq]);
      expect((await store.peek(10)).map((r) => r.message.id)).toEqual(['id-2', 'id-4']);
      expect(await store.depth()).toBe(2);
    });

    it('counts failed relay attempts and keeps the last error', async () => {
      const store = await open();
      await store.append([record(1)]);
      const [stored] = await store.peek(1);
      await store.markAttempt([stored!.seq], 'broker down');
      await store.markAttempt([stored!.seq], 'broker down');
      expect((await store.peek(1))[0]!.attempts).toBe(3);
      expect((await store.peek(1))[0]!.lastError).toBe('broker down');
    });

    it('moves expired records aside instead of dropping them', async () => {
      const store = await open();
      await store.append([record(1, { firstFailureAt: Date.now() - 60_000 }), record(2)]);
      expect(await store.expire(30_000)).toBe(1);
      expect((await store.peek(10)).map((r) => r.message.id)).toEqual(['id-2']);
      expect((await store.expired(10)).map((r) => r.message.id)).toEqual(['id-1']);
    });

    it('grants the relay lease to one owner at a time, renews it, and frees it on release or expiry', async () => {
      const store = await open();
      expect(await store.acquireLease('a', 300)).toBe(true);
      expect(await store.acquireLease('b', 300)).toBe(false);
      expect(await store.acquireLease('a', 300)).toBe(true);
      await store.releaseLease('b'); // not b's to release
      expect(await store.acquireLease('b', 300)).toBe(false);
      await store.releaseLease('a');
      expect(await store.acquireLease('b', 150)).toBe(true);
      const deadline = Date.now() + 5000;
      while (!(await store.acquireLease('a', 1000)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
      expect(await store.acquireLease('b', 1000)).toBe(false); // a took over after b's lease expired
    });
  });
}
