import { z } from 'zod';

/**
 * The envelope's optional fields. The key travels only when set, and the timestamp in the broker's
 * own field where it has one (Kafka); the id is the field a caller may leave off.
 */
export interface EnvelopeOptions {
  /**
   * `always` (default): every message carries its id, given or generated, so deduplication, replays
   * and logs see the same id end to end. `given`: only an id the caller set travels; a message
   * without one is named on the consumer side by the broker (Kafka `<topic>-<partition>-<offset>`,
   * a Redis stream entry id, JetStream `<stream>:<sequence>`, a PostgreSQL row, the memory broker's
   * sequence), or gets a fresh id at each delivery (Redis Pub/Sub, MQTT: they have no name of their
   * own for a message), so deduplicating such messages needs a `keyOf`. RabbitMQ carries every id
   * (its `messageId` property matches an unroutable return to its publish). `publish()` still returns ids for
   * them; they stay in this process. Dead letters, fallback relays and replays always carry ids.
   */
  readonly id?: 'always' | 'given';
  /**
   * `always` (default): the message's creation time travels, to the millisecond, in a header where
   * the broker has no field for it. `broker`: a time the caller set travels as before; a stamped one
   * only where the broker has its own field: Kafka's record
   * timestamp and the PostgreSQL row keep the creation time; RabbitMQ's timestamp property keeps it
   * to the second; a Redis stream entry id and JetStream give the time the broker stored it; MQTT
   * gives the time of receipt. Each header left off is one field less per message for the broker
   * to parse (on RabbitMQ a few percent of its publish rate each).
   */
  readonly timestamp?: 'always' | 'broker';
}

const envelopeFieldsSchema = z.object({ id: z.enum(['always', 'given']).optional(), timestamp: z.enum(['always', 'broker']).optional() }).strict();
export const envelopeSchema = envelopeFieldsSchema.extend({ topics: z.record(z.string(), envelopeFieldsSchema).optional() }).strict();

/** The bus's envelope, with per-topic choices (exact topic names) over it. */
export type Envelope = EnvelopeOptions & { readonly topics?: Readonly<Record<string, EnvelopeOptions>> };
