// What each part of an AMQP publish costs RabbitMQ, raw amqplib, no Switchboard: 20,000 messages
// of ~256 B per variant, written in steps of 1000, timed until the queue holds them all (checkQueue),
// variants interleaved, 3 counted rounds after a warm-up round. Prints msg/s and Node CPU µs per
// message. Variants: straight to the queue (default exchange, what message-queue-toolkit does),
// through a topic exchange (Switchboard's main exchange) and a direct exchange, then on the topic
// exchange with Switchboard's properties (messageId, timestamp, mandatory), plus its ms time header,
// plus a confirm channel (confirms not awaited: guarantee "none" before it got a channel of its own).
// Run: node examples/probes/amqp-publish-paths.mjs   (RabbitMQ on RABBITMQ_URL or 127.0.0.1:5672)
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../packages/rabbitmq/package.json', import.meta.url));
const amqplib = require('amqplib');
const N = 20_000;
const DEADLINE_MS = 60_000;
const connection = await amqplib.connect(process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672');
const admin = await connection.createChannel();
const plain = await connection.createChannel();
const confirm = await connection.createConfirmChannel();
for (const channel of [plain, confirm]) channel.on('return', () => undefined);
await admin.assertExchange('probe.topic', 'topic', { durable: false });
await admin.assertExchange('probe.direct', 'direct', { durable: false });
const filler = 'x'.repeat(180);
const body = (i) => Buffer.from(JSON.stringify({ orderId: `o-${i}`, productId: 'p', quantity: 1, filler, sentAt: Date.now() }));
const properties = (i, headers) => ({ messageId: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, timestamp: Math.floor(Date.now() / 1000), mandatory: true, headers });
const variants = {
  'to the queue, bare': [plain, (q, i) => plain.sendToQueue(q, body(i))],
  'topic exchange, bare': [plain, (q, i) => plain.publish('probe.topic', q, body(i))],
  'direct exchange, bare': [plain, (q, i) => plain.publish('probe.direct', q, body(i))],
  'topic exchange + properties': [plain, (q, i) => plain.publish('probe.topic', q, body(i), properties(i, {}))],
  '+ ms time header': [plain, (q, i) => plain.publish('probe.topic', q, body(i), properties(i, { 'x-sb-timestamp': Date.now() }))],
  '+ confirm channel': [confirm, (q, i) => confirm.publish('probe.topic', q, body(i), properties(i, { 'x-sb-timestamp': Date.now() }), () => undefined)],
};
const results = new Map();
let queues = 0;
for (let round = 0; round < 4; round++) {
  for (const [name, [channel, publish]] of Object.entries(variants)) {
    const queue = `probe.${process.pid}.${queues++}`;
    await admin.assertQueue(queue, { exclusive: true });
    await admin.bindQueue(queue, 'probe.topic', queue);
    await admin.bindQueue(queue, 'probe.direct', queue);
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (let i = 0; i < N; i += 1000) {
      for (let j = 0; j < 1000; j++) if (!publish(queue, i + j)) await new Promise((resolve) => channel.once('drain', resolve));
      await new Promise((resolve) => setImmediate(resolve));
    }
    while ((await admin.checkQueue(queue)).messageCount < N) {
      if (performance.now() - started > DEADLINE_MS) throw new Error(`${name}: not all queued within ${DEADLINE_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    await admin.deleteQueue(queue);
    if (round > 0) results.set(name, [...(results.get(name) ?? []), `${Math.round(N / seconds)} msg/s ${((used.user + used.system) / N).toFixed(1)} µs`]);
  }
}
for (const [name, figures] of results) console.log(name.padEnd(28), figures.join('   '));
await admin.deleteExchange('probe.topic');
await admin.deleteExchange('probe.direct');
await connection.close();
