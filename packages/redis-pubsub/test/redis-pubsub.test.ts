import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '@switchboard/cli/testing';
import {
  type BusHealth,
  CapabilityError,
  ConfigError,
  CountingObserver,
  DeadLetterHeaders,
  NonRetryableError,
  PublishError,
  createBus,
  type Bus,
  type Message,
  type NoReceiversPolicy,
  registerTransport,
} from '@switchboard/core';
import { BrokerLink, Recorder, runDeduplicationStoreSuite, runFallbackStoreSuite, uniqueName } from '@switchboard/core/testing';
import { createSwitchboardContainer } from '@switchboard/inversify';
import { RedisDeduplicationStore, RedisFallbackStore, createRedisPubSubTransport, readDeadLetterStream, type RedisOptions, redisPubSubTransport } from '@switchboard/redis-pubsub';
import { REDIS_URL } from './helpers.js';

// Config-driven tests (createSwitchboardContainer with transport.kind) find the adapter through the registry.
registerTransport(redisPubSubTransport);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function openBus(options: Partial<RedisOptions> = {}, noReceivers?: NoReceiversPolicy): Promise<Bus & { counts: CountingObserver }> {
  const counts = new CountingObserver();
  const bus = createBus({ transport: await createRedisPubSubTransport({ url: REDIS_URL, ...options }), observer: counts, publisher: noReceivers ? { noReceivers } : {} });
  cleanups.push(() => bus.close());
  return Object.assign(bus, { counts });
}

async function adminConnection(): Promise<Redis> {
  const redis = new Redis(REDIS_URL);
  cleanups.push(async () => void redis.disconnect());
  return redis;
}

