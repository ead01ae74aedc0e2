import { randomUUID } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { afterAll } from 'vitest';
import { runConformanceSuite, type RawMessage, BrokerLink } from '@switchboard/core/testing';
import { mqttCapabilities } from '@switchboard/mqtt';
import { MQTT_URL, publishRawWith, rawClient, testTransport } from './helpers.js';

let raw: MqttClient | undefined;
afterAll(() => raw?.endAsync());
async function publishRaw(_transport: unknown, topic: string, message: RawMessage): Promise<void> {
  raw ??= await rawClient();
  await publishRawWith(raw, topic, message);
}

const maxMessageBytes = 1024 * 1024;
// Static members (a memberId per transport, as a deployment gives each process one): groups are
// durable, the scenarios that need it run.
runConformanceSuite({
  name: 'mqtt (static members)',
  capabilities: mqttCapabilities({ memberId: 'static', brokerPersists: false, maxMessageBytes }),
  createTransport: () => testTransport({ memberId: `conf-${randomUUID().slice(0, 8)}`, maxMessageBytes }),
  brokerLink: {
    broker: BrokerLink.addressOf(MQTT_URL),
    createTransport: (link) => testTransport({ url: link.urlThrough(MQTT_URL), memberId: `conf-${randomUUID().slice(0, 8)}`, maxMessageBytes, publishTimeoutMs: 2000, keepaliveSec: 1 }),
  },
  publishRaw,
  waitMs: 10_000,
});
// Members without an identity: sessions end with the member, groups are declared not durable.
runConformanceSuite({
  name: 'mqtt (members without identity)',
  capabilities: mqttCapabilities({ brokerPersists: false, maxMessageBytes }),
  createTransport: () => testTransport({ maxMessageBytes }),
  brokerLink: { broker: BrokerLink.addressOf(MQTT_URL), createTransport: (link) => testTransport({ url: link.urlThrough(MQTT_URL), maxMessageBytes, publishTimeoutMs: 2000, keepaliveSec: 1 }) },
  publishRaw,
  waitMs: 10_000,
});
