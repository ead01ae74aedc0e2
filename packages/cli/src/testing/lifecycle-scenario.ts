import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Pool } from 'pg';
import { combineObservers, consumeDeadLetters, CountingObserver, createBus, type Message, NonRetryableError, type ParkedMessage, parkingHistory, type Transport } from '@switchboard/core';
import { PrometheusObserver } from '@switchboard/prometheus';
import { PostgresParkingLot } from '@switchboard/postgres';
import { eventually, Recorder, uniqueName, waitUntil } from '@switchboard/core/testing';
import { uniqueTableName } from '@switchboard/postgres/testing';

/** The built CLI (`pnpm test` builds first). */
/** The `switchboard` command of this package (runs dist/, so build first). */
export const CLI_PATH = fileURLToPath(new URL('../../bin/switchboard.js', import.meta.url));

/** Runs `switchboard ...args` as a user would; resolves with exit code and output. */
export async function runCli(args: readonly string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI_PATH, ...args], { env: { ...process.env, ...env }, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

export interface LifecycleOptions {
  readonly createTransport: () => Promise<Transport>;
  readonly prepareTopics?: (topics: readonly string[]) => Promise<void>;
  /** Environment that points the CLI at the same transport (SWITCHBOARD__TRANSPORT__KIND=...). */
  readonly cliEnv: Record<string, string>;
  readonly pool: Pool;
  readonly databaseUrl: string;
  readonly waitMs?: number;
}

export interface LifecycleReport {
  readonly parked: number;
  readonly history: number;
  readonly consumedAfterFix: readonly string[];
  readonly counters: Record<string, number>;
  readonly cli: Record<string, number>;
}

/**
 * The DLQ lifecycle on a real broker: a load with transient and permanent failures (the
 * verification: Prometheus counters must equal the expected numbers), permanent ones go
 * DLQ -> DLQ consumer -> parking lot (PostgreSQL); the `switchboard` CLI lists, shows, dry-runs,
 * replays (a replay that fails again comes back with its history), and once the handler is fixed the
 * replayed messages are consumed; finally the CLI purges.
 */
export async function runDeadLetterLifecycle(options: LifecycleOptions): Promise<LifecycleReport> {
  const waitMs = options.waitMs ?? 60_000;
  const topic = uniqueName('sb-lifecycle');
  const table = uniqueTableName('sb_parked');
  await options.prepareTopics?.([topic, `${topic}-dlq`]);
  const lot = await PostgresParkingLot.open(options.pool, table);
  const transport = await options.createTransport();
  const prometheus = new PrometheusObserver({ transport: transport.kind });
  const counts = new CountingObserver();
  const bus = createBus({ transport, observer: combineObservers(prometheus, counts) });
  const cliEnv = { ...options.cliEnv, DATABASE_URL: options.databaseUrl };
  const cli = (...args: string[]) => runCli(['--parking-table', table, ...args], cliEnv);
  const usage: Record<string, number> = {};
  try {
    let fixed = false;
    const transientFailed = new Set<string>();
    const consumed = new Recorder<string>();
    const handler = (m: Message<{ kind: string }>) => {
      if (m.value.kind === 'permanent' && !fixed) throw new NonRetryableError('invalid e-mail address');
      if (m.value.kind === 'transient' && !transientFailed.has(m.id)) {
        transientFailed.add(m.id);
        throw new Error('smtp timeout');
      }
      consumed.add(m.id);
    };
    const groups = transport.capabilities.consumerGroups;
    const startFrom = transport.capabilities.replay ? { startFrom: 'earliest' as const } : {};
    await bus.subscriber.subscribe(topic, handler, { ...(groups ? { group: 'mail' } : {}), ...startFrom, concurrency: 4, retry: { maxAttempts: 3, initialIntervalMs: 50 } });
    await consumeDeadLetters(bus.subscriber, topic, handler, { ...(groups ? { group: 'mail-dlq' } : {}), ...startFrom, parkingLot: lot, retry: { maxAttempts: 2, initialIntervalMs: 50 } });

    // The load: N messages, 10% fail once (transient), 5% always (permanent).
    const total = 200;
    const kindOf = (i: number) => (i % 20 === 0 ? 'permanent' : i % 10 === 5 ? 'transient' : 'ok');
    await bus.publisher.publish(
      topic,
      Array.from({ length: total }, (_, i) => ({ id: `m-${i}`, key: `user-${i % 7}`, value: { kind: kindOf(i) } })),
    );
    const permanent = Array.from({ length: total }, (_, i) => i).filter((i) => kindOf(i) === 'permanent').length;
    const transient = Array.from({ length: total }, (_, i) => i).filter((i) => kindOf(i) === 'transient').length;
    await waitUntil(() => consumed.count >= total - permanent, waitMs, 'the healthy messages');
    const list = await eventually(
      async () => {
        const parked = await lot.list({ topic, limit: 1000 });
        return parked.length >= permanent ? parked : undefined;
      },
      waitMs,
      'every permanent failure parked',
    );
    const value = async (name: string, labels: Record<string, string>) =>
      ((await prometheus.registry.getSingleMetric(name)?.get())?.values ?? []).filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((sum, v) => sum + v.value, 0);
    const counters = {
      succeeded: await value('switchboard_messages_succeeded_total', { topic }),
      retryAttempts: await value('switchboard_retry_attempts_total', { topic }),
      finalFailures: await value('switchboard_final_failures_total', { topic }),
      deadLettered: await value('switchboard_dead_lettered_total', { topic }),
      parkedFromDlq: await value('switchboard_final_failures_total', { topic: `${topic}-dlq` }),
      expectedSucceeded: total - permanent,
      expectedRetryAttempts: transient,
      expectedFinalFailures: permanent,
    };

    // The CLI, as an operator would run it.
    const listed = await cli('--json', 'dlq', 'list', '--topic', topic);
    usage.list = listed.code;
    const listedIds = (JSON.parse(listed.stdout || '[]') as ParkedMessage[]).map((m) => m.id);
    const shown = await cli('--json', 'dlq', 'show', listedIds[0] ?? 'none');
    usage.show = shown.code;
    const dry = await cli('--json', 'dlq', 'replay', '--topic', topic, '--dry-run');
    usage.dryRun = dry.code;
    usage.dryRunCount = (JSON.parse(dry.stdout || '{"messages":[]}') as { messages: unknown[] }).messages.length;
    usage.badUsage = (await cli('dlq', 'replay', '--rate', '-3')).code;
    usage.help = (await cli('dlq', 'replay', '--help')).code;
    // Replay one while the handler is still broken: it fails again and comes back with its history.
    const first = list[0]!;
    usage.replayOne = (await cli('--json', 'dlq', 'replay', first.id)).code;
    const again = await eventually(
      async () => (await lot.list({ topic, limit: 1000 })).find((m) => m.messageId === first.messageId && m.id !== first.id),
      waitMs,
      'the replayed message parked again',
    ).catch(() => undefined);
    const history = again ? parkingHistory(again.headers).length : 0;
    // Fix the handler, replay everything still parked: consumed this time.
    fixed = true;
    usage.replayAll = (await cli('--json', 'dlq', 'replay', '--topic', topic, '--rate', '200')).code;
    const parkedIds = [...new Set(list.map((m) => m.messageId))];
    await waitUntil(() => parkedIds.every((id) => consumed.items.includes(id)), waitMs, 'the replayed messages to be consumed').catch(() => undefined);
    const consumedAfterFix = parkedIds.filter((id) => consumed.items.includes(id));
    const purged = await cli('--json', 'dlq', 'purge', '--topic', topic, '--include-replayed', '--limit', '1000');
    usage.purge = purged.code;
    usage.purged = (JSON.parse(purged.stdout || '{"deleted":0}') as { deleted: number }).deleted;
    usage.remaining = (await lot.list({ topic, includeReplayed: true, limit: 1000 })).length;
    return { parked: list.length, history, consumedAfterFix, counters, cli: usage };
  } finally {
    await bus.close();
  }
}
