import { spawn } from 'node:child_process';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI_PATH } from '@switchboard/cli/testing';
import { createBus } from '@switchboard/core';
import { eventually, Recorder, uniqueName } from '@switchboard/core/testing';
import { PostgresFallbackStore } from '@switchboard/postgres';
import { dropTestTables, uniqueTableName } from '@switchboard/postgres/testing';
import { RABBITMQ_URL, testTransport } from './helpers.js';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
afterAll(async () => {
  await dropTestTables(pool);
  await pool.end();
});

/** `switchboard relay` as its own process, relaying to RabbitMQ. */
function startRelay(table: string) {
  return spawn(process.execPath, [CLI_PATH, 'relay', '--store', DATABASE_URL, '--name', table, '--lease-ms', '2000', '--batch-size', '200'], {
    env: { ...process.env, SWITCHBOARD__TRANSPORT__KIND: 'rabbitmq', SWITCHBOARD__TRANSPORT__URL: RABBITMQ_URL },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

describe('switchboard relay process killed mid-drain (RabbitMQ, PostgreSQL store)', () => {
  it('loses nothing: a second relay takes over after the lease and drains the rest', async () => {
    const table = uniqueTableName('sb_relay_crash');
    const store = await PostgresFallbackStore.open({ pool, table });
    const topic = uniqueName('sb-relay.crash');
    const consumer = createBus({ transport: await testTransport() });
    const seen = new Recorder<string>();
    await consumer.subscriber.subscribe(topic, (m) => seen.add(m.id), { concurrency: 20 });
    const total = 5000;
    await store.append(
      Array.from({ length: total }, (_, i) => ({
        topic,
        message: { id: `r-${i}`, key: `k-${i % 10}`, headers: {}, body: Buffer.from(JSON.stringify(i)), timestamp: Date.now() },
        guarantee: 'all' as const,
        via: 'publish' as const,
        firstFailureAt: Date.now(),
        attempts: 1,
      })),
    );

    const first = startRelay(table);
    await seen.waitFor(1000, 60_000);
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));
    const leftAfterKill = await store.depth();
    expect(leftAfterKill).toBeGreaterThan(0); // killed mid-drain

    const second = startRelay(table);
    try {
      await eventually(async () => ((await store.depth()) === 0 ? true : undefined), 60_000, 'the second relay to empty the store');
      await seen.waitFor(total, 60_000).catch(() => undefined);
    } finally {
      second.kill('SIGTERM');
      await new Promise((resolve) => second.once('exit', resolve));
    }
    const distinct = new Set(seen.items);
    console.log(`[measure] relay SIGKILLed mid-drain: ${total} stored, ${leftAfterKill} left at the kill, delivered ${distinct.size}, duplicates ${seen.count - distinct.size}`);
    expect(distinct.size).toBe(total);
    expect([...distinct].every((id) => /^r-\d+$/.test(id))).toBe(true);
    await consumer.close();
  }, 180_000);
});