describe('redis pub/sub semantics', () => {
  it('broadcasts each message to every subscriber', async () => {
    const bus = await openBus();
    const channel = uniqueName('sb-redis.broadcast');
    const recorders = [new Recorder<Message>(), new Recorder<Message>(), new Recorder<Message>()];
    for (const r of recorders) await bus.subscriber.subscribe(channel, (m) => r.add(m));
    const receipt = await bus.publisher.publish(channel, [{ value: 1 }, { value: 2 }]);
    expect(receipt.receivers).toBe(3);
    for (const r of recorders) expect((await r.waitFor(2, 5000)).map((m) => m.value)).toEqual([1, 2]);
  });

  it('loses a message published with no subscriber, and counts it', async () => {
    const bus = await openBus();
    const channel = uniqueName('sb-redis.nobody');
    const receipt = await bus.publisher.publish(channel, { value: 'into the void' });
    expect(receipt.receivers).toBe(0);
    expect(bus.counts.count('no-receivers', channel)).toBe(1);
    // A subscriber arriving later gets nothing of it: it gets only what is published after it.
    const late = new Recorder<Message>();
    await bus.subscriber.subscribe(channel, (m) => late.add(m));
    await bus.publisher.publish(channel, { value: 'after' });
    expect((await late.waitFor(1, 5000)).map((m) => m.value)).toEqual(['after']);
  });

  it('rejects a publish reaching nobody when the publisher\'s noReceivers policy is "reject"', async () => {
    const bus = await openBus({}, 'reject');
    const channel = uniqueName('sb-redis.reject');
    await expect(bus.publisher.publish(channel, { value: 1 })).rejects.toThrowError(PublishError);
    await expect(bus.publisher.publish(channel, { value: 1 })).rejects.toThrowError(/no receiver for ".*" on redis: the message reached nobody and is lost/);
    expect(bus.counts.count('publish-failed', channel)).toBe(2);
  });

  it('routes pattern subscriptions with * and #', async () => {
    const bus = await openBus();
    const base = uniqueName('sb-redis.pattern');
    const oneSegment = new Recorder<Message>();
    const anyDepth = new Recorder<Message>();
    await bus.subscriber.subscribe(`${base}.*.created`, (m) => oneSegment.add(m), { pattern: true });
    await bus.subscriber.subscribe(`${base}.#`, (m) => anyDepth.add(m), { pattern: true });
    for (const topic of [`${base}.eu.created`, `${base}.eu.west.created`, `${base}.us.deleted`, `${base}x.eu.created`]) await bus.publisher.publish(topic, { value: topic });
    await anyDepth.waitFor(3, 5000);
    await oneSegment.waitFor(1, 5000);
    expect(oneSegment.items.map((m) => m.source.channel)).toEqual([`${base}.eu.created`]);
    expect(anyDepth.items.map((m) => m.source.channel).sort()).toEqual([`${base}.eu.created`, `${base}.eu.west.created`, `${base}.us.deleted`].sort());
  });

  it('resubscribes by itself after CLIENT KILL of its connection, reports the gap, and receives later messages', async () => {
    const bus = await openBus();
    const admin = await adminConnection();
    const channel = uniqueName('sb-redis.kill');
    const received = new Recorder<Message>();
    await bus.subscriber.subscribe(channel, (m) => received.add(m));
    await bus.publisher.publish(channel, { value: 'before' });
    await received.waitFor(1, 5000);
    const killed = await admin.client('KILL', 'TYPE', 'pubsub');
    expect(Number(killed)).toBeGreaterThanOrEqual(1);
    await bus.counts.waitFor('subscription-interrupted', 1);
    await bus.counts.waitFor('subscription-resumed', 1);
    await bus.publisher.publish(channel, { value: 'after' });
    await received.waitFor(2, 5000);
    expect(received.items.map((m) => m.value)).toEqual(['before', 'after']);
  });

  it('notices a subscriber connection gone silent (a partition): interrupted, subscribed again on a new connection, receives later messages', async () => {
    const link = await BrokerLink.open(BrokerLink.addressOf(REDIS_URL));
    cleanups.push(() => link.close());
    const counts = new CountingObserver();
    const subscriberBus = createBus({ transport: await createRedisPubSubTransport({ url: link.urlThrough(REDIS_URL), commandTimeoutMs: 1000 }), observer: counts });
    cleanups.push(() => subscriberBus.close());
    const publisherBus = await openBus();
    const channel = uniqueName('sb-redis.silent');
    const received = new Recorder<Message>();
    await subscriberBus.subscriber.subscribe(channel, (m) => received.add(m));
    await publisherBus.publisher.publish(channel, { value: 'before' });
    await received.waitFor(1, 5000);
    // Open connections carry nothing from now on; a new one reaches Redis, as after a partition.
    link.cut('silent');
    await counts.waitFor('subscription-interrupted', 1);
    await counts.waitFor('subscription-resumed', 1);
    await publisherBus.publisher.publish(channel, { value: 'after' });
    await received.waitFor(2, 5000);
    expect(received.items.map((m) => m.value)).toEqual(['before', 'after']);
  });

  it('health(): the subscription reads interrupted while its connection is gone, live again once resubscribed', async () => {
    const snapshots: BusHealth[] = [];
    let bus: Bus | undefined;
    const counts = new CountingObserver();
    bus = createBus({
      transport: await createRedisPubSubTransport({ url: REDIS_URL }),
      observer: {
        onEvent(event) {
          counts.onEvent(event);
          if (event.type === 'subscription-interrupted' || event.type === 'subscription-resumed') snapshots.push(bus!.health());
        },
      },
    });
    cleanups.push(() => bus!.close());
    const admin = await adminConnection();
    const channel = uniqueName('sb-redis.health');
    await bus.subscriber.subscribe(channel, () => {});
    const url = new URL(REDIS_URL);
    const endpoint = url.port ? `${url.hostname}:${url.port}` : url.hostname; // never the password
    expect(bus.health()).toEqual({
      status: 'up',
      transport: 'redis',
      subscriptions: [{ topic: channel, state: 'live' }],
      connections: [
        { name: 'publisher', state: 'up', since: expect.any(Number), endpoint },
        { name: `subscriber ${channel}`, state: 'up', since: expect.any(Number), endpoint },
      ],
    });
    await admin.client('KILL', 'TYPE', 'pubsub');
    await counts.waitFor('subscription-resumed', 1);
    expect(snapshots.map((s) => s.status)).toEqual(['degraded', 'up']);
    expect(snapshots[0]!.subscriptions[0]).toMatchObject({ topic: channel, state: 'interrupted', since: expect.any(Number) });
    // Per connection: the subscriber's connection was killed, the publisher's was not.
    expect(snapshots[0]!.connections.map((c) => [c.name, c.state])).toEqual([
      ['publisher', 'up'],
      [`subscriber ${channel}`, 'down'],
    ]);
    expect(snapshots[1]!.connections.every((c) => c.state === 'up')).toBe(true);
    await bus.close();
    expect(bus.health().status).toBe('closed');
  });

  it('dead-letters a poison message into the <channel>-dlq stream after maxAttempts in-process attempts', async () => {
    const bus = await openBus();
    const admin = await adminConnection();
    const channel = uniqueName('sb-redis.poison');
    const attempts: number[] = [];
    await bus.subscriber.subscribe(
      channel,
      (m) => {
        attempts.push(m.attempt);
        throw new Error('mail server timeout');
      },
      { retry: { maxAttempts: 3, initialIntervalMs: 50 } },
    );
    await bus.publisher.publish(channel, { id: 'poison', value: { to: 'user@example.com' } });
    await bus.counts.waitFor('dead-lettered', 1);
    expect(attempts).toEqual([1, 2, 3]);
    const [letter] = await readDeadLetterStream(admin, `${channel}-dlq`);
    expect(letter!.id).toBe('poison');
    expect(letter!.headers[DeadLetterHeaders.attempts]).toBe('3');
    expect(letter!.headers[DeadLetterHeaders.originalTopic]).toBe(channel);
    expect(letter!.headers[DeadLetterHeaders.reason]).toBe('retries-exhausted');
    expect(JSON.parse(Buffer.from(letter!.body).toString())).toEqual({ to: 'user@example.com' });
  });

  it('fails fast with a clear error, password redacted, when Redis does not answer', async () => {
    const refused = createRedisPubSubTransport({ url: 'redis://user:s3cret@127.0.0.1:1', connectTimeoutMs: 500 });
    await expect(refused).rejects.toThrowError(/cannot connect to Redis at redis:\/\/user:\*\*\*@127\.0\.0\.1:1/);
    await expect(refused).rejects.toMatchObject({ name: 'ConnectError', code: 'SB_CONNECT', endpoint: '127.0.0.1:1' });
    await expect(createRedisPubSubTransport({ url: 'redis://user:s3cret@127.0.0.1:1', connectTimeoutMs: 500 })).rejects.not.toThrowError(/s3cret/);
  });
});

