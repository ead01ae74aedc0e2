import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, describe, it } from 'vitest';
import { uniqueName } from '@switchboard/core/testing';
import { runBrokerOutageSuite } from '@switchboard/resilience/testing';
import { platformaticRunsOn, type KafkaTransport } from '@switchboard/kafka';
import { RedisFallbackStore } from '@switchboard/redis-pubsub';
import { testTransport } from './helpers.js';

const kafkaScript = fileURLToPath(new URL('../../../scripts/kafka.sh', import.meta.url));
const broker = async (command: 'up' | 'down') => void (await promisify(execFile)('bash', [kafkaScript, command], { timeout: 180_000 }));
const managed = !process.env.KAFKA_BROKERS;
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
afterAll(async () => {
  if (managed) await broker('up');
  redis.disconnect();
});

// The producer-outage scenario with driver "platformatic": nothing published with acks=all is lost.
if (!platformaticRunsOn()) describe.skip(`kafka (acks=all, driver "platformatic"): needs Node >= 22.22; this is Node ${process.versions.node}`, () => it('outage', () => undefined));
else
  runBrokerOutageSuite('kafka (acks=all, driver "platformatic")', {
    managed,
    createTransport: () => testTransport({ driver: 'platformatic', publishTimeoutMs: 3000, retries: 1, partitions: 3 }),
    prepare: (transport, topic) => (transport as KafkaTransport).ensureTopics([topic]),
    stopBroker: () => broker('down'),
    startBroker: () => broker('up'),
    stores: { redis: async () => new RedisFallbackStore({ redis, key: uniqueName('sb-outage-fallback') }) },
  });
