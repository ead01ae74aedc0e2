import { afterEach, describe, expect, it } from 'vitest';
import { createBus, type Bus } from '@switchboard/core';
import { Recorder, uniqueName, waitUntil } from '@switchboard/core/testing';
import { platformaticRunsOn, type KafkaTransport } from '@switchboard/kafka';
import { testTransport } from './helpers.js';

/**
 * The KIP-848 group protocol (`groupProtocol: 'consumer'`, driver platformatic) on the project's Kafka
 * 4.4 broker: the broker assigns partitions and moves them incrementally when members come and go.
 */
const skipReason = platformaticRunsOn() ? undefined : `needs driver "platformatic" (Node >= 22.22); this is Node ${process.versions.node}`;

const buses: Bus[] = [];
afterEach(async () => {
  await Promise.all(buses.splice(0).map((bus) => bus.close()));
});

async function member(): Promise<Bus & { kafka: KafkaTransport }> {
  const kafka = await testTransport({ driver: 'platformatic', groupProtocol: 'consumer' });
  const bus = Object.assign(createBus({ transport: kafka }), { kafka });
  buses.push(bus);
  return bus;
}

const batch = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => ({ id: `${prefix}-${i}`, key: `k${i % 20}`, value: i }));

describe.skipIf(skipReason !== undefined)(`kafka, KIP-848 group protocol "consumer"${skipReason ? ` — skipped: ${skipReason}` : ''}`, () => {
  it('two members share a topic (the broker moves partitions to the one that joins), then the one left takes everything: nothing lost', async () => {
    const first = await member();
    const topic = uniqueName('sb-kafka.kip848');
    await first.kafka.ensureTopic(topic); // 4 partitions
    const group = uniqueName('kip848');
    const byFirst = new Recorder<string>();
    const bySecond = new Recorder<string>();
    const firstSubscription = await first.subscriber.subscribe(topic, (m) => byFirst.add(m.id), { group, startFrom: 'earliest' });
    await first.publisher.publish(topic, batch('a', 200));
    await byFirst.waitFor(200, 60_000);

    const second = await member();
    await second.subscriber.subscribe(topic, (m) => bySecond.add(m.id), { group, startFrom: 'earliest' });
    // The broker revokes from the first member and assigns to the second over a few heartbeats:
    // publish in rounds until the second member has handled some.
    let round = 0;
    await waitUntil(
      async () => {
        await first.publisher.publish(topic, batch(`b${round++}`, 40));
        return bySecond.items.length > 0;
      },
      60_000,
      'the second member handling part of the topic',
    );
    const published = 200 + round * 40;
    const handled = () => new Set([...byFirst.items, ...bySecond.items]).size;
    await waitUntil(() => handled() === published, 60_000, `all ${published} handled`);

    await firstSubscription.close();
    await first.publisher.publish(topic, batch('c', 100));
    await waitUntil(() => handled() === published + 100, 60_000, `all ${published + 100} handled after the first member left`);
    const duplicates = byFirst.items.length + bySecond.items.length - handled();
    console.log(`[measure] kafka KIP-848: ${published + 100} messages, first member ${byFirst.items.length}, second ${bySecond.items.length}, duplicates ${duplicates}, lost 0`);
    expect(bySecond.items.length).toBeGreaterThan(0);
    expect(handled()).toBe(published + 100);
  });
});
