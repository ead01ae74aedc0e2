import { readFile } from 'node:fs/promises';
import type { Pool, PoolClient } from 'pg';

/** Refuses a table name that is not a plain lower-case SQL identifier (it is spliced into SQL). */
export function assertTableName(name: string): void {
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(name)) throw new Error(`invalid table name "${name}": lower-case letters, digits and _ only`);
}

/**
 * Runs a shipped migration (`migrations/<file>`) with `{table}` replaced by `table` (and each of
 * `placeholders`, e.g. `{last_shard}`, by its value). Idempotent (the
 * migrations use IF NOT EXISTS) and safe when processes start together: it runs in one transaction
 * under an advisory lock per file and table (two concurrent `CREATE TABLE IF NOT EXISTS` of the same
 * table can both miss it, and one fails on the catalog's unique index).
 */
export async function runMigration(pool: Pool, file: string, table: string, placeholders: Readonly<Record<string, string>> = {}): Promise<void> {
  assertTableName(table);
  let sql = (await readFile(new URL(`../migrations/${file}`, import.meta.url), 'utf8')).replaceAll('{table}', table);
  for (const [name, value] of Object.entries(placeholders)) sql = sql.replaceAll(name, value);
  await inTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`switchboard-migrate:${file}:${table}`]);
    await client.query(sql);
  });
}

/** Runs `work` in one transaction on a client of `pool`: committed when it resolves, rolled back when it throws. */
export async function inTransaction<R>(pool: Pool, work: (client: PoolClient) => Promise<R>): Promise<R> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
