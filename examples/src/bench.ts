/**
 * `pnpm bench`: throughput and latency through Switchboard and through the raw client (kafkajs,
 * amqplib, ioredis) with the same payloads and equivalent guarantees, in the same run, as ratios.
 *
 *   pnpm bench [--only memory,kafka,rabbitmq,redis,redis-streams,nats,mqtt,postgres,outbox,peers] [--peers] [--messages N] [--rounds R] [--warmup W] [--json]
 *
 * `--peers` adds the peers row set (NestJS microservices on RabbitMQ and Kafka, message-queue-toolkit on
 * RabbitMQ), installed by the bench.
 *
 * Bounded: N messages per measurement (default 20000), R rounds (default 5), every wait capped at
 * 60 s; loopback brokers only (scripts/brokers.sh up). Progress goes to stderr.
 *
 * How it compares: raw and Switchboard run interleaved, one of each per round (the order alternates
 * between rounds), and the ratio is taken within each round, so a machine that slows down for a while
 * slows both sides of a ratio. Throughput rows first run W uncounted warm-up rounds per side (default 1),
 * so no counted round measures V8 compiling the code under test. The table shows the median of those per-round ratios and their range;
 * the msg/s columns are medians. p50/p99 of an end-to-end row are measured under the burst (publish
 * as fast as possible): they include queueing, they are not idle latency; the "single publish every
 * 5 ms" rows measure latency at a low rate (each publish awaited), a publish call's and end to end. The 1,000,000-message burst
 * runs in a fresh child process, so its peak RSS is not inflated by earlier measurements.
 */
import * as amqplib from 'amqplib';
import { Redis } from 'ioredis';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { fileURLToPath } from 'node:url';
import { bytesCodec, createBus, createMemoryTransport, newMessageId, type Bus, type Envelope, type Transport } from '@switchboard/core';
import { createKafkaTransport, platformaticRunsOn } from '@switchboard/kafka';
import { createRabbitTransport } from '@switchboard/rabbitmq';
import { createRedisPubSubTransport, encodeFrame } from '@switchboard/redis-pubsub';
import { createRedisStreamsTransport } from '@switchboard/redis-streams';
import { createNatsTransport } from '@switchboard/nats';
import { connect as natsConnect, headers as natsHeaders } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { createMqttTransport } from '@switchboard/mqtt';
import mqtt from 'mqtt';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { createPostgresQueueTransport, PostgresOutbox } from '@switchboard/postgres';
import { MySqlOutbox } from '@switchboard/mysql';
import mysql from 'mysql2/promise';

const argv = process.argv.slice(2);
const arg = (flag: string) => {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
};
const N = Number(arg('--messages') ?? 20_000);
const ROUNDS = Number(arg('--rounds') ?? 5);
/**
 * Uncounted rounds each side runs before a throughput row's counted rounds (`--warmup W`, default 1):
 * a row's first round otherwise measures V8 compiling the code it runs, the longer path (Switchboard's)
 * more than the short one. The round index given to a warm-up is ROUNDS + i, so its topics are its own.
 */
const WARMUP = Number(arg('--warmup') ?? 1);
const JSON_OUT = argv.includes('--json');
const ONLY = [...(arg('--only') ?? 'memory,kafka,rabbitmq,redis,redis-streams,nats,mqtt,postgres,outbox').split(','), ...(argv.includes('--peers') ? ['peers'] : [])];
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const KAFKA_BROKERS = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const RABBITMQ_URL = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const WAIT_MS = 60_000;
if (!Number.isInteger(N) || N < 100 || N > 2_000_000) throw new Error('--messages: an integer from 100 to 2000000');

const now = () => performance.timeOrigin + performance.now();
const run = Math.random().toString(36).slice(2, 8);
/** ~256-byte JSON payload, the same for raw and Switchboard. */
const filler = 'x'.repeat(180);
const payload = (i: number) => ({ orderId: `order-${i}`, productId: `product-${i % 50}`, quantity: 1, filler, sentAt: now() });

function progress(text: string): void {
  if (!JSON_OUT && process.stderr.isTTY) process.stderr.write(`\r\x1b[K[bench] ${text}`);
  else if (!JSON_OUT) process.stderr.write(`[bench] ${text}\n`);
}

interface Sample {
  msgPerSec: number;
  p50?: number;
  p99?: number;
}
interface Row {
  transport: string;
  scenario: string;
  raw?: Sample;
  switchboard: Sample;
  /** Switchboard ÷ raw per round (interleaved rounds); absent where the two were not paired. */
  ratios?: number[];
  /** The target for this row (#14), printed beside the figure. */
  target?: string;
  note?: string;
}
const rows: Row[] = [];

