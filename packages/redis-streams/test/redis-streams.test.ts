import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { CapabilityError, ConfigError, CountingObserver, DeadLetterHeaders, NonRetryableError, createBus, registerTransport, type Bus, type Message } from '@switchboard/core';
import { runCli } from '@switchboard/cli/testing';
import { Recorder, recordLines, uniqueName } from '@switchboard/core/testing';
import { createSwitchboardContainer } from '@switchboard/inversify';
import { HANDED_BACK_CONSUMER, createRedisStreamsTransport, redisStreamsTransport, type RedisStreamsOptionsInput } from '@switchboard/redis-streams';
import { REDIS_URL, pendingCount, startOwnRedis, testTransport, waitForNothingPending, waitUntil } from './helpers.js';

registerTransport(redisStreamsTransport);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function openBus(options: RedisStreamsOptionsInput = {}): Promise<Bus & { counts: CountingObserver }> {
  const counts = new CountingObserver();
  const bus = createBus({ transport: await testTransport(options), observer: counts });
  cleanups.push(() => bus.close());
  return Object.assign(bus, { counts });
}

async function admin(url = REDIS_URL): Promise<Redis> {
  const redis = new Redis(url);
  redis.on('error', () => undefined);
  cleanups.push(async () => void redis.disconnect());
  return redis;
}

