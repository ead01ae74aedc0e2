import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CountingObserver, createBus, type Bus, type Message, type Ordering } from '@switchboard/core';
import { Recorder, eventually, gate, uniqueName, waitUntil } from '@switchboard/core/testing';
import type { KafkaOptionsInput, KafkaTransport } from '@switchboard/kafka';
import { KAFKA_BROKERS, handledLines, testTransport } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const admin = new Kafka({ clientId: 'switchboard-test-key-ordering', brokers: KAFKA_BROKERS.split(','), logLevel: logLevel.NOTHING }).admin();
let adminConnected: Promise<void> | undefined;
afterAll(async () => admin.disconnect().catch(() => undefined));

/** Committed offset of `group` per partition of `topic` (-1: none). */
async function committed(group: string, topic: string): Promise<Map<number, number>> {
  adminConnected ??= admin.connect();
  await adminConnected;
  const [offsets] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  return new Map((offsets?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
}

async function openBus(options: KafkaOptionsInput = {}): Promise<Bus & { counts: CountingObserver; kafka: KafkaTransport }> {
  const counts = new CountingObserver();
  const transport = await testTransport({ partitions: 3, ...options });
  const bus = createBus({ transport, observer: counts });
  cleanups.push(() => bus.close());
  return Object.assign(bus, { counts, kafka: transport });
}

const KEYS = Array.from({ length: 50 }, (_, k) => `customer-${k}`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `perKey` messages for each of the 50 keys, interleaved (seq-major), ids `<key>#<seq>`. */
function keyedBatch(perKey: number): { id: string; key: string; value: { key: string; seq: number } }[] {
  const batch = [];
  for (let seq = 0; seq < perKey; seq++) for (const key of KEYS) batch.push({ id: `${key}#${seq}`, key, value: { key, seq } });
  return batch;
}

async function publishAll(bus: Bus, topic: string, messages: readonly { id: string; key: string; value: unknown }[]): Promise<void> {
  for (let i = 0; i < messages.length; i += 500) await bus.publisher.publish(topic, messages.slice(i, i + 500));
}

/**
 * At-least-once order per key: whenever a message starts, every earlier message of its key has
 * finished at least once before (redeliveries may rewind, never skip ahead or overlap a predecessor).
 */
class OrderCheck {
  private readonly finished = new Set<string>();
  readonly violations: string[] = [];
  readonly handled = new Set<string>();
  handledCount = 0;

  start(key: string, seq: number): void {
    if (seq > 0 && !this.finished.has(`${key}#${seq - 1}`)) this.violations.push(`${key}#${seq} started before ${key}#${seq - 1} finished`);
  }

  finish(key: string, seq: number): void {
    this.finished.add(`${key}#${seq}`);
    this.handled.add(`${key}#${seq}`);
    this.handledCount++;
  }
}

describe('kafka ordering "key": many handlers per partition, per-key order, commits up to the lowest unfinished offset', () => {
  it('3 partitions, 50 keys, 20 ms handler, concurrency 64: more than 10x the throughput of ordering "partition", order kept for every key', async () => {
    const bus = await openBus();
    const rates: Record<string, number> = {};
    for (const [ordering, perKey] of [
      ['partition', 8],
      ['key', 80],
    ] as const) {
      const topic = uniqueName(`sb-kafka.kthroughput-${ordering}`);
      await bus.kafka.ensureTopics([topic]);
      const batch = keyedBatch(perKey);
      await publishAll(bus, topic, batch);
      const check = new OrderCheck();
      const times: number[] = [];
      const done = new Recorder<number>();
      await bus.subscriber.subscribe<{ key: string; seq: number }>(
        topic,
        async (m) => {
          check.start(m.value.key, m.value.seq);
          if (times.length === 0) times.push(performance.now());
          await sleep(20);
          check.finish(m.value.key, m.value.seq);
          done.add(performance.now());
        },
        { group: `g-${ordering}`, startFrom: 'earliest', concurrency: 64, ordering: ordering as Ordering },
      );
      await done.waitFor(batch.length, 90_000, 'handled messages');
      rates[ordering] = (batch.length - 1) / ((done.items.at(-1)! - times[0]!) / 1000);
      expect(check.violations).toEqual([]);
      expect(check.handled.size).toBe(batch.length);
      expect(check.handledCount).toBe(batch.length); // no redelivery without a crash or rebalance
    }
    const ratio = rates.key! / rates.partition!;
    console.log(
      `[measure] kafka 3 partitions, 50 keys, 20 ms handler, concurrency 64: ordering "partition" ${rates.partition!.toFixed(0)} msg/s, ordering "key" ${rates.key!.toFixed(0)} msg/s (${ratio.toFixed(1)}x)`,
    );
    expect(ratio).toBeGreaterThan(10);
  });

  it('a poison key backing off 2 s holds only its own messages: the other keys of its partition keep their pace, and no commit passes it', async () => {
    const bus = await openBus();
    const topic = uniqueName('sb-kafka.kpoison');
    await bus.kafka.ensureTopics([topic, `${topic}-dlq`]);
    const perKey = 40;
    const poison = { id: 'poison', key: KEYS[0]!, value: { key: KEYS[0]!, seq: -1 } };
    // The poison message comes first in its key; the key's 40 others wait behind it.
    await bus.publisher.publish(topic, poison);
    await publishAll(bus, topic, keyedBatch(perKey));
    const check = new OrderCheck();
    const partitionOf = new Map<string, number>();
    const finishedAt = new Map<string, number>();
    let poisonOffset: number | undefined;
    let started: number | undefined;
    const group = 'kpoison';
    await bus.subscriber.subscribe<{ key: string; seq: number }>(
      topic,
      async (m) => {
        started ??= performance.now();
        partitionOf.set(m.value.key, m.source.partition!);
        if (m.id === 'poison') {
          poisonOffset = Number(m.source.offset);
          throw new Error('downstream timeout');
        }
        check.start(m.value.key, m.value.seq);
        await sleep(20);
        check.finish(m.value.key, m.value.seq);
        if (m.value.seq === perKey - 1) finishedAt.set(m.value.key, performance.now() - started);
      },
      { group, startFrom: 'earliest', concurrency: 64, ordering: 'key', retry: { maxAttempts: 3, initialIntervalMs: 2000, multiplier: 1, maxIntervalMs: 2000 } },
    );
    // Every key but the poisoned one finishes during the backoff (4 s in all).
    await waitUntil(() => finishedAt.size === KEYS.length - 1, 30_000, 'the other keys to finish');
    expect(bus.counts.count('dead-lettered')).toBe(0);
    const poisonPartition = partitionOf.get(KEYS[0]!)!;
    // The poisoned record is unfinished: its partition's commit stays at or below it.
    const duringBackoff = await committed(group, topic);
    expect(duringBackoff.get(poisonPartition)).toBeLessThanOrEqual(poisonOffset!);
    await bus.counts.waitFor('dead-lettered', 1);
    await waitUntil(() => finishedAt.size === KEYS.length, 30_000, 'the poisoned key to finish after its dead letter');
    const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    const others = KEYS.slice(1);
    const samePartition = median(others.filter((k) => partitionOf.get(k) === poisonPartition).map((k) => finishedAt.get(k)!));
    const otherPartitions = median(others.filter((k) => partitionOf.get(k) !== poisonPartition).map((k) => finishedAt.get(k)!));
    // Throughput of a key ~ perKey / time to finish it: same partition as the poison vs the other partitions.
    const ratio = otherPartitions / samePartition;
    console.log(
      `[measure] kafka poison key backing off 2 s x 2: other keys of its partition finished in ${samePartition.toFixed(0)} ms (median), keys of other partitions in ${otherPartitions.toFixed(0)} ms: throughput ratio ${ratio.toFixed(2)}; poisoned key finished at ${finishedAt.get(KEYS[0]!)!.toFixed(0)} ms`,
    );
    expect(ratio).toBeGreaterThanOrEqual(0.9);
    expect(finishedAt.get(KEYS[0]!)!).toBeGreaterThan(4000);
    expect(check.violations).toEqual([]);
    // Once the poison is dead-lettered, commits reach the end of every partition.
    const ends = new Map((await bus.kafka.admin.topicOffsets(topic)).map((p) => [p.partition, Number(p.high)]));
    const final = await eventually(
      async () => {
        const now = await committed(group, topic);
        return [...ends].every(([p, high]) => now.get(p) === high) ? now : undefined;
      },
      10_000,
      'commits at the end of every partition',
    );
    expect(Object.fromEntries(final)).toEqual(Object.fromEntries(ends));
  });

  it('a consumer process SIGKILLed mid-run and restarted: nothing lost, duplicates no more than the uncommitted window', async () => {
    const bus = await openBus();
    const topic = uniqueName('sb-kafka.kcrash');
    await bus.kafka.ensureTopics([topic]);
    const group = 'kcrash';
    const window = 200;
    const batch = keyedBatch(60); // 3000
    await publishAll(bus, topic, batch);
    const script = fileURLToPath(new URL('./fixtures/consume-key-ordered.mjs', import.meta.url));
    const child = spawn(process.execPath, [script, topic, group, KAFKA_BROKERS, String(window)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const beforeCrash = handledLines(child);
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await beforeCrash.waitFor(1000, 60_000, 'messages handled by the child');
    child.kill('SIGKILL');
    await exited;
    const check = new OrderCheck();
    const afterRestart = new Recorder<string>();
    await bus.subscriber.subscribe<{ key: string; seq: number }>(
      topic,
      async (m) => {
        await sleep(5);
        check.finish(m.value.key, m.value.seq);
        afterRestart.add(m.id);
      },
      { group, startFrom: 'earliest', concurrency: 16, ordering: 'key' },
    );
    const before = new Set(beforeCrash.items);
    await waitUntil(() => batch.every((m) => before.has(m.id) || check.handled.has(m.id)), 60_000, 'every message handled');
    const duplicates = afterRestart.items.filter((id) => before.has(id)).length;
    const bound = window * 3;
    console.log(
      `[measure] kafka ordering "key" SIGKILL mid-run: handled before kill ${beforeCrash.count}, after restart ${afterRestart.count}, lost 0 of ${batch.length}, duplicates ${duplicates} (bound: window ${window} x 3 partitions = ${bound})`,
    );
    expect(duplicates).toBeLessThanOrEqual(bound);
    expect(afterRestart.count - duplicates).toBe(batch.length - before.size); // each missing message exactly once
  });

  it('a second member joining mid-run (rebalance): nothing lost, per-key order kept across the hand-over', async () => {
    const first = await openBus();
    const second = await openBus();
    const topic = uniqueName('sb-kafka.krebalance');
    await first.kafka.ensureTopics([topic]);
    const group = 'krebalance';
    const batch = keyedBatch(60); // 3000
    const check = new OrderCheck();
    const byMember = { first: 0, second: 0 };
    // Past 500, the first member waits for the second to be subscribed: the records it fetched and has
    // not handled are then handed over at the rebalance (without the wait, a fast fetcher could handle
    // everything in the second or so a rebalance takes, and there would be no hand-over to check).
    const secondSubscribed = gate();
    const handler = (member: 'first' | 'second') => async (m: Message<{ key: string; seq: number }>) => {
      if (member === 'first' && check.handledCount >= 500) await secondSubscribed.promise;
      check.start(m.value.key, m.value.seq);
      await sleep(5);
      check.finish(m.value.key, m.value.seq);
      byMember[member]++;
    };
    await first.subscriber.subscribe(topic, handler('first'), { group, startFrom: 'earliest', concurrency: 16, ordering: 'key' });
    const publishing = publishAll(first, topic, batch);
    await waitUntil(() => check.handledCount >= 500, 60_000, '500 handled by the first member');
    await second.subscriber.subscribe(topic, handler('second'), { group, startFrom: 'earliest', concurrency: 16, ordering: 'key' });
    secondSubscribed.open();
    await publishing;
    await waitUntil(() => check.handled.size === batch.length, 90_000, 'every message handled');
    console.log(
      `[measure] kafka ordering "key" rebalance mid-run: ${batch.length} messages, handled by first ${byMember.first}, by second ${byMember.second}, duplicates ${check.handledCount - batch.length}, lost 0, order violations ${check.violations.length}`,
    );
    expect(byMember.second).toBeGreaterThan(0);
    expect(check.violations).toEqual([]);
  });
});