function median(samples: Sample[]): Sample {
  const sorted = [...samples].sort((a, b) => a.msgPerSec - b.msgPerSec);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Counts arrivals; resolves when `n` arrived (bounded). Records latency from `sentAt`. */
class Arrivals {
  count = 0;
  readonly latencies: number[] = [];
  private target = Infinity;
  private done: (() => void) | undefined;
  arrive(sentAt?: number): void {
    this.count++;
    if (sentAt !== undefined) this.latencies.push(now() - sentAt);
    if (this.count >= this.target) this.done?.();
  }
  wait(n: number): Promise<void> {
    this.target = n;
    if (this.count >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${this.count}/${n} arrived within ${WAIT_MS} ms`)), WAIT_MS);
      this.done = () => (clearTimeout(timer), resolve());
    });
  }
  sample(started: number): Sample {
    const seconds = (now() - started) / 1000;
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
    return { msgPerSec: Math.round(this.count / seconds), ...(sorted.length ? { p50: at(0.5)!, p99: at(0.99)! } : {}) };
  }
}

/** How a measurement warms up: throughput rows run WARMUP uncounted rounds; latency and I/O-bound rows (paced, 20 ms handlers) run none. */
interface Warm {
  warmup?: number;
}

async function warmUp(measures: readonly ((round: number) => Promise<Sample>)[], warm: Warm): Promise<void> {
  const count = warm.warmup ?? WARMUP;
  for (let i = 0; i < count; i++) for (const measure of measures) await measure(ROUNDS + i);
}

async function rounds(measure: (round: number) => Promise<Sample>, warm: Warm = {}): Promise<Sample> {
  await warmUp([measure], warm);
  const samples: Sample[] = [];
  for (let r = 0; r < ROUNDS; r++) samples.push(await measure(r));
  return median(samples);
}

type Measure = (round: number) => Promise<Sample>;

/**
 * Several sides interleaved: each round measures every side once, the order rotating between rounds
 * (two sides: raw first in even rounds, Switchboard first in odd ones). Returns each side's samples,
 * round by round, so ratios can be taken within a round.
 */
async function interleaved(sides: readonly Measure[], warm: Warm): Promise<Sample[][]> {
  await warmUp(sides, warm);
  const samples: Sample[][] = sides.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < sides.length; k++) {
      const side = (r + k) % sides.length;
      samples[side]!.push(await sides[side]!(r));
    }
  }
  return samples;
}

/** Medians of each side and the per-round ratios Switchboard ÷ raw. */
function pairOf(raw: readonly Sample[], switchboard: readonly Sample[]): Pick<Row, 'raw' | 'switchboard' | 'ratios'> {
  return { raw: median([...raw]), switchboard: median([...switchboard]), ratios: switchboard.map((sample, r) => sample.msgPerSec / raw[r]!.msgPerSec) };
}

/** Raw and Switchboard interleaved (see {@link interleaved}): medians of each side and the per-round ratios. */
async function paired(raw: Measure, switchboard: Measure, warm: Warm = {}): Promise<Pick<Row, 'raw' | 'switchboard' | 'ratios'>> {
  const [rawSamples, sbSamples] = await interleaved([raw, switchboard], warm);
  return pairOf(rawSamples!, sbSamples!);
}

/** One Switchboard side against two raw clients in the same rounds: both ratios come from the same Switchboard samples. */
async function pairedWithBoth(rawA: Measure, rawB: Measure, switchboard: Measure): Promise<[Pick<Row, 'raw' | 'switchboard' | 'ratios'>, Pick<Row, 'raw' | 'switchboard' | 'ratios'>]> {
  const [a, b, sb] = await interleaved([rawA, rawB, switchboard], {});
  return [pairOf(a!, sb!), pairOf(b!, sb!)];
}

/**
 * Raw publish rounds of one broker: each call publishes N messages to a fresh topic
 * `bench.<run>.<broker>.<kind>.<round>` (prepared first where the broker needs it) and reports msg/s.
 */
function rawPublishRounds(broker: string, prepare?: (topic: string) => Promise<void>) {
  return (kind: string, publish: (topic: string) => Promise<number>) =>
    async (r: number): Promise<Sample> => {
      const topic = `bench.${run}.${broker}.${kind}.${r}`;
      await prepare?.(topic);
      const started = await publish(topic);
      return { msgPerSec: Math.round(N / ((now() - started) / 1000)) };
    };
}

/**
 * The publish rows of a broker: batches of 1000 against the raw batch; one message per call (1000 in
 * flight) against the raw batch API too (the target's definition), and against the raw client's own
 * one-per-call path. Each paired with the raw client in interleaved rounds.
 */
async function publishRows(
  transport: string,
  guarantee: string,
  raw: { batch: (r: number) => Promise<Sample>; oneAtATime: (r: number) => Promise<Sample> },
  sbTransport: () => Promise<Transport>,
  prepare?: (topic: string) => Promise<void>,
): Promise<void> {
  const short = transport === 'rabbitmq' ? 'rabbit' : transport;
  const publishing = longLivedBus(sbTransport);
  try {
    rows.push({
      transport,
      scenario: `publish, batches of 1000, ${guarantee}`,
      ...(await paired(
        raw.batch,
        sbPublishOnly(publishing.get, (r) => `bench.${run}.${short}.sbpub.${r}`, false, prepare),
      )),
      target: '>= 0.95',
    });
    const lean = longLivedBus(sbTransport, LEAN);
    try {
      rows.push({
        transport,
        scenario: `publish, batches of 1000, ${guarantee}, lean envelope (id 'given', timestamp 'broker')`,
        ...(await paired(
          raw.batch,
          sbPublishOnly(lean.get, (r) => `bench.${run}.${short}.sblean.${r}`, false, prepare),
        )),
        target: '>= 0.95',
      });
    } finally {
      await lean.close();
    }
    rows.push({
      transport,
      scenario: `one message per call (1000 in flight) vs raw batches, ${guarantee}`,
      ...(await paired(
        raw.batch,
        sbPublishOnly(publishing.get, (r) => `bench.${run}.${short}.sbone.${r}`, true, prepare),
      )),
      target: '>= 0.90',
    });
    rows.push({
      transport,
      scenario: `one message per call (1000 in flight) vs raw one per call, ${guarantee}`,
      ...(await paired(
        raw.oneAtATime,
        sbPublishOnly(publishing.get, (r) => `bench.${run}.${short}.sbone2.${r}`, true, prepare),
      )),
    });
    rows.push(await oneVsOwnBatches(transport, publishing.get, guarantee, prepare));
  } finally {
    await publishing.close();
  }
}

/** One publish() per message against the same bus's own batches of 1000 (both columns Switchboard): what coalescing leaves of the batch rate. */
async function oneVsOwnBatches(transport: string, bus: () => Promise<Bus>, guarantee: string, prepare?: (topic: string) => Promise<void>): Promise<Row> {
  const short = transport === 'rabbitmq' ? 'rabbit' : transport;
  return {
    transport,
    scenario: `one message per call (1000 in flight) vs Switchboard's own batches of 1000, ${guarantee}`,
    ...(await paired(
      sbPublishOnly(bus, (r) => `bench.${run}.${short}.ownbatch.${r}`, false, prepare),
      sbPublishOnly(bus, (r) => `bench.${run}.${short}.ownone.${r}`, true, prepare),
    )),
    target: '>= 0.90',
    note: "the raw column is Switchboard's own batch rate (same bus)",
  };
}

/** Single publishes at a low rate (one every 5 ms, each awaited): latency of a publish call, raw and Switchboard, and Switchboard end to end. */
const LOW_RATE_COUNT = 300;
const LOW_RATE_GAP_MS = 5;
async function lowRateRows(
  transport: string,
  rawSendOne: (topic: string, i: number) => Promise<unknown>,
  sbTransport: () => Promise<Transport>,
  prepare?: (topic: string) => Promise<void>,
): Promise<void> {
  const short = transport === 'rabbitmq' ? 'rabbit' : transport;
  const pace = () => new Promise((resolve) => setTimeout(resolve, LOW_RATE_GAP_MS));
  const percentiles = (latencies: number[], started: number): Sample => {
    const sorted = [...latencies].sort((a, b) => a - b);
    const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
    return { msgPerSec: Math.round(latencies.length / ((now() - started) / 1000)), p50: at(0.5), p99: at(0.99) };
  };
  const rawLatency = async (r: number): Promise<Sample> => {
    const topic = `bench.${run}.${short}.rawlat.${r}`;
    await prepare?.(topic);
    const latencies: number[] = [];
    const started = now();
    for (let i = 0; i < LOW_RATE_COUNT; i++) {
      const sent = now();
      await rawSendOne(topic, i);
      latencies.push(now() - sent);
      await pace();
    }
    return percentiles(latencies, started);
  };
  const sbLatency = async (r: number): Promise<Sample> => {
    const bus = createBus({ transport: await sbTransport(), publisher: { noReceivers: 'ignore' } });
    try {
      const topic = `bench.${run}.${short}.sblat.${r}`;
      await prepare?.(topic);
      const latencies: number[] = [];
      const started = now();
      for (let i = 0; i < LOW_RATE_COUNT; i++) {
        const sent = now();
        await bus.publisher.publish(topic, { key: `product-${i % 50}`, value: payload(i) });
        latencies.push(now() - sent);
        await pace();
      }
      return percentiles(latencies, started);
    } finally {
      await bus.close();
    }
  };
  const publishLatency = await paired(rawLatency, sbLatency, { warmup: 0 });
  rows.push({
    transport,
    scenario: `single publish every ${LOW_RATE_GAP_MS} ms, each awaited: publish latency`,
    raw: publishLatency.raw!,
    switchboard: publishLatency.switchboard,
    note: `${LOW_RATE_COUNT} publishes per round; msg/s = the paced rate`,
  });
  const endToEnd = await rounds(
    async (r) => {
      const bus = createBus({ transport: await sbTransport() });
      try {
        const topic = `bench.${run}.${short}.sblate2e.${r}`;
        await prepare?.(topic);
        const arrivals = new Arrivals();
        const caps = bus.transport.capabilities;
        await bus.subscriber.subscribe<{ sentAt: number }>(topic, (m) => arrivals.arrive(m.value.sentAt), {
          ...(caps.consumerGroups ? { group: `bench-${topic}` } : {}),
          ...(caps.replay ? { startFrom: 'earliest' as const } : {}),
        });
        const started = now();
        for (let i = 0; i < LOW_RATE_COUNT; i++) {
          await bus.publisher.publish(topic, { key: `product-${i % 50}`, value: payload(i) });
          await pace();
        }
        await arrivals.wait(LOW_RATE_COUNT);
        return arrivals.sample(started);
      } finally {
        await bus.close();
      }
    },
    { warmup: 0 },
  );
  rows.push({
    transport,
    scenario: `single publish every ${LOW_RATE_GAP_MS} ms: end-to-end latency (publish to handler)`,
    switchboard: endToEnd,
    note: 'Switchboard only',
  });
}

function medianOf(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Switchboard: publish N in batches of 1000 (or one message per call, issued together). */
/** The envelope with only what each broker needs (`envelope: LEAN` rows): generated ids and stamped times stay off the wire. */
const LEAN: Envelope = { id: 'given', timestamp: 'broker' };

/**
 * Whether Switchboard's messages carry a key. Against raw clients they do (keys decide partitions and
 * per-key order); against the peers they do not, as the peers' messages have none (NestJS `emit`,
 * message-queue-toolkit `publish`): the same messages on both sides.
 */
type Keys = 'keyed' | 'unkeyed';

function outgoing(i: number, keys: Keys): { key?: string; value: ReturnType<typeof payload> } {
  return keys === 'keyed' ? { key: `product-${i % 50}`, value: payload(i) } : { value: payload(i) };
}

async function sbPublish(bus: Bus, topic: string, oneAtATime: boolean, keys: Keys = 'keyed'): Promise<number> {
  const started = now();
  for (let i = 0; i < N; i += 1000) {
    const count = Math.min(1000, N - i);
    if (oneAtATime) await Promise.all(Array.from({ length: count }, (_, j) => bus.publisher.publish(topic, outgoing(i + j, keys))));
    else
      await bus.publisher.publish(
        topic,
        Array.from({ length: count }, (_, j) => outgoing(i + j, keys)),
      );
    if (i % 5000 === 0) progress(`${topic}: published ${i}/${N}`);
  }
  return started;
}

/** One end-to-end round; a fresh group per topic, from the earliest where the transport keeps messages (nothing skipped). */
function sbEndToEnd(
  transport: () => Promise<Transport>,
  topic: (r: number) => string,
  concurrency: number,
  beforePublish?: (topic: string) => Promise<void>,
  envelope?: Envelope,
  keys: Keys = 'keyed',
): (r: number) => Promise<Sample> {
  return async (r) => {
    const bus = createBus({ transport: await transport(), ...(envelope ? { publisher: { envelope } } : {}) });
    try {
      const t = topic(r);
      await beforePublish?.(t);
      const arrivals = new Arrivals();
      const caps = bus.transport.capabilities;
      await bus.subscriber.subscribe<{ sentAt: number }>(t, (m) => arrivals.arrive(m.value.sentAt), {
        concurrency,
        ...(caps.consumerGroups ? { group: `bench-${t}` } : {}),
        ...(caps.replay ? { startFrom: 'earliest' as const } : {}),
      });
      const started = await sbPublish(bus, t, false, keys);
      await arrivals.wait(N);
      return arrivals.sample(started);
    } finally {
      await bus.close();
    }
  };
}

/**
 * One bus for every publish round of a suite, created on first use: an application keeps its
 * publisher, as the raw side keeps its producer (no connection setup or metadata warm-up inside a round).
 */
function longLivedBus(transport: () => Promise<Transport>, envelope?: Envelope): { get: () => Promise<Bus>; close: () => Promise<void> } {
  let bus: Promise<Bus> | undefined;
  return {
    get: () => (bus ??= transport().then((t) => createBus({ transport: t, publisher: { noReceivers: 'ignore', ...(envelope ? { envelope } : {}) } }))),
    close: async () => {
      if (bus) await (await bus).close();
    },
  };
}

function sbPublishOnly(
  bus: () => Promise<Bus>,
  topic: (r: number) => string,
  oneAtATime: boolean,
  beforePublish?: (topic: string) => Promise<void>,
  keys: Keys = 'keyed',
): (r: number) => Promise<Sample> {
  return async (r) => {
    const b = await bus();
    const t = topic(r);
    await beforePublish?.(t);
    const started = await sbPublish(b, t, oneAtATime, keys);
    return { msgPerSec: Math.round(N / ((now() - started) / 1000)) };
  };
}

/**
 * I/O-bound handlers (20 ms each), 50 keys, concurrency 64: ordering "partition" against "key". The
 * messages are published before the subscription starts (from the earliest where the transport keeps
 * them); throughput from the first handler call to the last. Counts: 600 under "partition" (one
 * handler per partition or lane), 6000 under "key", so each measurement takes a few seconds.
 */
async function keyParallelism(transport: () => Promise<Transport>, topic: (ordering: string, r: number) => string, beforePublish?: (topic: string) => Promise<void>): Promise<Row> {
  const measure = (ordering: 'partition' | 'key', count: number) =>
    rounds(
      async (r) => {
        const bus = createBus({ transport: await transport(), publisher: { noReceivers: 'ignore' } });
        try {
          const t = topic(ordering, r);
          await beforePublish?.(t);
          const arrivals = new Arrivals();
          let first: number | undefined;
          const subscribe = () =>
            bus.subscriber.subscribe(
              t,
              async () => {
                first ??= now();
                await new Promise((resolve) => setTimeout(resolve, 20));
                arrivals.arrive();
              },
              { group: 'bench', concurrency: 64, ordering, ...(bus.transport.capabilities.replay ? { startFrom: 'earliest' as const } : {}) },
            );
          // Where nothing is kept for a group that does not exist yet, it must exist before publishing.
          const subscription = bus.transport.capabilities.replay ? undefined : await subscribe();
          for (let i = 0; i < count; i += 1000)
            await bus.publisher.publish(
              t,
              Array.from({ length: Math.min(1000, count - i) }, (_, j) => ({ key: `customer-${(i + j) % 50}`, value: payload(i + j) })),
            );
          if (!subscription) await subscribe();
          await arrivals.wait(count);
          return { msgPerSec: Math.round((count - 1) / ((now() - first!) / 1000)) };
        } finally {
          await bus.close();
        }
      },
      { warmup: 0 },
    );
  const partition = await measure('partition', 600);
  const key = await measure('key', 6000);
  return {
    transport: '',
    scenario: '20 ms handler, 50 keys, concurrency 64: ordering partition vs key',
    raw: partition,
    switchboard: key,
    note: '"raw" column = Switchboard with ordering "partition"',
  };
}

// ───────────── memory ─────────────
/** Messages per bytes-codec round: at about a million a second, N alone would be over in milliseconds. */
const BYTES_COUNT = Math.min(2_000_000, N * 10);

/**
 * In memory there is no raw client: the baseline is a hand-written loop doing the same per-message
 * work a bus cannot skip (encode the ~256 B JSON payload, decode it, call the handler), in batches of
 * 1000 with one await per batch. Switchboard rows: end to end through the in-memory transport with
 * the JSON codec against that loop, and with the bytes codec (payloads already bytes: no JSON work)
 * against the 1,000,000 msg/s target.
 */
async function benchMemory(): Promise<void> {
  const handWritten = async (): Promise<Sample> => {
    let handled = 0;
    const handler = (value: { quantity: number }) => {
      handled += value.quantity;
    };
    const started = now();
    for (let i = 0; i < N; i += 1000) {
      const batch = Array.from({ length: Math.min(1000, N - i) }, (_, j) => Buffer.from(JSON.stringify(payload(i + j))));
      for (const bytes of batch) handler(JSON.parse(bytes.toString('utf8')) as { quantity: number });
      await Promise.resolve();
    }
    if (handled !== N) throw new Error('hand-written loop lost messages');
    return { msgPerSec: Math.round(N / ((now() - started) / 1000)) };
  };
  const endToEnd =
    (codec: 'json' | 'bytes', count: number) =>
    async (r: number): Promise<Sample> => {
      const bus = createBus({ transport: createMemoryTransport() });
      const arrivals = new Arrivals();
      const topic = `mem.${codec}.${r}`;
      await bus.subscriber.subscribe(topic, () => arrivals.arrive(), { concurrency: 4, ...(codec === 'bytes' ? { codec: bytesCodec } : {}) });
      // bytes: payloads the caller already holds as bytes (encoded before the clock starts, as a relay or proxy has them)
      const encoded = codec === 'bytes' ? Array.from({ length: 1000 }, (_, i) => Buffer.from(JSON.stringify(payload(i)))) : [];
      const started = now();
      for (let i = 0; i < count; i += 1000) {
        const size = Math.min(1000, count - i);
        await bus.publisher.publish(
          topic,
          codec === 'bytes' ? Array.from({ length: size }, (_, j) => ({ payload: encoded[j]! })) : Array.from({ length: size }, (_, j) => ({ value: payload(i + j) })),
        );
      }
      await arrivals.wait(count);
      await bus.close();
      return arrivals.sample(started);
    };
  rows.push({ transport: 'memory', scenario: `end to end, JSON codec vs hand-written JSON loop`, ...(await paired(() => handWritten(), endToEnd('json', N))), target: '>= 0.80' });
  const memoryBus = longLivedBus(async () => createMemoryTransport());
  try {
    rows.push(await oneVsOwnBatches('memory', memoryBus.get, 'JSON, no subscriber'));
  } finally {
    await memoryBus.close();
  }
  rows.push({
    transport: 'memory',
    scenario: `end to end, bytes codec (payloads already bytes), ${BYTES_COUNT} messages`,
    switchboard: await rounds(endToEnd('bytes', BYTES_COUNT)),
    target: '>= 1,000,000 msg/s',
    note: 'encoded before the clock starts, never decoded; 10x the messages: a round of N would last milliseconds',
  });
  rows.push({
    ...(await keyParallelism(
      async () => createMemoryTransport(),
      (o, r) => `bench.${run}.memory.keys-${o}.${r}`,
    )),
    transport: 'memory',
  });
  rows.push(await burstInChild());
}

/** Peak RSS while 1,000,000 messages are published (batches of 1000) and consumed, in a fresh process. */
async function burstInChild(): Promise<Row> {
  const { execFile } = await import('node:child_process');
  const output = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, [fileURLToPath(import.meta.url), '--burst-child'], { timeout: 180_000 }, (error, stdout) => (error ? reject(error) : resolve(stdout))),
  );
  const { msgPerSec, peakMb } = JSON.parse(output.trim().split('\n').pop()!) as { msgPerSec: number; peakMb: number };
  return { transport: 'memory', scenario: '1,000,000-message burst, JSON (fresh process)', switchboard: { msgPerSec }, target: 'RSS < 256 MB', note: `peak RSS ${peakMb} MB` };
}

async function burstChild(): Promise<void> {
  const burst = 1_000_000;
  const bus = createBus({ transport: createMemoryTransport() });
  const arrivals = new Arrivals();
  await bus.subscriber.subscribe('mem.burst', () => arrivals.arrive(), { concurrency: 4 });
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const started = now();
  const body = { orderId: 'o', productId: 'p', quantity: 1, filler };
  for (let i = 0; i < burst; i += 1000) {
    await bus.publisher.publish(
      'mem.burst',
      Array.from({ length: 1000 }, () => ({ value: body })),
    );
    peak = Math.max(peak, process.memoryUsage().rss);
  }
  await arrivals.wait(burst);
  clearInterval(sampler);
  const seconds = (now() - started) / 1000;
  await bus.close();
  console.log(JSON.stringify({ msgPerSec: Math.round(burst / seconds), peakMb: Math.round(peak / 1024 / 1024) }));
}

// ───────────── kafka, driver "platformatic" ─────────────
/**
 * Switchboard on driver "platformatic" against both raw clients in the same run: raw kafkajs (the
 * rows' own raw functions, passed in) and raw @platformatic/kafka 2 (a plain Producer, batches of 1000
 * or one send per message with 1000 in flight, acks=-1; a Consumer's stream from the earliest offset,
 * autocommit). Needs Node >= 22.22; on an older Node one row says so.
 */
async function benchKafkaPlatformatic(
  ensure: (topic: string) => Promise<void>,
  kafkajs: { batch: (r: number) => Promise<Sample>; oneAtATime: (r: number) => Promise<Sample>; endToEnd: (r: number) => Promise<Sample> },
): Promise<void> {
  if (!platformaticRunsOn()) {
    rows.push({ transport: 'kafka', scenario: 'driver "platformatic"', switchboard: { msgPerSec: 0 }, note: `skipped: needs Node >= 22.22, this is ${process.versions.node}` });
    return;
  }
  const plt = await import('@platformatic/kafka');
  const producer = new plt.Producer({ clientId: 'bench-raw-platformatic', bootstrapBrokers: KAFKA_BROKERS });
  const record = (i: number) => ({ key: Buffer.from(`product-${i % 50}`), value: Buffer.from(JSON.stringify(payload(i))) });
  const rawBatches = async (topic: string) => {
    const started = now();
    for (let i = 0; i < N; i += 1000) await producer.send({ acks: -1, messages: Array.from({ length: Math.min(1000, N - i) }, (_, j) => ({ topic, ...record(i + j) })) });
    return started;
  };
  const rawOneAtATime = async (topic: string) => {
    const started = now();
    for (let i = 0; i < N; i += 1000) await Promise.all(Array.from({ length: Math.min(1000, N - i) }, (_, j) => producer.send({ acks: -1, messages: [{ topic, ...record(i + j) }] })));
    return started;
  };
  const rawRound = rawPublishRounds('kafka', ensure);
  /** Raw end to end into a fresh topic per row and round (`kind`): a topic read before would hand the consumer old records. */
  const rawEndToEndInto =
    (kind: string) =>
    async (r: number): Promise<Sample> => {
      const t = `bench.${run}.kafka.${kind}.${r}`;
      await ensure(t);
      const consumer = new plt.Consumer({ clientId: 'bench-raw-platformatic', groupId: `bench-raw-${t}`, bootstrapBrokers: KAFKA_BROKERS, maxWaitTime: 250 });
      const arrivals = new Arrivals();
      const stream = await consumer.consume({ topics: [t], mode: 'earliest', autocommit: 100 });
      stream.on('data', (message) => arrivals.arrive((JSON.parse(message.value.toString()) as { sentAt: number }).sentAt));
      const started = await rawBatches(t);
      await arrivals.wait(N);
      await stream.close();
      await consumer.close();
      return arrivals.sample(started);
    };
  const sbTransport = () => createKafkaTransport({ brokers: KAFKA_BROKERS, partitions: 3, driver: 'platformatic' });
  const publishing = longLivedBus(sbTransport);
  const sbBatches = sbPublishOnly(publishing.get, (r) => `bench.${run}.kafka.pltpub.${r}`, false, ensure);
  const sbOne = sbPublishOnly(publishing.get, (r) => `bench.${run}.kafka.pltone.${r}`, true, ensure);
  try {
    const driver = 'driver "platformatic"';
    // Each Switchboard round is compared with both raw clients measured in the same round.
    const [batchVsKafkajs, batchVsPlatformatic] = await pairedWithBoth(kafkajs.batch, rawRound('pltrawpub', rawBatches), sbBatches);
    rows.push({ transport: 'kafka', scenario: `publish, batches of 1000, acks=all, ${driver}, vs raw kafkajs`, ...batchVsKafkajs, target: '>= 1.0' });
    rows.push({ transport: 'kafka', scenario: `publish, batches of 1000, acks=all, ${driver}, vs raw @platformatic/kafka`, ...batchVsPlatformatic, target: '>= 0.9' });
    const [oneVsKafkajs, oneVsPlatformatic] = await pairedWithBoth(kafkajs.oneAtATime, rawRound('pltrawone', rawOneAtATime), sbOne);
    rows.push({ transport: 'kafka', scenario: `one message per call, acks=all, ${driver}, vs raw kafkajs one per call`, ...oneVsKafkajs, target: '>= 1.0' });
    rows.push({ transport: 'kafka', scenario: `one message per call, acks=all, ${driver}, vs raw @platformatic/kafka one per call`, ...oneVsPlatformatic, target: '>= 0.9' });
    const leanPublishing = longLivedBus(sbTransport, LEAN);
    try {
      rows.push({
        transport: 'kafka',
        scenario: `publish, batches of 1000, acks=all, ${driver}, lean envelope, vs raw @platformatic/kafka`,
        ...(await paired(
          rawRound('pltrawlean', rawBatches),
          sbPublishOnly(leanPublishing.get, (r) => `bench.${run}.kafka.pltlean.${r}`, false, ensure),
        )),
        target: '>= 0.9',
      });
    } finally {
      await leanPublishing.close();
    }
    const sbEnd = sbEndToEnd(sbTransport, (r) => `bench.${run}.kafka.pltsbe2e.${r}`, 3, ensure);
    rows.push({
      transport: 'kafka',
      scenario: `end to end (3 partitions, concurrency 3), ${driver}, vs raw @platformatic/kafka consuming`,
      ...(await paired(rawEndToEndInto('plte2e'), sbEnd)),
      target: '>= 0.9',
    });
    rows.push({
      transport: 'kafka',
      scenario: `end to end (3 partitions, concurrency 3), ${driver}, lean envelope, vs raw @platformatic/kafka consuming`,
      ...(await paired(
        rawEndToEndInto('plte2elean'),
        sbEndToEnd(sbTransport, (r) => `bench.${run}.kafka.pltlean2e.${r}`, 3, ensure, LEAN),
      )),
      target: '>= 0.9',
    });
    rows.push({ transport: 'kafka', scenario: `end to end (3 partitions, concurrency 3), ${driver}, vs raw kafkajs eachMessage`, ...(await paired(kafkajs.endToEnd, sbEnd)) });
  } finally {
    await publishing.close();
    await producer.close();
  }
}

// ───────────── kafka ─────────────
async function benchKafka(): Promise<void> {
  const kafka = new Kafka({ clientId: 'bench-raw', brokers: KAFKA_BROKERS, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const topics = new Set<string>();
  const ensure = async (topic: string) => {
    if (topics.has(topic)) return;
    await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }], waitForLeaders: true });
    topics.add(topic);
  };
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  /** Raw batches; with `envelope`, each record also carries what Switchboard's envelope adds (the id header and the record timestamp). */
  const rawPublishWith = (envelope: boolean) => async (topic: string) => {
    const started = now();
    for (let i = 0; i < N; i += 1000) {
      await producer.send({
        topic,
        acks: -1,
        messages: Array.from({ length: Math.min(1000, N - i) }, (_, j) => ({
          key: `product-${(i + j) % 50}`,
          value: JSON.stringify(payload(i + j)),
          ...(envelope ? { headers: { 'x-sb-id': newMessageId() }, timestamp: String(Date.now()) } : {}),
        })),
      });
    }
    return started;
  };
  const rawPublish = rawPublishWith(false);
  /** Raw, one send() per message, a batch's worth in flight at once (what a one-per-call Switchboard publish is compared with). */
  const rawPublishOneAtATime = async (topic: string) => {
    const started = now();
    for (let i = 0; i < N; i += 1000) {
      await Promise.all(
        Array.from({ length: Math.min(1000, N - i) }, (_, j) => producer.send({ topic, acks: -1, messages: [{ key: `product-${(i + j) % 50}`, value: JSON.stringify(payload(i + j)) }] })),
      );
    }
    return started;
  };
  const rawPublishRound = rawPublishRounds('kafka', ensure);
  const sbTransport = () => createKafkaTransport({ brokers: KAFKA_BROKERS, partitions: 3 });
  try {
    await publishRows('kafka', 'acks=all', { batch: rawPublishRound('rawpub', rawPublish), oneAtATime: rawPublishRound('rawone', rawPublishOneAtATime) }, sbTransport, ensure);
    rows.push({
      transport: 'kafka',
      scenario: 'raw + the envelope (id header, timestamp) vs raw, batches',
      ...(await paired(rawPublishRound('rawpub', rawPublish), rawPublishRound('rawenv', rawPublishWith(true)))),
      note: 'both columns raw kafkajs: what the envelope alone costs',
    });

    const rawE2e = async (r: number): Promise<Sample> => {
      const t = `bench.${run}.kafka.rawe2e.${r}`;
      await ensure(t);
      const consumer = kafka.consumer({ groupId: `bench-raw-${t}`, maxWaitTimeInMs: 250 });
      await consumer.connect();
      await consumer.subscribe({ topics: [t], fromBeginning: true });
      const arrivals = new Arrivals();
      const joined = new Promise((resolve) => consumer.on(consumer.events.GROUP_JOIN, resolve));
      await consumer.run({ partitionsConsumedConcurrently: 3, eachMessage: async ({ message }) => arrivals.arrive((JSON.parse(message.value!.toString()) as { sentAt: number }).sentAt) });
      await joined;
      const started = await rawPublish(t);
      await arrivals.wait(N);
      await consumer.disconnect();
      return arrivals.sample(started);
    };
    rows.push({
      transport: 'kafka',
      scenario: 'end to end (3 partitions, concurrency 3)',
      target: '>= 0.90',
      ...(await paired(
        rawE2e,
        sbEndToEnd(sbTransport, (r) => `bench.${run}.kafka.sbe2e.${r}`, 3, ensure),
      )),
    });

    await benchKafkaPlatformatic(ensure, { batch: rawPublishRound('rawpub', rawPublish), oneAtATime: rawPublishRound('rawone', rawPublishOneAtATime), endToEnd: rawE2e });
    await lowRateRows('kafka', (topic, i) => producer.send({ topic, acks: -1, messages: [{ key: `product-${i % 50}`, value: JSON.stringify(payload(i)) }] }), sbTransport, ensure);
    rows.push({ ...(await keyParallelism(sbTransport, (o, r) => `bench.${run}.kafka.keys-${o}.${r}`, ensure)), transport: 'kafka' });

    // Healthy partition throughput while another partition backs off a poison message.
    const healthy = async (poison: boolean, r: number) => {
      const bus = createBus({ transport: await createKafkaTransport({ brokers: KAFKA_BROKERS, partitions: 2 }) });
      try {
        const t = `bench.${run}.kafka.poison-${poison}.${r}`;
        const arrivals = new Arrivals();
        const partitioner = Partitioners.DefaultPartitioner();
        const meta = [0, 1].map((p) => ({ partitionId: p, partitionErrorCode: 0, leader: 0, replicas: [0], isr: [0] }));
        const keyOn = (p: number) => {
          for (let i = 0; ; i++) if (partitioner({ topic: t, partitionMetadata: meta, message: { key: `k${i}`, value: null } }) === p) return `k${i}`;
        };
        await bus.subscriber.subscribe<{ poison?: boolean; sentAt: number }>(
          t,
          (m) => {
            if (m.value.poison) throw new Error('poison');
            arrivals.arrive(m.value.sentAt);
          },
          { group: 'bench', startFrom: 'earliest', concurrency: 2, retry: { maxAttempts: 3, initialIntervalMs: 5000 } },
        );
        if (poison) await bus.publisher.publish(t, { key: keyOn(0), value: { poison: true, sentAt: now() } });
        const healthyKey = keyOn(1);
        const started = now();
        for (let i = 0; i < N; i += 1000)
          await bus.publisher.publish(
            t,
            Array.from({ length: Math.min(1000, N - i) }, (_, j) => ({ key: healthyKey, value: payload(i + j) })),
          );
        await arrivals.wait(N);
        return arrivals.sample(started);
      } finally {
        await bus.close();
      }
    };
    const baseline = await rounds((r) => healthy(false, r));
    const during = await rounds((r) => healthy(true, r));
    rows.push({
      transport: 'kafka',
      scenario: 'healthy partition: no poison vs during a poison backoff',
      raw: baseline,
      switchboard: during,
      note: '"raw" column = same Switchboard run without the poison message',
    });
  } finally {
    await producer.disconnect();
    await admin.disconnect();
  }
}

