import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { type ConsoleStore, MemoryConsoleStore, type NewConsoleJobItem } from '@switchboard/core';
import { PostgresConsoleStore } from '../src/console-store.js';
import { uniqueTableName } from '../src/testing.js';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
const prefixes: string[] = [];
afterAll(async () => {
  for (const p of prefixes) await pool.query(`DROP TABLE IF EXISTS ${p}_audit, ${p}_items, ${p}_jobs`);
  await pool.end();
});

const stores: Array<[string, () => Promise<ConsoleStore>]> = [
  ['memory', async () => new MemoryConsoleStore()],
  [
    'postgresql',
    async () => {
      const prefix = uniqueTableName('sb_console');
      prefixes.push(prefix);
      return PostgresConsoleStore.open(pool, prefix);
    },
  ],
];

const item = (n: number): NewConsoleJobItem => ({
  letterKey: `key-${n}`,
  source: 'kafka',
  deadLetterTopic: 'orders-dlq',
  messageId: `m-${n}`,
  originalTopic: 'orders',
  group: 'billing',
  ...(n === 1 ? { key: 'k1' } : {}),
  headers: { 'x-dlq-reason': 'non-retryable', tricky: `"'\\<>` },
  payload: Uint8Array.from([0xff, 0, n]),
  edited: n === 2,
});

describe.each(stores)('console store (%s)', (_name, open) => {
  it('keeps a job and its letters, moves items pending → applied → removed once each, audits every step', async () => {
    const store = await open();
    const job = await store.createJob({ action: 'replay', actor: 'alice', reason: 'fixed', ratePerSecond: 5 }, [item(1), item(2), item(3)]);
    expect(job).toMatchObject({ action: 'replay', actor: 'alice', total: 3, applied: 0, removed: 0, state: 'running' });
    expect((await store.unfinishedJobs()).map((j) => j.id)).toEqual([job.id]);
    const pending = await store.items(job.id, 'pending', 10);
    expect(pending.map((i) => i.letterKey)).toEqual(['key-1', 'key-2', 'key-3']);
    expect(pending[0]).toMatchObject({ key: 'k1', headers: { tricky: `"'\\<>` }, edited: false, state: 'pending' });
    expect([...pending[0]!.payload]).toEqual([0xff, 0, 1]);
    expect(pending[1]!.edited).toBe(true);

    await store.markApplied(job.id, 'key-1', 'replayed to orders');
    await store.markApplied(job.id, 'key-1', 'again'); // not pending any more: no-op, no second audit row
    await store.markApplied(job.id, 'key-2', 'replayed to orders');
    expect(await store.job(job.id)).toMatchObject({ applied: 2, removed: 0 });
    expect([...(await store.handledKeys(['key-1', 'key-2', 'key-3', 'other']))].sort()).toEqual(['key-1', 'key-2']);
    await store.markRemoved(job.id, ['key-1', 'key-3']); // key-3 is still pending: untouched
    expect(await store.job(job.id)).toMatchObject({ applied: 2, removed: 1 });
    expect((await store.items(job.id, 'pending', 10)).map((i) => i.letterKey)).toEqual(['key-3']);

    await store.setJobError(job.id, 'broker unreachable (retrying in 2 s)');
    expect((await store.job(job.id))!.error).toBe('broker unreachable (retrying in 2 s)');
    await store.setJobError(job.id, '');
    await store.markApplied(job.id, 'key-3', 'replayed to orders');
    await store.finishJob(job.id, 'done', '');
    await store.finishJob(job.id, 'failed', 'late'); // ended already: no-op
    await store.setJobError(job.id, 'late'); // ended: no-op
    expect(await store.job(job.id)).toMatchObject({ state: 'done', error: '', applied: 3 });
    expect(await store.unfinishedJobs()).toEqual([]);

    const trail = await store.audit({ jobId: job.id, limit: 100 });
    expect(trail.map((e) => [e.action, e.messageId, e.actor])).toEqual([
      ['job-done', '', 'alice'],
      ['replay', 'm-3', 'alice'],
      ['replay', 'm-2', 'alice'],
      ['replay', 'm-1', 'alice'],
      ['job-created', '', 'alice'],
    ]);
    expect((await store.audit({ messageId: 'm-2', limit: 10 })).map((e) => e.detail)).toEqual(['replayed to orders']);
    expect(await store.job('no-such-job')).toBeUndefined();
    expect((await store.jobs(10)).map((j) => j.id)).toEqual([job.id]);
  });
});
