import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { createPostgresQueueTransport, type PostgresQueueOptionsInput } from '@switchboard/postgres';

export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A table prefix of the test file's own (dropped by `dropQueueTables`). */
export function uniquePrefix(): string {
  return `sbtest_q_${randomUUID().slice(0, 8)}`;
}

/** A transport on the test database with short waits, so tests see leases and retries in seconds. */
export function testQueueTransport(tablePrefix: string, options: PostgresQueueOptionsInput = {}) {
  return createPostgresQueueTransport({ url: DATABASE_URL, tablePrefix, leaseMs: 3000, pollIntervalMs: 200, ...options });
}

export async function dropQueueTables(pool: pg.Pool, prefix: string): Promise<void> {
  await pool.query(`DROP TABLE IF EXISTS ${prefix}_deliveries, ${prefix}_subscriptions, ${prefix}_messages, ${prefix}_schema`);
}