describe('redis config validation', () => {
  it('refuses a durable guarantee and consumer groups, naming the transports that can', async () => {
    const attempt = createSwitchboardContainer({
      env: {},
      object: { transport: { kind: 'redis', url: REDIS_URL }, publish: { guarantee: 'all' }, subscriptions: { sales: { topic: 'sales', group: 'sales-workers' } } },
    });
    await expect(attempt).rejects.toThrowError(CapabilityError);
    await expect(attempt).rejects.toThrowError(/publish\.guarantee: "all" is not available on transport "redis".*kafka or rabbitmq/);
    await expect(attempt).rejects.toThrowError(/subscriptions\.sales\.group: transport "redis" has no consumer groups.*kafka, rabbitmq or memory/);
  });

  it('names a bad URL scheme', async () => {
    await expect(createSwitchboardContainer({ env: {}, object: { transport: { kind: 'redis', url: 'http://127.0.0.1:6379' } } })).rejects.toThrowError(
      /transport\.url: must start with redis:\/\/ or rediss:\/\//,
    );
    const direct = await createRedisPubSubTransport({ url: REDIS_URL, wireFormat: 3 } as never).catch((error: unknown) => error);
    expect(direct).toBeInstanceOf(ConfigError);
    expect((direct as Error).message).toMatch(/wireFormat:/);
  });

  it('connects from config alone (transport.kind is the only change)', async () => {
    const { bus } = await createSwitchboardContainer({ env: {}, object: { transport: { kind: 'redis', url: REDIS_URL } } });
    cleanups.push(() => bus.close());
    expect(bus.transport.kind).toBe('redis');
  });
});

