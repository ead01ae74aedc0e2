import type { Redis } from 'ioredis';
import type { DeduplicationStore } from '@switchboard/core';

// Release only a claim (never a completed key).
const RELEASE = "if redis.call('GET', KEYS[1]) == 'busy' then return redis.call('DEL', KEYS[1]) end return 0";

/**
 * A {@link DeduplicationStore} in Redis (any Redis, not only the Pub/Sub transport's): one key per
 * message id, `SET NX PX` for the claim (atomic across processes), the TTL as the key's expiry.
 */
export class RedisDeduplicationStore implements DeduplicationStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'switchboard:dedup:',
  ) {}

  async claim(key: string, leaseMs: number): Promise<'claimed' | 'done' | 'busy'> {
    const k = this.prefix + key;
    if ((await this.redis.set(k, 'busy', 'PX', leaseMs, 'NX')) === 'OK') return 'claimed';
    const state = await this.redis.get(k);
    if (state === null) return this.claim(key, leaseMs); // expired in between
    return state === 'done' ? 'done' : 'busy';
  }

  async complete(key: string, ttlMs: number): Promise<void> {
    await this.redis.set(this.prefix + key, 'done', 'PX', ttlMs);
  }

  async release(key: string): Promise<void> {
    await this.redis.eval(RELEASE, 1, this.prefix + key);
  }
}
