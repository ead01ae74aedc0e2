import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Partitioners } from 'kafkajs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runCli } from '@switchboard/cli/testing';
import { ConfigError, CountingObserver, MemoryFallbackStore, NonRetryableError, createBus, type Bus, type Message, registerTransport } from '@switchboard/core';
import { withFallback } from '@switchboard/resilience';
import { Recorder, uniqueName, waitUntil } from '@switchboard/core/testing';
import { createSwitchboardContainer } from '@switchboard/inversify';
import { createKafkaTransport, type KafkaOptionsInput, type KafkaTransport, kafkaTransport } from '@switchboard/kafka';
import { KAFKA_BROKERS, handledLines, testTransport } from './helpers.js';

// Config-driven tests (createSwitchboardContainer with transport.kind) find the adapter through the registry.
registerTransport(kafkaTransport);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function openBus(options: KafkaOptionsInput = {}): Promise<Bus & { counts: CountingObserver; kafka: KafkaTransport }> {
  const counts = new CountingObserver();
  const transport = await testTransport(options);
  const bus = createBus({ transport, observer: counts });
  cleanups.push(() => bus.close());
  return Object.assign(bus, { counts, kafka: transport });
}

/** A key that kafkajs' default partitioner (murmur2, Java-compatible) sends to `partition` of `count`. */
function keyForPartition(partition: number, count: number): string {
  const partitioner = Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: count }, (_, p) => ({ partitionId: p, leader: 0, replicas: [0], isr: [0] }));
  for (let i = 0; ; i++) {
    const key = `key-${i}`;
    if (partitioner({ topic: 't', partitionMetadata, message: { key, value: null } }) === partition) return key;
  }
}

