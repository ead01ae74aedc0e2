import { z } from 'zod';

/** Options of `transport` when `kind: redis`. Connection comes from here or from REDIS_URL. */
export const redisOptionsSchema = z
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
     * A command the server does not answer within this fails, ms (a publish then rejects), and the
     * connection it waited on is dropped and opened again. Without it a connection that stopped
     * answering without closing (a network partition, a proxy whose server is gone) left publishes
     * pending forever. Subscriber connections send a PING this often, so a silent one is noticed too
     * (the subscription reports interrupted, then resumed once subscribed again).
     */
    commandTimeoutMs: z.number().int().min(100).max(600_000).default(5000),
    /**
     * Pub/Sub pushes whatever the pace of the handlers and cannot be slowed down: each subscription
     * buffers at most this many received, unhandled messages in process. Beyond it, `overflow` applies.
     */
    maxBuffered: z.number().int().min(1).max(10_000_000).default(10_000),
    /**
     * What happens to a message that arrives while the buffer is full (each one reported as a
     * `buffer-overflow` event): `dead-letter` (default) writes it, unhandled, to the `<channel>-dlq`
     * stream with reason `buffer-overflow`, so it can be replayed; `drop` discards it.
     */
    overflow: z.enum(['dead-letter', 'drop']).default('dead-letter'),
    /**
     * The frame version this transport publishes (it reads every version). 2: binary envelope. 1: the
     * JSON-header frame of 0.1.x — set it on upgraded producers while consumers still run 0.1.x (they
     * would take a version 2 frame whole as a foreign payload), then remove it once all consumers are upgraded.
     */
    wireFormat: z.union([z.literal(1), z.literal(2)]).default(2),
    /**
     * Largest message (body + headers + key, bytes) a publish or a dead letter sends; a larger one is
     * refused with a MessageTooLargeError before it reaches Redis. Default 536870912, Redis' own
     * `proto-max-bulk-len` (512 MB); set it to your server's value.
     */
    maxMessageBytes: z.number().int().min(1024).max(536_870_912).default(536_870_912),
    /** Dead letters go to a Redis Stream `<channel>-dlq` on the same server; cap its length (approximate, 0 = no cap). */
    deadLetterMaxLen: z.number().int().min(0).default(0),
  })
  .strict();

export type RedisOptions = z.output<typeof redisOptionsSchema>;
export type RedisOptionsInput = z.input<typeof redisOptionsSchema>;
