/**
 * @switchboard/nats — NATS JetStream transport (@nats-io/jetstream): durable, acknowledged, with consumer groups.
 *
 * Mapping: topic `t` = subject `<subjectPrefix>.t` in one stream (`stream`, capturing
 * `<subjectPrefix>.>`); group = durable pull consumer (created at new messages for `latest`, at the
 * first stored one for `earliest`); each subscription = one member fetching from it; ack = `ackAck`;
 * attempt = the server's delivery count; message id = `Nats-Msg-Id` (the stream's duplicate window
 * drops a repeated publish); dead letters: the subject `<subjectPrefix>.<topic>-dlq`.
 */
import type { TransportFactory } from '@switchboard/core';
import { parseOptions } from '@switchboard/core/transport';
import { natsOptionsSchema, type NatsOptions, type NatsOptionsInput } from './options.js';
import { NatsTransport, natsCapabilities } from './transport.js';

export { natsOptionsSchema, type NatsOptions, type NatsOptionsInput } from './options.js';
export { NatsTransport, natsCapabilities } from './transport.js';
export { durableName, filterOf, subjectOf } from './subjects.js';

/** Connects a NATS JetStream transport from (partial) options. */
export async function createNatsTransport(options: NatsOptionsInput = {}): Promise<NatsTransport> {
  return NatsTransport.connect(parseOptions(natsOptionsSchema, options));
}

/**
 * The factory an application registers to use `transport.kind: nats`:
 * `createBusFromConfig(config, { transports: [natsTransport] })` or `registerTransport(natsTransport)`.
 */
export const natsTransport: TransportFactory<NatsOptions> = {
  kind: 'nats',
  optionsSchema: natsOptionsSchema,
  capabilities: (options) => natsCapabilities(options),
  create: (options) => NatsTransport.connect(options),
};

/** The same factory under the name tools look for (`switchboard --transport-module`). */
export const transportFactory = natsTransport;
