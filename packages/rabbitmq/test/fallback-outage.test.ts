import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { FallbackStore } from '@switchboard/core';
import { PostgresFallbackStore } from '@switchboard/core/postgres';
import { runBrokerOutageScenario, uniqueName, uniqueTableName } from '@switchboard/core/testing';

import { RedisFallbackStore } from '@switchboard/redis-pubsub';
import { testTransport } from './helpers.js';

const brokersScript = fileURLToPath(new URL("../../../scripts/brokers.sh", import.meta.url));
const broker = async (command: 'up' | 'down') => void (await promisify(execFile)('bash', [brokersScript, command, 'rabbitmq'], { timeout: 180_000 }));
const managed = !process.env.RABBITMQ_URL;
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres', max: 4 });
afterAll(async () => {
  if (managed) await broker('up');
  redis.disconnect();
  await pool.end();
});

const stores: Record<string, () => Promise<FallbackStore>> = {
  redis: async () => new RedisFallbackStore({ redis, key: uniqueName('sb-outage-fallback') }),
  postgresql: () => PostgresFallbackStore.open({ pool, table: uniqueTableName('sb_outage') }),
};

describe.runIf(managed)('rabbitmq (confirms, persistent, durable queue) broker stopped and restarted while publishing through the fallback store', () => {
  for (const [storeName, openStore] of Object.entries(stores)) {
    it(`every published id reaches the consumer, ${storeName} store`, async () => {
      const report = await runBrokerOutageScenario({
        createTransport: () => testTransport({ publishTimeoutMs: 3000 }),
        stopBroker: () => broker('down'),
        startBroker: () => broker('up'),
        store: await openStore(),
      });
      console.log(`[measure] rabbitmq + ${storeName} store: published ${report.published} (stored for later ${report.storedForLater}), delivered ${report.delivered}, duplicates ${report.duplicates}, missing ${report.missing.length}, recovery to empty store ${report.recoveryToEmptyStoreMs} ms, breaker opened ${report.breakerOpened} and closed after recovery ${report.breakerClosedAfterRecovery}`);
      expect(report.missing).toEqual([]);
      expect(report.published).toBe(10_000);
      expect(report.storedForLater).toBeGreaterThan(0);
      expect(report.breakerOpened).toBe(true);
      expect(report.breakerClosedAfterRecovery).toBe(true);
    }, 420_000);
  }
});