// ───────────── rabbitmq ─────────────
/** A durable queue named `queue`, bound to nothing (the default exchange reaches it by name). Expires 10 minutes after last use. */
async function declareQueue(channel: amqplib.Channel, queue: string): Promise<void> {
  await channel.assertQueue(queue, { durable: true, arguments: { 'x-expires': 600_000 } });
}

/**
 * A durable queue named `queue` bound to Switchboard's topic exchange with its own name as routing
 * key: what a topic's publishes reach when no subscription has declared its queue yet. Expires 10
 * minutes after last use.
 */
async function declareTopicQueue(channel: amqplib.Channel, queue: string): Promise<void> {
  await channel.assertExchange('switchboard', 'topic', { durable: true });
  await declareQueue(channel, queue);
  await channel.bindQueue(queue, 'switchboard', queue);
}

/**
 * RabbitMQ routes sending the topic of each round, `name(r)` (warm-up rounds included), straight to its
 * own queue through the default exchange (`type: 'queue'`): the routing the peers use.
 */
function queueRoutesFor(...names: ((r: number) => string)[]): Record<string, { type: 'queue' }> {
  return Object.fromEntries(names.flatMap((name) => Array.from({ length: ROUNDS + WARMUP }, (_, r) => [name(r), { type: 'queue' as const }])));
}