describe('redis streams semantics', () => {
  it('competing members of a group share the entries (each once); another group gets every entry', async () => {
    const stream = uniqueName('sb-streams.compete');
    const [one, two, other] = [await openBus({ prefetch: 2 }), await openBus({ prefetch: 2 }), await openBus()];
    const byMember = { one: new Recorder<string>(), two: new Recorder<string>() };
    const slow = (recorder: Recorder<string>) => async (m: Message) => {
      recorder.add(m.id);
      await new Promise((resolve) => setTimeout(resolve, 10));
    };
    await one.subscriber.subscribe(stream, slow(byMember.one), { group: 'g', concurrency: 2, ordering: 'none' });
    await two.subscriber.subscribe(stream, slow(byMember.two), { group: 'g', concurrency: 2, ordering: 'none' });
    const audit = new Recorder<string>();
    await other.subscriber.subscribe(stream, (m) => audit.add(m.id), { group: 'audit' });
    const ids = Array.from({ length: 40 }, (_, i) => `m-${i}`);
    await one.publisher.publish(
      stream,
      ids.map((id) => ({ id, value: id })),
    );
    await audit.waitFor(40, 10_000);
    await waitUntil(() => byMember.one.count + byMember.two.count >= 40, 10_000, 'the group to handle 40 entries');
    const handled = [...byMember.one.items, ...byMember.two.items];
    expect(handled.sort()).toEqual([...ids].sort());
    expect(byMember.one.count).toBeGreaterThan(0);
    expect(byMember.two.count).toBeGreaterThan(0);
    expect([...audit.items].sort()).toEqual([...ids].sort());
  });

  it('a group keeps its position while no member runs; a new group starts at the beginning (earliest) or at new entries (latest)', async () => {
    const stream = uniqueName('sb-streams.durable');
    const first = await openBus();
    const before = new Recorder<string>();
    const sub = await first.subscriber.subscribe(stream, (m) => before.add(m.value as string), { group: 'orders' });
    await first.publisher.publish(stream, { value: 'a' });
    await before.waitFor(1, 5000);
    await sub.close();
    await first.publisher.publish(stream, [{ value: 'b' }, { value: 'c' }]);
    const after = new Recorder<string>();
    await first.subscriber.subscribe(stream, (m) => after.add(m.value as string), { group: 'orders' });
    const history = new Recorder<string>();
    await first.subscriber.subscribe(stream, (m) => history.add(m.value as string), { group: 'late', startFrom: 'earliest' });
    const fresh = new Recorder<string>();
    await first.subscriber.subscribe(stream, (m) => fresh.add(m.value as string), { group: 'fresh', startFrom: 'latest' });
    await first.publisher.publish(stream, { value: 'd' });
    await after.waitFor(3, 5000);
    await history.waitFor(4, 5000);
    await fresh.waitFor(1, 5000);
    expect(after.items).toEqual(['b', 'c', 'd']);
    expect(history.items).toEqual(['a', 'b', 'c', 'd']);
    expect(fresh.items).toEqual(['d']);
  });

  it('one member keeps per-key order with concurrent handlers (ordering key), a failing key holding only itself', async () => {
    const stream = uniqueName('sb-streams.order');
    const bus = await openBus();
    const seen = new Map<string, number[]>();
    let failedOnce = false;
    await bus.subscriber.subscribe(
      stream,
      async (m: Message) => {
        const { key, seq } = m.value as { key: string; seq: number };
        if (key === 'k-0' && seq === 3 && !failedOnce) {
          failedOnce = true;
          throw new Error('database down');
        }
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
        seen.set(key, [...(seen.get(key) ?? []), seq]);
      },
      { group: 'g', concurrency: 8, ordering: 'key', retry: { maxAttempts: 3, initialIntervalMs: 200, multiplier: 1, maxIntervalMs: 200 } },
    );
    const messages = [];
    for (let seq = 0; seq < 20; seq++) for (let k = 0; k < 10; k++) messages.push({ key: `k-${k}`, value: { key: `k-${k}`, seq } });
    await bus.publisher.publish(stream, messages);
    await waitUntil(() => [...seen.values()].reduce((n, s) => n + s.length, 0) >= 200, 15_000, '200 handled');
    const inOrder = Array.from({ length: 20 }, (_, i) => i);
    for (let k = 0; k < 10; k++) expect(seen.get(`k-${k}`)).toEqual(inOrder);
    expect(bus.counts.count('retry-attempt')).toBe(1);
  });

  it('closing with a retry waiting hands the entry back at once, its attempt count kept: the next member takes it as attempt 2 without waiting claimIdleMs', async () => {
    const stream = uniqueName('sb-streams.handback');
    const first = await openBus();
    const failing = await first.subscriber.subscribe(
      stream,
      () => {
        throw new Error('database down');
      },
      { group: 'g', retry: { maxAttempts: 5, initialIntervalMs: 30_000, multiplier: 1, maxIntervalMs: 30_000 } },
    );
    await first.publisher.publish(stream, { id: 'held', value: 1 });
    await first.counts.waitFor('will-retry', 1);
    await failing.close();
    const redis = await admin();
    const parked = (await redis.xpending(stream, 'g', '-', '+', 10)) as [string, string, number, number][];
    expect(parked.map(([, consumer, , count]) => ({ consumer, count }))).toEqual([{ consumer: HANDED_BACK_CONSUMER, count: 1 }]);
    const second = await openBus({ claimIdleMs: 60_000 });
    const received = new Recorder<{ id: string; attempt: number }>();
    const startedAt = Date.now();
    await second.subscriber.subscribe(stream, (m) => received.add({ id: m.id, attempt: m.attempt }), { group: 'g' });
    await received.waitFor(1, 10_000);
    expect(received.items).toEqual([{ id: 'held', attempt: 2 }]);
    expect(Date.now() - startedAt).toBeLessThan(60_000);
    await waitForNothingPending(redis, stream, 'g');
  });

  it('dead-letters an entry whose consumers kept crashing (Redis delivery count above maxAttempts) without calling the handler', async () => {
    const stream = uniqueName('sb-streams.crashloop');
    const redis = await admin();
    await redis.xgroup('CREATE', stream, 'g', '0', 'MKSTREAM');
    const entryId = (await redis.xadd(stream, '*', 'id', 'crash-loop', 'headers', '{}', 'timestamp', String(Date.now()), 'body', '{"n":1}')) as string;
    // Three consumers read it and died before acknowledging: Redis counts three deliveries.
    await redis.xreadgroup('GROUP', 'g', 'dead-1', 'COUNT', 1, 'STREAMS', stream, '>');
    await redis.xclaim(stream, 'g', 'dead-2', 0, entryId);
    await redis.xclaim(stream, 'g', 'dead-3', 0, entryId, 'IDLE', 3_600_000);
    const bus = await openBus({ claimIdleMs: 1000 });
    const letters = new Recorder<Message>();
    await bus.subscriber.subscribe(`${stream}-dlq`, (m) => letters.add(m), { group: 'dlq-reader', startFrom: 'earliest', deadLetter: false });
    const calls = new Recorder<string>();
    await bus.subscriber.subscribe(stream, (m) => calls.add(m.id), { group: 'g', retry: { maxAttempts: 3 } });
    const [letter] = await letters.waitFor(1, 10_000);
    expect(letter!.id).toBe('crash-loop');
    expect(letter!.headers[DeadLetterHeaders.reason]).toBe('retries-exhausted');
    expect(letter!.headers[DeadLetterHeaders.attempts]).toBe('4');
    expect(letter!.headers[DeadLetterHeaders.errorMessage]).toMatch(/delivered 4 times/);
    expect(calls.count).toBe(0);
    await waitForNothingPending(redis, stream, 'g');
  });

  it('reads an entry another producer wrote (no Switchboard fields) with its fields as the JSON body, and reports unusable fields without trusting them', async () => {
    const stream = uniqueName('sb-streams.foreign');
    const bus = await openBus();
    const received = new Recorder<Message>();
    await bus.subscriber.subscribe(stream, (m) => received.add(m), { group: 'g', codec: { encode: (v) => Buffer.from(JSON.stringify(v)), decode: (b) => JSON.parse(Buffer.from(b).toString()) } });
    const redis = await admin();
    await redis.xadd(stream, '*', 'sensor', 't-1', 'celsius', '21.5');
    await redis.xadd(stream, '*', 'id', 'x'.repeat(5000), 'headers', '[1,2]', 'timestamp', '-7', 'body', '"hostile"');
    await received.waitFor(2, 5000);
    expect(received.items[0]!.value).toEqual({ sensor: 't-1', celsius: '21.5' });
    const hostile = received.items[1]!;
    expect(hostile.value).toBe('hostile');
    expect(hostile.id).toMatch(/^\d+-\d+$/); // the entry id, not the 5000-character one
    expect(hostile.headers).toEqual({});
    expect(hostile.timestamp).toBeGreaterThan(0);
    await bus.counts.waitFor('untrusted-header', 3);
  });
});

