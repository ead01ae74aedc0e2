/**
 * @switchboard/kafka — Apache Kafka transport (driver kafkajs, or @platformatic/kafka 2).
 *
 * Mapping: topic = Kafka topic (created with `partitions` / `replicationFactor` when first used);
 * key = record key (same key, same partition, so per-key order); headers = record headers, id in
 * `x-sb-id`; guarantee none / leader / all = acks 0 / 1 / -1; group = consumer group; offsets
 * committed only after success or a confirmed dead letter; retries pause only the affected partition.
 */
import type { TransportFactory } from '@switchboard/core';
import { parseOptions } from '@switchboard/core/transport';
import { kafkaOptionsSchema, type KafkaOptions } from './options.js';
import { KafkaTransport, kafkaCapabilities } from './transport.js';

export { kafkaOptionsSchema, type KafkaOptions, type KafkaOptionsInput } from './options.js';
export { ACKS, KAFKA_CAPABILITIES, KafkaTransport, kafkaCapabilities } from './transport.js';
export { ID_HEADER, fromKafkaRecord, toKafkaRecord } from './codec.js';
export { platformaticRunsOn } from './platformatic/runtime.js';
export type { KafkaAdmin, KafkaClient, OutgoingRecord, ConsumedRecord, PartitionEnds, PartitionState, RecordSender } from './client.js';

/** Connects a Kafka transport from (partial) options. */
export async function createKafkaTransport(options: Partial<KafkaOptions> = {}): Promise<KafkaTransport> {
  return KafkaTransport.connect(parseOptions(kafkaOptionsSchema, options));
}

/**
 * The factory an application registers to use `transport.kind: kafka`:
 * `createBusFromConfig(config, { transports: [kafkaTransport] })` or `registerTransport(kafkaTransport)`.
 */
export const kafkaTransport: TransportFactory<KafkaOptions> = {
  kind: 'kafka',
  optionsSchema: kafkaOptionsSchema,
  capabilities: (options) => kafkaCapabilities(options.driver),
  validate: (options, config) =>
    options.idempotent && config.publish.guarantee !== undefined && config.publish.guarantee !== 'all'
      ? [{ path: 'publish.guarantee', message: `an idempotent Kafka producer needs "all" (acks=-1), not "${config.publish.guarantee}"` }]
      : [],
  create: (options) => KafkaTransport.connect(options),
};

/** The same factory under the name tools look for (`switchboard --transport-module`). */
export const transportFactory = kafkaTransport;
