import { readFile } from 'node:fs/promises';
import type { Pool } from 'pg';

/** Refuses a table name that is not a plain lower-case SQL identifier (it is spliced into SQL). */
export function assertTableName(name: string): void {
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(name)) throw new Error(`invalid table name "${name}": lower-case letters, digits and _ only`);
}

/** Runs a shipped migration (`migrations/<file>`) with `{table}` replaced by `table`. Idempotent (the migrations use IF NOT EXISTS). */
export async function runMigration(pool: Pool, file: string, table: string): Promise<void> {
  assertTableName(table);
  const sql = await readFile(new URL(`../migrations/${file}`, import.meta.url), 'utf8');
  await pool.query(sql.replaceAll('{table}', table));
}