describe('kafka publishing', () => {
  it('maps the delivery guarantee to acks 0 / 1 / -1 in the producer request, and each produces', async () => {
    const results: Record<string, number | undefined> = {};
    for (const guarantee of ['none', 'leader', 'all'] as const) {
      const counts = new CountingObserver();
      const transport = await testTransport();
      const send = vi.spyOn(transport.sender, 'send');
      const bus = createBus({ transport, observer: counts, publisher: { guarantee } });
      cleanups.push(() => bus.close());
      const topic = uniqueName(`sb-kafka.acks-${guarantee}`);
      const received = new Recorder<Message>();
      await bus.subscriber.subscribe(topic, (m) => received.add(m), { startFrom: 'earliest' });
      await bus.publisher.publish(topic, { value: guarantee });
      results[guarantee] = send.mock.calls[0]?.[2];
      expect((await received.waitFor(1, 30_000))[0]!.value).toBe(guarantee);
    }
    expect(results).toEqual({ none: 0, leader: 1, all: -1 });
  });

  it('sends the same key to the same partition and spreads keyless messages', async () => {
    const bus = await openBus();
    const topic = uniqueName('sb-kafka.keys');
    const received = new Recorder<Message>();
    await bus.subscriber.subscribe(topic, (m) => received.add(m), { startFrom: 'earliest', concurrency: 4 });
    await bus.publisher.publish(topic, [...Array.from({ length: 20 }, () => ({ key: 'product-42', value: 1 })), ...Array.from({ length: 40 }, () => ({ value: 2 }))]);
    await received.waitFor(60, 30_000);
    expect(new Set(received.items.filter((m) => m.key === 'product-42').map((m) => m.source.partition)).size).toBe(1);
    expect(new Set(received.items.filter((m) => m.key === undefined).map((m) => m.source.partition)).size).toBeGreaterThan(1);
  });

  it("refuses a topic name Kafka cannot hold, naming the field; behind a fallback store it is neither stored nor counted by the breaker (it was stored, and five opened the breaker for everyone's publishes)", async () => {
    const store = new MemoryFallbackStore();
    const transport = withFallback(await testTransport(), { store, breaker: { consecutiveFailures: 3 } });
    const bus = createBus({ transport });
    cleanups.push(() => bus.close());
    for (const topic of ['orders created', 'orders/created', 'ordres-ü', 'x'.repeat(250), '..']) {
      const published = await bus.publisher.publish(topic, { value: 1 }).catch((error: unknown) => error);
      expect(published).toBeInstanceOf(ConfigError);
      expect(String(published)).toMatch(/topic: .* cannot be a Kafka topic name: 1 to 249 characters, each a letter, a digit/);
      await expect(bus.subscriber.subscribe(topic, () => undefined, { group: 'g' })).rejects.toThrowError(/cannot be a Kafka topic name/);
    }
    expect(await store.depth()).toBe(0);
    expect(transport.breakerState).toBe('closed');
    const fine = uniqueName('sb-kafka.valid_name-1');
    expect((await bus.publisher.publish(fine, { value: 1 })).status).toBe('delivered');
  });

  it('fails fast with a clear error when no broker answers (connect timeout)', async () => {
    const started = Date.now();
    const refused = testTransport({ brokers: ['127.0.0.1:1'], connectTimeoutMs: 300, retries: 0 });
    await expect(refused).rejects.toThrowError(/cannot connect to Kafka at 127\.0\.0\.1:1 \(connect timeout 300 ms\)/);
    await expect(refused).rejects.toMatchObject({ name: 'ConnectError', code: 'SB_CONNECT', endpoint: '127.0.0.1:1' });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('refuses an idempotent producer without the "all" guarantee, naming the field', async () => {
    const attempt = createSwitchboardContainer({ env: {}, object: { transport: { kind: 'kafka', brokers: KAFKA_BROKERS, idempotent: true }, publish: { guarantee: 'leader' } } });
    await expect(attempt).rejects.toThrowError(/publish\.guarantee: an idempotent Kafka producer needs "all"/);
    await expect(createSwitchboardContainer({ env: {}, object: { transport: { kind: 'kafka', brokers: 'localhost' } } })).rejects.toThrowError(/transport\.brokers\.0: must be host:port/);
    // The direct factory names the field too (a ConfigError, not a raw schema error).
    const direct = await createKafkaTransport({ brokers: KAFKA_BROKERS.split(','), driver: 'rdkafka' } as never).catch((error: unknown) => error);
    expect(direct).toBeInstanceOf(ConfigError);
    expect((direct as Error).message).toMatch(/driver: Invalid option: expected one of "kafkajs"\|"platformatic"/);
    // KIP-848 needs the platformatic driver: refused at startup, naming the field.
    const kip848 = await createKafkaTransport({ brokers: KAFKA_BROKERS.split(','), driver: 'kafkajs', groupProtocol: 'consumer' }).catch((error: unknown) => error);
    expect(kip848).toBeInstanceOf(ConfigError);
    expect((kip848 as Error).message).toMatch(/groupProtocol: the "consumer" group protocol \(KIP-848\) needs driver "platformatic"/);
  });
});

describe('kafka consuming', () => {
  it('backs a poison message off on partition 0 while partition 1 keeps flowing, then dead-letters it (measured)', async () => {
    const bus = await openBus({ partitions: 2 });
    const [p0Key, p1Key] = [keyForPartition(0, 2), keyForPartition(1, 2)];
    const measure = async (withPoison: boolean) => {
      const topic = uniqueName(`sb-kafka.poison-${withPoison}`);
      await bus.kafka.ensureTopics([topic, `${topic}-dlq`]);
      const healthy = new Recorder<number>();
      const poisonCalls: { at: number; partition: number | undefined }[] = [];
      await bus.subscriber.subscribe<{ poison?: boolean }>(
        topic,
        (m) => {
          if (m.value.poison) {
            poisonCalls.push({ at: performance.now(), partition: m.source.partition });
            throw new Error('downstream timeout');
          }
          healthy.add(performance.now());
        },
        { group: 'measure', startFrom: 'earliest', concurrency: 2, retry: { maxAttempts: 4, initialIntervalMs: 1000, multiplier: 2 } },
      );
      const count = 2000;
      if (withPoison) await bus.publisher.publish(topic, { id: 'poison', key: p0Key, value: { poison: true } });
      const start = performance.now();
      for (let i = 0; i < count; i += 200)
        await bus.publisher.publish(
          topic,
          Array.from({ length: 200 }, (_, j) => ({ key: p1Key, value: { i: i + j } })),
        );
      await healthy.waitFor(count, 60_000);
      const seconds = (healthy.items[count - 1]! - start) / 1000;
      return { topic, rate: count / seconds, poisonCalls, lastHealthyAt: healthy.items[count - 1]! };
    };
    const baseline = await measure(false);
    const poisoned = await measure(true);
    await bus.counts.waitFor('dead-lettered', 1);
    expect(poisoned.poisonCalls.map((c) => c.partition)).toEqual([0, 0, 0, 0]);
    const gaps = poisoned.poisonCalls.slice(1).map((c, i) => c.at - poisoned.poisonCalls[i]!.at);
    expect(gaps[0]).toBeGreaterThanOrEqual(1000 - 20);
    expect(gaps[1]).toBeGreaterThanOrEqual(2000 - 20);
    expect(gaps[2]).toBeGreaterThanOrEqual(4000 - 20);
    expect(poisoned.lastHealthyAt).toBeLessThan(poisoned.poisonCalls[3]!.at); // partition 1 finished during the backoff
    console.log(
      `[measure] kafka partition 1 throughput: baseline ${baseline.rate.toFixed(0)} msg/s, during partition-0 poison backoff ${poisoned.rate.toFixed(0)} msg/s (ratio ${(poisoned.rate / baseline.rate).toFixed(2)}); poison gaps ${gaps.map((g) => g.toFixed(0)).join('/')} ms`,
    );
  });

  it('keeps group membership through a 10 s backoff with a 6 s session timeout (no rebalance)', async () => {
    const bus = await openBus({ sessionTimeoutMs: 6000, heartbeatIntervalMs: 1000 });
    const topic = uniqueName('sb-kafka.long-backoff');
    const attempts: number[] = [];
    await bus.subscriber.subscribe(
      topic,
      (m) => {
        attempts.push(m.attempt);
        if (m.attempt === 1) throw new Error('database down');
      },
      { group: 'patient', startFrom: 'earliest', retry: { maxAttempts: 2, initialIntervalMs: 10_000 } },
    );
    await bus.publisher.publish(topic, { id: 'slow', value: 1 });
    await bus.counts.waitFor('success', 1);
    expect(attempts).toEqual([1, 2]); // a rebalance would have reset the attempt to 1 on redelivery
    expect(bus.counts.count('internal-error')).toBe(0);
  }, 60_000);

  it('loses nothing when a consumer process is SIGKILLed after processing, before commit; duplicates are counted', async () => {
    const bus = await openBus();
    const topic = uniqueName('sb-kafka.crash');
    const group = 'crash-group';
    const total = 400;
    await bus.publisher.publish(
      topic,
      Array.from({ length: total }, (_, i) => ({ id: `c-${i}`, value: i })),
    );
    const script = fileURLToPath(new URL('./fixtures/consume-until-killed.mjs', import.meta.url));
    const child = spawn(process.execPath, [script, topic, group, KAFKA_BROKERS], { stdio: ['ignore', 'pipe', 'inherit'] });
    const beforeCrash = handledLines(child);
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await beforeCrash.waitFor(100, 60_000);
    child.kill('SIGKILL');
    await exited;
    const afterRestart = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => afterRestart.add(m.id), { group, startFrom: 'earliest', concurrency: 4 });
    const expected = Array.from({ length: total }, (_, i) => `c-${i}`);
    await afterRestart.waitFor(total - 0, 60_000).catch(() => undefined);
    const seen = new Set([...beforeCrash.items, ...afterRestart.items]);
    const duplicates = beforeCrash.items.filter((id) => afterRestart.items.includes(id)).length;
    console.log(
      `[measure] kafka SIGKILL after processing, before commit: handled before kill ${beforeCrash.count}, after restart ${afterRestart.count}, distinct ${seen.size}/${total}, duplicates ${duplicates}`,
    );
    expect([...expected].filter((id) => !seen.has(id))).toEqual([]);
    expect(duplicates).toBeGreaterThan(0); // nothing was committed before the kill, so they come again
  }, 120_000);
});

describe('kafka rebalance and DLQ tooling', () => {
  it('drops a held retry of a revoked partition without losing or committing it: the message is handled after the rebalance', async () => {
    const first = await openBus({ partitions: 2 });
    const second = await openBus({ partitions: 2 });
    const topic = uniqueName('sb-kafka.revoke');
    await first.kafka.ensureTopics([topic]);
    let failed = false;
    const handled = new Recorder<{ id: string; attempt: number; member: string }>();
    const handler = (member: string) => (m: Message) => {
      if (m.id === 'held' && !failed) {
        failed = true;
        throw new Error('database down');
      }
      handled.add({ id: m.id, attempt: m.attempt, member });
    };
    const options = { group: 'revoke', startFrom: 'earliest' as const, concurrency: 2, retry: { maxAttempts: 5, initialIntervalMs: 4000 } };
    await first.subscriber.subscribe(topic, handler('first'), options);
    await first.publisher.publish(topic, { id: 'held', key: keyForPartition(0, 2), value: 1 });
    await first.counts.waitFor('will-retry', 1); // partition 0 paused, retry held in the first member
    await second.subscriber.subscribe(topic, handler('second'), options); // rebalance: partition 0 may move
    await second.publisher.publish(
      topic,
      Array.from({ length: 10 }, (_, i) => ({ id: `other-${i}`, key: keyForPartition(1, 2), value: i })),
    );
    await waitUntil(() => handled.items.some((h) => h.id === 'held'), 60_000, 'the held message after the rebalance');
    await waitUntil(() => handled.items.filter((h) => h.id.startsWith('other-')).length >= 10, 60_000, 'partition 1');
    const held = handled.items.find((h) => h.id === 'held')!;
    console.log(`[measure] kafka rebalance during a held retry: handled by the ${held.member} member at attempt ${held.attempt} (1 = revoked and re-read by the new owner, 2 = kept)`);
    expect(handled.items.filter((h) => h.id === 'held').length).toBeGreaterThanOrEqual(1);
  });

  it('switchboard CLI over a Kafka DLQ: browses from the start, replays, refuses purge with the reason', async () => {
    const bus = await openBus();
    const topic = uniqueName('sb-kafka.cli');
    const got = new Recorder<string>();
    let fixed = false;
    await bus.subscriber.subscribe(
      topic,
      (m) => {
        if (!fixed) throw new NonRetryableError('unknown product');
        got.add(m.id);
      },
      { group: 'orders', startFrom: 'earliest' },
    );
    await bus.publisher.publish(topic, [
      { id: 'bad-1', value: 1 },
      { id: 'bad-2', value: 2 },
    ]);
    await bus.counts.waitFor('dead-lettered', 2);
    const env = { SWITCHBOARD__TRANSPORT__KIND: 'kafka', SWITCHBOARD__TRANSPORT__BROKERS: KAFKA_BROKERS };
    const dlq = ['--source', 'transport', '--dlq-topic', `${topic}-dlq`, '--idle-ms', '3000'];
    const listed = await runCli(['--json', 'dlq', 'list', ...dlq], env);
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as { id: string }[]).map((l) => l.id).sort()).toEqual(['bad-1', 'bad-2']);
    fixed = true;
    expect((await runCli(['--json', 'dlq', 'replay', 'bad-2', ...dlq], env)).code).toBe(0);
    await got.waitFor(1, 30_000);
    expect(got.items).toEqual(['bad-2']);
    const purge = await runCli(['dlq', 'purge', ...dlq], env);
    expect(purge.code).toBe(1);
    expect(purge.stderr).toContain('keeps dead letters in a log');
  });
});
