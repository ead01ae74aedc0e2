import pg from 'pg';
import { afterAll } from 'vitest';
import { runDeduplicationStoreSuite } from '@switchboard/core/testing';
import { PostgresDeduplicator } from '@switchboard/postgres';
import { dropTestTables, uniqueTableName } from '@switchboard/postgres/testing';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 8 });
afterAll(async () => {
  await dropTestTables(pool);
  await pool.end();
});

runDeduplicationStoreSuite('postgresql', () => PostgresDeduplicator.open(pool, uniqueTableName('sb_dedup')));
