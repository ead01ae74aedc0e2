import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { runDeadLetterLifecycle } from '@switchboard/core/testing';

import { testTransport } from './helpers.js';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
afterAll(() => pool.end());

describe('rabbitmq: DLQ -> DLQ consumer -> PostgreSQL parking lot -> switchboard CLI replay', () => {
  it('parks permanent failures, counts exactly, replays through the CLI, and consumes them once fixed', async () => {
    const report = await runDeadLetterLifecycle({
      createTransport: () => testTransport(),
      cliEnv: { SWITCHBOARD__TRANSPORT__KIND: 'rabbitmq', SWITCHBOARD__TRANSPORT__URL: process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672', SWITCHBOARD__TRANSPORT__QUEUE_EXPIRES_MS: '600000' },
      pool,
      databaseUrl: DATABASE_URL,
    });
    console.log(`[measure] rabbitmq lifecycle: ${JSON.stringify(report)}`);
    expect(report.counters.succeeded).toBe(report.counters.expectedSucceeded);
    expect(report.counters.retryAttempts).toBe(report.counters.expectedRetryAttempts);
    expect(report.counters.finalFailures).toBe(report.counters.expectedFinalFailures);
    expect(report.counters.deadLettered).toBe(report.counters.expectedFinalFailures);
    expect(report.parked).toBe(report.counters.expectedFinalFailures);
    expect(report.history).toBe(2);
    expect(report.consumedAfterFix).toHaveLength(report.parked);
    expect(report.cli).toMatchObject({ list: 0, show: 0, dryRun: 0, dryRunCount: report.parked, badUsage: 2, help: 0, replayOne: 0, replayAll: 0, purge: 0, remaining: 0 });
  }, 180_000);
});
