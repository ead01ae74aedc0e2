/**
 * @switchboard/mqtt — MQTT 5 transport (mqtt.js): QoS 0/1(/2), shared subscriptions as groups,
 * acknowledgements after handling, sessions that keep a static member's messages.
 *
 * Mapping: topic `a.b` = MQTT topic `a/b` (under `<topicPrefix>/`); patterns `*` = `+`, `#` = `#`;
 * group = shared subscription `$share/<group>/<topic>`; each subscription = `concurrency` members,
 * one MQTT session each; ack = PUBACK (in order, after handling); message id, key and time = MQTT 5
 * user properties (untrusted); dead letters: the topic `<topic>-dlq`, refused while nobody subscribes to it.
 */
import type { TransportFactory } from '@switchboard/core';
import { parseOptions } from '@switchboard/core/transport';
import { mqttOptionsSchema, type MqttOptions, type MqttOptionsInput } from './options.js';
import { MqttTransport, mqttCapabilities } from './transport.js';

export { mqttOptionsSchema, sessionExpiryOf, type MqttOptions, type MqttOptionsInput } from './options.js';
export { MqttTransport, mqttCapabilities } from './transport.js';
export { filterOf, isMqttText, mqttTopicOf, sharedFilter, topicOf } from './topics.js';

/** Connects an MQTT transport from (partial) options. */
export async function createMqttTransport(options: MqttOptionsInput = {}): Promise<MqttTransport> {
  return MqttTransport.connect(parseOptions(mqttOptionsSchema, options));
}

/**
 * The factory an application registers to use `transport.kind: mqtt`:
 * `createBusFromConfig(config, { transports: [mqttTransport] })` or `registerTransport(mqttTransport)`.
 */
export const mqttTransport: TransportFactory<MqttOptions> = {
  kind: 'mqtt',
  optionsSchema: mqttOptionsSchema,
  capabilities: (options) => mqttCapabilities(options),
  create: (options) => MqttTransport.connect(options),
};

/** The same factory under the name tools look for (`switchboard --transport-module`). */
export const transportFactory = mqttTransport;
