import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll } from 'vitest';
import { uniqueName } from '@switchboard/core/testing';
import { PostgresFallbackStore } from '@switchboard/postgres';
import { dropTestTables, uniqueTableName } from '@switchboard/postgres/testing';
import { runBrokerOutageSuite } from '@switchboard/resilience/testing';
import { RedisFallbackStore } from '@switchboard/redis-pubsub';
import { testTransport } from './helpers.js';

const brokersScript = fileURLToPath(new URL('../../../scripts/brokers.sh', import.meta.url));
const broker = async (command: 'up' | 'down') => void (await promisify(execFile)('bash', [brokersScript, command, 'rabbitmq'], { timeout: 180_000 }));
const managed = !process.env.RABBITMQ_URL;
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres', max: 4 });
afterAll(async () => {
  if (managed) await broker('up');
  redis.disconnect();
  await dropTestTables(pool);
  await pool.end();
});

runBrokerOutageSuite('rabbitmq (confirms, persistent, durable queue)', {
  managed,
  createTransport: () => testTransport({ publishTimeoutMs: 3000 }),
  stopBroker: () => broker('down'),
  startBroker: () => broker('up'),
  stores: {
    redis: async () => new RedisFallbackStore({ redis, key: uniqueName('sb-outage-fallback') }),
    postgresql: () => PostgresFallbackStore.open({ pool, table: uniqueTableName('sb_outage') }),
  },
});
