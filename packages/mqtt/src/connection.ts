import type { IClientOptions, MqttClient } from 'mqtt';
import { ConnectError, endpointOf } from '@switchboard/core/transport';
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

/**
 * Resolves at the client's CONNACK; rejects with a ConnectError (the endpoint, no credentials) at a
 * client error or after `timeoutMs`. Leaves no listener behind either way.
 */
export function connectedWithin(client: MqttClient, url: string, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const settle = (error?: Error) => {
      clearTimeout(timer);
      client.removeListener('connect', ok);
      client.removeListener('error', settle);
      if (!error) resolve();
      else reject(new ConnectError(`cannot connect to the MQTT broker at ${endpointOf(url)}: ${error.message}`, endpointOf(url), { cause: error }));
    };
    const ok = () => settle();
    const timer = setTimeout(() => settle(new Error(`no CONNACK within ${timeoutMs} ms`)), timeoutMs);
    client.once('connect', ok);
    client.once('error', settle);
  });
}

/**
 * Ends the client with a DISCONNECT (with `disconnect`'s reason code and properties), or by closing
 * its socket when that has not finished within `waitMs`.
 */
export function endClient(client: MqttClient, waitMs: number, disconnect: object = {}): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => client.end(true, () => resolve()), waitMs);
    client.end(false, disconnect, () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