describe('switchboard CLI over the Redis DLQ stream', () => {
  it('lists, replays and purges dead letters straight from <channel>-dlq', async () => {
    const bus = await openBus();
    const channel = uniqueName('sb-redis.cli');
    const got = new Recorder<string>();
    let fixed = false;
    await bus.subscriber.subscribe(channel, (m) => {
      if (!fixed) throw new NonRetryableError('unknown template');
      got.add(m.id);
    });
    await bus.publisher.publish(channel, [
      { id: 'bad-1', value: 1 },
      { id: 'bad-2', value: 2 },
      { id: 'bad-3', value: 3 },
    ]);
    await bus.counts.waitFor('dead-lettered', 3);
    const env = { SWITCHBOARD__TRANSPORT__KIND: 'redis', SWITCHBOARD__TRANSPORT__URL: REDIS_URL };
    const dlq = ['--source', 'transport', '--dlq-topic', `${channel}-dlq`];
    const listed = await runCli(['--json', 'dlq', 'list', ...dlq], env);
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as { id: string; originalTopic: string }[]).map((l) => [l.id, l.originalTopic])).toEqual([
      ['bad-1', channel],
      ['bad-2', channel],
      ['bad-3', channel],
    ]);
    fixed = true;
    expect((await runCli(['--json', 'dlq', 'replay', 'bad-2', ...dlq], env)).code).toBe(0);
    await got.waitFor(1, 10_000);
    expect(got.items).toEqual(['bad-2']);
    expect(JSON.parse((await runCli(['--json', 'dlq', 'purge', '--dry-run', ...dlq], env)).stdout)).toMatchObject({ dryRun: true, ids: ['bad-1', 'bad-3'] });
    expect(JSON.parse((await runCli(['--json', 'dlq', 'purge', ...dlq], env)).stdout)).toMatchObject({ dryRun: false, ids: ['bad-1', 'bad-3'] });
    expect(JSON.parse((await runCli(['--json', 'dlq', 'list', ...dlq], env)).stdout)).toEqual([]);
  });
});

describe('redis fallback store', () => {
  runFallbackStoreSuite('redis stream', async () => {
    const redis = new Redis(REDIS_URL);
    const store = new RedisFallbackStore({ redis, key: uniqueName('sb-fallback') });
    return Object.assign(store, { close: async () => void redis.disconnect() });
  });
});

