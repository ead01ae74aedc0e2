import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { Kafka, logLevel } from 'kafkajs';
import { type Recorder, recordLines } from '@switchboard/core/testing';
import { createKafkaTransport, type KafkaOptionsInput, type KafkaTransport } from '@switchboard/kafka';

export const KAFKA_BROKERS = process.env.KAFKA_BROKERS ?? '127.0.0.1:9092';

const made: KafkaTransport[] = [];

/**
 * The driver the Kafka project runs on: `SWITCHBOARD_KAFKA_DRIVER` (the vitest project `kafka-platformatic`
 * sets it to platformatic; default kafkajs), and `SWITCHBOARD_KAFKA_GROUP_PROTOCOL` (classic / consumer).
 */
export const TEST_DRIVER = (process.env.SWITCHBOARD_KAFKA_DRIVER ?? 'kafkajs') as 'kafkajs' | 'platformatic';
export const TEST_GROUP_PROTOCOL = (process.env.SWITCHBOARD_KAFKA_GROUP_PROTOCOL ?? 'classic') as 'classic' | 'consumer';

/** Test transports on the project's driver: 4 partitions per created topic, quick group coordination. Remembered for cleanup. */
export async function testTransport(options: KafkaOptionsInput = {}): Promise<KafkaTransport> {
  const transport = await createKafkaTransport({
    brokers: KAFKA_BROKERS.split(','),
    partitions: 4,
    sessionTimeoutMs: 10_000,
    heartbeatIntervalMs: 1000,
    driver: TEST_DRIVER,
    groupProtocol: TEST_GROUP_PROTOCOL,
    ...options,
  } as never);
  made.push(transport);
  return transport;
}

/** A plain kafkajs client (the raw producer and admin of tests), whatever driver the transports under test use. */
export function rawKafka(clientId = 'switchboard-test'): Kafka {
  return new Kafka({ clientId, brokers: KAFKA_BROKERS.split(','), logLevel: logLevel.NOTHING });
}

/** Deletes the (uniquely named `sb-*`) topics this file's test transports created, so runs leave nothing behind. */
export async function deleteTestTopics(): Promise<void> {
  const topics = [...new Set(made.splice(0).flatMap((t) => t.knownTopics()))].filter((t) => t.startsWith('sb-'));
  if (topics.length === 0) return;
  const admin = rawKafka('switchboard-test-cleanup').admin();
  try {
    await admin.connect();
    await admin.deleteTopics({ topics, timeout: 30_000 });
  } catch {
    // best effort: a broker restarted by an outage test may still be settling
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** The ids a consumer fixture process prints, one per line as it handles them (its READY line left out). */
export function handledLines(child: ChildProcessByStdio<null, Readable, null>): Recorder<string> {
  return recordLines(child.stdout, ['READY']);
}
