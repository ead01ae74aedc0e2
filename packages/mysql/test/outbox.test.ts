import { randomUUID } from 'node:crypto';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll } from 'vitest';
import { runOutboxStoreSuite } from '@switchboard/core/testing';
import { MySqlOutbox } from '@switchboard/mysql';

// MYSQL_URL names a database of its own; by default the local MariaDB's `switchboard_test`, created if missing.
const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/switchboard_test';
beforeAll(async () => {
  const url = new URL(MYSQL_URL);
  const server = await mysql.createConnection({ host: url.hostname, port: Number(url.port || 3306), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) });
  await server.query(`CREATE DATABASE IF NOT EXISTS \`${url.pathname.slice(1)}\``);
  await server.end();
});
const pool = mysql.createPool({ uri: MYSQL_URL, connectionLimit: 12 });
const created: string[] = [];
afterAll(async () => {
  for (const table of created) await pool.query(`DROP TABLE IF EXISTS ${table}, ${table}_lease, ${table}_relays, ${table}_keylock`);
  await pool.end();
});

runOutboxStoreSuite(
  'mariadb',
  async () => {
    const table = `sb_outbox_${randomUUID().slice(0, 8)}`;
    const inboxTable = `sb_inbox_${randomUUID().slice(0, 8)}`;
    created.push(table, inboxTable);
    const outbox = await MySqlOutbox.open({ pool, table, inboxTable });
    return {
      store: outbox.store,
      async begin() {
        const connection = await pool.getConnection();
        await connection.beginTransaction();
        const end = async (finish: () => Promise<void>) => {
          try {
            await finish();
          } finally {
            connection.release();
          }
        };
        return {
          write: (topic, messages, options) => outbox.publish(connection, topic, messages, options).then(() => undefined),
          commit: () => end(() => connection.commit()),
          rollback: () => end(() => connection.rollback()),
        };
      },
      async blockedWriters() {
        // A writer held on its key lock: its locking read has run for over 100 ms. Not INNODB_LOCK_WAITS
        // alone: MariaDB 10.11 may take the row lock while optimizing the statement (a primary-key
        // lookup is read as a constant), and that wait ("Statistics") is not listed there.
        const [rows] = await pool.query<mysql.RowDataPacket[]>(`SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' AND TIME_MS > 100 AND INFO LIKE ?`, [
          `SELECT h FROM ${table}_keylock %FOR UPDATE`,
        ]);
        return Number(rows[0]!.n);
      },
      close: async () => undefined,
    };
  },
  { notifies: false },
);
