import type { Pool } from 'pg';
import { assertTableName, inTransaction } from '../migration.js';
import { readFile } from 'node:fs/promises';

/** The schema version this package's queue statements need. */
export const QUEUE_SCHEMA_VERSION = 1;

/**
 * Creates or upgrades the queue tables (`migrations/004_queue.sql`, `{table}` = the prefix) in one
 * transaction under an advisory lock, so members starting together do not race on CREATE. Refuses a
 * database whose recorded version is newer than this package knows.
 */
export async function migratePostgresQueue(pool: Pool, prefix = 'switchboard_queue'): Promise<void> {
  assertTableName(prefix);
  const sql = (await readFile(new URL('../../migrations/004_queue.sql', import.meta.url), 'utf8')).replaceAll('{table}', prefix);
  await inTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`switchboard-queue-migrate:${prefix}`]);
    await client.query(sql);
    const { rows } = await client.query<{ version: number }>(`SELECT max(version) AS version FROM ${prefix}_schema`);
    const version = rows[0]?.version ?? 0;
    if (version > QUEUE_SCHEMA_VERSION)
      throw new Error(`the queue tables "${prefix}_*" are at schema version ${version}, newer than this package's ${QUEUE_SCHEMA_VERSION}: upgrade @switchboard/postgres`);
  });
}
