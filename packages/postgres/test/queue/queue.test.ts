import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ConfigError, CountingObserver, NonRetryableError, createBus, type Bus, type Message } from '@switchboard/core';
import { BrokerLink, Recorder, gate, recordLines, uniqueName, waitUntil } from '@switchboard/core/testing';
import { runCli } from '@switchboard/cli/testing';
import { createPostgresQueueTransport, createTransactionalPublisher, type PostgresQueueOptionsInput, type PostgresQueueTransport } from '@switchboard/postgres';
import { CLAIM_PLANNING } from '../../src/queue/transport.js';
import { queueStatements } from '../../src/queue/sql.js';
import { DATABASE_URL, dropQueueTables, startOwnPostgres, testQueueTransport, uniquePrefix } from './helpers.js';

const prefix = uniquePrefix();
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
afterAll(async () => {
  await dropQueueTables(pool, prefix);
  await pool.end();
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function openBus(options: PostgresQueueOptionsInput = {}): Promise<Bus & { counts: CountingObserver; queue: PostgresQueueTransport }> {
  const counts = new CountingObserver();
  const queue = await testQueueTransport(prefix, options);
  const bus = createBus({ transport: queue, observer: counts });
  cleanups.push(() => bus.close());
  return Object.assign(bus, { counts, queue });
}

const count = async (sql: string, values: unknown[] = []) => Number((await pool.query<{ n: string }>(sql, values)).rows[0]?.n ?? 0);

describe('postgres queue semantics', () => {
  it('a claim walks the primary key in order and stops at its limit, also on tables never analyzed (no sort of the backlog)', async () => {
    const fresh = uniquePrefix();
    const queue = await testQueueTransport(fresh);
    const bus = createBus({ transport: queue });
    cleanups.push(async () => {
      await bus.close();
      await dropQueueTables(pool, fresh);
    });
    const topic = uniqueName('sb-pg.plan');
    const subscription = await bus.subscriber.subscribe(topic, () => undefined, { group: 'plan' });
    await subscription.close();
    for (let i = 0; i < 5000; i += 1000) {
      await bus.publisher.publish(
        topic,
        Array.from({ length: 1000 }, (_, j) => ({ key: `k${(i + j) % 50}`, value: i + j })),
      );
    }
    const subId = (await pool.query<{ sub_id: number }>(`SELECT sub_id FROM ${fresh}_subscriptions WHERE group_name = 'plan'`)).rows[0]!.sub_id;
    const planner = new pg.Client({ connectionString: DATABASE_URL, options: CLAIM_PLANNING });
    await planner.connect();
    cleanups.push(() => planner.end());
    const explain = async (client: pg.Client | pg.Pool) => JSON.stringify((await client.query(`EXPLAIN (FORMAT JSON) ${queueStatements(fresh).claim}`, [subId, 32, 'planner', 30_000, true])).rows[0]);
    const plain = await explain(pool); // what the planner does on these statistics without the claim settings
    const claim = await explain(planner);
    console.log(
      `[measure] claim plan on a never-analyzed table, 5000 pending: default settings ${plain.includes('"Sort"') ? 'sort the backlog' : 'walk the key'}; claim connections ${claim.includes('"Sort"') ? 'sort the backlog' : 'walk the key'}`,
    );
    expect(claim).not.toContain('"Node Type":"Sort"');
    expect(claim).toContain(`${fresh}_deliveries_pkey`);
  });

  it('per-key order holds across two members of a group, through a retry of a key that backs off', async () => {
    const topic = uniqueName('sb-pg.keys');
    // A window of 4: a member holding a key's earlier message may claim its later ones, so a wide
    // window would let the first member take every key.
    const [one, two] = [await openBus({ prefetch: 4 }), await openBus({ prefetch: 4 })];
    const log = new Recorder<{ key: string; n: number; member: string }>();
    let failedOnce = false;
    const handler = (member: string) => async (m: Message<{ key: string; n: number }>) => {
      if (m.value.key === 'k3' && m.value.n === 2 && !failedOnce) {
        failedOnce = true;
        throw new Error('transient');
      }
      await new Promise((resolve) => setTimeout(resolve, m.value.n % 3));
      log.add({ ...m.value, member });
    };
    const options = { group: 'g', concurrency: 4, ordering: 'key' as const, retry: { maxAttempts: 3, initialIntervalMs: 300, multiplier: 1, maxIntervalMs: 300 } };
    await one.subscriber.subscribe(topic, handler('one'), options);
    await two.subscriber.subscribe(topic, handler('two'), options);
    const keys = Array.from({ length: 12 }, (_, i) => `k${i}`);
    const perKey = 20;
    for (let n = 0; n < perKey; n++)
      await one.publisher.publish(
        topic,
        keys.map((key) => ({ key, value: { key, n } })),
      );
    await log.waitFor(keys.length * perKey, 20_000);
    for (const key of keys) expect(log.items.filter((e) => e.key === key).map((e) => e.n)).toEqual(Array.from({ length: perKey }, (_, i) => i));
    expect(new Set(log.items.map((e) => e.member))).toEqual(new Set(['one', 'two']));
    expect(failedOnce).toBe(true);
  });

  it('a group keeps its messages while no member runs; a new group starts at the earliest kept message or at new ones', async () => {
    const topic = uniqueName('sb-pg.durable');
    const bus = await openBus();
    const before = new Recorder<string>();
    const sub = await bus.subscriber.subscribe(topic, (m) => before.add(m.value as string), { group: 'orders' });
    await bus.publisher.publish(topic, { value: 'a' });
    await before.waitFor(1, 5000);
    await sub.close();
    await bus.publisher.publish(topic, [{ value: 'b' }, { value: 'c' }]);
    const after = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => after.add(m.value as string), { group: 'orders' });
    const history = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => history.add(m.value as string), { group: 'late', startFrom: 'earliest' });
    const fresh = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => fresh.add(m.value as string), { group: 'fresh', startFrom: 'latest' });
    await bus.publisher.publish(topic, { value: 'd' });
    await after.waitFor(3, 5000);
    await history.waitFor(4, 5000);
    await fresh.waitFor(1, 5000);
    expect(after.items).toEqual(['b', 'c', 'd']);
    expect(history.items).toEqual(['a', 'b', 'c', 'd']);
    expect(fresh.items).toEqual(['d']);
  });

  it('publish in the caller transaction: the message exists exactly when the transaction commits', async () => {
    const topic = uniqueName('sb-pg.tx');
    const bus = await openBus();
    const got = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => got.add(m.id), { group: 'g' });
    const publisher = createTransactionalPublisher({ tablePrefix: prefix });
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await publisher.publish(client, topic, { id: 'rolled-back', value: 1 });
      await client.query('ROLLBACK');
      await client.query('BEGIN');
      const { ids } = await publisher.publish(client, topic, [
        { id: 'committed-1', value: 1 },
        { id: 'committed-2', value: 2 },
      ]);
      expect(ids).toEqual(['committed-1', 'committed-2']);
      // Not visible before the commit: a member would have claimed it by now otherwise.
      expect(await count(`SELECT count(*) AS n FROM ${prefix}_messages WHERE topic = $1`, [topic])).toBe(0);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    await got.waitFor(2, 5000);
    await bus.publisher.publish(topic, { id: 'marker', value: 0 });
    await got.waitFor(3, 5000);
    expect(got.items).toEqual(['committed-1', 'committed-2', 'marker']);
  });

  it('NOTIFY wakes an idle member at once: a message arrives long before the fallback poll (60 s)', async () => {
    const topic = uniqueName('sb-pg.notify');
    const bus = await openBus({ pollIntervalMs: 60_000 });
    const got = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => got.add(m.id), { group: 'g' });
    for (let i = 0; i < 3; i++) {
      await bus.publisher.publish(topic, { id: `n-${i}`, value: i });
      await got.waitFor(i + 1, 10_000);
    }
    expect(got.items).toEqual(['n-0', 'n-1', 'n-2']);
  });

  it('retention: acknowledged messages are deleted after retainMs, pending ones stay; the table goes back to what is pending', async () => {
    const topic = uniqueName('sb-pg.retention');
    const bus = await openBus({ retainMs: 0, retentionBatch: 100 });
    const got = new Recorder<string>();
    const sub = await bus.subscriber.subscribe(topic, (m) => got.add(m.id), { group: 'fast' });
    await bus.subscriber.subscribe(topic, () => {}, { group: 'never-runs' }).then((s) => s.close());
    const total = 1000;
    for (let i = 0; i < total; i += 250) {
      await bus.publisher.publish(
        topic,
        Array.from({ length: 250 }, (_, j) => ({ id: `r-${i + j}`, value: i + j })),
      );
    }
    await got.waitFor(total, 20_000);
    await sub.close();
    const stored = () => count(`SELECT count(*) AS n FROM ${prefix}_messages WHERE topic = $1`, [topic]);
    expect(await stored()).toBe(total);
    await bus.queue.runRetention(); // (deletes what other tests left acknowledged)
    expect(await stored()).toBe(total); // the group "never-runs" still has every message to handle
    await pool.query(`DELETE FROM ${prefix}_subscriptions WHERE group_name = 'never-runs' AND filter = $1`, [topic]);
    let deleted = 0;
    for (let run = 0; run < 5 && (await stored()) > 0; run++) deleted += await bus.queue.runRetention();
    console.log(`[measure] postgres retention: ${total} acknowledged messages, deleted ${deleted} in batches of 100, ${await stored()} left`);
    const left = await pool.query(`SELECT s.group_name, d.seq, d.lease_owner FROM ${prefix}_deliveries d JOIN ${prefix}_subscriptions s USING (sub_id) WHERE s.filter = $1 LIMIT 3`, [topic]);
    expect(left.rows).toEqual([]);
    expect(await stored()).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM ${prefix}_deliveries d JOIN ${prefix}_subscriptions s USING (sub_id) WHERE s.filter = $1`, [topic])).toBe(0);
  });

  it('refuses what it cannot store or find, naming the field', async () => {
    const missing = createPostgresQueueTransport({ url: DATABASE_URL, tablePrefix: 'sbtest_absent_tables', migrate: false });
    await expect(missing).rejects.toBeInstanceOf(ConfigError);
    await expect(missing).rejects.toThrow(/transport\.migrate/);
    await expect(createPostgresQueueTransport({ url: DATABASE_URL, tablePrefix: 'Bad-Prefix' })).rejects.toThrow(/tablePrefix/);
    await expect(createPostgresQueueTransport({ url: DATABASE_URL, leaseMs: 10 } as PostgresQueueOptionsInput)).rejects.toThrow(/leaseMs/);
    const refused = createPostgresQueueTransport({ url: 'postgres://someone:s3cret-pass@127.0.0.1:1/none', connectTimeoutMs: 500 });
    await expect(refused).rejects.toThrow(/127\.0\.0\.1:1/);
    await expect(refused).rejects.not.toThrow(/s3cret-pass/);
    const bus = await openBus();
    await expect(bus.publisher.publish('sb-pg.nul', { key: 'a\u0000b', value: 1 })).rejects.toThrow(/message\.key/);
  });
});

describe('postgres queue crashes and outages', () => {
  it('a member killed mid-run (SIGKILL): its leased messages return after leaseMs to the survivor; nothing lost, duplicates at most what it held', async () => {
    const topic = uniqueName('sb-pg.kill');
    const group = 'crash';
    const bus = await openBus({ leaseMs: 2000 });
    await bus.subscriber.subscribe(topic, () => {}, { group }).then((s) => s.close()); // the group exists before the publish
    const total = 300;
    await bus.publisher.publish(
      topic,
      Array.from({ length: total }, (_, i) => ({ id: `c-${i}`, value: i })),
    );
    const script = fileURLToPath(new URL('./fixtures/member-until-killed.mjs', import.meta.url));
    const child = spawn(process.execPath, [script, topic, group, DATABASE_URL, prefix], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    cleanups.push(async () => void (child.exitCode === null && child.kill('SIGKILL')));
    const beforeKill = recordLines(child.stdout, ['READY']);
    await beforeKill.waitFor(60, 30_000);
    child.kill('SIGKILL');
    await exited;
    const survivor = new Recorder<Message>();
    await bus.subscriber.subscribe(topic, (m) => survivor.add(m), { group, concurrency: 4, ordering: 'none' });
    await waitUntil(() => new Set([...beforeKill.items, ...survivor.items.map((m) => m.id)]).size >= total, 30_000, 'every message handled by someone');
    // The dead member's unacknowledged messages come back once their leases expire: wait for the group's rows to be gone.
    const pending = () => count(`SELECT count(*) AS n FROM ${prefix}_deliveries d JOIN ${prefix}_subscriptions s USING (sub_id) WHERE s.filter = $1 AND s.group_name = $2`, [topic, group]);
    for (const deadline = Date.now() + 30_000; (await pending()) > 0; ) {
      if (Date.now() > deadline) throw new Error('the group still has messages to handle after 30 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const survivorIds = survivor.items.map((m) => m.id);
    const seen = new Set([...beforeKill.items, ...survivorIds]);
    const duplicates = beforeKill.items.filter((id) => survivorIds.includes(id)).length;
    const returned = survivor.items.filter((m) => m.attempt > 1).length;
    console.log(
      `[measure] postgres SIGKILL of a member (prefetch 8, lease 2 s): handled before kill ${beforeKill.count}, by the survivor ${survivor.count}, distinct ${seen.size}/${total}, duplicates ${duplicates}, returned from the dead member's leases ${returned}`,
    );
    expect(Array.from({ length: total }, (_, i) => `c-${i}`).filter((id) => !seen.has(id))).toEqual([]);
    expect(duplicates).toBeLessThanOrEqual(8);
    expect(returned).toBeGreaterThan(0); // the claim by the dead member counted: attempt 2 here
    // What came back = what the member held unhandled (at most prefetch 8) + what it handled whose
    // delete (batched, not awaited) the kill lost: those are the duplicates, and their slots had been
    // refilled already. CI once saw 9 returned, 5 of them duplicates.
    expect(returned - duplicates).toBeLessThanOrEqual(8);
    expect(new Set(survivorIds).size).toBe(survivor.count);
  }, 90_000);

  it('server restart mid-run (own server): publishes fail while it is down, claiming and LISTEN resume, nothing is lost', async () => {
    const server = await startOwnPostgres();
    cleanups.push(() => server.dispose());
    const topic = uniqueName('sb-pg.outage');
    const bus = await openBus({ url: server.url, leaseMs: 2000, pollIntervalMs: 30_000 });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const handled = new Recorder<string>();
    const entered = new Recorder<string>();
    await bus.subscriber.subscribe(
      topic,
      async (m) => {
        entered.add(m.id);
        if (m.id === 'e-0') await gate;
        handled.add(m.id);
      },
      { group: 'g' },
    );
    await bus.publisher.publish(
      topic,
      Array.from({ length: 20 }, (_, i) => ({ id: `e-${i}`, value: i })),
    );
    await entered.waitFor(1, 5000);
    await server.stop();
    const startedAt = Date.now();
    await expect(bus.publisher.publish(topic, { id: 'during', value: 'refused' })).rejects.toThrowError(/not stored/);
    const failMs = Date.now() - startedAt;
    release();
    await bus.counts.waitFor('subscription-interrupted', 1);
    await server.start();
    await bus.counts.waitFor('subscription-resumed', 1);
    // With the poll at 30 s, this arrives through LISTEN on a reconnected listener.
    await waitUntil(() => bus.queue.connections()[0]?.state === 'up', 10_000, 'the listener to reconnect');
    await bus.publisher.publish(topic, { id: 'after', value: 'after' });
    const expected = [...Array.from({ length: 20 }, (_, i) => `e-${i}`), 'after'];
    await waitUntil(() => expected.every((id) => handled.items.includes(id)), 30_000, 'every message handled');
    const duplicates = handled.count - new Set(handled.items).size;
    console.log(`[measure] postgres server restart: publish while down rejected in ${failMs} ms; handled ${handled.count}, distinct ${new Set(handled.items).size}/21, duplicates ${duplicates}`);
    expect(handled.items).not.toContain('during');
  }, 120_000);

  it('closes over a silent server (a partition) within one queryTimeoutMs: once a query went unanswered, acknowledgements and hand-backs are not written; every message comes again', async () => {
    const link = await BrokerLink.open(BrokerLink.addressOf(DATABASE_URL));
    cleanups.push(() => link.close());
    const bus = createBus({ transport: await testQueueTransport(prefix, { url: link.urlThrough(DATABASE_URL), queryTimeoutMs: 2000 }) });
    const topic = uniqueName('silent-close');
    const release = gate();
    const started = new Recorder<string>();
    for (const group of ['a', 'b']) {
      await bus.subscriber.subscribe(
        topic,
        async (m) => {
          started.add(`${group}:${m.id}`);
          await release.promise;
        },
        { group, concurrency: 4 },
      );
    }
    const ids = Array.from({ length: 20 }, (_, i) => `s-${i}`);
    await bus.publisher.publish(
      topic,
      ids.map((id, i) => ({ id, value: i })),
    );
    await started.waitFor(8, 10_000);
    link.cut('silent');
    release.open(); // the handlers end during the partition: their acknowledgements cannot be written
    const closing = performance.now();
    await bus.close();
    const closeMs = performance.now() - closing;
    console.log(`[measure] postgres close over a silent server, queryTimeoutMs 2000: ${Math.round(closeMs)} ms`);
    // The first write on the way out (the acknowledgements) goes unanswered for one bound; the
    // hand-backs and the pools' ends are then not waited for. Before, each waited a bound: 4 s.
    expect(closeMs).toBeGreaterThanOrEqual(1900);
    expect(closeMs).toBeLessThan(3500);
    // Nothing settled reached the table: every message comes again to each group once its lease ends.
    const again = await openBus();
    for (const group of ['a', 'b']) {
      const got = new Recorder<string>();
      await again.subscriber.subscribe(topic, (m) => got.add(m.id), { group });
      await got.waitFor(ids.length, 15_000, `redeliveries to ${group}`);
      expect(new Set(got.items)).toEqual(new Set(ids));
    }
  });

  it('the LISTEN connection gone silent (a partition) is noticed within two queryTimeoutMs and replaced: members are woken again, not left to their poll', async () => {
    const link = await BrokerLink.open(BrokerLink.addressOf(DATABASE_URL));
    cleanups.push(() => link.close());
    const bus = createBus({ transport: await testQueueTransport(prefix, { url: link.urlThrough(DATABASE_URL), queryTimeoutMs: 1000, pollIntervalMs: 60_000 }) });
    cleanups.push(() => bus.close());
    const direct = await openBus();
    const topic = uniqueName('silent-listen');
    const got = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => got.add(m.id), { group: 'w' });
    await direct.publisher.publish(topic, { id: 'before', value: 1 });
    await got.waitFor(1, 5000); // a wake-up: the poll is a minute away
    // Cut once the member is idle, waiting for a wake-up (its acknowledgement written, then a pause
    // far longer than its last empty claims take): a claim under way at the cut would time out and
    // claim again at once, finding the next message without any wake-up.
    const pending = `SELECT count(*) AS n FROM ${prefix}_deliveries d JOIN ${prefix}_subscriptions s USING (sub_id) WHERE s.filter = $1`;
    for (const deadline = Date.now() + 5000; (await count(pending, [topic])) > 0 && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 300));
    link.cut('silent'); // open connections carry nothing from now on; new ones still reach the server
    const cut = performance.now();
    await direct.publisher.publish(topic, { id: 'after', value: 2 });
    await waitUntil(() => got.items.includes('after'), 15_000, 'the message published after the listener went silent');
    const afterMs = performance.now() - cut;
    console.log(`[measure] postgres LISTEN connection gone silent, queryTimeoutMs 1000, poll 60 s: next message handled after ${Math.round(afterMs)} ms`);
    // The check every second, its second to time out, a new listener that wakes the member, whose
    // claim may first time out on a pooled connection of the silent link: a few seconds, not the poll.
    expect(afterMs).toBeLessThan(8000);
  });

  it('connections killed (pg_terminate_backend, server up): the pool and the listener reconnect, later messages flow', async () => {
    const topic = uniqueName('sb-pg.cut');
    const bus = await openBus({ pollIntervalMs: 30_000 });
    const received = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => received.add(m.value as string), { group: 'g' });
    await bus.publisher.publish(topic, { value: 'before' });
    await received.waitFor(1, 5000);
    const killed = await count(`SELECT count(*) AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'switchboard%' AND pid <> pg_backend_pid()) t`);
    expect(killed).toBeGreaterThanOrEqual(2);
    await waitUntil(() => bus.queue.connections()[0]?.state === 'up', 10_000, 'the connection to be up again');
    let published = false;
    for (let i = 0; i < 20 && !published; i++) {
      // the first publish may meet a pool connection that was killed (an error, then a fresh connection)
      published = await bus.publisher.publish(topic, { value: 'after' }).then(
        () => true,
        () => false,
      );
    }
    expect(published).toBe(true);
    await received.waitFor(2, 10_000); // well before the 30 s poll: the listener is back
    expect(received.items).toEqual(['before', 'after']);
  });
});

