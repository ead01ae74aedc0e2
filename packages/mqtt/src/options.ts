import { z } from 'zod';
import { isMqttText } from './topics.js';

/** MQTT topic levels for the prefix: no wildcards, no `$` at the start, no empty level, text MQTT carries. */
const prefixLevels = z
  .string()
  .refine((value) => /^[^/+#$][^/+#]*(\/[^/+#]+)*$/.test(value) && isMqttText(value), 'must be "/"-separated topic levels without "+", "#", control characters or a leading "$"');

/** Options of `transport` when `kind: mqtt`. The broker comes from here or from MQTT_URL. */
export const mqttOptionsSchema = z
  .object({
    /** Broker URL (mqtt://host:port or mqtts://…). Default: MQTT_URL or mqtt://127.0.0.1:1883. */
    url: z
      .string()
      .default(() => process.env.MQTT_URL ?? 'mqtt://127.0.0.1:1883')
      .refine((value) => {
        try {
          return ['mqtt:', 'mqtts:'].includes(new URL(value).protocol);
        } catch {
          return false;
        }
      }, 'must be an mqtt:// or mqtts:// URL'),
    /** User name, when the broker wants one. */
    username: z.string().optional(),
    /** Password (never logged). */
    password: z.string().optional(),
    /** Connect timeout, ms: an unreachable broker gives a clear error instead of hanging. */
    connectTimeoutMs: z.number().int().min(100).max(120_000).default(5000),
    /** How long a QoS 1 / QoS 2 publish waits for the broker's PUBACK / PUBCOMP, ms. */
    publishTimeoutMs: z.number().int().min(100).max(120_000).default(5000),
    /** Keep-alive interval, s: how soon a dead connection is noticed (1.5× this). */
    keepaliveSec: z.number().int().min(1).max(3600).default(30),
    /** Wait between reconnect attempts, ms. */
    reconnectPeriodMs: z.number().int().min(10).max(60_000).default(250),
    /**
     * Levels put before every topic: topic `orders.eu` is the MQTT topic `<topicPrefix>/orders/eu`
     * (`orders/eu` without a prefix). Default none: Switchboard topics are the device topics.
     */
    topicPrefix: prefixLevels.optional(),
    /**
     * This process' stable identity in its groups (static membership, like Kafka's
     * `group.instance.id`): each member's MQTT session is `sb/<memberId>/<group>/<topic>/<n>` and
     * survives the process (`sessionExpirySec`), so what the broker queued for it while it was gone —
     * its share of the group's messages, and those it had received but not acknowledged — comes back
     * when it returns. Two live processes must not share one. Without it a member's session is new per
     * process, ends when it closes, and a group keeps nothing while no member is connected (declared:
     * `durableGroups` false).
     */
    memberId: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, ".", "-" or "_", at most 64')
      .optional(),
    /**
     * How long the broker keeps a member's session (subscription, queued and unacknowledged messages)
     * after its connection is lost, s. Default: one day with a `memberId`, 60 s without (enough to
     * ride out a lost connection; a closed member ends its session at once).
     */
    sessionExpirySec: z.number().int().min(0).max(4_294_967_295).optional(),
    /**
     * Messages the broker sends a member before it acknowledged earlier ones (MQTT 5 Receive
     * Maximum): the broker keeps the rest queued in the member's session. A member handles one
     * message at a time, in order (MQTT acknowledges in order); `concurrency` opens that many members.
     */
    prefetch: z.number().int().min(1).max(65_535).default(16),
    /**
     * The broker writes a message to disk before it acknowledges it (Mosquitto with
     * `autosave_on_changes true` and `autosave_interval 1`, or a clustered broker with durable
     * storage). Only then is the transport declared persistent and `guarantee: 'all'` offered (QoS 2,
     * resolved on PUBCOMP). Default false: Mosquitto saves its store at intervals and at shutdown, so
     * a PUBACK is not a promise that a crash keeps the message.
     */
    brokerPersists: z.boolean().default(false),
    /**
     * Largest message (body + user properties) a publish or a dead letter sends; a larger one is
     * refused with a MessageTooLargeError before it reaches the broker. Default 268435455, MQTT's own
     * limit; set it to the broker's `message_size_limit`.
     */
    maxMessageBytes: z.number().int().min(1024).max(268_435_455).default(268_435_455),
    /**
     * Wait before a message is tried again when its dead letter could not be published (the broker
     * away, or no subscriber on the dead-letter topic), ms. The member holds it meanwhile.
     */
    unsettledRetryMs: z.number().int().min(10).max(600_000).default(1000),
  })
  .strict();

export type MqttOptions = z.output<typeof mqttOptionsSchema>;
export type MqttOptionsInput = z.input<typeof mqttOptionsSchema>;

/** The session expiry a member connects with (see `sessionExpirySec`). */
export function sessionExpiryOf(options: Pick<MqttOptions, 'memberId' | 'sessionExpirySec'>): number {
  return options.sessionExpirySec ?? (options.memberId !== undefined ? 86_400 : 60);
}