describe('redis pub/sub under pressure and outages', () => {
  it('bounds the in-process buffer: beyond maxBuffered, messages go to the DLQ stream unhandled, each one counted', async () => {
    const bus = await openBus({ maxBuffered: 50 });
    const channel = uniqueName('sb-redis.overflow');
    const handled = new Recorder<string>();
    await bus.subscriber.subscribe(channel, async (m) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      handled.add(m.id);
    });
    const total = 400;
    await bus.publisher.publish(
      channel,
      Array.from({ length: total }, (_, i) => ({ id: `o-${i}`, value: i })),
    );
    await bus.counts.waitFor('buffer-overflow', 1);
    const overflowed = () => bus.counts.count('buffer-overflow');
    const reader = await adminConnection();
    // Everything ends handled or in the DLQ stream; nothing is both.
    let stream: { id: string; reason: string | undefined }[] = [];
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
      stream = (await readDeadLetterStream(reader, `${channel}-dlq`, '0', 0, 1000)).map((l) => ({ id: l.id, reason: l.headers[DeadLetterHeaders.reason] }));
      if (handled.count + stream.length >= total) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const ids = new Set([...handled.items, ...stream.map((l) => l.id)]);
    console.log(`[measure] redis overflow: ${total} published at once, maxBuffered 50: handled ${handled.count}, dead-lettered as buffer-overflow ${stream.length}, overflow events ${overflowed()}`);
    expect(ids.size).toBe(total);
    expect(handled.count + stream.length).toBe(total);
    expect(stream.length).toBe(overflowed());
    expect(stream.every((l) => l.reason === 'buffer-overflow')).toBe(true);
    await reader.del(`${channel}-dlq`);
  });

  it('drops beyond maxBuffered with overflow "drop", counting every dropped message', async () => {
    const bus = await openBus({ maxBuffered: 20, overflow: 'drop' });
    const channel = uniqueName('sb-redis.drop');
    const handled = new Recorder<string>();
    await bus.subscriber.subscribe(channel, async (m) => {
      await new Promise((resolve) => setTimeout(resolve, 2));
      handled.add(m.id);
    });
    await bus.publisher.publish(
      channel,
      Array.from({ length: 200 }, (_, i) => ({ id: `d-${i}`, value: i })),
    );
    await bus.counts.waitFor('buffer-overflow', 1);
    const start = Date.now();
    while (handled.count + bus.counts.count('buffer-overflow') < 200 && Date.now() - start < 20_000) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(handled.count + bus.counts.count('buffer-overflow')).toBe(200);
  });

  it('refuses bad buffer options at startup naming the field', async () => {
    await expect(createRedisPubSubTransport({ url: REDIS_URL, maxBuffered: 0 })).rejects.toThrow(/maxBuffered/);
  });

  it('the Redis fallback store reports an unreachable server in one clear line, without unhandled error events or the password', async () => {
    const { openRedisFallbackStore } = await import('@switchboard/redis-pubsub');
    const unhandled: unknown[] = [];
    const onWarning = (warning: unknown) => unhandled.push(warning);
    process.on('warning', onWarning);
    const started = Date.now();
    const failure = await openRedisFallbackStore('redis://user:s3cret-pass@127.0.0.1:1').catch((error: unknown) => error as Error);
    process.off('warning', onWarning);
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toMatch(/cannot connect to the Redis fallback store at redis:\/\/user:\*\*\*@127\.0\.0\.1:1/);
    expect((failure as Error).message).not.toContain('s3cret-pass');
    expect(Date.now() - started).toBeLessThan(10_000);

    // A store on a client the application made (no error listener): one line per outage, not one per retry.
    const lines: string[] = [];
    const client = new Redis('redis://127.0.0.1:1', { lazyConnect: true, retryStrategy: () => 20, maxRetriesPerRequest: 0 });
    const store = new RedisFallbackStore({ redis: client, onConnectionError: (line) => lines.push(line) });
    const reconnects = new Recorder<number>();
    client.on('reconnecting', () => reconnects.add(Date.now()));
    client.connect().catch(() => undefined);
    await reconnects.waitFor(5, 10_000, 'reconnect attempts'); // each failed attempt emits an error event
    await expect(store.peek(1)).rejects.toThrow();
    client.disconnect();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/redis fallback store "switchboard:fallback": connection failed/);
    expect(unhandled).toEqual([]);
  });
});

runDeduplicationStoreSuite('redis', async () => {
  const redis = new Redis(REDIS_URL);
  cleanups.push(async () => void redis.disconnect());
  return new RedisDeduplicationStore(redis, `${uniqueName('sb-dedup')}:`);
});
