import { afterAll } from 'vitest';
import { runConformanceSuite } from '@switchboard/core/testing';
import { KAFKA_CAPABILITIES, type KafkaTransport } from '@switchboard/kafka';
import { testTransport } from './helpers.js';

let admin: KafkaTransport | undefined;
afterAll(async () => admin?.close());

runConformanceSuite({
  name: 'kafka',
  capabilities: KAFKA_CAPABILITIES,
  createTransport: () => testTransport(),
  prepareTopics: async (topics) => {
    admin ??= await testTransport();
    await admin.ensureTopics(topics);
  },
  waitMs: 30_000,
  testTimeoutMs: 120_000,
});
