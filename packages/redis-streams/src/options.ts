import { z } from 'zod';

/** Options of `transport` when `kind: redis-streams`. Connection comes from here or from REDIS_URL. */
export const redisStreamsOptionsSchema = z
  .object({
    /** redis:// or rediss:// URL, may carry user and password. Default: REDIS_URL or redis://127.0.0.1:6379. */
    url: z
      .string()
      .regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
      .default(() => process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'),
    /** ACL user, when not in the URL. */
    username: z.string().optional(),
    /** ACL password, when not in the URL (never logged). */
    password: z.string().optional(),
    /** Connect timeout, ms: an unreachable server gives a clear error instead of hanging. */
    connectTimeoutMs: z.number().int().min(100).max(120_000).default(5000),
    /**
     * A command the server does not answer within this fails, ms (a publish then rejects; a blocking
     * read gets `blockMs` more), and the connection it waited on is dropped and opened again: a reader
     * reports the subscription interrupted, then resumed. Without it a connection that stopped
     * answering without closing (a network partition, a proxy whose server is gone) left publishes and
     * `close()` pending forever. With `replicas` set, commands get `replicaTimeoutMs` more (WAIT
     * blocks that long before it answers).
     */
    commandTimeoutMs: z.number().int().min(100).max(600_000).default(5000),
    /**
     * Entries one subscription holds at most (read, running, or waiting for a retry): it reads no more
     * until some are settled. At least the subscription's `concurrency`.
     */
    prefetch: z.number().int().min(1).max(100_000).default(64),
    /** How long one XREADGROUP blocks waiting for new entries, ms (the read loop's heartbeat). */
    blockMs: z.number().int().min(10).max(60_000).default(2000),
    /**
     * An entry pending this long with no sign of life from its consumer is claimed by another member
     * of the group (XCLAIM). Live members refresh what they hold every third of it, so only a crashed
     * or frozen member's entries get claimed; a claim counts as a delivery (the attempt goes up).
     */
    claimIdleMs: z.number().int().min(100).max(86_400_000).default(30_000),
    /** How often a subscription looks for claimable entries and reads its group's lag, ms. */
    claimIntervalMs: z.number().int().min(50).max(600_000).default(1000),
    /**
     * Caps each stream (XADD `MAXLEN ~ n`, approximate). 0 = no cap (default). A cap deletes the oldest
     * entries whether or not every group has read them: a group lagging by more than that loses them.
     */
    maxLen: z.number().int().min(0).default(0),
    /**
     * Deletes entries older than this, ms, on each XADD (`MINID`, exact). 0 = no age limit (default).
     * Like `maxLen`, it deletes whether or not every group has read them. Not together with `maxLen`
     * (an XADD takes one trim rule).
     */
    maxAgeMs: z.number().int().min(0).default(0),
    /**
     * Replicas `guarantee: 'all'` waits for (WAIT n): 0 (default) declares no `all` guarantee, since a
     * lone server cannot confirm a copy. Set it to the replicas your server has.
     */
    replicas: z.number().int().min(0).max(100).default(0),
    /** How long WAIT gives the replicas, ms; fewer confirmations in that time reject the publish. */
    replicaTimeoutMs: z.number().int().min(1).max(120_000).default(5000),
    /**
     * Largest message (body + headers + key, bytes) a publish or a dead letter sends; a larger one is
     * refused with a MessageTooLargeError before it reaches Redis. Default 536870912, Redis' own
     * `proto-max-bulk-len` (512 MB); set it to your server's value.
     */
    maxMessageBytes: z.number().int().min(1024).max(536_870_912).default(536_870_912),
  })
  .strict()
  .refine((o) => o.maxLen === 0 || o.maxAgeMs === 0, { path: ['maxAgeMs'], message: 'cannot be set together with maxLen (an XADD takes one trim rule)' });

export type RedisStreamsOptions = z.output<typeof redisStreamsOptionsSchema>;
export type RedisStreamsOptionsInput = z.input<typeof redisStreamsOptionsSchema>;
