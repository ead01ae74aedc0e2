import type { Redis } from 'ioredis';
import type { FallbackRecord, FallbackStore, StoredRecord } from '@switchboard/core';
import { describeFailure } from '@switchboard/core/transport';

export interface RedisFallbackStoreOptions {
  /**
   * A connection not in subscriber mode. If it has no `error` listener, the store adds one that
   * reports each lost connection once through `onConnectionError` (ioredis would otherwise print
   * "Unhandled error event" stack traces while the server is unreachable).
   */
  readonly redis: Redis;
  /** Called once per connection failure (not per reconnect attempt), with a message free of credentials. Default: one line on stderr. */
  readonly onConnectionError?: (message: string) => void;
  /** Key of the stream; `<key>:expired`, `<key>:attempts` and `<key>:lease` go with it. Default `switchboard:fallback`. */
  readonly key?: string;
}

const ACQUIRE = `
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * Fallback store in a Redis Stream: ordered (entry ids), nothing expires silently (no TTL keys, as the
 * loose per-message keys would). Durable as far as the server persists (enable AOF for durability across a
 * Redis restart). Attempts live in a hash beside the stream; the relay lease is a key with PX.
 */
export class RedisFallbackStore implements FallbackStore {
  private readonly key: string;

  constructor(private readonly options: RedisFallbackStoreOptions) {
    this.key = options.key ?? 'switchboard:fallback';
    if (options.redis.listenerCount('error') === 0) reportConnectionErrors(options.redis, `redis fallback store "${this.key}"`, options.onConnectionError);
  }

  async append(records: readonly FallbackRecord[]): Promise<void> {
    const pipeline = this.options.redis.multi();
    for (const r of records) pipeline.xadd(this.key, '*', ...fields(r));
    const results = await pipeline.exec();
    const failed = results?.find(([error]) => error);
    if (!results || failed) throw failed?.[0] ?? new Error('redis fallback append was discarded');
  }

  async peek(limit: number): Promise<StoredRecord[]> {
    const entries = (await this.options.redis.xrangeBuffer(this.key, '-', '+', 'COUNT', limit)) as [Buffer, Buffer[]][];
    if (entries.length === 0) return [];
    const ids = entries.map(([id]) => id.toString());
    const [attempts, errors] = await Promise.all([this.options.redis.hmget(`${this.key}:attempts`, ...ids), this.options.redis.hmget(`${this.key}:errors`, ...ids)]);
    return entries.map(([id, raw], i) => toRecord(id.toString(), raw, attempts[i] ?? null, errors[i] ?? null));
  }

  async remove(seqs: readonly string[]): Promise<void> {
    if (seqs.length === 0) return;
    await this.options.redis
      .multi()
      .xdel(this.key, ...seqs)
      .hdel(`${this.key}:attempts`, ...seqs)
      .hdel(`${this.key}:errors`, ...seqs)
      .exec();
  }

  async markAttempt(seqs: readonly string[], error: string): Promise<void> {
    const pipeline = this.options.redis.pipeline();
    for (const seq of seqs) pipeline.hincrby(`${this.key}:attempts`, seq, 1).hset(`${this.key}:errors`, seq, error);
    await pipeline.exec();
  }

  async expire(maxAgeMs: number): Promise<number> {
    const cutoff = Date.now() - maxAgeMs;
    let moved = 0;
    for (;;) {
      const batch = await this.peek(200);
      const old = batch.filter((r) => r.firstFailureAt < cutoff);
      if (old.length === 0) return moved;
      const tx = this.options.redis.multi();
      for (const r of old) tx.xadd(`${this.key}:expired`, '*', ...fields(r));
      tx.xdel(this.key, ...old.map((r) => r.seq));
      await tx.exec();
      moved += old.length;
      if (old.length < batch.length) return moved;
    }
  }

  async expired(limit: number): Promise<StoredRecord[]> {
    const entries = (await this.options.redis.xrangeBuffer(`${this.key}:expired`, '-', '+', 'COUNT', limit)) as [Buffer, Buffer[]][];
    return entries.map(([id, raw]) => toRecord(id.toString(), raw, null, null));
  }

  depth(): Promise<number> {
    return this.options.redis.xlen(this.key);
  }

  async acquireLease(owner: string, ttlMs: number): Promise<boolean> {
    return (await this.options.redis.eval(ACQUIRE, 1, `${this.key}:lease`, owner, String(ttlMs))) === 1;
  }

  async releaseLease(owner: string): Promise<void> {
    await this.options.redis.eval(RELEASE, 1, `${this.key}:lease`, owner);
  }
}

function fields(r: FallbackRecord): (string | Buffer)[] {
  const out: (string | Buffer)[] = [
    'topic',
    r.topic,
    'id',
    r.message.id,
    'headers',
    JSON.stringify(r.message.headers),
    'timestamp',
    String(r.message.timestamp),
    'body',
    Buffer.from(r.message.body),
    'guarantee',
    r.guarantee,
    'via',
    r.via,
    'firstFailureAt',
    String(r.firstFailureAt),
    'attempts',
    String(r.attempts),
  ];
  if (r.message.key !== undefined) out.push('key', r.message.key);
  if (r.lastError !== undefined) out.push('lastError', r.lastError);
  return out;
}

/** Attempts and the last relay error live in hashes beside the stream (stream entries are immutable). */
function toRecord(seq: string, raw: Buffer[], extraAttempts: string | null, relayError: string | null): StoredRecord {
  const map = new Map<string, Buffer>();
  for (let i = 0; i + 1 < raw.length; i += 2) map.set(raw[i]!.toString(), raw[i + 1]!);
  const text = (name: string) => map.get(name)?.toString();
  const key = text('key');
  const lastError = relayError ?? text('lastError');
  return {
    seq,
    topic: text('topic')!,
    message: {
      id: text('id')!,
      ...(key !== undefined ? { key } : {}),
      headers: JSON.parse(text('headers') ?? '{}') as Record<string, string>,
      body: map.get('body') ?? Buffer.alloc(0),
      timestamp: Number(text('timestamp')),
    },
    guarantee: text('guarantee') as FallbackRecord['guarantee'],
    via: (text('via') ?? 'publish') as FallbackRecord['via'],
    firstFailureAt: Number(text('firstFailureAt')),
    attempts: Number(text('attempts') ?? 1) + Number(extraAttempts ?? 0),
    ...(lastError !== undefined ? { lastError } : {}),
  };
}

/**
 * Reports a connection's failures as one line each: the first error after the connection was last
 * ready, never once per reconnect attempt. Error messages from ioredis carry host and port, never the
 * password; the URL itself is never printed.
 */
export function reportConnectionErrors(redis: Redis, what: string, sink: (message: string) => void = (message) => console.error(message)): void {
  let reported = false;
  redis.on('error', (error: unknown) => {
    if (reported) return;
    reported = true;
    sink(`${what}: connection failed (${describeFailure(error, 300).message}); reconnecting in the background`);
  });
  redis.on('ready', () => {
    reported = false;
  });
}
