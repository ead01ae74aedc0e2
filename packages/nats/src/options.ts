import { z } from 'zod';

/** A subject made of tokens (letters, digits, `-`, `_`), dot-separated: no wildcards, no spaces. */
const subjectTokens = z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'must be dot-separated tokens of letters, digits, "-" or "_"');

/** Options of `transport` when `kind: nats`. Servers come from here or from NATS_URL. */
export const natsOptionsSchema = z
  .object({
    /** Server URLs (nats://host:port), comma-separated or a list. Default: NATS_URL or nats://127.0.0.1:4222. */
    servers: z
      .union([z.string(), z.array(z.string()).min(1)])
      .default(() => process.env.NATS_URL ?? 'nats://127.0.0.1:4222')
      .transform((value) =>
        Array.isArray(value)
          ? value
          : value
              .split(',')
              .map((s) => s.trim())
              .filter(Boolean),
      ),
    /** User name, when the server wants one. */
    user: z.string().optional(),
    /** Password (never logged). */
    pass: z.string().optional(),
    /** Token authentication (never logged). */
    token: z.string().optional(),
    /** Connect timeout, ms: an unreachable server gives a clear error instead of hanging. */
    connectTimeoutMs: z.number().int().min(100).max(120_000).default(5000),
    /** How long a publish waits for the stream's acknowledgement, ms. */
    publishTimeoutMs: z.number().int().min(100).max(120_000).default(5000),
    /**
     * How often the client PINGs the server, ms. With two PINGs unanswered the connection is taken
     * as stale and replaced, so one that goes silent (a partition) is noticed two to three intervals
     * later: its consumers read again once a new connection is up. Default 10000 (the client's own
     * default is 2 minutes: a consumer received nothing for four to six minutes).
     */
    pingIntervalMs: z.number().int().min(500).max(600_000).default(10_000),
    /**
     * The JetStream stream every topic is stored in. Created with the options below when missing
     * (`createStream`), else it must exist and capture `<subjectPrefix>.>`.
     */
    stream: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, "-" or "_", at most 64')
      .default('SWITCHBOARD'),
    /**
     * Topic `orders.eu` is the subject `<subjectPrefix>.orders.eu`; the stream captures `<subjectPrefix>.>`
     * (a stream on every subject would also store request inboxes). Raw producers publish there.
     */
    subjectPrefix: subjectTokens.default('sb'),
    /** Create the stream when it does not exist (default). False: it must exist (startup fails naming `stream`). */
    createStream: z.boolean().default(true),
    /**
     * Retention of a created stream: `limits` (default) keeps messages until `maxAgeMs` / `maxBytes`,
     * so a new group can read from the start; `interest` deletes a message once every group's
     * consumer acknowledged it, and discards a message no group's consumer exists for yet (a group
     * created later never sees it). `workqueue` is not offered: it allows one group per subject.
     */
    retention: z.enum(['limits', 'interest']).default('limits'),
    /** Where a created stream keeps messages. */
    storage: z.enum(['file', 'memory']).default('file'),
    /** Copies of a created stream (1, 3 or 5 on a cluster). */
    replicas: z.number().int().min(1).max(5).default(1),
    /** Oldest message a created stream keeps, ms; 0 = no limit. Older messages are deleted whether or not every group read them. */
    maxAgeMs: z.number().int().min(0).default(0),
    /** Largest size of a created stream, bytes; -1 = no limit. The oldest messages go first. */
    maxBytes: z.number().int().min(-1).default(-1),
    /** The stream's duplicate window, ms: a publish whose message id (`Nats-Msg-Id`) was stored within it is dropped by the server. */
    duplicateWindowMs: z.number().int().min(100).max(86_400_000).default(120_000),
    /**
     * Messages one subscription holds at most (fetched, running, or waiting for an in-process
     * retry): it fetches no more until some are settled. At least the subscription's `concurrency`.
     */
    prefetch: z.number().int().min(1).max(10_000).default(64),
    /** How long one fetch waits for messages, ms (at least 1000: the client's minimum). */
    fetchExpiresMs: z.number().int().min(1000).max(60_000).default(2000),
    /** How often a subscription reads its group's lag from the consumer info, ms. */
    lagIntervalMs: z.number().int().min(50).max(600_000).default(5000),
    /**
     * The consumer's ack wait, ms: a message neither acknowledged nor refreshed for this long is
     * redelivered (to any member). Held messages are refreshed (`working`) every third of it, so only
     * a crashed or frozen member's messages come again.
     */
    ackWaitMs: z.number().int().min(500).max(3_600_000).default(30_000),
    /**
     * Largest message (body + headers) a publish or a dead letter sends; a larger one is refused
     * with a MessageTooLargeError before it reaches the server. Default 1048576, the server's
     * `max_payload` default; set it to your server's value.
     */
    maxMessageBytes: z.number().int().min(1024).max(67_108_864).default(1_048_576),
  })
  .strict();

export type NatsOptions = z.output<typeof natsOptionsSchema>;
export type NatsOptionsInput = z.input<typeof natsOptionsSchema>;
