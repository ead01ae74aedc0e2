import { z } from 'zod';

const exchangeType = z.enum(['direct', 'fanout', 'topic', 'headers']);

/** Binding arguments of a headers exchange: `x-match` plus the header values to match. */
const headersBinding = z.object({ 'x-match': z.enum(['all', 'any']) }).catchall(z.union([z.string(), z.number(), z.boolean()]));

/**
 * How one core topic maps onto RabbitMQ when not through the main topic exchange.
 * Publishing to the topic publishes to `exchange` with routing key `routingKey` (default: the topic).
 * Subscribing binds the group's queue to `exchange` with the same routing key (direct/topic), no key
 * (fanout), or the group's `headers` arguments (headers exchange).
 */
const routeSchema = z
  .object({
    exchange: z.string().min(1),
    type: exchangeType,
    routingKey: z.string().optional(),
    /** Headers exchanges: binding arguments per consumer group (the group "default" is used when absent). */
    headers: z.record(z.string(), headersBinding).optional(),
  })
  .strict();

/**
 * A core topic published straight to one consumer group's queue through the default exchange, with
 * the queue's name as routing key: RabbitMQ's work queue. No exchange routes it (the broker's cheapest
 * path), so only that group gets the messages: subscribing to the topic with another group, or as a
 * request/reply or broadcast subscription, is refused. Patterns on the main exchange do not see it.
 */
const queueRouteSchema = z
  .object({
    type: z.literal('queue'),
    /** The one consumer group of the topic; its queue is the topic's name for the default group, `<topic>.<group>` otherwise. */
    group: z.string().min(1).default('default'),
  })
  .strict();

/** Options of `transport` when `kind: rabbitmq`. */
export const rabbitOptionsSchema = z
  .object({
    /**
     * amqp:// or amqps:// URL with vhost and credentials; for a cluster, the URLs of its nodes (array or
     * comma-separated): connections go to the first that answers and move to the next one when a node
     * is lost. Default: RABBITMQ_URL or amqp://guest:guest@127.0.0.1:5672.
     */
    url: z
      .union([z.string(), z.array(z.string())])
      .transform((value) => (typeof value === 'string' ? value.split(',') : value).map((s) => s.trim()).filter(Boolean))
      .pipe(z.array(z.string().regex(/^amqps?:\/\//, 'must start with amqp:// or amqps://')).min(1))
      .default(() => [process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672']),
    /** The main exchange (type topic: core patterns `*`/`#` are its native syntax). */
    exchange: z.string().min(1).default('switchboard'),
    /** Topics routed through other exchanges (direct, fanout, headers...) or straight to one group's queue (`type: 'queue'`). */
    routes: z.record(z.string(), z.discriminatedUnion('type', [routeSchema, queueRouteSchema])).default({}),
    /**
     * `broker` (default): a retry is republished to a per-delay TTL queue that dead-letters back to the
     * work queue, so a backing-off message holds no prefetch slot. `in-process`: the handler slot waits.
     */
    retryMode: z.enum(['broker', 'in-process']).default('broker'),
    /**
     * Messages one consumer may hold unacknowledged (the channel's prefetch, basic.qos), never fewer
     * than its subscription's concurrency. Default: the concurrency, so the broker gives each member
     * only what it can start at once and competing consumers share a queue evenly. A larger value keeps
     * the next messages in process while the handlers run (in arrival order, handed to a handler as one
     * finishes), so a low-concurrency consumer no longer waits a round trip to the broker per message.
     * Two costs: a member holds messages another member could take, and what it holds when it closes or
     * loses its channel goes back to the queue marked redelivered, which counts as a delivery attempt
     * (the broker cannot tell a held message from a handled one).
     */
    prefetch: z.number().int().min(1).max(65_535).optional(),
    /** Queue type of the group queues. Quorum queues can cap redeliveries with `deliveryLimit`. */
    queueType: z.enum(['classic', 'quorum']).default('classic'),
    /** Quorum queues only: after this many redeliveries the broker dead-letters the message to `<queue>-dlq`. */
    deliveryLimit: z.number().int().min(1).optional(),
    /** Delete group queues left unused this long (x-expires), ms. Off by default. */
    queueExpiresMs: z.number().int().min(1000).optional(),
    /** How long a publish may wait for a connection and its confirms before it fails, ms. */
    publishTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
    /**
     * AMQP heartbeat asked of the broker, seconds (the lower of this and the broker's setting applies).
     * A connection that goes silent (a partition) is noticed after two to three of them: its consumers
     * report subscription-interrupted and resume on a new connection, and the broker requeues what they
     * held. 0 turns heartbeats off (a silent connection is then noticed only by TCP, if ever). A
     * `heartbeat` parameter on the URL wins over this. Default 10 (the broker's own default is 60:
     * two to three minutes of a consumer reading as live while it receives nothing).
     */
    heartbeatSeconds: z.number().int().min(0).max(600).default(10),
    /** Connect timeout of the first connection, ms: an unreachable broker fails fast at startup. */
    connectTimeoutMs: z.number().int().min(100).max(120_000).default(5000),
    /**
     * Secret (at least 16 characters) that signs the adapter's control headers (attempt, topic,
     * timestamp). Set it where producers are not trusted: without a valid signature those headers are
     * ignored (counted as `untrusted-header`). Every Switchboard process of the deployment needs the same key.
     */
    signingKey: z.string().min(16).optional(),
    /**
     * Largest message (body + headers + key, bytes) a publish sends; a larger one is refused before it
     * reaches the broker with a MessageTooLargeError (the server would close the channel on it). Set it
     * to the server's `max_message_size`; default 134217728, RabbitMQ's own default (128 MiB).
     */
    maxMessageBytes: z.number().int().min(1024).max(536_870_912).default(134_217_728),
    /**
     * How often each subscription checks its topology, ms: that its exchange and queue exist (else it
     * re-declares them, reporting subscription-interrupted / -resumed) and that its queue is bound
     * (bound again, idempotently). 0 turns the check off. Independently of it, a message this
     * transport publishes that comes back unroutable while a local subscription should have received
     * it restores that subscription's topology at once.
     */
    topologyCheckIntervalMs: z.union([z.literal(0), z.number().int().min(100).max(3_600_000)]).default(10_000),
    /**
     * The connection's name as RabbitMQ shows it (client property `connection_name`: management UI,
     * `rabbitmqctl list_connections client_properties`), e.g. the service's name: 1 to 255 characters.
     * Default: none.
     */
    connectionName: z.string().min(1).max(255).optional(),
    /** First wait before reconnecting after a lost connection, ms (doubles up to reconnectMaxDelayMs). */
    reconnectInitialDelayMs: z.number().int().min(10).max(600_000).default(100),
    /** Longest wait between reconnect attempts, ms. */
    reconnectMaxDelayMs: z.number().int().min(10).max(600_000).default(5000),
  })
  .strict()
  .superRefine((options, ctx) => {
    if (options.deliveryLimit !== undefined && options.queueType !== 'quorum') {
      ctx.addIssue({ code: 'custom', path: ['deliveryLimit'], message: 'needs queueType "quorum" (classic queues have no delivery limit)' });
    }
  });

export type RabbitOptions = z.output<typeof rabbitOptionsSchema>;
export type RabbitOptionsInput = z.input<typeof rabbitOptionsSchema>;
/**
 * How a topic is routed: through an exchange, or straight to one group's queue (through the default
 * exchange, '', with the queue's name as routing key).
 */
export type RabbitRoute = z.output<typeof routeSchema> | (z.output<typeof queueRouteSchema> & { exchange: ''; routingKey: string; headers?: undefined });
