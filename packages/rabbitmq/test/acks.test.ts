import * as amqplib from 'amqplib';
import { afterEach, describe, expect, it } from 'vitest';
import { CountingObserver, createBus, type Bus, type Message } from '@switchboard/core';
import { Recorder, uniqueName } from '@switchboard/core/testing';
import { RABBITMQ_URL, testTransport } from './helpers.js';

// Acks are sent in batches (one `multiple` ack for the settled head of the arrival order, the other
// acked deliveries alone). These tests hold the contract on the real broker: a slow delivery never
// holds back the acks of later ones, and every delivery is settled exactly once (a second ack of a
// delivery tag would close the channel: the subscription would report an interruption and the
// broker would redeliver).

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function openBus(): Promise<Bus & { counts: CountingObserver }> {
  const counts = new CountingObserver();
  const bus = createBus({ transport: await testTransport(), observer: counts });
  cleanups.push(() => bus.close());
  return Object.assign(bus, { counts });
}

/** Messages ready and unacked in `queue`, as the broker counts them (checkQueue counts ready ones only; unacked come back ready once the consumer is gone). */
async function readyIn(queue: string): Promise<number> {
  const connection = await amqplib.connect(RABBITMQ_URL);
  try {
    const channel = await connection.createChannel();
    return (await channel.checkQueue(queue)).messageCount;
  } finally {
    await connection.close();
  }
}

describe('rabbitmq acks', () => {
  it('a delivery still running does not hold back the acks of the ones after it (prefetch 2)', async () => {
    const bus = await openBus();
    const topic = uniqueName('sb-rabbit.acks-slow');
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const handled = new Recorder<number>();
    await bus.subscriber.subscribe<number>(
      topic,
      async (m) => {
        if (m.value === 0) await held;
        handled.add(m.value);
      },
      { concurrency: 2, group: 'acks' },
    );
    await bus.publisher.publish(topic, { value: 0 });
    await bus.publisher.publish(
      topic,
      Array.from({ length: 20 }, (_, i) => ({ value: i + 1 })),
    );
    // With message 0 holding one of the two prefetch slots, the other 20 pass through the second one
    // only if each is acked while 0 is still running.
    try {
      expect((await handled.waitFor(20, 15_000)).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    } finally {
      release();
    }
    await handled.waitFor(21, 10_000);
  });

  it('2,000 deliveries finishing out of order, some retried: each settled once, the queue empty afterwards, the channel never lost', async () => {
    const bus = await openBus();
    const topic = uniqueName('sb-rabbit.acks-order');
    const seen = new Map<number, number>();
    const handled = new Recorder<number>();
    let queue = '';
    await bus.subscriber.subscribe<number>(
      topic,
      async (m: Message<number>) => {
        queue = m.source.queue ?? queue;
        const times = (seen.get(m.value) ?? 0) + 1;
        seen.set(m.value, times);
        if (m.value % 97 === 0 && times === 1) throw new Error('fails once'); // retried through the retry queue
        if (m.value % 3 === 0) await new Promise((resolve) => setTimeout(resolve, m.value % 7));
        handled.add(m.value);
      },
      { concurrency: 50, group: 'acks', retry: { maxAttempts: 3, initialIntervalMs: 20 } },
    );
    for (let i = 0; i < 2000; i += 500) {
      await bus.publisher.publish(
        topic,
        Array.from({ length: 500 }, (_, j) => ({ value: i + j })),
      );
    }
    const values = await handled.waitFor(2000, 60_000);
    expect(new Set(values).size).toBe(2000);
    const failedOnce = [...seen].filter(([value]) => value % 97 === 0);
    expect(failedOnce.every(([, times]) => times === 2)).toBe(true);
    expect([...seen].filter(([value]) => value % 97 !== 0).every(([, times]) => times === 1)).toBe(true);
    expect(bus.counts.count('subscription-interrupted')).toBe(0);
    await bus.close();
    // Closed: anything the broker had not seen acked would be ready again now.
    expect(await readyIn(queue)).toBe(0);
  });
});
