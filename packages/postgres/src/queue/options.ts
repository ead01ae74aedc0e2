import { z } from 'zod';

/** Options of `transport` when `kind: postgres`. The database comes from here or from DATABASE_URL. */
export const postgresQueueOptionsSchema = z
  .object({
    /** postgres:// URL, may carry user and password (never logged). Default: DATABASE_URL or postgres://postgres@127.0.0.1:5432/postgres. */
    url: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must start with postgres:// or postgresql://')
      .default(() => process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'),
    /** Prefix of the transport's tables (`<prefix>_messages`, `_subscriptions`, `_deliveries`, `_schema`) and of its NOTIFY channel. */
    tablePrefix: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,40}$/, 'lower-case letters, digits and "_", at most 41')
      .default('switchboard_queue'),
    /** Run the shipped migration at startup (under an advisory lock, so members starting together are safe). False: the tables must exist. */
    migrate: z.boolean().default(true),
    /** Connections of the pool (publishes, acknowledgements, leases), as many again at most for claims (opened as subscriptions claim), plus one for LISTEN. */
    poolSize: z.number().int().min(1).max(200).default(10),
    /** Connect timeout, ms: an unreachable database gives a clear error instead of hanging. */
    connectTimeoutMs: z.number().int().min(100).max(120_000).default(5000),
    /** A statement not answered within this, ms, fails (a frozen database is an outage, not a hang). */
    queryTimeoutMs: z.number().int().min(100).max(600_000).default(15_000),
    /**
     * How long a claimed message is leased to its member, ms. Live members extend what they hold
     * every third of it, so only a crashed or frozen member's messages return to the group, once it
     * expires (each return counts as an attempt).
     */
    leaseMs: z.number().int().min(500).max(86_400_000).default(30_000),
    /**
     * Messages one subscription holds at most (claimed and not settled): it claims no more until half
     * the window is free, and half the window per claim (so the other members of the group get a share of a
     * burst). At least the subscription's `concurrency`.
     */
    prefetch: z.number().int().min(1).max(10_000).default(16),
    /**
     * Longest a member waits between two claims when no notification came, ms: the bounded fallback
     * for a lost NOTIFY, an expired lease or a retry due on another member. New messages wake members
     * at once through LISTEN/NOTIFY.
     */
    pollIntervalMs: z.number().int().min(20).max(60_000).default(1000),
    /** How often a subscription counts what its group still has to handle (lag), ms. */
    lagIntervalMs: z.number().int().min(50).max(600_000).default(5000),
    /**
     * How long a message every group has acknowledged is kept, ms, so a new group with
     * `startFrom: 'earliest'` can read it. 0 = deleted at the next retention run. A message some
     * group still has to handle is never deleted.
     */
    retainMs: z.number().int().min(0).default(86_400_000),
    /** How often the retention job runs, ms. */
    retentionIntervalMs: z.number().int().min(100).max(86_400_000).default(60_000),
    /** Rows the retention job deletes per statement (it repeats up to 20 statements per run): bounds each run's locks and WAL. */
    retentionBatch: z.number().int().min(10).max(100_000).default(5000),
    /**
     * Largest message (body + headers) a publish or a dead letter writes; a larger one is refused
     * with a MessageTooLargeError before it reaches the database. Default 8 MiB.
     */
    maxMessageBytes: z
      .number()
      .int()
      .min(1024)
      .max(512 * 1024 * 1024)
      .default(8 * 1024 * 1024),
  })
  .strict();

export type PostgresQueueOptions = z.output<typeof postgresQueueOptionsSchema>;
export type PostgresQueueOptionsInput = z.input<typeof postgresQueueOptionsSchema>;
