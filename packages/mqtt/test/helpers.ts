import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { freePort, startOwnServer, startTcpProxy, type OwnServer, type RawMessage, type TcpProxy } from '@switchboard/core/testing';
import { createMqttTransport, isMqttText, mqttTopicOf, type MqttOptionsInput } from '@switchboard/mqtt';

export const MQTT_URL = process.env.MQTT_URL ?? 'mqtt://127.0.0.1:1883';
/** Every test topic lives under this prefix, so tests never meet the machine's other MQTT traffic. */
export const TEST_PREFIX = 'sbtest';

/** A transport on the test broker, under the tests' topic prefix. */
export function testTransport(options: MqttOptionsInput = {}) {
  return createMqttTransport({ url: MQTT_URL, topicPrefix: TEST_PREFIX, ...options });
}

/** An MQTT 5 client of the broker's own (no Switchboard), connected; the caller ends it. */
export async function rawClient(url = MQTT_URL): Promise<MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0 });
}

/**
 * Publishes as a producer that does not use Switchboard: QoS 1, the id and key as the user
 * properties Switchboard reads, every header as a user property exactly as given (forged `x-sb-*`
 * included). A header MQTT cannot carry is left out: a raw producer could not send it either.
 */
export async function publishRawWith(client: MqttClient, topic: string, message: RawMessage): Promise<void> {
  const userProperties: Record<string, string> = { 'x-sb-id': message.id };
  if (message.key !== undefined) userProperties['x-sb-key'] = message.key;
  for (const [name, value] of Object.entries(message.headers)) if (isMqttText(name) && isMqttText(value)) userProperties[name] = value;
  await client.publishAsync(mqttTopicOf(TEST_PREFIX, topic), Buffer.from(message.body), { qos: 1, properties: { userProperties } });
}

/**
 * A Mosquitto of the test's own (loopback, a free port, persistence in its own directory), so an
 * outage test stops a broker no other test uses. `stop()` is SIGTERM (Mosquitto writes sessions and
 * queued messages to its store), `start()` brings it back on the same port and store; `dispose()`
 * stops it and removes the store.
 */
export async function startOwnMosquitto(): Promise<OwnServer & { url: string }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sb-mosquitto-'));
  const config = join(dir, 'mosquitto.conf');
  writeFileSync(config, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence true', `persistence_location ${dir}/`, 'set_tcp_nodelay true', 'user root', ''].join('\n'));
  const server = await startOwnServer({ command: 'mosquitto', args: ['-c', config], port, dir });
  return Object.assign(server, { url: `mqtt://127.0.0.1:${port}` });
}

/** A loopback TCP proxy to the test broker (see `startTcpProxy`), with the URL to give the client. */
export async function startProxy(target = new URL(MQTT_URL)): Promise<TcpProxy & { url: string }> {
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 1883));
  return Object.assign(proxy, { url: `mqtt://127.0.0.1:${proxy.port}` });
}
