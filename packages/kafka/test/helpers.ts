import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { Kafka, logLevel } from 'kafkajs';
import { type Recorder, recordLines } from '@switchboard/core/testing';
import { createKafkaTransport, type KafkaOptionsInput, type KafkaTransport } from '@switchboard/kafka';

export const KAFKA_BROKERS = process.env.KAFKA_BROKERS ?? '127.0.0.1:9092';

const made: KafkaTransport[] = [];

/** Test transports: 4 partitions per created topic, quick group coordination. Remembered for cleanup. */
export async function testTransport(options: KafkaOptionsInput = {}): Promise<KafkaTransport> {
  const transport = await createKafkaTransport({ brokers: KAFKA_BROKERS.split(','), partitions: 4, sessionTimeoutMs: 10_000, heartbeatIntervalMs: 1000, ...options } as never);
  made.push(transport);
  return transport;
}

/** Deletes the (uniquely named `sb-*`) topics this file's test transports created, so runs leave nothing behind. */
export async function deleteTestTopics(): Promise<void> {
  const topics = [...new Set(made.splice(0).flatMap((t) => t.knownTopics()))].filter((t) => t.startsWith('sb-'));
  if (topics.length === 0) return;
  const admin = new Kafka({ clientId: 'switchboard-test-cleanup', brokers: KAFKA_BROKERS.split(','), logLevel: logLevel.NOTHING }).admin();
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
