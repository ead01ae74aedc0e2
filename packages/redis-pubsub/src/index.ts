/**
 * @switchboard/redis-pubsub — Redis Pub/Sub transport (ioredis), fire-and-forget and declared so.
 *
 * Mapping: topic = channel; pattern subscriptions via PSUBSCRIBE (core `*`/`#` syntax, filtered exactly);
 * delivery guarantee: only "none" (PUBLISH answers with the receiver count, reported as `receivers`);
 * dead letters: a Redis Stream `<channel>-dlq`; retries: in-process.
 */
import type { TransportFactory } from '@switchboard/core';
import { redisOptionsSchema, type RedisOptions } from './options.js';
import { REDIS_PUBSUB_CAPABILITIES, RedisPubSubTransport } from './transport.js';

export { redisOptionsSchema, type RedisOptions, type RedisOptionsInput } from './options.js';
export { REDIS_PUBSUB_CAPABILITIES, RedisPubSubTransport, globForPattern } from './transport.js';
export { DeadLetterStreamPublisher, readDeadLetterStream, type StreamDeadLetter } from './dead-letter-stream.js';
export { encodeFrame, decodeFrame } from './frame.js';

/** Connects a Redis Pub/Sub transport from (partial) options. */
export async function createRedisPubSubTransport(options: Partial<RedisOptions> = {}): Promise<RedisPubSubTransport> {
  return RedisPubSubTransport.connect(redisOptionsSchema.parse(options));
}

/** Found by core through `transport.kind: redis`. */
export const transportFactory: TransportFactory<RedisOptions> = {
  kind: 'redis',
  optionsSchema: redisOptionsSchema,
  capabilities: () => REDIS_PUBSUB_CAPABILITIES,
  create: (options) => RedisPubSubTransport.connect(options),
};
export { RedisFallbackStore, type RedisFallbackStoreOptions } from './fallback-store.js';
