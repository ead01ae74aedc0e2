import { describe, expect, it } from 'vitest';
import { MemoryDeduplicationStore } from '@switchboard/core';
import { runDeduplicationStoreSuite } from '@switchboard/core/testing';

runDeduplicationStoreSuite('memory (LRU + TTL)', async () => new MemoryDeduplicationStore());

describe('memory deduplication store', () => {
  it('forgets the least recently used keys beyond maxEntries, and keys past their TTL', async () => {
    let now = 1_000;
    const store = new MemoryDeduplicationStore(2, () => now);
    for (const key of ['a', 'b']) {
      await store.claim(key, 1000);
      await store.complete(key, 10_000);
    }
    expect(await store.claim('a', 1000)).toBe('done'); // a is now the most recently used
    await store.claim('c', 1000); // evicts b
    expect(store.size).toBe(2);
    expect(await store.claim('b', 1000)).toBe('claimed');
    now += 20_000;
    expect(await store.claim('a', 1000)).toBe('claimed'); // expired
  });
});
