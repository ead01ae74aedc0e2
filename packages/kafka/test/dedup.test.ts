import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createBus } from '@switchboard/core';
import { eventually, uniqueName } from '@switchboard/core/testing';
import { PostgresDeduplicator } from '@switchboard/postgres';
import { dropTestTables, uniqueTableName } from '@switchboard/postgres/testing';
import { KAFKA_BROKERS, handledLines, testTransport } from './helpers.js';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 8 });
afterAll(async () => {
  await dropTestTables(pool);
  await pool.end();
});

describe('idempotent consumer on Kafka (PostgreSQL deduplication in the side effect transaction)', () => {
  it('a consumer process SIGKILLed mid-stream and restarted: every side effect happens exactly once per id', async () => {
    const transport = await testTransport({ partitions: 3 });
    const bus = createBus({ transport });
    const topic = uniqueName('sb-kafka.dedup');
    const group = 'dedup-group';
    const effects = uniqueTableName('sb_effects');
    const dedupTable = uniqueTableName('sb_dedup');
    await pool.query(`CREATE TABLE ${effects} (message_id text NOT NULL)`); // no unique constraint: a repeat would show
    const dedup = await PostgresDeduplicator.open(pool, dedupTable);
    const total = 600;
    await bus.publisher.publish(
      topic,
      Array.from({ length: total }, (_, i) => ({ id: `d-${i}`, key: `k-${i % 20}`, value: i })),
    );
    const script = fileURLToPath(new URL('./fixtures/consume-dedup.mjs', import.meta.url));
    const child = spawn(process.execPath, [script, topic, group, KAFKA_BROKERS, DATABASE_URL, effects, dedupTable], { stdio: ['ignore', 'pipe', 'inherit'] });
    const beforeCrash = handledLines(child);
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await beforeCrash.waitFor(200, 60_000, 'messages handled by the child');
    child.kill('SIGKILL');
    await exited;
    const { rows: committedByChild } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${effects}`);
    const childEffects = Number(committedByChild[0]!.n);
    // The restarted consumer: the group commits nothing the child did, so it gets everything again.
    let skipped = 0;
    await bus.subscriber.subscribe(
      topic,
      dedup.handler(
        async (message, client) => {
          await client.query(`INSERT INTO ${effects} (message_id) VALUES ($1)`, [message.id]);
        },
        { onDuplicate: () => skipped++ },
      ),
      { group, startFrom: 'earliest', concurrency: 8, ordering: 'key' },
    );
    const rows = await eventually(
      async () => {
        const { rows } = await pool.query<{ distinct: string; all: string }>(`SELECT count(DISTINCT message_id) AS distinct, count(*) AS all FROM ${effects}`);
        return Number(rows[0]!.distinct) === total ? rows[0]! : undefined;
      },
      60_000,
      'a side effect for every id',
    );
    console.log(
      `[measure] kafka consumer SIGKILLed after ${beforeCrash.count} handled, restarted: ${total} ids, ${childEffects} side effects committed by the killed process, side effects ${rows.all} (distinct ${rows.distinct}), redelivered duplicates skipped ${skipped}`,
    );
    expect(Number(rows.all)).toBe(total); // exactly once per id
    expect(childEffects).toBeGreaterThan(0);
    expect(skipped).toBe(childEffects); // everything the child committed came again and was skipped
    await bus.close();
  }, 120_000);
});
