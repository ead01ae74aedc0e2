import pg from 'pg';
import { afterAll } from 'vitest';
import { runDeadLetterLifecycleSuite } from '@switchboard/cli/testing';
import { dropTestTables } from '@switchboard/postgres/testing';
import { RABBITMQ_URL, testTransport } from './helpers.js';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
afterAll(async () => {
  await dropTestTables(pool);
  await pool.end();
});

runDeadLetterLifecycleSuite('rabbitmq', {
  createTransport: () => testTransport(),
  // The CLI uses the application's config: same queue arguments as the test transports.
  cliEnv: { SWITCHBOARD__TRANSPORT__KIND: 'rabbitmq', SWITCHBOARD__TRANSPORT__URL: RABBITMQ_URL, SWITCHBOARD__TRANSPORT__QUEUE_EXPIRES_MS: '600000' },
  pool,
  databaseUrl: DATABASE_URL,
});
