import { Readable } from 'node:stream';
import type { BaseOptions, MessagesStream } from '@platformatic/kafka';
import type { KafkaOptions } from '../options.js';
import { retryDelayMs } from '../retry.js';

export type PlatformaticModule = typeof import('@platformatic/kafka');

/** Connection options every @platformatic/kafka client of a transport shares (credentials are passed, never logged). */
export function baseOptions(options: KafkaOptions): BaseOptions {
  return {
    clientId: options.clientId,
    bootstrapBrokers: options.brokers,
    connectTimeout: options.connectTimeoutMs,
    requestTimeout: options.requestTimeoutMs,
    retries: options.retries,
    // The kafkajs producer's backoff. A fixed 100 ms gave up within a second, and a leader kill on a
    // 3-broker cluster rejected two thirds of a run (the cluster test measures it).
    retryDelay: (_client: unknown, _operation: string, attempt: number) => retryDelayMs(attempt),
    metadataMaxAge: options.metadataMaxAgeMs,
    autocreateTopics: false,
    ...(options.ssl ? { tls: {} } : {}),
    ...(options.sasl
      ? { sasl: { mechanism: options.sasl.mechanism.toUpperCase() as 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512', username: options.sasl.username, password: options.sasl.password } }
      : {}),
  };
}

/**
 * A stream that only keeps a consumer's group membership (both group protocols join through
 * `consume()`) and never fetches: the library resumes its streams after a revocation, which would
 * start a fetch loop whose records nobody reads. Its `resume` is a no-op until `letGo()`, when the
 * library closes it.
 */
export function dormant(stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>): { letGo(): void } {
  let held = true;
  stream.resume = function resume(this: MessagesStream<Buffer, Buffer, Buffer, Buffer>) {
    return held ? this : (Readable.prototype.resume.call(this) as typeof this);
  };
  return {
    letGo: () => {
      held = false;
    },
  };
}