async function benchRabbit(): Promise<void> {
  const connection = await amqplib.connect(RABBITMQ_URL);
  const channel = await connection.createConfirmChannel();
  const exchange = 'switchboard';
  await channel.assertExchange(exchange, 'topic', { durable: true });
  const declare = (queue: string) => declareTopicQueue(channel, queue);
  /**
   * Raw: persistent, confirmed, confirms awaited per batch of 1000 (what Switchboard does for "all").
   * With `fields`, each message also carries what Switchboard's default envelope adds beside the
   * messageId: the ms time header, the key header, and `mandatory` (unroutable messages come back).
   */
  const rawPublishWith =
    (fields: { time?: boolean; key?: boolean; mandatory?: boolean } = {}) =>
    async (topic: string) => {
      const started = now();
      for (let i = 0; i < N; i += 1000) {
        for (let j = 0; j < Math.min(1000, N - i); j++) {
          const headers = fields.time || fields.key ? { ...(fields.time ? { 'x-sb-timestamp': Date.now() } : {}), ...(fields.key ? { 'x-sb-key': `product-${(i + j) % 50}` } : {}) } : undefined;
          const options = { persistent: true, messageId: `m${i + j}`, ...(headers ? { headers } : {}), ...(fields.mandatory ? { mandatory: true } : {}) };
          if (!channel.publish(exchange, topic, Buffer.from(JSON.stringify(payload(i + j))), options)) await new Promise((resolve) => channel.once('drain', resolve));
        }
        await channel.waitForConfirms();
      }
      return started;
    };
  const rawPublish = rawPublishWith();
  /** Raw, one publish per message awaiting its own confirm, a batch's worth in flight at once. */
  const rawPublishOneAtATime = async (topic: string) => {
    const started = now();
    for (let i = 0; i < N; i += 1000) {
      await Promise.all(
        Array.from(
          { length: Math.min(1000, N - i) },
          (_, j) =>
            new Promise<void>((resolve, reject) =>
              channel.publish(exchange, topic, Buffer.from(JSON.stringify(payload(i + j))), { persistent: true, messageId: `m${i + j}` }, (error) => (error ? reject(error) : resolve())),
            ),
        ),
      );
    }
    return started;
  };
  const rawPublishRound = rawPublishRounds('rabbit', declare);
  const sbTransport = () => createRabbitTransport({ url: RABBITMQ_URL, queueExpiresMs: 600_000 });
  try {
    await publishRows('rabbitmq', 'persistent + confirms', { batch: rawPublishRound('rawpub', rawPublish), oneAtATime: rawPublishRound('rawone', rawPublishOneAtATime) }, sbTransport, declare);
    // What each envelope field costs on its own (both columns raw amqplib).
    for (const [index, [field, fields]] of (
      [
        ['the ms time header (x-sb-timestamp)', { time: true }],
        ['the key header (x-sb-key)', { key: true }],
        ['mandatory (unroutable messages returned)', { mandatory: true }],
      ] as const
    ).entries()) {
      rows.push({
        transport: 'rabbitmq',
        scenario: `raw + ${field} vs raw, batches`,
        ...(await paired(rawPublishRound(`rawbare${index}`, rawPublish), rawPublishRound(`rawfield${index}`, rawPublishWith(fields)))),
        note: 'both columns raw amqplib: what this envelope field alone costs',
      });
    }
    const rawE2e = async (r: number): Promise<Sample> => {
      const t = `bench.${run}.rabbit.rawe2e.${r}`;
      await declare(t);
      const consumer = await connection.createChannel();
      await consumer.prefetch(100);
      const arrivals = new Arrivals();
      await consumer.consume(t, (m) => {
        if (!m) return;
        arrivals.arrive((JSON.parse(m.content.toString()) as { sentAt: number }).sentAt);
        consumer.ack(m);
      });
      const started = await rawPublish(t);
      await arrivals.wait(N);
      await consumer.close();
      return arrivals.sample(started);
    };
    rows.push({
      transport: 'rabbitmq',
      scenario: 'end to end (prefetch/concurrency 100, manual ack)',
      target: '>= 0.90',
      ...(await paired(
        rawE2e,
        sbEndToEnd(sbTransport, (r) => `bench.${run}.rabbit.sbe2e.${r}`, 100),
      )),
    });
    await lowRateRows(
      'rabbitmq',
      (topic, i) =>
        new Promise<void>((resolve, reject) =>
          channel.publish(exchange, topic, Buffer.from(JSON.stringify(payload(i))), { persistent: true, messageId: `m${i}` }, (error) => (error ? reject(error) : resolve())),
        ),
      sbTransport,
      declare,
    );
  } finally {
    await connection.close();
  }
}

// ───────────── redis ─────────────
async function benchRedis(): Promise<void> {
  const publisher = new Redis(REDIS_URL);
  const subscriber = new Redis(REDIS_URL);
  /** Raw: pipelined PUBLISH per batch of 1000 (what Switchboard does). */
  /** Raw pipelined PUBLISH; with `envelope`, each payload framed as Switchboard frames it (version 2). */
  const rawPublishWith = (envelope: boolean) => async (channel: string) => {
    const started = now();
    for (let i = 0; i < N; i += 1000) {
      const pipeline = publisher.pipeline();
      for (let j = 0; j < Math.min(1000, N - i); j++) {
        const body = Buffer.from(JSON.stringify(payload(i + j)));
        pipeline.publish(channel, envelope ? encodeFrame({ id: newMessageId(), headers: {}, body, timestamp: Date.now() }) : body);
      }
      await pipeline.exec();
    }
    return started;
  };
  const rawPublish = rawPublishWith(false);
  /** Raw, one PUBLISH call per message, a batch's worth in flight at once. */
  const rawPublishOneAtATime = async (channel: string) => {
    const started = now();
    for (let i = 0; i < N; i += 1000) {
      await Promise.all(Array.from({ length: Math.min(1000, N - i) }, (_, j) => publisher.publish(channel, JSON.stringify(payload(i + j)))));
    }
    return started;
  };
  const rawPublishRound = rawPublishRounds('redis');
  const sbTransport = () => createRedisPubSubTransport({ url: REDIS_URL });
  try {
    await publishRows('redis', 'pipelined', { batch: rawPublishRound('rawpub', rawPublish), oneAtATime: rawPublishRound('rawone', rawPublishOneAtATime) }, sbTransport);
    rows.push({
      transport: 'redis',
      scenario: 'raw + the envelope (binary frame) vs raw, pipelined',
      ...(await paired(rawPublishRound('rawpub', rawPublish), rawPublishRound('rawenv', rawPublishWith(true)))),
      note: 'both columns raw ioredis: what the frame alone costs',
    });
    const rawE2e = async (r: number): Promise<Sample> => {
      const channel = `bench.${run}.redis.rawe2e.${r}`;
      const arrivals = new Arrivals();
      const onMessage = (c: Buffer, m: Buffer) => c.toString() === channel && arrivals.arrive((JSON.parse(m.toString()) as { sentAt: number }).sentAt);
      subscriber.on('messageBuffer', onMessage);
      await subscriber.subscribe(channel);
      const started = await rawPublish(channel);
      await arrivals.wait(N);
      await subscriber.unsubscribe(channel);
      subscriber.off('messageBuffer', onMessage);
      return arrivals.sample(started);
    };
    rows.push({
      transport: 'redis',
      scenario: 'end to end',
      target: '>= 0.90',
      ...(await paired(
        rawE2e,
        sbEndToEnd(sbTransport, (r) => `bench.${run}.redis.sbe2e.${r}`, 1),
      )),
    });
    await lowRateRows('redis', (channel, i) => publisher.publish(channel, JSON.stringify(payload(i))), sbTransport);
  } finally {
    publisher.disconnect();
    subscriber.disconnect();
  }
}

