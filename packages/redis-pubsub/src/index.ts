/**
 * @switchboard/redis-pubsub — Redis Pub/Sub transport (ioredis), fire-and-forget and declared so.
 *
 * Mapping: topic = channel; pattern subscriptions via PSUBSCRIBE (core `*`/`#` syntax, filtered exactly);
 * delivery guarantee: only "none" (PUBLISH answers with the receiver count, reported as `receivers`);
 * dead letters: a Redis Stream `<channel>-dlq`; retries: in-process.
 */
import { Redis } from 'ioredis';
import type { TransportFactory } from '@switchboard/core';
import { describeFailure, parseOptions, redactUrl, ConnectError, endpointOf } from '@switchboard/core/transport';
import { RedisFallbackStore } from './fallback-store.js';
import { redisOptionsSchema, type RedisOptions } from './options.js';
import { RedisPubSubTransport, redisPubSubCapabilities } from './transport.js';

export { redisOptionsSchema, type RedisOptions, type RedisOptionsInput } from './options.js';
export { REDIS_PUBSUB_CAPABILITIES, RedisPubSubTransport, globForPattern, redisPubSubCapabilities } from './transport.js';
export { DeadLetterStreamPublisher, readDeadLetterStream, type StreamDeadLetter } from './dead-letter-stream.js';
export { encodeFrame, decodeFrame, type WireFormat } from './frame.js';

/** Connects a Redis Pub/Sub transport from (partial) options. */
export async function createRedisPubSubTransport(options: Partial<RedisOptions> = {}): Promise<RedisPubSubTransport> {
  return RedisPubSubTransport.connect(parseOptions(redisOptionsSchema, options));
}

/**
 * The factory an application registers to use `transport.kind: redis`:
 * `createBusFromConfig(config, { transports: [redisPubSubTransport] })` or `registerTransport(redisPubSubTransport)`.
 */
export const redisPubSubTransport: TransportFactory<RedisOptions> = {
  kind: 'redis',
  optionsSchema: redisOptionsSchema,
  capabilities: (options) => redisPubSubCapabilities(options),
  create: (options) => RedisPubSubTransport.connect(options),
};
export { RedisFallbackStore, type RedisFallbackStoreOptions } from './fallback-store.js';
export { RedisDeduplicationStore } from './dedup-store.js';

/** Opens a Redis-stream fallback store on its own connection (used by `switchboard relay --store redis://...`). */
export async function openRedisFallbackStore(url: string, key?: string): Promise<RedisFallbackStore & { close(): Promise<void> }> {
  // A write the server does not answer within 5 s fails (and its socket is replaced) instead of hanging the relay.
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 5000,
    commandTimeout: 5000,
    socketTimeout: 5000,
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(100 * 2 ** times, 2000),
  });
  const store = new RedisFallbackStore({ redis, ...(key ? { key } : {}) }); // adds the one-line error reporting
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new ConnectError(`cannot connect to the Redis fallback store at ${redactUrl(url)}: ${describeFailure(error, 300).message}`, endpointOf(url), { cause: error });
  }
  return Object.assign(store, { close: async () => void (await redis.quit()) });
}

/** The same factory under the name tools look for (`switchboard --transport-module`). */
export const transportFactory = redisPubSubTransport;