describe('switchboard CLI over a postgres <topic>-dlq', () => {
  it('lists dead letters, replays one to the group that failed it, purges the rest', async () => {
    const bus = await openBus();
    const topic = uniqueName('sb-pg.cli');
    const got = new Recorder<string>();
    let fixed = false;
    await bus.subscriber.subscribe(
      topic,
      (m) => {
        if (!fixed) throw new NonRetryableError('unknown template');
        got.add(m.id);
      },
      { group: 'mailer' },
    );
    const other = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => other.add(m.id), { group: 'audit' });
    await bus.publisher.publish(topic, [
      { id: 'bad-1', value: 1 },
      { id: 'bad-2', value: 2 },
    ]);
    await bus.counts.waitFor('dead-lettered', 2);
    await other.waitFor(2, 5000);
    const env = { SWITCHBOARD__TRANSPORT__KIND: 'postgres', SWITCHBOARD__TRANSPORT__URL: DATABASE_URL, SWITCHBOARD__TRANSPORT__TABLE_PREFIX: prefix };
    const dlq = ['--source', 'transport', '--dlq-topic', `${topic}-dlq`, '--idle-ms', '1500'];
    const listed = await runCli(['--json', 'dlq', 'list', ...dlq], env);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { id: string; originalTopic: string }[]).map((l) => [l.id, l.originalTopic])).toEqual([
      ['bad-1', topic],
      ['bad-2', topic],
    ]);
    fixed = true;
    expect((await runCli(['--json', 'dlq', 'replay', 'bad-2', ...dlq], env)).code).toBe(0);
    await got.waitFor(1, 10_000);
    expect(got.items).toEqual(['bad-2']);
    const purge = await runCli(['--json', 'dlq', 'purge', ...dlq], env);
    expect(purge.code, purge.stderr).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM ${prefix}_messages WHERE topic = $1`, [`${topic}-dlq`])).toBe(0);
    expect(other.items).toEqual(['bad-1', 'bad-2']); // the replay went to mailer only
  });
});
