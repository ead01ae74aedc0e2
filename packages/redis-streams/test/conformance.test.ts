import { Redis } from 'ioredis';
import { afterAll } from 'vitest';
import { runConformanceSuite, type RawMessage, BrokerLink } from '@switchboard/core/testing';
import { redisStreamsCapabilities } from '@switchboard/redis-streams';
import { REDIS_URL, testTransport } from './helpers.js';

/** A producer that does not use Switchboard: ioredis XADD of the entry fields, headers (forged x-sb-* included) as given. */
const raw = new Redis(REDIS_URL, { lazyConnect: true });
afterAll(() => raw.disconnect());
async function publishRaw(_transport: unknown, stream: string, message: RawMessage): Promise<void> {
  if (raw.status === 'wait') await raw.connect();
  const forgedTime = message.headers['x-sb-timestamp'];
  const fields: (string | Buffer)[] = ['id', message.id, 'headers', JSON.stringify(message.headers), 'timestamp', forgedTime ?? String(Date.now()), 'body', Buffer.from(message.body)];
  if (message.key !== undefined) fields.push('key', message.key);
  await raw.xadd(stream, '*', ...fields);
}

// maxMessageBytes 1 MiB: the suite's size-limit scenario pushes a message of about that size.
const maxMessageBytes = 1024 * 1024;
for (const ordering of ['partition', 'key'] as const) {
  runConformanceSuite({
    name: `redis-streams (ordering ${ordering})`,
    capabilities: redisStreamsCapabilities({ maxMessageBytes, replicas: 0 }),
    createTransport: () => testTransport({ maxMessageBytes, claimIdleMs: 3000 }),
    brokerLink: { broker: BrokerLink.addressOf(REDIS_URL), createTransport: (link) => testTransport({ url: link.urlThrough(REDIS_URL), maxMessageBytes, claimIdleMs: 3000, commandTimeoutMs: 2000 }) },
    publishRaw,
    ephemeralStateLeft: async (_transport, stream) => {
      if (raw.status === 'wait') await raw.connect();
      return (await raw.exists(stream)) === 1;
    },
    defaults: { ordering },
    waitMs: 10_000,
  });
}
