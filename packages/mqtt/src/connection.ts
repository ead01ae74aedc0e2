import type { IClientOptions, MqttClient } from 'mqtt';
import type { MqttOptions } from './options.js';

/** What every connection shares: protocol 5, the URL and credentials, timeouts, reconnects. */
export function clientOptions(options: MqttOptions): IClientOptions {
  return {
    protocolVersion: 5,
    connectTimeout: options.connectTimeoutMs,
    keepalive: options.keepaliveSec,
    reconnectPeriod: options.reconnectPeriodMs,
    resubscribe: false, // members subscribe again themselves, and report live once the broker confirmed it
    ...(options.username !== undefined ? { username: options.username } : {}),
    ...(options.password !== undefined ? { password: options.password } : {}),
    ...parseUrl(options.url),
  };
}

/** Host, port and protocol from the URL (credentials in it are taken as username / password, never logged). */
function parseUrl(url: string): IClientOptions {
  const parsed = new URL(url);
  const protocol = parsed.protocol === 'mqtts:' ? 'mqtts' : 'mqtt';
  return {
    protocol,
    host: parsed.hostname,
    port: Number(parsed.port || (protocol === 'mqtts' ? 8883 : 1883)),
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
  };
}

/**
 * Turns Nagle's algorithm off on each of the client's connections (mqtt.js leaves it on): a small
 * PUBLISH or PUBACK written behind an unacknowledged one otherwise waits for the peer's delayed ACK,
 * tens of milliseconds at a low rate.
 */
export function withoutNagle(client: MqttClient): void {
  const noDelay = () => (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
  if (client.connected) noDelay();
  client.on('connect', noDelay);
}

/** The broker's address without credentials. */
export function endpointOf(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}`;
  } catch {
    return 'mqtt broker';
  }
}
