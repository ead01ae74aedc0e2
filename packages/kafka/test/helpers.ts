import { createKafkaTransport, type KafkaOptionsInput, type KafkaTransport } from '@switchboard/kafka';

export const KAFKA_BROKERS = process.env.KAFKA_BROKERS ?? '127.0.0.1:9092';

/** Test transports: 4 partitions per created topic, quick group coordination. */
export function testTransport(options: KafkaOptionsInput = {}): Promise<KafkaTransport> {
  return createKafkaTransport({ brokers: KAFKA_BROKERS.split(','), partitions: 4, sessionTimeoutMs: 10_000, heartbeatIntervalMs: 1000, ...options } as never);
}
