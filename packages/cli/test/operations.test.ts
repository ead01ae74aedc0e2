import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI_PATH, runCli } from '@switchboard/cli/testing';
import {
  CountingObserver,
  MemoryParkingLot,
  NonRetryableError,
  combineObservers,
  consumeDeadLetters,
  createBus,
  createMemoryTransport,
  parkingHistory,
  replayParked,
  type ParkingLot,
} from '@switchboard/core';
import { eventually, Recorder } from '@switchboard/core/testing';
import { PostgresParkingLot } from '@switchboard/postgres';
import { dropTestTables, uniqueTableName } from '@switchboard/postgres/testing';
import { PrometheusObserver, startMetricsServer } from '@switchboard/prometheus';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
afterAll(async () => {
  await dropTestTables(pool);
  await pool.end();
});

const lots: [string, () => Promise<ParkingLot>][] = [
  ['memory', async () => new MemoryParkingLot()],
  ['postgresql', () => PostgresParkingLot.open(pool, uniqueTableName('sb_parked'))],
];

describe.each(lots)('parking lot (%s): DLQ consumer, park, replay with history', (_name, openLot) => {
  it('parks what the DLQ consumer cannot handle, replays it, and a replay failing again keeps its history', async () => {
    const lot = await openLot();
    const counts = new CountingObserver();
    const bus = createBus({ transport: createMemoryTransport(), observer: counts });
    let fixed = false;
    const consumed = new Recorder<string>();
    const handler = (m: { id: string; value: { to: string } }) => {
      if (!fixed) throw new NonRetryableError(`bad address ${m.value.to}`);
      consumed.add(m.id);
    };
    await bus.subscriber.subscribe('mail', handler, { group: 'mail' });
    await consumeDeadLetters(bus.subscriber, 'mail', handler, { group: 'mail-dlq', parkingLot: lot, retry: { maxAttempts: 2, initialIntervalMs: 10 } });
    await bus.publisher.publish('mail', { id: 'mail-1', key: 'user-1', headers: { tenant: 't1' }, value: { to: 'nobody@' } });
    const parked = await eventually(async () => (await lot.list({ topic: 'mail' }))[0], 5000, 'the parked message');
    expect(parked).toMatchObject({ messageId: 'mail-1', originalTopic: 'mail', deadLetterTopic: 'mail-dlq', key: 'user-1', errorName: 'NonRetryableError', reason: 'non-retryable', replayCount: 0 });
    expect(parked.headers.tenant).toBe('t1');
    expect(parked.headers['x-dlq-original-topic']).toBe('mail');
    expect(parkingHistory(parked.headers)).toHaveLength(1);

    // Replayed while still broken: parked again, history now two trips long, the first row marked replayed.
    await replayParked(lot, bus.publisher, [parked.id]);
    const again = await eventually(async () => (await lot.list({ topic: 'mail' })).find((m) => m.id !== parked.id), 5000, 'the message parked again');
    expect(parkingHistory(again.headers)).toHaveLength(2);
    expect(again.headers['x-replay-count']).toBe('1');
    expect((await lot.get(parked.id))!.replayCount).toBe(1);

    // Fixed: the replay is consumed.
    fixed = true;
    const planned = await replayParked(lot, bus.publisher, { topic: 'mail' }, { dryRun: true });
    expect(planned.map((m) => m.id)).toEqual([again.id]);
    await replayParked(lot, bus.publisher, { topic: 'mail' }, { ratePerSecond: 100 });
    await consumed.waitFor(1, 5000);
    expect(consumed.items).toEqual(['mail-1']);
    expect(await lot.delete([parked.id, again.id])).toBe(2);
    await bus.close();
  });
});

describe('metrics', () => {
  it('counts exactly what happened (seed 2): successes, retry attempts, final failures, dead letters; serves /metrics', async () => {
    const prometheus = new PrometheusObserver({ transport: 'memory' });
    const counts = new CountingObserver();
    const bus = createBus({ transport: createMemoryTransport(), observer: combineObservers(prometheus, counts) });
    const failedOnce = new Set<string>();
    await bus.subscriber.subscribe<{ kind: string }>(
      'notification',
      (m) => {
        if (m.value.kind === 'permanent') throw new NonRetryableError('no such post');
        if (m.value.kind === 'transient' && !failedOnce.has(m.id)) {
          failedOnce.add(m.id);
          throw new Error('db timeout');
        }
      },
      { group: 'notification-consumer', concurrency: 3, retry: { maxAttempts: 3, initialIntervalMs: 10 } },
    );
    const total = 1000;
    const kind = (i: number) => (i % 20 === 0 ? 'permanent' : i % 10 === 5 ? 'transient' : 'ok');
    await bus.publisher.publish(
      'notification',
      Array.from({ length: total }, (_, i) => ({ key: `k${i % 13}`, value: { kind: kind(i) } })),
    );
    const permanent = total / 20;
    const transient = total / 10;
    await counts.waitFor('success', total - permanent);
    await counts.waitFor('dead-lettered', permanent);
    const metric = async (name: string) => ((await prometheus.registry.getSingleMetric(name)!.get()).values ?? []).reduce((s, v) => s + v.value, 0);
    expect(await metric('switchboard_messages_succeeded_total')).toBe(total - permanent);
    expect(await metric('switchboard_retry_attempts_total')).toBe(transient);
    expect(await metric('switchboard_final_failures_total')).toBe(permanent);
    expect(await metric('switchboard_dead_lettered_total')).toBe(permanent);
    expect(await metric('switchboard_published_total')).toBe(total); // application publishes; dead letters count as dead_lettered
    const server = await startMetricsServer(prometheus.registry);
    try {
      const text = await (await fetch(server.url)).text();
      expect(text).toContain('switchboard_messages_succeeded_total{transport="memory",topic="notification",group="notification-consumer"} 950');
      expect(text).toContain('switchboard_handler_duration_seconds_bucket');
    } finally {
      server.close();
    }
    await bus.close();
  });
});