// ───────────── redis streams ─────────────
async function benchRedisStreams(): Promise<void> {
  const publisher = new Redis(REDIS_URL);
  /** The fields Switchboard writes per entry (id, headers, timestamp, body), so both sides send the same bytes. */
  const fields = (i: number) => ['id', newMessageId(), 'headers', '{}', 'timestamp', String(Date.now()), 'body', Buffer.from(JSON.stringify(payload(i)))];
  /** Raw: pipelined XADD per batch of 1000, each answered (guarantee leader). */
  const rawPublish = async (stream: string) => {
    const started = now();
    for (let i = 0; i < N; i += 1000) {
      const pipeline = publisher.pipeline();
      for (let j = 0; j < Math.min(1000, N - i); j++) pipeline.xadd(stream, '*', ...fields(i + j));
      await pipeline.exec();
    }
    return started;
  };
  /** Raw, one XADD call per message, a batch's worth in flight at once. */
  const rawPublishOneAtATime = async (stream: string) => {
    const started = now();
    for (let i = 0; i < N; i += 1000) await Promise.all(Array.from({ length: Math.min(1000, N - i) }, (_, j) => publisher.xadd(stream, '*', ...fields(i + j))));
    return started;
  };
  const rawPublishRound = rawPublishRounds('streams');
  const sbTransport = () => createRedisStreamsTransport({ url: REDIS_URL });
  const streams: string[] = [];
  const track = async (stream: string) => void streams.push(stream);
  try {
    await publishRows(
      'redis-streams',
      'leader',
      { batch: rawPublishRound('rawpub', (t) => (streams.push(t), rawPublish(t))), oneAtATime: rawPublishRound('rawone', (t) => (streams.push(t), rawPublishOneAtATime(t))) },
      sbTransport,
      track,
    );
    /** Raw consumer: one group member, XREADGROUP COUNT 64 (Switchboard's default prefetch), XACK per read batch. */
    const rawE2e = async (r: number): Promise<Sample> => {
      const stream = `bench.${run}.streams.rawe2e.${r}`;
      streams.push(stream);
      const reader = new Redis(REDIS_URL);
      await reader.xgroup('CREATE', stream, 'raw', '0', 'MKSTREAM');
      const arrivals = new Arrivals();
      let reading = true;
      const loop = (async () => {
        while (reading) {
          const reply = (await reader.xreadgroup('GROUP', 'raw', 'c', 'COUNT', 64, 'BLOCK', 200, 'STREAMS', stream, '>')) as [string, [string, string[]][]][] | null;
          if (!reply) continue;
          const ids: string[] = [];
          for (const [, entries] of reply)
            for (const [id, entryFields] of entries) {
              ids.push(id);
              arrivals.arrive((JSON.parse(entryFields[7]!) as { sentAt: number }).sentAt);
            }
          if (ids.length) await reader.xack(stream, 'raw', ...ids);
        }
      })();
      try {
        const started = await rawPublish(stream);
        await arrivals.wait(N);
        return arrivals.sample(started);
      } finally {
        reading = false;
        await loop;
        reader.disconnect();
      }
    };
    rows.push({
      transport: 'redis-streams',
      scenario: 'end to end (one member, prefetch 64)',
      target: '>= 0.90',
      ...(await paired(
        rawE2e,
        sbEndToEnd(sbTransport, (r) => `bench.${run}.streams.sbe2e.${r}`, 1, track),
      )),
    });
    await lowRateRows('redis-streams', (stream, i) => publisher.xadd(stream, '*', ...fields(i)), sbTransport, track);
  } finally {
    if (streams.length) await publisher.del(...streams).catch(() => undefined);
    publisher.disconnect();
  }
}

// ───────────── nats jetstream ─────────────
async function benchNats(): Promise<void> {
  const stream = `BENCH_${run.replace(/[^A-Za-z0-9]/g, '_')}`;
  const prefix = `bench${run.replace(/[^A-Za-z0-9]/g, '')}`;
  const nc = await natsConnect({ servers: NATS_URL });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: stream, subjects: [`${prefix}.>`] });
  const js = jetstream(nc);
  /** The headers Switchboard sends (id, de-duplication id, time), so both sides send the same bytes. */
  const headersFor = (subject: string) => {
    const h = natsHeaders();
    const id = newMessageId();
    h.set('Nats-Msg-Id', `${subject}:${id}`);
    h.set('x-sb-id', id);
    h.set('x-sb-timestamp', String(Date.now()));
    return h;
  };
  /** Raw: 1000 JetStream publishes in flight, each acknowledged by the stream (guarantee all). */
  const rawPublish = async (subject: string) => {
    const started = now();
    for (let i = 0; i < N; i += 1000) {
      await Promise.all(Array.from({ length: Math.min(1000, N - i) }, (_, j) => js.publish(`${prefix}.${subject}`, Buffer.from(JSON.stringify(payload(i + j))), { headers: headersFor(subject) })));
    }
    return started;
  };
  const rawPublishRound = rawPublishRounds('nats');
  const sbTransport = () => createNatsTransport({ servers: NATS_URL, stream, subjectPrefix: prefix });
  try {
    await publishRows('nats', 'all', { batch: rawPublishRound('rawpub', rawPublish), oneAtATime: rawPublishRound('rawone', rawPublish) }, sbTransport);
    /** Raw consumer: a durable pull consumer, consume() with 64 messages buffered, ack() each as it comes (Switchboard writes a turn's acks together); neither waits for the server to confirm an ack. */
    const rawE2e = async (r: number): Promise<Sample> => {
      const subject = `bench.${run}.nats.rawe2e.${r}`;
      const durable = `raw_${r}_${Date.now()}`;
      await jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: `${prefix}.${subject}` });
      const consumer = await js.consumers.get(stream, durable);
      const arrivals = new Arrivals();
      const messages = await consumer.consume({ max_messages: 64 });
      const loop = (async () => {
        for await (const m of messages) {
          arrivals.arrive((JSON.parse(Buffer.from(m.data).toString()) as { sentAt: number }).sentAt);
          m.ack();
        }
      })();
      try {
        const started = await rawPublish(subject);
        await arrivals.wait(N);
        return arrivals.sample(started);
      } finally {
        messages.stop();
        await loop;
      }
    };
    rows.push({
      transport: 'nats',
      scenario: 'end to end (one member, prefetch 64)',
      target: '>= 0.90',
      ...(await paired(
        rawE2e,
        sbEndToEnd(sbTransport, (r) => `bench.${run}.nats.sbe2e.${r}`, 1),
      )),
      note: 'raw: consume() (continuous pulls); Switchboard: fetches of half its prefetch window',
    });
    await lowRateRows('nats', (subject, i) => js.publish(`${prefix}.${subject}`, Buffer.from(JSON.stringify(payload(i))), { headers: headersFor(subject) }), sbTransport);
  } finally {
    await jsm.streams.delete(stream).catch(() => undefined);
    await nc.close();
  }
}

// ───────────── mqtt ─────────────
/**
 * A Mosquitto of the bench's own (loopback, a free port, no persistence, queues large enough for a
 * burst: the default 1000 per session drops messages for a subscriber behind a 20k burst, on the raw
 * side as on Switchboard's), unless MQTT_URL names a broker.
 */
async function benchMosquitto(): Promise<{ url: string; stop: () => Promise<void> }> {
  if (process.env.MQTT_URL) return { url: process.env.MQTT_URL, stop: async () => undefined };
  const port = await new Promise<number>((resolve, reject) => {
    const server = createServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port: free } = server.address() as { port: number };
      server.close(() => resolve(free));
    });
  });
  const dir = mkdtempSync(join(tmpdir(), 'sb-bench-mosquitto-'));
  writeFileSync(
    join(dir, 'mosquitto.conf'),
    [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'max_queued_messages 1000000', 'set_tcp_nodelay true', 'user root', ''].join('\n'),
  );
  const broker = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  const url = `mqtt://127.0.0.1:${port}`;
  for (let waited = 0; ; waited += 50) {
    const up = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 500 }).then(
      (c) => c.endAsync().then(() => true),
      () => false,
    );
    if (up) break;
    if (waited > 10_000 || broker.exitCode !== null) throw new Error(`bench mosquitto on port ${port} did not start (is Debian's mosquitto installed? scripts/brokers.sh up mosquitto)`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url,
    stop: async () => {
      const exited = new Promise((resolve) => broker.once('exit', resolve));
      broker.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function benchMqtt(): Promise<void> {
  const broker = await benchMosquitto();
  const raw = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
  const prefix = `bench/${run}`;
  const topicOf = (topic: string) => `${prefix}/${topic.split('.').join('/')}`;
  /** The user properties Switchboard sends (id, time, key), so both sides send the same bytes. */
  const propertiesFor = (i: number) => ({ userProperties: { 'x-sb-id': newMessageId(), 'x-sb-timestamp': String(Date.now()), 'x-sb-key': `product-${i % 50}` } });
  /** Raw: 1000 QoS 1 publishes in flight, each resolved on its PUBACK (guarantee leader). */
  const rawPublish = async (topic: string) => {
    const started = now();
    for (let i = 0; i < N; i += 1000) {
      await Promise.all(
        Array.from({ length: Math.min(1000, N - i) }, (_, j) => raw.publishAsync(topicOf(topic), Buffer.from(JSON.stringify(payload(i + j))), { qos: 1, properties: propertiesFor(i + j) })),
      );
    }
    return started;
  };
  const rawPublishRound = rawPublishRounds('mqtt');
  const sbTransport = () => createMqttTransport({ url: broker.url, topicPrefix: prefix, prefetch: 64 });
  try {
    await publishRows('mqtt', 'leader (QoS 1)', { batch: rawPublishRound('rawpub', rawPublish), oneAtATime: rawPublishRound('rawone', rawPublish) }, sbTransport);
    /** Raw consumer: one shared-subscription member, Receive Maximum 64, PUBACK by mqtt.js after the handler (synchronous here). */
    const rawE2e = async (r: number): Promise<Sample> => {
      const topic = `bench.${run}.mqtt.rawe2e.${r}`;
      const consumer = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clean: true, properties: { receiveMaximum: 64 } });
      const arrivals = new Arrivals();
      consumer.on('message', (_topic, message) => arrivals.arrive((JSON.parse(message.toString()) as { sentAt: number }).sentAt));
      await consumer.subscribeAsync(`$share/bench/${topicOf(topic)}`, { qos: 1 });
      try {
        const started = await rawPublish(topic);
        await arrivals.wait(N);
        return arrivals.sample(started);
      } finally {
        await consumer.endAsync();
      }
    };
    rows.push({
      transport: 'mqtt',
      scenario: 'end to end (one member, prefetch 64), QoS 1',
      target: '>= 0.90',
      ...(await paired(
        rawE2e,
        sbEndToEnd(sbTransport, (r) => `bench.${run}.mqtt.sbe2e.${r}`, 1),
      )),
      note: 'both: a shared-subscription member with Receive Maximum 64, PUBACK after the handler',
    });
    await lowRateRows('mqtt', (topic, i) => raw.publishAsync(topicOf(topic), Buffer.from(JSON.stringify(payload(i))), { qos: 1, properties: propertiesFor(i) }), sbTransport);
  } finally {
    await raw.endAsync();
    await broker.stop();
  }
}

