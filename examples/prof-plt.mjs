import { createBus } from '@switchboard/core';
import { createKafkaTransport } from '@switchboard/kafka';
import { Kafka, logLevel } from 'kafkajs';
const filler = 'x'.repeat(180);
const payload = (i) => ({ orderId: `order-${i}`, productId: `product-${i % 50}`, quantity: 1, filler, sentAt: Date.now() });
const N = Number(process.argv[2] ?? 100_000);
const lean = process.argv[3] === 'lean';
const admin = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING }).admin();
await admin.connect();
const topic = `prof.plt.${Date.now()}`;
await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }], waitForLeaders: true });
const bus = createBus({
  transport: await createKafkaTransport({ brokers: ['127.0.0.1:9092'], partitions: 3, driver: 'platformatic' }),
  ...(lean ? { publisher: { envelope: { id: 'given', timestamp: 'broker' } } } : {}),
});
let n = 0;
let done;
const all = new Promise((r) => (done = r));
await bus.subscriber.subscribe(
  topic,
  () => {
    if (++n === N) done();
  },
  { group: `g-${topic}`, startFrom: 'earliest', concurrency: 3 },
);
const t0 = performance.now();
for (let i = 0; i < N; i += 1000)
  await bus.publisher.publish(
    topic,
    Array.from({ length: 1000 }, (_, j) => ({ key: `product-${(i + j) % 50}`, value: payload(i + j) })),
  );
const pub = performance.now() - t0;
await all;
const total = performance.now() - t0;
console.log(`publish ${Math.round(N / (pub / 1000))} msg/s, end to end ${Math.round(N / (total / 1000))} msg/s`);
await bus.close();
await admin.disconnect();
