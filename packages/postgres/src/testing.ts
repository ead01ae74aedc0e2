import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';

const created = new Set<string>();

/** A unique lower-case SQL identifier for a test table; remembered for {@link dropTestTables}. */
export function uniqueTableName(prefix: string): string {
  const name = `${prefix}_${randomUUID().slice(0, 8)}`.replace(/[^a-z0-9_]/g, '_');
  created.add(name);
  return name;
}

/** Drops the tables this test file created through {@link uniqueTableName} (and their _expired/_lease companions). */
export async function dropTestTables(pool: Pool): Promise<void> {
  for (const name of created) {
    await pool.query(`DROP TABLE IF EXISTS ${name}, ${name}_expired, ${name}_lease, ${name}_relays`);
    created.delete(name);
  }
}
