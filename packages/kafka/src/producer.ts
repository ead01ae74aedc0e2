import type { Kafka, Message as KafkaRecordOut } from 'kafkajs';
import type { KafkaOptions } from './options.js';

/**
 * The seam between the transport and a Kafka client's producer. Contract: `send` resolves once the
 * broker acknowledged every record per `acks` (0: written to the socket; 1: the leader; -1: all
 * in-sync replicas) and rejects when it could not; a record with `partition` set goes to that
 * partition, a keyed one to the Java-compatible murmur2 partition of its key (both drivers), a keyless
 * one round-robin. `connect` rejects when no broker answers within the connect timeout.
 */
export interface RecordSender {
  /** Which client does the sending: `kafkajs` or `platformatic` (see the `producer` option). */
  readonly driver: KafkaOptions['producer'];
  connect(): Promise<void>;
  send(topic: string, records: readonly KafkaRecordOut[], acks: 0 | 1 | -1, timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Both drivers' retry backoff: 100 ms, doubling, at most 1 s apart. Ten retries span about 7.5 s,
 * long enough for a leader election on a cluster.
 */
const RETRY_INITIAL_MS = 100;
const RETRY_MAX_MS = 1000;

/** kafkajs' producer (the default). */
export function kafkajsSender(kafka: Kafka, options: KafkaOptions): RecordSender {
  const producer = kafka.producer({
    idempotent: options.idempotent,
    allowAutoTopicCreation: false,
    retry: { retries: options.retries, initialRetryTime: RETRY_INITIAL_MS, maxRetryTime: RETRY_MAX_MS },
  });
  return {
    driver: 'kafkajs',
    connect: () => producer.connect(),
    send: async (topic, records, acks, timeout) => {
      await producer.send({ topic, messages: records as KafkaRecordOut[], acks, timeout });
    },
    close: () => producer.disconnect(),
  };
}

/**
 * @platformatic/kafka's producer (an optional peer dependency): about twice kafkajs' produce
 * throughput on the same broker (docs/benchmarks.md). Same record shape on the wire: key, value,
 * headers, timestamp. Connections open lazily; `connect` asks the cluster for metadata to fail fast.
 */
export async function platformaticSender(options: KafkaOptions): Promise<RecordSender> {
  let kafka: typeof import('@platformatic/kafka');
  try {
    kafka = await import('@platformatic/kafka');
  } catch (error) {
    throw new Error('transport.producer: "platformatic" needs the package @platformatic/kafka (npm install @platformatic/kafka@1)', { cause: error });
  }
  const producer = new kafka.Producer({
    clientId: options.clientId,
    bootstrapBrokers: options.brokers,
    connectTimeout: options.connectTimeoutMs,
    requestTimeout: options.requestTimeoutMs,
    retries: options.retries,
    // The kafkajs producer's backoff. A fixed 100 ms gave up within a second, and a leader kill on a
    // 3-broker cluster rejected two thirds of a run (the cluster test measures it).
    retryDelay: (_client: unknown, _operation: string, attempt: number) => Math.min(RETRY_MAX_MS, RETRY_INITIAL_MS * 2 ** (attempt - 1)),
    metadataMaxAge: options.metadataMaxAgeMs,
    autocreateTopics: false,
    idempotent: options.idempotent,
    ...(options.ssl ? { tls: {} } : {}),
    ...(options.sasl
      ? { sasl: { mechanism: options.sasl.mechanism.toUpperCase() as 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512', username: options.sasl.username, password: options.sasl.password } }
      : {}),
  });
  return {
    driver: 'platformatic',
    connect: async () => {
      await producer.metadata({ topics: [] });
    },
    send: async (topic, records, acks) => {
      const messages = records.map((record) => {
        // Header names and values are bytes for this client (no serializer configured).
        const headers = new Map<Buffer, Buffer>();
        for (const [name, value] of Object.entries(record.headers ?? {})) if (value !== undefined) headers.set(Buffer.from(name), Buffer.isBuffer(value) ? value : Buffer.from(String(value)));
        return {
          topic,
          ...(record.key !== null && record.key !== undefined ? { key: Buffer.isBuffer(record.key) ? record.key : Buffer.from(record.key) } : {}),
          value: Buffer.isBuffer(record.value) ? record.value : Buffer.from(record.value ?? ''),
          headers,
          ...(record.timestamp !== undefined ? { timestamp: BigInt(record.timestamp) } : {}),
          ...(record.partition !== undefined ? { partition: record.partition } : {}),
        };
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
    close: () => producer.close(),
  };
}

/** A network failure or timeout of @platformatic/kafka, alone or among the errors of its retries. */
export function isPlatformaticNetworkError(error: unknown): boolean {
  for (let e = error as { cause?: unknown; code?: unknown; errors?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.code === 'PLT_KFK_NETWORK' || e.code === 'PLT_KFK_TIMEOUT') return true;
    if (e.code === 'PLT_KFK_MULTIPLE' && Array.isArray(e.errors) && e.errors.some(isPlatformaticNetworkError)) return true;
  }
  return false;
}
