// Reading a RabbitMQ backlog with concurrency 1: raw amqplib (prefetch 64, an ack per message) against
// a Switchboard subscription with the default prefetch (= concurrency: 1) and with `prefetch: 64`.
// 20,000 messages of ~256 B (Switchboard's envelope) are published once to a topic whose groups each
// have a queue (one per reader and round, so every reader reads the same stored backlog); then 3
// rounds, each reader in turn. Prints msg/s and each Switchboard reader's ratio to raw in its round.
// Run (after `pnpm build`): node examples/probes/rabbitmq-consume.mjs   (RabbitMQ on RABBITMQ_URL or guest@127.0.0.1:5672)
import amqplib from 'amqplib';
import { createBus } from '@switchboard/core';
import { createRabbitTransport } from '@switchboard/rabbitmq';

const N = 20_000;
const ROUNDS = 3;
const DEADLINE_MS = 120_000;
const url = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const topic = `probe.consume.${Date.now().toString(36)}`;
const readers = ['raw', 'switchboard', 'switchboard-prefetch-64'];
const groups = [];
for (let round = 0; round < ROUNDS; round++) for (const reader of readers) groups.push(`${reader}-${round}`);

// Declare every group's queue (a subscription declares and binds it), then publish the backlog once.
const declaring = await createRabbitTransport({ url });
for (const group of groups) await (await declaring.subscribe({ topic, pattern: false, group, concurrency: 1, ordering: 'none', startFrom: 'latest' }, () => undefined)).close();
await declaring.close();
const publisher = createBus({ transport: await createRabbitTransport({ url }) });
const filler = 'x'.repeat(180);
for (let i = 0; i < N; i += 1000) {
  await publisher.publisher.publish(
    topic,
    Array.from({ length: 1000 }, (_, j) => ({ key: `product-${(i + j) % 50}`, value: { orderId: `o-${i + j}`, quantity: 1, filler } })),
  );
}
await publisher.close();

const withDeadline = (promise, what) => Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: not done within ${DEADLINE_MS} ms`)), DEADLINE_MS).unref())]);

async function raw(group) {
  const connection = await amqplib.connect(url);
  const channel = await connection.createChannel();
  await channel.prefetch(64);
  const started = performance.now();
  await withDeadline(
    new Promise((resolve) => {
      let read = 0;
      void channel.consume(`${topic}.${group}`, (message) => {
        JSON.parse(message.content.toString());
        channel.ack(message);
        if (++read === N) resolve();
      });
    }),
    group,
  );
  const rate = N / ((performance.now() - started) / 1000);
  await connection.close();
  return rate;
}

async function switchboard(group, prefetch) {
  const bus = createBus({ transport: await createRabbitTransport({ url, ...(prefetch ? { prefetch } : {}) }) });
  let read = 0;
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  const started = performance.now();
  await bus.subscriber.subscribe(
    topic,
    () => {
      if (++read === N) done();
    },
    { group, concurrency: 1 },
  );
  await withDeadline(finished, group);
  const rate = N / ((performance.now() - started) / 1000);
  await bus.close();
  return rate;
}

const ratios = { switchboard: [], 'switchboard-prefetch-64': [] };
for (let round = 0; round < ROUNDS; round++) {
  const rawRate = await raw(`raw-${round}`);
  const plain = await switchboard(`switchboard-${round}`);
  const ahead = await switchboard(`switchboard-prefetch-64-${round}`, 64);
  ratios.switchboard.push(plain / rawRate);
  ratios['switchboard-prefetch-64'].push(ahead / rawRate);
  console.log(
    `round ${round + 1}: raw amqplib (prefetch 64) ${Math.round(rawRate)} msg/s; Switchboard concurrency 1: default prefetch ${Math.round(plain)} (${(plain / rawRate).toFixed(2)}), prefetch 64 ${Math.round(ahead)} (${(ahead / rawRate).toFixed(2)})`,
  );
}
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
console.log(`median ratio to raw: default prefetch ${median(ratios.switchboard).toFixed(2)}, prefetch 64 ${median(ratios['switchboard-prefetch-64']).toFixed(2)}`);

const cleanup = await amqplib.connect(url);
const channel = await cleanup.createChannel();
for (const group of groups) await channel.deleteQueue(`${topic}.${group}`);
await cleanup.close();