describe('redis streams crashes and outages', () => {
  it('a member killed mid-run (SIGKILL): the survivors claim its entries after claimIdleMs; nothing lost, duplicates at most what it held', async () => {
    const stream = uniqueName('sb-streams.kill');
    const group = 'crash';
    const bus = await openBus({ claimIdleMs: 2000 });
    const total = 300;
    await bus.publisher.publish(
      stream,
      Array.from({ length: total }, (_, i) => ({ id: `c-${i}`, value: i })),
    );
    const script = fileURLToPath(new URL('./fixtures/member-until-killed.mjs', import.meta.url));
    const child = spawn(process.execPath, [script, stream, group, REDIS_URL], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    cleanups.push(async () => void (child.exitCode === null && child.kill('SIGKILL')));
    const beforeKill = recordLines(child.stdout, ['READY']);
    await beforeKill.waitFor(60, 30_000);
    child.kill('SIGKILL');
    await exited;
    const redis = await admin();
    const orphaned = await pendingCount(redis, stream, group);
    const survivor = new Recorder<string>();
    await bus.subscriber.subscribe(stream, (m) => survivor.add(m.id), { group, concurrency: 4, ordering: 'none' });
    const expected = Array.from({ length: total }, (_, i) => `c-${i}`);
    await waitUntil(() => new Set([...beforeKill.items, ...survivor.items]).size >= total, 30_000, 'every entry handled by someone');
    await waitForNothingPending(redis, stream, group);
    const seen = new Set([...beforeKill.items, ...survivor.items]);
    const duplicates = beforeKill.items.filter((id) => survivor.items.includes(id)).length;
    console.log(
      `[measure] redis-streams SIGKILL of a member (prefetch 8): handled before kill ${beforeKill.count}, pending on it at the kill ${orphaned}, by the survivor ${survivor.count}, distinct ${seen.size}/${total}, duplicates ${duplicates}`,
    );
    expect(expected.filter((id) => !seen.has(id))).toEqual([]);
    expect(orphaned).toBeGreaterThan(0);
    // Pending on it: what it held (prefetch 8) plus acknowledgements batched but not yet written (at most one window).
    expect(orphaned).toBeLessThanOrEqual(16);
    expect(duplicates).toBeLessThanOrEqual(orphaned);
    expect(new Set(survivor.items).size).toBe(survivor.count); // the survivor handled nothing twice
  }, 90_000);

  it('Redis down mid-run (own server, AOF): publishes fail fast, handled entries are acknowledged once it is back, reading resumes, nothing is lost or handled twice', async () => {
    const server = await startOwnRedis();
    cleanups.push(() => server.dispose());
    const stream = uniqueName('sb-streams.outage');
    const bus = await openBus({ url: server.url, claimIdleMs: 2000 });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const handled = new Recorder<string>();
    const entered = new Recorder<string>();
    await bus.subscriber.subscribe(
      stream,
      async (m) => {
        entered.add(m.id);
        if (m.id === 'e-0') await gate;
        handled.add(m.id);
      },
      { group: 'g' },
    );
    await bus.publisher.publish(
      stream,
      Array.from({ length: 20 }, (_, i) => ({ id: `e-${i}`, value: i })),
    );
    await entered.waitFor(1, 5000); // e-0 is running (and held back) when Redis goes
    await server.stop();
    await bus.counts.waitFor('subscription-interrupted', 1);
    const startedAt = Date.now();
    await expect(bus.publisher.publish(stream, { id: 'during', value: 'lost?' })).rejects.toThrowError();
    const failFastMs = Date.now() - startedAt;
    release(); // handlers finish while Redis is down: their acknowledgements fail and are kept
    await handled.waitFor(1, 10_000);
    await server.start();
    await bus.counts.waitFor('subscription-resumed', 1);
    await bus.publisher.publish(stream, { id: 'after', value: 'after' });
    await handled.waitFor(21, 10_000);
    const redis = await admin(server.url);
    await waitForNothingPending(redis, stream, 'g');
    console.log(`[measure] redis-streams publish while Redis is down rejected in ${failFastMs} ms`);
    expect(failFastMs).toBeLessThan(5000);
    expect([...handled.items].sort()).toEqual([...Array.from({ length: 20 }, (_, i) => `e-${i}`), 'after'].sort());
    expect(await redis.xlen(stream)).toBe(21); // the rejected publish did not land
  }, 90_000);

  it('CLIENT KILL of every connection: the reader reconnects, reports the gap, and later entries flow', async () => {
    const server = await startOwnRedis();
    cleanups.push(() => server.dispose());
    const stream = uniqueName('sb-streams.kill-client');
    const bus = await openBus({ url: server.url });
    const received = new Recorder<string>();
    await bus.subscriber.subscribe(stream, (m) => received.add(m.value as string), { group: 'g' });
    await bus.publisher.publish(stream, { value: 'before' });
    await received.waitFor(1, 5000);
    const redis = await admin(server.url);
    const killed = await redis.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    expect(Number(killed)).toBeGreaterThanOrEqual(2);
    await bus.counts.waitFor('subscription-interrupted', 1);
    await bus.counts.waitFor('subscription-resumed', 1);
    await waitUntil(() => bus.health().connections.every((c) => c.state === 'up'), 10_000, 'every connection up again');
    await bus.publisher.publish(stream, { value: 'after' });
    await received.waitFor(2, 5000);
    expect(received.items).toEqual(['before', 'after']);
  }, 60_000);

  it('fails fast with a clear error, password redacted, when Redis does not answer', async () => {
    const attempt = createRedisStreamsTransport({ url: 'redis://user:s3cret@127.0.0.1:1', connectTimeoutMs: 500 });
    await expect(attempt).rejects.toThrowError(/cannot connect to Redis at redis:\/\/user:\*+@127\.0\.0\.1:1/);
    await expect(attempt).rejects.not.toThrowError(/s3cret/);
  });
});

describe('redis streams config validation', () => {
  it('refuses "all" without replicas and pattern subscriptions at startup, naming the field', async () => {
    const attempt = createSwitchboardContainer({ env: {}, object: { transport: { kind: 'redis-streams', url: REDIS_URL }, publish: { guarantee: 'all' } } });
    await expect(attempt).rejects.toThrowError(CapabilityError);
    await expect(attempt).rejects.toThrowError(/publish\.guarantee/);
    const { bus } = await createSwitchboardContainer({ env: {}, object: { transport: { kind: 'redis-streams', url: REDIS_URL, replicas: 0 } } });
    cleanups.push(() => bus.close());
    expect(bus.transport.kind).toBe('redis-streams');
    await expect(bus.subscriber.subscribe('orders.*', () => undefined, { pattern: true })).rejects.toThrowError(CapabilityError);
  });

  it('retention: maxAgeMs deletes entries older than it on each XADD (MINID), read or not; refused together with maxLen', async () => {
    const stream = uniqueName('sb-streams.minid');
    const bus = await openBus({ maxAgeMs: 300 });
    const redis = await admin();
    await bus.publisher.publish(stream, [{ value: 'old-1' }, { value: 'old-2' }]);
    expect(await redis.xlen(stream)).toBe(2);
    const oldEnough = Date.now() + 350;
    await waitUntil(() => Date.now() > oldEnough, 2000, 'the first entries to be older than maxAgeMs'); // the condition itself is time
    await bus.publisher.publish(stream, { value: 'new' });
    expect(await redis.xlen(stream)).toBe(1);
    const both = await createRedisStreamsTransport({ url: REDIS_URL, maxLen: 10, maxAgeMs: 1000 }).catch((error: unknown) => error);
    expect(both).toBeInstanceOf(ConfigError);
    expect((both as Error).message).toMatch(/maxAgeMs: cannot be set together with maxLen/);
  });

  it('names a bad option', async () => {
    await expect(createSwitchboardContainer({ env: {}, object: { transport: { kind: 'redis-streams', url: 'http://127.0.0.1:6379' } } })).rejects.toThrowError(
      /transport\.url: must start with redis:\/\//,
    );
    const direct = await createRedisStreamsTransport({ url: REDIS_URL, claimIdleMs: 5 }).catch((error: unknown) => error);
    expect(direct).toBeInstanceOf(ConfigError);
    expect((direct as Error).message).toMatch(/claimIdleMs/);
  });
});

describe('switchboard CLI over a <stream>-dlq', () => {
  it('lists dead letters and replays one to the group that failed it; purge is refused (a stream is a log here)', async () => {
    const bus = await openBus();
    const stream = uniqueName('sb-streams.cli');
    const got = new Recorder<string>();
    let fixed = false;
    await bus.subscriber.subscribe(
      stream,
      (m) => {
        if (!fixed) throw new NonRetryableError('unknown template');
        got.add(m.id);
      },
      { group: 'mailer' },
    );
    await bus.publisher.publish(stream, [
      { id: 'bad-1', value: 1 },
      { id: 'bad-2', value: 2 },
    ]);
    await bus.counts.waitFor('dead-lettered', 2);
    const env = { SWITCHBOARD__TRANSPORT__KIND: 'redis-streams', SWITCHBOARD__TRANSPORT__URL: REDIS_URL };
    const dlq = ['--source', 'transport', '--dlq-topic', `${stream}-dlq`, '--idle-ms', '1500'];
    const listed = await runCli(['--json', 'dlq', 'list', ...dlq], env);
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as { id: string; originalTopic: string }[]).map((l) => [l.id, l.originalTopic])).toEqual([
      ['bad-1', stream],
      ['bad-2', stream],
    ]);
    fixed = true;
    expect((await runCli(['--json', 'dlq', 'replay', 'bad-2', ...dlq], env)).code).toBe(0);
    await got.waitFor(1, 10_000);
    expect(got.items).toEqual(['bad-2']);
    const purge = await runCli(['--json', 'dlq', 'purge', ...dlq], env);
    expect(purge.code).not.toBe(0);
    expect(purge.stderr).toMatch(/keeps dead letters in a log/);
  });
});