// ───────────── postgres ─────────────
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** The API of pg-boss the bench uses (majors 10 and 12). */
interface PgBossLike {
  start(): Promise<unknown>;
  stop(options?: object): Promise<void>;
  createQueue(name: string, options?: object): Promise<void>;
  deleteQueue(name: string): Promise<void>;
  send(name: string, data: object): Promise<string | null>;
  insert(...args: unknown[]): Promise<unknown>;
  work(name: string, options: object, handler: (jobs: { data: { sentAt: number } }[]) => Promise<void>): Promise<string>;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/**
 * pg-boss, installed by the bench into ~/.cache/switchboard/bench-peers (not a dependency of the
 * repository): major 12 on Node >= 22.12, else 10 (the last major for Node 20).
 */
/**
 * A peer's packages in `~/.cache/switchboard/bench-peers/<name>` (not dependencies of the repository),
 * npm-installed there the first time `probe` (a package of the set) is missing. Returns the directory.
 */
function installPeers(name: string, probe: string, packages: readonly string[]): string {
  const dir = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'switchboard', 'bench-peers', name);
  if (!existsSync(join(dir, 'node_modules', probe, 'package.json'))) {
    progress(`installing ${packages.join(' ')} into ${dir}`);
    execFileSync('npm', ['install', '--prefix', dir, '--no-audit', '--no-fund', '--loglevel=error', ...packages], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  return dir;
}

async function loadPgBoss(): Promise<{ major: number; create: (options: object) => PgBossLike }> {
  const [nodeMajor, nodeMinor] = process.versions.node.split('.').map(Number) as [number, number];
  const major = nodeMajor > 22 || (nodeMajor === 22 && nodeMinor >= 12) ? 12 : 10;
  const dir = installPeers(`pg-boss-${major}`, 'pg-boss', [`pg-boss@${major}`]);
  const main = join(dir, 'node_modules', 'pg-boss', 'package.json');
  const entry = JSON.parse((await import('node:fs')).readFileSync(main, 'utf8')) as { main: string };
  const module = (await import(pathToFileURL(join(dir, 'node_modules', 'pg-boss', entry.main)).href)) as { PgBoss?: new (o: object) => PgBossLike; default?: new (o: object) => PgBossLike };
  const PgBoss = module.PgBoss ?? module.default!;
  return { major, create: (options) => new PgBoss(options) };
}

async function benchPostgres(): Promise<void> {
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
  const table = `sbbench_raw_${run.replace(/[^a-z0-9]/g, '')}`;
  await pool.query(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, topic text NOT NULL, key text, headers jsonb NOT NULL, body bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`);
  await pool.query(`CREATE INDEX ON ${table} (topic, id)`);
  const boss = await loadPgBoss();
  const pgboss = boss.create({ connectionString: DATABASE_URL, schema: `sbbench_pgboss_${boss.major}`, max: 4, ...(boss.major >= 12 ? { useListenNotify: true } : {}) });
  pgboss.on('error', (error) => progress(`pg-boss: ${error.message}`));
  await pgboss.start();
  /** Raw: a batch of 1000 rows per INSERT … SELECT FROM unnest (committed: guarantee leader), carrying the same id/time headers. */
  const rawInsert = async (topic: string, from: number, count: number) => {
    const bodies = Array.from({ length: count }, (_, j) => Buffer.from(JSON.stringify(payload(from + j))));
    const keys = Array.from({ length: count }, (_, j) => `product-${(from + j) % 50}`);
    const headers = Array.from({ length: count }, () => JSON.stringify({ 'x-sb-id': newMessageId(), 'x-sb-timestamp': String(Date.now()) }));
    await pool.query(`INSERT INTO ${table} (topic, key, headers, body) SELECT $1, k, h::jsonb, b FROM unnest($2::text[], $3::text[], $4::bytea[]) AS t(k, h, b)`, [topic, keys, headers, bodies]);
  };
  const rawPublish = async (topic: string) => {
    const started = now();
    for (let i = 0; i < N; i += 1000) await rawInsert(topic, i, Math.min(1000, N - i));
    return started;
  };
  const queueOf = (topic: string) => topic.replace(/[^A-Za-z0-9_-]/g, '_');
  const bossPublish = (oneAtATime: boolean) => async (topic: string) => {
    const queue = queueOf(topic);
    await pgboss.createQueue(queue, boss.major >= 12 ? { notify: true } : {});
    const started = now();
    for (let i = 0; i < N; i += 1000) {
      const jobs = Array.from({ length: Math.min(1000, N - i) }, (_, j) => payload(i + j));
      if (oneAtATime) await Promise.all(jobs.map((data) => pgboss.send(queue, data)));
      else if (boss.major >= 12)
        await pgboss.insert(
          queue,
          jobs.map((data) => ({ data })),
        );
      else await pgboss.insert(jobs.map((data) => ({ name: queue, data })));
    }
    return started;
  };
  const rawPublishRound = rawPublishRounds('postgres');
  const tablePrefix = `sbbench_${run.replace(/[^a-z0-9]/g, '')}`;
  const sbTransport = () => createPostgresQueueTransport({ url: DATABASE_URL, tablePrefix, prefetch: 64, poolSize: 4 });
  try {
    await publishRows('postgres', 'committed', { batch: rawPublishRound('rawpub', rawPublish), oneAtATime: rawPublishRound('rawone', rawPublish) }, sbTransport);
    const publishing = longLivedBus(sbTransport);
    try {
      rows.push({
        transport: 'postgres',
        scenario: `publish, batches of 1000 vs pg-boss ${boss.major} insert()`,
        ...(await paired(
          rawPublishRound('bosspub', bossPublish(false)),
          sbPublishOnly(publishing.get, (r) => `bench.${run}.postgres.sbpub-b.${r}`, false),
        )),
        note: 'the "raw" column is pg-boss',
      });
      rows.push({
        transport: 'postgres',
        scenario: `one message per call (1000 in flight) vs pg-boss ${boss.major} send()`,
        ...(await paired(
          rawPublishRound('bossone', bossPublish(true)),
          sbPublishOnly(publishing.get, (r) => `bench.${run}.postgres.sbone-b.${r}`, true),
        )),
        note: 'the "raw" column is pg-boss',
      });
    } finally {
      await publishing.close();
    }
    /** Raw consumer: claims of up to 64 rows (DELETE … SKIP LOCKED … RETURNING) in a loop, 2 ms pause when empty. */
    const rawE2e = async (r: number): Promise<Sample> => {
      const topic = `bench.${run}.postgres.rawe2e.${r}`;
      const arrivals = new Arrivals();
      let stop = false;
      const consumer = (async () => {
        const client = await pool.connect();
        try {
          while (!stop && arrivals.count < N) {
            const { rows: claimed } = await client.query<{ body: Buffer }>(
              `DELETE FROM ${table} WHERE id IN (SELECT id FROM ${table} WHERE topic = $1 ORDER BY id LIMIT 64 FOR UPDATE SKIP LOCKED) RETURNING body`,
              [topic],
            );
            for (const row of claimed) arrivals.arrive((JSON.parse(row.body.toString()) as { sentAt: number }).sentAt);
            if (claimed.length === 0) await new Promise((resolve) => setTimeout(resolve, 2));
          }
        } finally {
          client.release();
        }
      })();
      try {
        const started = await rawPublish(topic);
        await arrivals.wait(N);
        return arrivals.sample(started);
      } finally {
        stop = true;
        await consumer;
      }
    };
    rows.push({
      transport: 'postgres',
      scenario: 'end to end (one member, prefetch 64) vs raw pg claims',
      ...(await paired(
        rawE2e,
        sbEndToEnd(sbTransport, (r) => `bench.${run}.postgres.sbe2e.${r}`, 1),
      )),
      note: 'raw: DELETE … FOR UPDATE SKIP LOCKED LIMIT 64 RETURNING in a loop',
    });
    /** pg-boss consumer: work() with batches of 64, woken by NOTIFY (12) or polling every 0.5 s (10), bursting while batches come back full. */
    const bossE2e = async (r: number): Promise<Sample> => {
      const queue = queueOf(`bench.${run}.postgres.bosse2e.${r}`);
      await pgboss.createQueue(queue, boss.major >= 12 ? { notify: true } : {});
      const arrivals = new Arrivals();
      await pgboss.work(queue, { batchSize: 64, pollingIntervalSeconds: 0.5, ...(boss.major >= 12 ? { burstWhenBatchFull: true, notifyPollingIntervalSeconds: 0.5 } : {}) }, async (jobs) => {
        for (const job of jobs) arrivals.arrive(job.data.sentAt);
      });
      const started = now();
      for (let i = 0; i < N; i += 1000) {
        const jobs = Array.from({ length: Math.min(1000, N - i) }, (_, j) => payload(i + j));
        if (boss.major >= 12)
          await pgboss.insert(
            queue,
            jobs.map((data) => ({ data })),
          );
        else await pgboss.insert(jobs.map((data) => ({ name: queue, data })));
      }
      await arrivals.wait(N);
      const sample = arrivals.sample(started);
      await pgboss.deleteQueue(queue).catch(() => undefined);
      return sample;
    };
    rows.push({
      transport: 'postgres',
      scenario: `end to end (one member, prefetch 64) vs pg-boss ${boss.major} work()`,
      ...(await paired(
        bossE2e,
        sbEndToEnd(sbTransport, (r) => `bench.${run}.postgres.sbe2e-b.${r}`, 1),
      )),
      note: 'the "raw" column is pg-boss (batchSize 64)',
    });
  } finally {
    await pgboss.stop({ graceful: false }).catch(() => undefined);
    await pool.query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
    for (const suffix of ['deliveries', 'subscriptions', 'messages', 'schema']) await pool.query(`DROP TABLE IF EXISTS ${tablePrefix}_${suffix} CASCADE`).catch(() => undefined);
    await pool.end();
  }
}

// ───────────── transactional outbox (PostgreSQL / MariaDB → Kafka) ─────────────
const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/switchboard_test';

/** An outbox of one database: write `messages` for `topic` in one transaction; a relay over it; dropping its tables. */
interface BenchOutbox {
  write(topic: string, messages: { key: string; value: unknown }[]): Promise<void>;
  relay(publisher: Transport): { start(): void; stop(): Promise<void> };
  drop(): Promise<void>;
}

async function openBenchOutbox(kind: 'postgres' | 'mariadb'): Promise<BenchOutbox> {
  const table = `bench_outbox_${run}_${kind}`;
  if (kind === 'postgres') {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 8 });
    const outbox = await PostgresOutbox.open({ pool, table, inboxTable: `${table}_inbox` });
    return {
      async write(topic, messages) {
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          await outbox.publish(client, topic, messages);
          await client.query('COMMIT');
        } finally {
          client.release();
        }
      },
      relay: (publisher) => outbox.relay({ publisher, batchSize: 1000 }),
      async drop() {
        await outbox.close();
        await pool.query(`DROP TABLE IF EXISTS ${table}, ${table}_lease, ${table}_relays, ${table}_inbox`);
        await pool.end();
      },
    };
  }
  const url = new URL(MYSQL_URL);
  const server = await mysql.createConnection({ host: url.hostname, port: Number(url.port || 3306), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) });
  await server.query(`CREATE DATABASE IF NOT EXISTS \`${url.pathname.slice(1)}\``);
  await server.end();
  const pool = mysql.createPool({ uri: MYSQL_URL, connectionLimit: 8 });
  const outbox = await MySqlOutbox.open({ pool, table, inboxTable: `${table}_inbox` });
  return {
    async write(topic, messages) {
      const connection = await pool.getConnection();
      try {
        await connection.beginTransaction();
        await outbox.publish(connection, topic, messages);
        await connection.commit();
      } finally {
        connection.release();
      }
    },
    relay: (publisher) => outbox.relay({ publisher, batchSize: 1000, pollIntervalMs: 50 }),
    async drop() {
      await pool.query(`DROP TABLE IF EXISTS ${table}, ${table}_lease, ${table}_relays, ${table}_keylock, ${table}_inbox`);
      await pool.end();
    },
  };
}

/**
 * The outbox against publishing directly, same run, same Kafka transport and consumer: N messages
 * end to end (transactions or publishes of 1000), and 300 single messages 5 ms apart (one transaction
 * each: write to handler latency). The relay runs in process.
 */
async function benchOutbox(): Promise<void> {
  const kafkaTransport = () => createKafkaTransport({ brokers: KAFKA_BROKERS, partitions: 3 });
  for (const kind of ['postgres', 'mariadb'] as const) {
    const outbox = await openBenchOutbox(kind);
    const publishing = await kafkaTransport();
    const relay = outbox.relay(publishing);
    relay.start();
    try {
      const endToEnd =
        (name: string, send: (bus: Bus, topic: string, batch: { key: string; value: unknown }[]) => Promise<unknown>, single: boolean) =>
        async (r: number): Promise<Sample> => {
          const consumer = createBus({ transport: await kafkaTransport() });
          const bus = createBus({ transport: publishing });
          try {
            const topic = `bench.${run}.outbox.${kind}.${name}.${r}`;
            const arrivals = new Arrivals();
            await consumer.subscriber.subscribe<{ sentAt: number }>(topic, (m) => arrivals.arrive(m.value.sentAt), { group: `bench-${topic}`, startFrom: 'earliest', concurrency: 3 });
            const count = single ? LOW_RATE_COUNT : N;
            const started = now();
            for (let i = 0; i < count; i += single ? 1 : 1000) {
              const size = single ? 1 : Math.min(1000, count - i);
              await send(
                bus,
                topic,
                Array.from({ length: size }, (_, j) => ({ key: `product-${(i + j) % 50}`, value: payload(i + j) })),
              );
              if (single) await new Promise((resolve) => setTimeout(resolve, LOW_RATE_GAP_MS));
            }
            await arrivals.wait(count);
            return arrivals.sample(started);
          } finally {
            await consumer.close();
          }
        };
      const direct = (bus: Bus, topic: string, batch: { key: string; value: unknown }[]) => bus.publisher.publish(topic, batch);
      const viaOutbox = (_bus: Bus, topic: string, batch: { key: string; value: unknown }[]) => outbox.write(topic, batch);
      rows.push({
        transport: `outbox (${kind} → kafka)`,
        scenario: 'end to end, batches of 1000: outbox (one transaction each, relay) vs publishing directly',
        ...(await paired(endToEnd('direct', direct, false), endToEnd('outbox', viaOutbox, false))),
        note: 'raw = Switchboard publishing directly',
      });
      rows.push({
        transport: `outbox (${kind} → kafka)`,
        scenario: `one message every ${LOW_RATE_GAP_MS} ms: write to handler latency, outbox vs publishing directly`,
        ...(await paired(endToEnd('directlat', direct, true), endToEnd('outboxlat', viaOutbox, true))),
        note: `${LOW_RATE_COUNT} messages per round, one transaction each; raw = publishing directly`,
      });
    } finally {
      await relay.stop();
      await publishing.close();
      await outbox.drop();
    }
  }
}

if (argv.includes('--burst-child')) {
  await burstChild();
  process.exit(0);
}
// ───────────── peers (--peers) ─────────────
/**
 * Libraries of the same kind, in the same run, at the same guarantees and with the same messages
 * (a JSON value without a key: the peers' messages have none): NestJS microservices 12
 * (`ClientRMQ` / `ClientKafka` `emit`, an RMQ microservice server consuming). Installed by the bench
 * into ~/.cache/switchboard/bench-peers (not dependencies of the repository). In these rows the "raw"
 * column is the peer, so a ratio above 1 means Switchboard is ahead.
 */
const PEER_PACKAGES = [
  '@nestjs/microservices@12.1.1',
  '@nestjs/core@12.6.3',
  '@nestjs/common@12.6.3',
  'reflect-metadata@0.2.2',
  'rxjs@7.8.2',
  'amqplib@0.10',
  'amqp-connection-manager@5',
  'kafkajs@2.2.4',
];

// biome-ignore lint/suspicious/noExplicitAny: the peers are loaded from their scratch directory, without types here
async function loadPeers(): Promise<{ dir: string; load: (name: string) => Promise<any> }> {
  const dir = installPeers('nest-12', '@nestjs/microservices', PEER_PACKAGES);
  const { createRequire } = await import('node:module');
  const require = createRequire(join(dir, 'package.json'));
  return { dir, load: async (name) => require(name) };
}

async function benchPeers(): Promise<void> {
  const peers = await loadPeers();
  await peers.load('reflect-metadata');
  const { ClientProxyFactory, Ctx, EventPattern, Payload, Transport: NestTransport } = await peers.load('@nestjs/microservices');
  const { Controller, Logger, Module } = await peers.load('@nestjs/common');
  Logger.overrideLogger(false); // Nest's connection logs would interleave with the table
  const { NestFactory } = await peers.load('@nestjs/core');
  const { lastValueFrom } = await peers.load('rxjs');
  const nestVersion = (JSON.parse((await import('node:fs')).readFileSync(join(peers.dir, 'node_modules', '@nestjs', 'microservices', 'package.json'), 'utf8')) as { version: string }).version;
  const emitAll = async (client: { emit(pattern: string, data: unknown): unknown }, topic: string) => {
    const started = now();
    for (let i = 0; i < N; i += 1000) {
      await Promise.all(Array.from({ length: Math.min(1000, N - i) }, (_, j) => lastValueFrom(client.emit(topic, payload(i + j)) as never, { defaultValue: undefined })));
    }
    return started;
  };

  // RabbitMQ: NestJS emits to a durable queue (persistent, confirmed by amqp-connection-manager's
  // confirm channel); Switchboard publishes through its topic exchange with the same guarantee.
  const rabbit = await amqplib.connect(RABBITMQ_URL);
  const admin = await rabbit.createChannel();
  const sbRabbit = () => createRabbitTransport({ url: RABBITMQ_URL, queueExpiresMs: 600_000 });
  const nestRabbitClient = (queue: string) =>
    ClientProxyFactory.create({ transport: NestTransport.RMQ, options: { urls: [RABBITMQ_URL], queue, persistent: true, queueOptions: { durable: true, arguments: { 'x-expires': 600_000 } } } });
  const publishing = longLivedBus(sbRabbit);
  const leanPublishing = longLivedBus(sbRabbit, LEAN);
  const nestStraightTopic = (r: number, kind: 'batch' | 'one') => `bench.${run}.peer.sbrmq${kind}q.${r}`;
  const straightPublishing = longLivedBus(() =>
    createRabbitTransport({
      url: RABBITMQ_URL,
      queueExpiresMs: 600_000,
      routes: queueRoutesFor(
        (r) => nestStraightTopic(r, 'batch'),
        (r) => nestStraightTopic(r, 'one'),
      ),
    }),
  );
  try {
    const nestPublish = async (r: number): Promise<Sample> => {
      const queue = `bench.${run}.peer.nestrmq.${r}`;
      const client = nestRabbitClient(queue);
      await client.connect();
      try {
        const started = await emitAll(client, queue);
        return { msgPerSec: Math.round(N / ((now() - started) / 1000)) };
      } finally {
        await client.close();
        await admin.deleteQueue(queue).catch(() => undefined);
      }
    };
    const declare = (queue: string) => declareTopicQueue(admin, queue);
    rows.push({
      transport: 'peers',
      scenario: `rabbitmq publish, persistent + confirms: NestJS ${nestVersion} emit (1000 in flight) vs Switchboard batches`,
      ...(await paired(
        nestPublish,
        sbPublishOnly(publishing.get, (r) => `bench.${run}.peer.sbrmq.${r}`, false, declare, 'unkeyed'),
      )),
      note: '"raw" column = NestJS',
    });
    rows.push({
      transport: 'peers',
      scenario: `rabbitmq publish: NestJS emit vs Switchboard one publish() per message (1000 in flight)`,
      ...(await paired(
        nestPublish,
        sbPublishOnly(publishing.get, (r) => `bench.${run}.peer.sbrmqone.${r}`, true, declare, 'unkeyed'),
      )),
      note: '"raw" column = NestJS',
    });
    const declareStraight = (queue: string) => declareQueue(admin, queue);
    rows.push({
      transport: 'peers',
      scenario: `rabbitmq publish: NestJS emit vs Switchboard batches, straight to the queue (routes type "queue", NestJS's routing)`,
      ...(await paired(
        nestPublish,
        sbPublishOnly(straightPublishing.get, (r) => nestStraightTopic(r, 'batch'), false, declareStraight, 'unkeyed'),
      )),
      note: '"raw" column = NestJS; both publish through the default exchange to the queue',
    });
    rows.push({
      transport: 'peers',
      scenario: `rabbitmq publish: NestJS emit vs Switchboard one publish() per message (1000 in flight), straight to the queue`,
      ...(await paired(
        nestPublish,
        sbPublishOnly(straightPublishing.get, (r) => nestStraightTopic(r, 'one'), true, declareStraight, 'unkeyed'),
      )),
      note: '"raw" column = NestJS; both publish through the default exchange to the queue',
    });
    rows.push({
      transport: 'peers',
      scenario: `rabbitmq publish: NestJS emit vs Switchboard batches, lean envelope`,
      ...(await paired(
        nestPublish,
        sbPublishOnly(leanPublishing.get, (r) => `bench.${run}.peer.sbrmqlean.${r}`, false, declare, 'unkeyed'),
      )),
      note: '"raw" column = NestJS',
    });
    const nestEndToEnd = async (r: number): Promise<Sample> => {
      const queue = `bench.${run}.peer.nestrmqe2e.${r}`;
      const arrivals = new Arrivals();
      // Manual ack (noAck false), as Switchboard acks after the handler: Nest's way is the context's channel.
      class Handler {
        handle(value: { sentAt: number }, context: { getChannelRef(): { ack(m: unknown): void }; getMessage(): unknown }) {
          arrivals.arrive(value.sentAt);
          context.getChannelRef().ack(context.getMessage());
        }
      }
      EventPattern(queue)(Handler.prototype, 'handle', Object.getOwnPropertyDescriptor(Handler.prototype, 'handle'));
      Payload()(Handler.prototype, 'handle', 0);
      Ctx()(Handler.prototype, 'handle', 1);
      Controller()(Handler);
      class App {}
      Module({ controllers: [Handler] })(App);
      const server = await NestFactory.createMicroservice(App, {
        logger: false,
        transport: NestTransport.RMQ,
        options: { urls: [RABBITMQ_URL], queue, prefetchCount: 100, noAck: false, queueOptions: { durable: true, arguments: { 'x-expires': 600_000 } } },
      });
      await server.listen();
      const client = nestRabbitClient(queue);
      await client.connect();
      try {
        const started = await emitAll(client, queue);
        await arrivals.wait(N);
        return arrivals.sample(started);
      } finally {
        await client.close();
        await server.close();
        await admin.deleteQueue(queue).catch(() => undefined);
      }
    };
    rows.push({
      transport: 'peers',
      scenario: `rabbitmq end to end (prefetch/concurrency 100, manual ack): NestJS microservice vs Switchboard`,
      ...(await paired(
        nestEndToEnd,
        sbEndToEnd(sbRabbit, (r) => `bench.${run}.peer.sbrmqe2e.${r}`, 100, undefined, undefined, 'unkeyed'),
      )),
      note: '"raw" column = NestJS',
    });
  } finally {
    await publishing.close();
    await leanPublishing.close();
    await straightPublishing.close();
    await rabbit.close();
  }

  await messageQueueToolkitRows();

  // Kafka: NestJS ClientKafka (kafkajs underneath, one send per emit, acks=all) against Switchboard.
  const kafkaAdmin = new Kafka({ clientId: 'bench-peers', brokers: KAFKA_BROKERS, logLevel: logLevel.NOTHING }).admin();
  await kafkaAdmin.connect();
  const ensure = async (topic: string) => {
    await kafkaAdmin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }], waitForLeaders: true });
  };
  const sbKafka = () => createKafkaTransport({ brokers: KAFKA_BROKERS, partitions: 3 });
  const kafkaPublishing = longLivedBus(sbKafka);
  try {
    const nestKafkaPublish = async (r: number): Promise<Sample> => {
      const topic = `bench.${run}.peer.nestkafka.${r}`;
      await ensure(topic);
      const client = ClientProxyFactory.create({
        transport: NestTransport.KAFKA,
        options: { client: { clientId: 'bench-nest', brokers: KAFKA_BROKERS, logLevel: logLevel.NOTHING }, producerOnlyMode: true, send: { acks: -1 } },
      });
      await client.connect();
      try {
        const started = await emitAll(client, topic);
        return { msgPerSec: Math.round(N / ((now() - started) / 1000)) };
      } finally {
        await client.close();
      }
    };
    rows.push({
      transport: 'peers',
      scenario: `kafka publish, acks=all: NestJS ${nestVersion} ClientKafka emit (1000 in flight) vs Switchboard batches`,
      ...(await paired(
        nestKafkaPublish,
        sbPublishOnly(kafkaPublishing.get, (r) => `bench.${run}.peer.sbkafka.${r}`, false, ensure, 'unkeyed'),
      )),
      note: '"raw" column = NestJS',
    });
    rows.push({
      transport: 'peers',
      scenario: `kafka publish, acks=all: NestJS emit vs Switchboard one publish() per message (1000 in flight)`,
      ...(await paired(
        nestKafkaPublish,
        sbPublishOnly(kafkaPublishing.get, (r) => `bench.${run}.peer.sbkafkaone.${r}`, true, ensure, 'unkeyed'),
      )),
      note: '"raw" column = NestJS',
    });
  } finally {
    await kafkaPublishing.close();
    await kafkaAdmin.disconnect();
  }
}

