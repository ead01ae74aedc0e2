// The conformance target for Kafka, shared by the suite's two runs (partition order, and ordering "key").
import type { Producer } from 'kafkajs';
import { afterAll } from 'vitest';
import type { RawMessage } from '@switchboard/core/testing';
import { kafkaCapabilities, type KafkaTransport } from '@switchboard/kafka';
import { rawKafka, TEST_DRIVER, testTransport } from './helpers.js';

let admin: KafkaTransport | undefined;
let rawProducer: Promise<Producer> | undefined;
afterAll(async () => {
  if (rawProducer) await (await rawProducer).disconnect().catch(() => undefined);
  await admin?.close();
});

/** A producer that does not use Switchboard: kafkajs with the headers exactly as given (the id in x-sb-id, as our codec reads it). */
async function publishRaw(_transport: unknown, topic: string, message: RawMessage): Promise<void> {
  rawProducer ??= (async () => {
    const producer = rawKafka().producer();
    await producer.connect();
    return producer;
  })();
  const producer = await rawProducer;
  await producer.send({ topic, acks: -1, messages: [{ key: message.key ?? null, value: Buffer.from(message.body), headers: { ...message.headers, 'x-sb-id': message.id } }] });
}

export const target = {
  name: 'kafka',
  capabilities: kafkaCapabilities(TEST_DRIVER),
  createTransport: (): Promise<KafkaTransport> => testTransport(),
  // outage.test.ts stops the project's broker instead (publish, consume, commits, close, resume).
  brokerLink: { unavailable: 'Kafka clients connect to the addresses the brokers advertise, not through a relay' },
  prepareTopics: async (topics: readonly string[]) => {
    admin ??= await testTransport();
    await admin.ensureTopics(topics);
  },
  publishRaw,
  ephemeralStateLeft: async (_transport: unknown, topic: string) => {
    admin ??= await testTransport();
    return (await admin.admin.listTopics()).includes(topic);
  },
  waitMs: 60_000,
  testTimeoutMs: 120_000,
};
