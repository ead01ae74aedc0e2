/**
 * @switchboard/rabbitmq — RabbitMQ transport (AMQP 0-9-1, amqplib 2.x with connection recovery).
 *
 * Mapping:
 * - a core topic is a routing key on the main exchange (`switchboard`, type topic), unless `routes`
 *   sends it through another exchange (direct, fanout, topic, headers);
 * - a consumer group is a durable queue: the topic's name for the default group, `<topic>.<group>`
 *   otherwise. Consumers of one queue compete (round-robin); each group's queue gets every message;
 * - guarantee "none": transient, unconfirmed (a channel without confirm mode); "leader": transient, confirmed; "all": persistent and
 *   confirmed (confirms awaited per batch);
 * - ack after success or after the DLQ confirmed; prefetch = concurrency, or `prefetch` when larger
 *   (what arrives beyond the concurrency waits in process, in arrival order);
 * - retry `broker` (default): republish to `<queue>.retry.<delayMs>` (TTL, dead-letters back) and ack;
 *   `in-process`: wait in the handler slot;
 * - dead letters: durable queue `<topic>-dlq` bound to the main exchange (the broker's own x-death
 *   history travels as `x-dlq-x-death`).
 */
import type { TransportFactory } from '@switchboard/core';
import { parseOptions } from '@switchboard/core/transport';
import { rabbitOptionsSchema, type RabbitOptions, type RabbitOptionsInput } from './options.js';
import { RabbitTransport, rabbitCapabilities } from './transport.js';

export { rabbitOptionsSchema, type RabbitOptions, type RabbitOptionsInput, type RabbitRoute } from './options.js';
export { RabbitTransport, rabbitCapabilities, queueNameFor, retryQueueName } from './transport.js';
export { AmqpHeaders } from './codec.js';

/** Connects a RabbitMQ transport from (partial) options. */
export async function createRabbitTransport(options: RabbitOptionsInput = {}): Promise<RabbitTransport> {
  return RabbitTransport.connect(parseOptions(rabbitOptionsSchema, options));
}

/**
 * The factory an application registers to use `transport.kind: rabbitmq`:
 * `createBusFromConfig(config, { transports: [rabbitmqTransport] })` or `registerTransport(rabbitmqTransport)`.
 */
export const rabbitmqTransport: TransportFactory<RabbitOptions> = {
  kind: 'rabbitmq',
  optionsSchema: rabbitOptionsSchema,
  capabilities: (options) => rabbitCapabilities(options),
  create: (options) => RabbitTransport.connect(options),
};

/** The same factory under the name tools look for (`switchboard --transport-module`). */
export const transportFactory = rabbitmqTransport;
