import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { PostgresDeduplicator, PostgresOutbox, PostgresParkingLot } from '@switchboard/postgres';
import { dropTestTables, uniqueTableName } from '@switchboard/postgres/testing';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 16 });
afterAll(async () => {
  await dropTestTables(pool);
  await pool.end();
});

/**
 * Processes that start together (replicas of a service, a relay and its consumer) each run the shipped
 * migrations at open. Two concurrent `CREATE TABLE IF NOT EXISTS` of one table can both miss it, and one
 * then fails on PostgreSQL's catalog index ("duplicate key value violates unique constraint
 * pg_type_typname_nsp_index"): an outbox relay died at startup that way in CI.
 */
describe('postgres migrations opened concurrently', () => {
  it('16 stores of the same new tables opened at once all open (10 rounds, fresh names each)', async () => {
    for (let round = 0; round < 10; round++) {
      const dedup = uniqueTableName('sb_mig_dedup');
      const parked = uniqueTableName('sb_mig_parked');
      const outbox = uniqueTableName('sb_mig_outbox');
      const inbox = uniqueTableName('sb_mig_inbox');
      const opened = await Promise.allSettled([
        ...Array.from({ length: 6 }, () => PostgresDeduplicator.open(pool, dedup)),
        ...Array.from({ length: 5 }, () => PostgresParkingLot.open(pool, parked)),
        ...Array.from({ length: 5 }, () => PostgresOutbox.open({ pool, table: outbox, inboxTable: inbox })),
      ]);
      const failures = opened.filter((o) => o.status === 'rejected').map((o) => String((o as PromiseRejectedResult).reason));
      expect(failures, `round ${round}`).toEqual([]);
      await Promise.all(opened.map((o) => (o.status === 'fulfilled' ? (o.value as { close?: () => Promise<void> }).close?.() : undefined)));
    }
  }, 60_000);
});
