import { runConformanceSuite } from '@switchboard/core/testing';
import { REDIS_PUBSUB_CAPABILITIES, createRedisPubSubTransport } from '@switchboard/redis-pubsub';
import { REDIS_URL, openStreamReader } from './helpers.js';

runConformanceSuite({
  name: 'redis-pubsub',
  capabilities: REDIS_PUBSUB_CAPABILITIES,
  createTransport: () => createRedisPubSubTransport({ url: REDIS_URL }),
  openDeadLetterReader: (_transport, stream) => openStreamReader(stream),
  waitMs: 10_000,
});
