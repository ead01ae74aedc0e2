/**
 * @switchboard/redis-streams — Redis Streams transport (ioredis): durable, acknowledged, with consumer groups.
 *
 * Mapping: topic = stream (one key); group = consumer group (created with MKSTREAM at `$` for
 * `startFrom: latest`, `0` for `earliest`); each subscription = one consumer of the group; ack = XACK;
 * attempt = the pending entry list's delivery count; a crashed member's entries are claimed by the
 * others after `claimIdleMs`; dead letters: the `<topic>-dlq` stream, in the shape the Redis Pub/Sub
 * adapter writes its dead letters.
 */
import type { TransportFactory } from '@switchboard/core';
import { parseOptions } from '@switchboard/core/transport';
import { redisStreamsOptionsSchema, type RedisStreamsOptions } from './options.js';
import { RedisStreamsTransport, redisStreamsCapabilities } from './transport.js';

export { redisStreamsOptionsSchema, type RedisStreamsOptions, type RedisStreamsOptionsInput } from './options.js';
export { RedisStreamsTransport, redisStreamsCapabilities } from './transport.js';
export { decodeEntry, entryFields, entryTime, type DecodedEntry } from './entry.js';
export { HANDED_BACK_CONSUMER } from './subscription.js';

/** Connects a Redis Streams transport from (partial) options. */
export async function createRedisStreamsTransport(options: Partial<RedisStreamsOptions> = {}): Promise<RedisStreamsTransport> {
  return RedisStreamsTransport.connect(parseOptions(redisStreamsOptionsSchema, options));
}

/**
 * The factory an application registers to use `transport.kind: redis-streams`:
 * `createBusFromConfig(config, { transports: [redisStreamsTransport] })` or `registerTransport(redisStreamsTransport)`.
 */
export const redisStreamsTransport: TransportFactory<RedisStreamsOptions> = {
  kind: 'redis-streams',
  optionsSchema: redisStreamsOptionsSchema,
  capabilities: (options) => redisStreamsCapabilities(options),
  create: (options) => RedisStreamsTransport.connect(options),
};

/** The same factory under the name tools look for (`switchboard --transport-module`). */
export const transportFactory = redisStreamsTransport;
