import { Redis } from 'ioredis';
import { afterAll } from 'vitest';
import { runConformanceSuite, type RawMessage, BrokerLink } from '@switchboard/core/testing';
import { createRedisPubSubTransport, redisPubSubCapabilities } from '@switchboard/redis-pubsub';
import { REDIS_URL, openStreamReader } from './helpers.js';

/** A producer that does not use Switchboard: ioredis PUBLISH of a hand-made frame (a forged x-sb-timestamp goes into its time field). */
const raw = new Redis(REDIS_URL, { lazyConnect: true });
afterAll(() => raw.disconnect());
async function publishRaw(_transport: unknown, channel: string, message: RawMessage): Promise<void> {
  if (raw.status === 'wait') await raw.connect();
  const forgedTime = message.headers['x-sb-timestamp'];
  const header = Buffer.from(JSON.stringify({ id: message.id, key: message.key, headers: message.headers, timestamp: forgedTime !== undefined ? forgedTime : Date.now() }));
  const length = Buffer.alloc(4);
  length.writeUInt32BE(header.length);
  await raw.publish(channel, Buffer.concat([Buffer.from('SB1'), length, header, Buffer.from(message.body)]));
}

// maxMessageBytes 1 MiB: the suite's size-limit scenario pushes a message of about that size (Redis' own
// 512 MB proto-max-bulk-len would be too heavy for a test).
const maxMessageBytes = 1024 * 1024;
runConformanceSuite({
  name: 'redis-pubsub',
  capabilities: redisPubSubCapabilities({ maxMessageBytes }),
  createTransport: () => createRedisPubSubTransport({ url: REDIS_URL, maxMessageBytes }),
  brokerLink: { broker: BrokerLink.addressOf(REDIS_URL), createTransport: (link) => createRedisPubSubTransport({ url: link.urlThrough(REDIS_URL), maxMessageBytes, commandTimeoutMs: 2000 }) },
  openDeadLetterReader: (_transport, stream) => openStreamReader(stream),
  publishRaw,
  waitMs: 10_000,
});
