import pg from 'pg';
import { afterAll } from 'vitest';
import { runOutboxStoreSuite } from '@switchboard/core/testing';
import { PostgresOutbox } from '@switchboard/postgres';
import { dropTestTables, uniqueTableName } from '@switchboard/postgres/testing';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 12 });
afterAll(async () => {
  await dropTestTables(pool);
  await pool.end();
});

runOutboxStoreSuite(
  'postgresql',
  async () => {
    const table = uniqueTableName('sb_outbox');
    const outbox = await PostgresOutbox.open({ pool, table, inboxTable: uniqueTableName('sb_inbox') });
    return {
      store: outbox.store,
      async begin() {
        const client = await pool.connect();
        await client.query('BEGIN');
        const end = async (statement: string) => {
          try {
            await client.query(statement);
          } finally {
            client.release();
          }
        };
        return { write: (topic, messages, options) => outbox.publish(client, topic, messages, options).then(() => undefined), commit: () => end('COMMIT'), rollback: () => end('ROLLBACK') };
      },
      async blockedWriters() {
        const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`);
        return Number(rows[0]!.n);
      },
      close: () => outbox.close(),
    };
  },
  { notifies: true },
);
