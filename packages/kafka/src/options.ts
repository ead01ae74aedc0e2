import { z } from 'zod';

const brokerList = z.preprocess(
  (value) =>
    typeof value === 'string'
      ? value
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : value,
  z.array(z.string().regex(/^[^\s:]+:\d+$/, 'must be host:port')).min(1),
);

/** Options of `transport` when `kind: kafka`. */
export const kafkaOptionsSchema = z
  .object({
    /** Bootstrap brokers: array or comma-separated "host:port". Default: KAFKA_BROKERS or 127.0.0.1:9092. */
    brokers: brokerList.default(() => (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',')),
    /** Client id the brokers see (logs, quotas). */
    clientId: z.string().min(1).default('switchboard'),
    /** TLS to the brokers (system trust store). */
    ssl: z.boolean().default(false),
    /** SASL authentication: mechanism plain / scram-sha-256 / scram-sha-512 with username and password (never logged). */
    sasl: z
      .object({ mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']), username: z.string(), password: z.string() })
      .strict()
      .optional(),
    /** Topics are created through the admin client when first used (off: they must exist). */
    createTopics: z.boolean().default(true),
    /** Partitions of created topics; "brokers" = as many as the cluster has brokers (one partition per broker spreads the load). */
    partitions: z.union([z.number().int().min(1).max(10_000), z.literal('brokers')]).default('brokers'),
    /** Replicas of created topics (a cluster: 3, with the brokers' min.insync.replicas 2, so acks=all survives one broker). */
    replicationFactor: z.number().int().min(1).max(10).default(1),
    /**
     * The Kafka client library: `kafkajs` (default), or `platformatic` (@platformatic/kafka 2, an optional
     * peer dependency: install it next to this package; Node >= 22.22). Producing, consuming and topic
     * administration all go through the chosen one; the other is not loaded. Keys go to the same
     * partitions with both (Java-compatible murmur2). One consumer group may mix members of both
     * drivers (classic protocol), so `driver` can change one process at a time.
     */
    driver: z.enum(['kafkajs', 'platformatic']).default('kafkajs'),
    /**
     * Consumer group protocol: `classic` (join/sync, client-side assignment), or `consumer` (KIP-848:
     * the broker assigns and rebalances incrementally; Kafka >= 4.0, driver `platformatic` only).
     */
    groupProtocol: z.enum(['classic', 'consumer']).default('classic'),
    /** Producer retries of a failed send. */
    retries: z.number().int().min(0).max(100).default(3),
    /** Idempotent producer (needs guarantee "all"). With driver `platformatic`, acks=all is always idempotent (see the package README). */
    idempotent: z.boolean().default(false),
    /** Connect/metadata timeout (like the Java client's max.block.ms): an unreachable broker gives a clear error fast. */
    connectTimeoutMs: z.number().int().min(100).max(120_000).default(1000),
    /**
     * Bound on one publish, retries included: past it the publish rejects with a PublishError. The
     * client may still deliver it later (same id): a rejected publish is "not confirmed", not "not sent".
     */
    publishTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
    /** Bound on one request to a broker, ms. */
    requestTimeoutMs: z.number().int().min(100).max(600_000).default(30_000),
    /**
     * A consumer not heard from for this long leaves its group (rebalance). Also bounds how long a
     * restarted consumer waits for its old membership to expire after a broker outage, ms.
     */
    sessionTimeoutMs: z.number().int().min(1000).max(3_600_000).default(30_000),
    /** Consumer heartbeats at most this far apart, ms (at most a third of sessionTimeoutMs). */
    heartbeatIntervalMs: z.number().int().min(100).max(60_000).default(3000),
    /** How long the group waits for members to rejoin during a rebalance, ms. */
    rebalanceTimeoutMs: z.number().int().min(1000).max(3_600_000).default(60_000),
    /** Longest a fetch waits for data; also bounds how late a paused partition resumes. */
    maxWaitTimeMs: z.number().int().min(10).max(60_000).default(250),
    /**
     * How old cluster metadata may get before consumers refresh it: partitions added to a subscribed
     * topic are picked up (and read from their beginning) within this bound.
     */
    metadataMaxAgeMs: z.number().int().min(1000).max(3_600_000).default(60_000),
    /**
     * With `ordering` `key` or `none`: records of a partition received and not committed yet (waiting,
     * running, held for a retry, or finished above an unfinished one). At this many the partition's
     * fetching pauses until commits bring it down to half. Also the most a crashed consumer's group
     * handles again per partition.
     */
    maxUncommittedPerPartition: z.number().int().min(1).max(1_000_000).default(10_000),
    /** Offsets of handled messages are committed in batches at most this far apart (0: each message, awaited). */
    commitIntervalMs: z.number().int().min(0).max(60_000).default(100),
    /**
     * How long `close()` waits for its last offset commit, ms. When the broker does not answer within
     * it (an outage), the subscription closes without that commit: what it had acknowledged since its
     * last commit is read again by the partition's next owner (at least once, nothing lost) and an
     * `internal-error` event says so. Without this bound, a close during an outage waited for the
     * client's own retries: about 1 s on kafkajs, 14 s on platformatic.
     */
    closeCommitTimeoutMs: z.number().int().min(100).max(600_000).default(5000),
  })
  .strict()
  .superRefine((options, ctx) => {
    if (options.groupProtocol === 'consumer' && options.driver !== 'platformatic') {
      ctx.addIssue({ code: 'custom', path: ['groupProtocol'], message: 'the "consumer" group protocol (KIP-848) needs driver "platformatic" (kafkajs speaks only the classic protocol)' });
    }
    if (options.heartbeatIntervalMs * 3 > options.sessionTimeoutMs) {
      ctx.addIssue({ code: 'custom', path: ['heartbeatIntervalMs'], message: `must be at most a third of sessionTimeoutMs (${options.sessionTimeoutMs})` });
    }
  });

export type KafkaOptions = z.output<typeof kafkaOptionsSchema>;
export type KafkaOptionsInput = z.input<typeof kafkaOptionsSchema>;