describe('switchboard CLI', () => {
  it('answers --help with 0, a usage error with 2 and a missing database with a clear message', async () => {
    expect((await runCli(['--help'], {})).code).toBe(0);
    expect((await runCli(['dlq', 'list', '--help'], {})).stdout).toContain('--error-name');
    const bad = await runCli(['dlq', 'list', '--since', 'yesterday-ish'], { DATABASE_URL });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--since: expected an ISO time or a duration');
    const noDb = await runCli(['dlq', 'list'], { DATABASE_URL: '' });
    expect(noDb.code).toBe(2);
    expect(noDb.stderr).toContain('needs --database-url or DATABASE_URL');
    expect((await runCli(['dlq', 'purge', '--source', 'carrier-pigeon'], {})).code).toBe(2);
  });

  it('exits 2 with a message naming the variable or the file for hostile or broken config', async () => {
    const polluted = await runCli(['dlq', 'list', '--source', 'transport', '--dlq-topic', 'x-dlq'], { SWITCHBOARD__CONSTRUCTOR__PROTOTYPE__POLLUTED: 'yes' });
    expect(polluted.code).toBe(2);
    expect(polluted.stderr).toContain('SWITCHBOARD__CONSTRUCTOR__PROTOTYPE__POLLUTED');
    const clash = await runCli(['dlq', 'list', '--source', 'transport', '--dlq-topic', 'x-dlq'], { SWITCHBOARD__DEFAULTS: '5', SWITCHBOARD__DEFAULTS__CONCURRENCY: '3' });
    expect(clash.code).toBe(2);
    expect(clash.stderr).toMatch(/SWITCHBOARD__DEFAULTS sets a value where SWITCHBOARD__DEFAULTS__CONCURRENCY needs an object/);
    const dir = await mkdtemp(join(tmpdir(), 'sb-cli-'));
    await writeFile(join(dir, 'list.yaml'), '- transport: kafka\n');
    for (const [file, message] of [
      [join(dir, 'list.yaml'), 'must hold an object of config fields at the top, not a list'],
      [join(dir, 'absent.json'), 'absent.json: no such file'],
      [dir, 'is a directory, not a file'],
    ] as const) {
      const run = await runCli(['--config', file, 'dlq', 'list', '--source', 'transport', '--dlq-topic', 'x-dlq'], {});
      expect(run.code, file).toBe(2);
      expect(run.stderr).toContain(message);
    }
  });

  it('writes a multi-megabyte --json document whole into a slow pipe, bodies decoded; --ndjson one letter per line', async () => {
    const table = uniqueTableName('sb_parked');
    const lot = await PostgresParkingLot.open(pool, table);
    const letters = 1000;
    const filler = 'x'.repeat(4000);
    for (let i = 0; i < letters; i += 100) {
      await Promise.all(
        Array.from({ length: 100 }, (_, j) =>
          lot.park({
            messageId: `m-${i + j}`,
            originalTopic: 'mail',
            headers: { 'x-dlq-reason': 'non-retryable' },
            // Every third body is not UTF-8: it must come out as base64, the others as JSON / text.
            payload: (i + j) % 3 === 2 ? new Uint8Array([0xff, 0xfe, i % 256, j]) : (i + j) % 3 === 1 ? Buffer.from(`plain ${filler}`) : Buffer.from(JSON.stringify({ n: i + j, filler })),
            reason: 'non-retryable',
            errorName: 'NonRetryableError',
            errorMessage: 'bad address',
            attempts: 1,
          }),
        ),
      );
    }
    /** Runs the CLI with its stdout read slowly (a pause every chunk), as `| jq` on a busy machine would. */
    const slowly = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
        const child = spawn(process.execPath, [CLI_PATH, '--parking-table', table, ...args], { env: { ...process.env, DATABASE_URL }, stdio: ['ignore', 'pipe', 'inherit'] });
        const chunks: Buffer[] = [];
        child.stdout.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          child.stdout.pause();
          setTimeout(() => child.stdout.resume(), 2);
        });
        child.on('error', reject);
        child.on('close', (code) => resolve({ code, stdout: Buffer.concat(chunks).toString('utf8') }));
      });
    const document = await slowly(['--json', 'dlq', 'list', '--limit', String(letters)]);
    expect(document.code).toBe(0);
    expect(document.stdout.length).toBeGreaterThan(2_500_000);
    const parsed = JSON.parse(document.stdout) as { messageId: string; payload: { encoding: string; value: unknown } }[];
    expect(parsed).toHaveLength(letters);
    const byId = new Map(parsed.map((m) => [m.messageId, m.payload]));
    expect(byId.get('m-0')).toEqual({ encoding: 'json', value: { n: 0, filler } });
    expect(byId.get('m-1')).toEqual({ encoding: 'utf8', value: `plain ${filler}` });
    expect(byId.get('m-2')).toEqual({ encoding: 'base64', value: Buffer.from([0xff, 0xfe, 0, 2]).toString('base64') });
    const lines = await slowly(['--ndjson', 'dlq', 'list', '--limit', String(letters)]);
    expect(lines.code).toBe(0);
    const rows = lines.stdout.trimEnd().split('\n');
    expect(rows).toHaveLength(letters);
    expect(new Set(rows.map((row) => (JSON.parse(row) as { messageId: string }).messageId)).size).toBe(letters);
  }, 120_000);
});
