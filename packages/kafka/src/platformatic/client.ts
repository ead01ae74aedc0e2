import type { Producer } from '@platformatic/kafka';
import { ConfigError } from '@switchboard/core';
import type { KafkaClient, RecordSender } from '../client.js';
import type { KafkaOptions } from '../options.js';
import { isPlatformaticNetworkError } from '../errors.js';
import { PlatformaticAdmin } from './admin.js';
import { baseOptions, type PlatformaticModule } from './connection.js';
import { PlatformaticGroupConsumer } from './consumer.js';
import { platformaticRunsOn } from './runtime.js';

/** Loads @platformatic/kafka 2, or says clearly why it cannot (the Node version, or the package missing). */
export async function loadPlatformatic(): Promise<PlatformaticModule> {
  if (!platformaticRunsOn())
    throw new ConfigError([{ path: 'transport.driver', message: `"platformatic" needs Node >= 22.22 (@platformatic/kafka 2); this is Node ${process.versions.node}: use driver "kafkajs" here` }]);
  try {
    return await import('@platformatic/kafka');
  } catch (error) {
    throw new Error('transport.driver: "platformatic" needs the package @platformatic/kafka next to @switchboard/kafka (npm install @platformatic/kafka@2)', { cause: error });
  }
}

/** The @platformatic/kafka driver: producer, admin and consumers all through @platformatic/kafka 2; kafkajs is not loaded. */
export async function platformaticClient(options: KafkaOptions): Promise<KafkaClient> {
  const kafka = await loadPlatformatic();
  const admin = new PlatformaticAdmin(kafka, options);
  return {
    driver: 'platformatic',
    sender: platformaticSender(kafka, options),
    admin,
    consumer: (spec) => new PlatformaticGroupConsumer(kafka, options, spec, admin),
    close: () => admin.close(),
  };
}

/** Header names as bytes, made once per name (the same few names on every record); bounded, the rest made per use. */
const headerNames = new Map<string, Buffer>();
function headerName(name: string): Buffer {
  let bytes = headerNames.get(name);
  if (!bytes) {
    bytes = Buffer.from(name);
    if (headerNames.size < 256) headerNames.set(name, bytes);
  }
  return bytes;
}

/**
 * @platformatic/kafka's producer: about twice kafkajs' produce throughput on the same broker
 * (docs/benchmarks.md). Same record shape on the wire: key, value, headers, timestamp; keys go to the
 * same partitions as with kafkajs (Java-compatible murmur2). Connections open lazily; `connect` asks
 * the cluster for metadata to fail fast.
 */
export function platformaticSender(kafka: PlatformaticModule, options: KafkaOptions): RecordSender {
  // acks=-1 goes through an idempotent producer, always: 2.12.1 retries a produce spanning several
  // partitions as a whole when one of them fails (e.g. NOT_LEADER right after a topic is created), and
  // without broker-side dedup the partitions that had succeeded got their records twice (15-23 records
  // for 10 sent on fresh 4-partition topics, 3 rounds out of 4). The idempotent producer's sequence
  // numbers make the broker drop those copies (10 of 10, 5 rounds). acks 0/1 cannot be idempotent.
  let confirmed: Producer | undefined;
  let unconfirmed: Producer | undefined;
  const producerFor = (acks: 0 | 1 | -1): Producer =>
    acks === -1 ? (confirmed ??= new kafka.Producer({ ...baseOptions(options), idempotent: true })) : (unconfirmed ??= new kafka.Producer({ ...baseOptions(options), idempotent: false }));
  return {
    driver: 'platformatic',
    connect: async () => {
      await producerFor(-1).metadata({ topics: [] });
    },
    send: async (topic, records, acks) => {
      const producer = producerFor(acks);
      const messages = records.map((record) => {
        // Header names and values are bytes for this client (no serializer configured).
        const headers = new Map<Buffer, Buffer>();
        for (const name in record.headers) headers.set(headerName(name), Buffer.from(record.headers[name]!));
        const message: { topic: string; key?: Buffer; value: Buffer; headers: Map<Buffer, Buffer>; timestamp: bigint; partition?: number } = {
          topic,
          value: record.value,
          headers,
          timestamp: BigInt(record.timestamp),
        };
        if (record.key !== null) message.key = Buffer.isBuffer(record.key) ? record.key : Buffer.from(record.key);
        if (record.partition !== undefined) message.partition = record.partition;
        return message;
      });
      // This client retries a produce on the leader it looked up first, and looks leaders up again
      // only after a protocol error or when its metadata is `metadataMaxAgeMs` old. A leader that
      // died (connection refused, timeouts) therefore kept failing sends for up to a minute on the
      // 3-broker cluster test. After such a failure: forget the metadata and send again, twice at most;
      // the publish deadline bounds it all. A resend may duplicate (at least once, as kafkajs' retries).
      for (let attempt = 1; ; attempt++) {
        try {
          await producer.send({ acks, messages });
          return;
        } catch (error) {
          if (attempt > 2 || !isPlatformaticNetworkError(error)) throw error;
          producer.clearMetadata();
        }
      }
    },
    close: async () => {
      await Promise.all([confirmed?.close(), unconfirmed?.close()]);
    },
  };
}
