import pg from 'pg';
import { afterAll } from 'vitest';
import { runDeadLetterLifecycleSuite } from '@switchboard/cli/testing';
import { dropTestTables } from '@switchboard/postgres/testing';
import { testTransport } from './helpers.js';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
afterAll(async () => {
  await dropTestTables(pool);
  await pool.end();
});

runDeadLetterLifecycleSuite('kafka', async () => {
  const admin = await testTransport();
  return {
    createTransport: () => testTransport(),
    prepareTopics: (topics) => admin.ensureTopics(topics),
    cliEnv: { SWITCHBOARD__TRANSPORT__KIND: 'kafka', SWITCHBOARD__TRANSPORT__BROKERS: process.env.KAFKA_BROKERS ?? '127.0.0.1:9092' },
    pool,
    databaseUrl: DATABASE_URL,
    cleanup: () => admin.close(),
  };
});
