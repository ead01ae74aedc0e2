// Reading a JetStream backlog: raw nats.js consume() against a Switchboard subscription, both with
// concurrency 1 and an ack per message, on the same stored messages. 40,000 messages of ~256 B are
// published first (Switchboard's envelope, into a stream of the probe's own); then 3 rounds, raw then
// Switchboard, each with a durable consumer of its own from the first message. Prints msg/s, the
// ratio, and the socket writes to the server per message (an ack written alone is one write each).
// Run (after `pnpm build`): node examples/probes/nats-consume.mjs   (NATS on NATS_URL or 127.0.0.1:4222)
import { Socket } from 'node:net';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createBus } from '@switchboard/core';
import { createNatsTransport } from '@switchboard/nats';

const N = 40_000;
const ROUNDS = 3;
const DEADLINE_MS = 120_000;
const servers = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const port = Number(new URL(servers).port || 4222);
const run = Date.now().toString(36);
const stream = `PROBE_${run}`;
const prefix = `probe${run}`;

let writes = 0;
const write = Socket.prototype.write;
Socket.prototype.write = function (...args) {
  if (this.remotePort === port) writes++;
  return write.apply(this, args);
};

const nc = await connect({ servers });
const jsm = await jetstreamManager(nc);
const js = jetstream(nc);
await jsm.streams.add({ name: stream, subjects: [`${prefix}.>`] });
const transport = () => createNatsTransport({ servers, stream, subjectPrefix: prefix });
const filler = 'x'.repeat(180);
const publisher = createBus({ transport: await transport(), publisher: { noReceivers: 'ignore' } });
for (let i = 0; i < N; i += 1000) {
  await publisher.publisher.publish(
    'orders',
    Array.from({ length: 1000 }, (_, j) => ({ key: `product-${(i + j) % 50}`, value: { orderId: `o-${i + j}`, quantity: 1, filler } })),
  );
}
await publisher.close();

const withDeadline = (promise, what) => Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: not done within ${DEADLINE_MS} ms`)), DEADLINE_MS).unref())]);

async function raw(round) {
  const durable = `raw_${round}`;
  await jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: `${prefix}.orders` });
  const messages = await (await js.consumers.get(stream, durable)).consume({ max_messages: 64 });
  writes = 0;
  const started = performance.now();
  let read = 0;
  await withDeadline(
    (async () => {
      for await (const m of messages) {
        JSON.parse(Buffer.from(m.data).toString());
        m.ack();
        if (++read === N) break;
      }
    })(),
    'raw',
  );
  const sample = { rate: N / ((performance.now() - started) / 1000), writes: writes / N };
  messages.stop();
  return sample;
}

async function switchboard(round) {
  const bus = createBus({ transport: await transport() });
  let read = 0;
  let started = 0;
  let done;
  const all = new Promise((resolve) => (done = resolve));
  writes = 0;
  await bus.subscriber.subscribe(
    'orders',
    () => {
      if (read === 0) started = performance.now();
      if (++read === N) done();
    },
    { group: `sb_${round}`, startFrom: 'earliest', concurrency: 1 },
  );
  await withDeadline(all, 'switchboard');
  const sample = { rate: N / ((performance.now() - started) / 1000), writes: writes / N };
  await bus.close();
  return sample;
}

try {
  for (let round = 0; round < ROUNDS; round++) {
    const a = await raw(round);
    const b = await switchboard(round);
    console.log(
      `round ${round + 1}: raw consume() ${Math.round(a.rate)} msg/s (${a.writes.toFixed(2)} writes/msg), Switchboard ${Math.round(b.rate)} msg/s (${b.writes.toFixed(2)} writes/msg), ratio ${(b.rate / a.rate).toFixed(2)}`,
    );
  }
} finally {
  await jsm.streams.delete(stream).catch(() => undefined);
  await nc.close();
}