/** message-queue-toolkit's AMQP packages, pinned, installed by the bench into its own scratch directory. */
const MQT_PACKAGES = ['@message-queue-toolkit/amqp@23.1.0', '@message-queue-toolkit/core@25.4.0', '@message-queue-toolkit/schemas@7.1.0', 'amqplib@0.10', 'zod@4.6.7'];

/**
 * message-queue-toolkit (RabbitMQ, a queue publisher and consumer, the zod schema it requires): its
 * `publish()` is synchronous and waits for no confirm, so Switchboard publishes with guarantee
 * "none" (no confirms either) in these rows; both consume with a manual ack after the handler.
 * Its `publish()` returns before a byte is written (amqplib buffers without limit), so the publish
 * row times both sides until the broker holds every message in the queue (polled with
 * `checkQueue`), not until the calls return.
 */
async function messageQueueToolkitRows(): Promise<void> {
  const dir = installPeers('mqt-23', '@message-queue-toolkit/amqp', MQT_PACKAGES);
  const { createRequire } = await import('node:module');
  const require = createRequire(join(dir, 'package.json'));
  // biome-ignore lint/suspicious/noExplicitAny: loaded from the scratch directory, without types here
  const load = async (name: string): Promise<any> => import(pathToFileURL(require.resolve(name)).href);
  const { AbstractAmqpQueuePublisher, AbstractAmqpQueueConsumer, AmqpConnectionManager } = await load('@message-queue-toolkit/amqp');
  const { MessageHandlerConfigBuilder } = await load('@message-queue-toolkit/core');
  const { z } = await load('zod');
  const version = (JSON.parse((await import('node:fs')).readFileSync(join(dir, 'node_modules', '@message-queue-toolkit', 'amqp', 'package.json'), 'utf8')) as { version: string }).version;
  const silent = { debug() {}, info() {}, warn() {}, trace() {}, error() {}, fatal() {}, silent() {}, level: 'silent', isLevelEnabled: () => false, child: () => silent };
  const url = new URL(RABBITMQ_URL);
  const manager = new AmqpConnectionManager(
    { hostname: url.hostname, port: Number(url.port || 5672), username: decodeURIComponent(url.username), password: decodeURIComponent(url.password), vhost: '', useTls: false },
    silent,
  );
  await manager.init();
  const dependencies = { amqpConnectionManager: manager, logger: silent, errorReporter: { report() {} } };
  // The bench payload plus the id and type fields the library requires (its schemas route by type).
  const schema = z.object({ id: z.string(), type: z.literal('order'), orderId: z.string(), productId: z.string(), quantity: z.number(), filler: z.string(), sentAt: z.number() });
  // Its publishers and consumers are subclasses of the library's abstract bases (nothing to add here).
  type Service = { init(): Promise<void>; start(): Promise<void>; publish(message: object): void; close(): Promise<void> };
  const Publisher: new (...args: unknown[]) => Service = class extends AbstractAmqpQueuePublisher {};
  const Consumer: new (...args: unknown[]) => Service = class extends AbstractAmqpQueueConsumer {};
  const creation = (queueName: string) => ({ creationConfig: { queueName, queueOptions: { durable: true, arguments: { 'x-expires': 600_000 } } }, messageTypeResolver: { messageTypePath: 'type' } });
  const publishAll = (publisher: { publish(message: object): void }) => {
    const started = now();
    for (let i = 0; i < N; i++) publisher.publish({ id: `m${i}`, type: 'order', ...payload(i) });
    return started;
  };
  const rabbit = await amqplib.connect(RABBITMQ_URL);
  const admin = await rabbit.createChannel();
  /** Resolves when `queue` holds `count` ready messages (bounded by WAIT_MS): the broker has read them all. */
  const untilQueued = async (queue: string, count: number) => {
    const deadline = now() + WAIT_MS;
    while ((await admin.checkQueue(queue)).messageCount < count) {
      if (now() > deadline) throw new Error(`${queue}: fewer than ${count} messages queued within ${WAIT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  };
  const mqtPublish = async (r: number): Promise<Sample> => {
    const queue = `bench.${run}.peer.mqt.${r}`;
    const publisher = new Publisher(dependencies, { ...creation(queue), messageSchemas: [schema] });
    await publisher.init();
    try {
      const started = publishAll(publisher);
      await untilQueued(queue, N);
      return { msgPerSec: Math.round(N / ((now() - started) / 1000)) };
    } finally {
      await publisher.close().catch(() => undefined);
      await admin.deleteQueue(queue).catch(() => undefined);
    }
  };
  /**
   * Switchboard, guarantee "none", batches of 1000 on `publishing` into the queue `topic(r)` made by
   * `declare` (bound to its exchange, or bare for a queue route); timed until the queue holds them all.
   */
  const sbPublishUntilQueued =
    (publishing: Bus, topic: (r: number) => string, declare: (channel: amqplib.Channel, queue: string) => Promise<void>) =>
    async (r: number): Promise<Sample> => {
      const queue = topic(r);
      await declare(admin, queue);
      try {
        const started = await sbPublish(publishing, queue, false, 'unkeyed');
        await untilQueued(queue, N);
        return { msgPerSec: Math.round(N / ((now() - started) / 1000)) };
      } finally {
        await admin.deleteQueue(queue).catch(() => undefined);
      }
    };
  const mqtEndToEnd = async (r: number): Promise<Sample> => {
    const queue = `bench.${run}.peer.mqte2e.${r}`;
    const arrivals = new Arrivals();
    const consumer = new Consumer(
      {
        ...dependencies,
        consumerErrorResolver: { processError: (error: unknown) => error },
        transactionObservabilityManager: { start() {}, stop() {}, startWithGroup() {}, addCustomAttributes() {} },
      },
      {
        ...creation(queue),
        handlers: new MessageHandlerConfigBuilder()
          .addConfig(schema, async (message: { sentAt: number }) => {
            arrivals.arrive(message.sentAt);
            return { result: 'success' };
          })
          .build(),
      },
      {},
    );
    await consumer.start();
    const publisher = new Publisher(dependencies, { ...creation(queue), messageSchemas: [schema] });
    await publisher.init();
    try {
      const started = publishAll(publisher);
      await arrivals.wait(N);
      const sample = arrivals.sample(started);
      // The library acks in a promise callback after the handler; acking on a closed channel would throw
      // where nothing catches it. Microtasks all run before the next macrotask: the last acks are sent then.
      await new Promise((resolve) => setImmediate(resolve));
      return sample;
    } finally {
      await consumer.close().catch(() => undefined);
      await publisher.close().catch(() => undefined);
    }
  };
  /** Topics routed straight to their queue (`type: 'queue'`), as the peer publishes. */
  const straightTopic = (r: number) => `bench.${run}.peer.sbmqtq.${r}`;
  const straightE2eTopic = (r: number) => `bench.${run}.peer.sbmqte2eq.${r}`;
  const sbRabbit = (routes: Record<string, { type: 'queue' }> = {}) => createRabbitTransport({ url: RABBITMQ_URL, queueExpiresMs: 600_000, routes });
  const unconfirmed = async (transport: Transport) => createBus({ transport, publisher: { guarantee: 'none', noReceivers: 'ignore' } });
  const bus = await unconfirmed(await sbRabbit());
  const straightBus = await unconfirmed(await sbRabbit(queueRoutesFor(straightTopic)));
  try {
    rows.push({
      transport: 'peers',
      scenario: `rabbitmq publish without confirms, until the queue holds them all: message-queue-toolkit ${version} publish() vs Switchboard batches, guarantee "none"`,
      ...(await paired(
        mqtPublish,
        sbPublishUntilQueued(bus, (r) => `bench.${run}.peer.sbmqt.${r}`, declareTopicQueue),
      )),
      note: '"raw" column = message-queue-toolkit; both timed until checkQueue counts every message',
    });
    rows.push({
      transport: 'peers',
      scenario: `rabbitmq publish without confirms, straight to the queue: message-queue-toolkit ${version} publish() vs Switchboard batches, guarantee "none", routes type "queue"`,
      ...(await paired(mqtPublish, sbPublishUntilQueued(straightBus, straightTopic, declareQueue))),
      note: '"raw" column = message-queue-toolkit; both publish through the default exchange to the queue, timed until checkQueue counts every message',
    });
    rows.push({
      transport: 'peers',
      scenario: `rabbitmq end to end, manual ack, publish without confirms: message-queue-toolkit consumer (no prefetch limit, its default) vs Switchboard (concurrency = prefetch 1000)`,
      ...(await paired(
        mqtEndToEnd,
        sbEndToEndUnconfirmed(
          () => sbRabbit(),
          (r) => `bench.${run}.peer.sbmqte2e.${r}`,
        ),
      )),
      note: '"raw" column = message-queue-toolkit',
    });
    rows.push({
      transport: 'peers',
      scenario: `rabbitmq end to end without confirms, straight to the queue: message-queue-toolkit consumer vs Switchboard (concurrency = prefetch 1000, routes type "queue")`,
      ...(await paired(
        mqtEndToEnd,
        sbEndToEndUnconfirmed(() => sbRabbit(queueRoutesFor(straightE2eTopic)), straightE2eTopic, 'default'),
      )),
      note: '"raw" column = message-queue-toolkit; both publish through the default exchange to the queue',
    });
  } finally {
    await bus.close();
    await straightBus.close();
    await manager.close?.().catch?.(() => undefined);
    await rabbit.close();
  }
}

/**
 * Switchboard end to end as {@link sbEndToEnd}, publishing with guarantee "none" (no confirms); a
 * fresh group per topic unless `group` is given.
 */
function sbEndToEndUnconfirmed(transport: () => Promise<Transport>, topic: (r: number) => string, group?: string): (r: number) => Promise<Sample> {
  return async (r) => {
    const bus = createBus({ transport: await transport(), publisher: { guarantee: 'none' } });
    try {
      const t = topic(r);
      const arrivals = new Arrivals();
      await bus.subscriber.subscribe<{ sentAt: number }>(t, (m) => arrivals.arrive(m.value.sentAt), { concurrency: 1000, group: group ?? `bench-${t}` });
      const started = await sbPublish(bus, t, false, 'unkeyed');
      await arrivals.wait(N);
      return arrivals.sample(started);
    } finally {
      await bus.close();
    }
  };
}

const suites: Record<string, () => Promise<void>> = {
  peers: benchPeers,
  memory: benchMemory,
  kafka: benchKafka,
  rabbitmq: benchRabbit,
  redis: benchRedis,
  'redis-streams': benchRedisStreams,
  nats: benchNats,
  mqtt: benchMqtt,
  postgres: benchPostgres,
  outbox: benchOutbox,
};
for (const name of ONLY) {
  const suite = suites[name];
  if (!suite) throw new Error(`--only: unknown "${name}"`);
  progress(`${name}...`);
  try {
    await suite();
  } catch (error) {
    rows.push({ transport: name, scenario: 'unavailable', switchboard: { msgPerSec: 0 }, note: (error as Error).message.split('\n')[0]! });
  }
}
if (!JSON_OUT && process.stderr.isTTY) process.stderr.write('\r\x1b[K');

if (JSON_OUT) {
  console.log(JSON.stringify({ messages: N, rounds: ROUNDS, node: process.version, rows }, null, 2));
} else {
  const ms = (v?: number) => (v === undefined ? '-' : v.toFixed(1));
  const table = [
    ['transport', 'scenario', 'raw msg/s', 'switchboard msg/s', 'ratio (min-max)', 'target', 'p50 ms raw/sb', 'p99 ms raw/sb', 'note'],
    ...rows.map((r) => [
      r.transport,
      r.scenario,
      r.raw ? String(r.raw.msgPerSec) : '-',
      String(r.switchboard.msgPerSec),
      r.ratios ? `${medianOf(r.ratios).toFixed(2)} (${Math.min(...r.ratios).toFixed(2)}-${Math.max(...r.ratios).toFixed(2)})` : r.raw ? (r.switchboard.msgPerSec / r.raw.msgPerSec).toFixed(2) : '-',
      r.target ?? '',
      r.raw?.p50 !== undefined || r.switchboard.p50 !== undefined ? `${ms(r.raw?.p50)} / ${ms(r.switchboard.p50)}` : '-',
      r.raw?.p99 !== undefined || r.switchboard.p99 !== undefined ? `${ms(r.raw?.p99)} / ${ms(r.switchboard.p99)}` : '-',
      r.note ?? '',
    ]),
  ];
  const widths = table[0]!.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
  console.log(
    `Switchboard bench: ${N} messages (~256 B JSON) per measurement, ${ROUNDS} interleaved rounds after ${WARMUP} uncounted warm-up round(s) per side on throughput rows (msg/s: medians; ratio: median of per-round ratios), p50/p99: under the burst, except the "single publish every 5 ms" rows (idle latency), Node ${process.version}, loopback. target: issues #14, #24, #29.`,
  );
  for (const [i, row] of table.entries()) {
    console.log(row.map((cell, c) => (c < 2 || c === 8 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
}
process.exit(0);
