// Whether RabbitMQ's cost of a message's headers is per table entry: raw amqplib, no Switchboard,
// persistent + confirms awaited per 1000 (guarantee "all"), through a topic exchange, 20,000 messages
// of ~256 B per variant and round, with Switchboard's properties (messageId, timestamp, mandatory).
// Variants interleaved (the order rotates each round), one warm-up round, then ROUNDS counted; prints
// the median msg/s of each and its ratio to the variant without headers. Variants: no headers, the ms
// time header (a number), the same time as a string, the key header, time and key as two entries,
// and both packed into one string entry.
// Run: node examples/probes/amqp-header-entries.mjs [ROUNDS]   (RabbitMQ on RABBITMQ_URL or 127.0.0.1:5672)
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../packages/rabbitmq/package.json', import.meta.url));
const amqplib = require('amqplib');
const N = 20_000;
const ROUNDS = Number(process.argv[2] ?? 5);
const connection = await amqplib.connect(process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672');
const channel = await connection.createConfirmChannel();
channel.on('return', () => undefined);
await channel.assertExchange('probe.headers', 'topic', { durable: false });
const filler = 'x'.repeat(180);
const body = (i) => Buffer.from(JSON.stringify({ orderId: `order-${i}`, productId: `product-${i % 50}`, quantity: 1, filler, sentAt: Date.now() }));
const variants = {
  'no headers': () => undefined,
  'ms time header': () => ({ 'x-sb-timestamp': Date.now() }),
  'ms time as a string': () => ({ 'x-sb-timestamp': String(Date.now()) }),
  'key header': (i) => ({ 'x-sb-key': `product-${i % 50}` }),
  'time + key, two entries': (i) => ({ 'x-sb-timestamp': Date.now(), 'x-sb-key': `product-${i % 50}` }),
  'time + key, one entry': (i) => ({ 'x-sb': `${Date.now()}:product-${i % 50}` }),
};
const names = Object.keys(variants);
const rates = Object.fromEntries(names.map((name) => [name, []]));
let queues = 0;
for (let round = -1; round < ROUNDS; round++) {
  for (let k = 0; k < names.length; k++) {
    const name = names[(k + Math.max(round, 0)) % names.length];
    const queue = `probe.headers.${process.pid}.${queues++}`;
    await channel.assertQueue(queue, { durable: true, arguments: { 'x-expires': 60_000 } });
    await channel.bindQueue(queue, 'probe.headers', queue);
    const started = performance.now();
    for (let i = 0; i < N; i += 1000) {
      for (let j = i; j < i + 1000; j++) {
        const headers = variants[name](j);
        const options = { persistent: true, messageId: `m${j}`, timestamp: Math.floor(Date.now() / 1000), mandatory: true, ...(headers ? { headers } : {}) };
        if (!channel.publish('probe.headers', queue, body(j), options)) await new Promise((resolve) => channel.once('drain', resolve));
      }
      await channel.waitForConfirms();
    }
    if (round >= 0) rates[name].push(N / ((performance.now() - started) / 1000));
    await channel.deleteQueue(queue);
  }
}
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const bare = median(rates['no headers']);
for (const name of names) console.log(`${name.padEnd(26)} ${String(Math.round(median(rates[name]))).padStart(7)} msg/s  ${(median(rates[name]) / bare).toFixed(2)}`);
await connection.close();
