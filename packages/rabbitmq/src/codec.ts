import { randomUUID } from 'node:crypto';
import type { ConsumeMessage, Options } from 'amqplib';
import type { DeliveryGuarantee, TransportMessage } from '@switchboard/core';

/** Headers Switchboard adds to AMQP messages for what AMQP properties cannot carry exactly. */
export const AmqpHeaders = {
  key: 'x-sb-key',
  /** Milliseconds (the AMQP timestamp property has seconds). */
  timestamp: 'x-sb-timestamp',
  /** The core topic it was published to (routing keys change on the way through retry queues). */
  topic: 'x-sb-topic',
  /** Delivery attempt of a message republished for a broker-side delayed retry. */
  attempt: 'x-sb-attempt',
} as const;

const OWN = new Set<string>(Object.values(AmqpHeaders));

/** Publish properties: id -> messageId; key, ms timestamp, topic -> x-sb-* headers; guarantee "all" -> persistent. */
export function toPublishOptions(topic: string, message: TransportMessage, guarantee: DeliveryGuarantee): Options.Publish {
  const headers: Record<string, unknown> = { ...message.headers, [AmqpHeaders.timestamp]: message.timestamp, [AmqpHeaders.topic]: topic };
  if (message.key !== undefined) headers[AmqpHeaders.key] = message.key;
  // The broker owns x-death; a copy carried in a dead letter travels under another name.
  if ('x-death' in headers) {
    headers['x-dlq-x-death'] = headers['x-death'];
    delete headers['x-death'];
  }
  return {
    messageId: message.id,
    timestamp: Math.floor(message.timestamp / 1000),
    headers,
    persistent: guarantee === 'all',
    mandatory: true,
  };
}

function headerText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

/** The message as delivered: x-sb-* headers read back, other headers as strings (tables as JSON). */
export function fromConsumeMessage(message: ConsumeMessage): { transport: TransportMessage; topic: string; attempt: number } {
  const raw = (message.properties.headers ?? {}) as Record<string, unknown>;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) if (!OWN.has(name) && value !== undefined && value !== null) headers[name] = headerText(value);
  const key = raw[AmqpHeaders.key];
  const timestamp = Number(raw[AmqpHeaders.timestamp] ?? (message.properties.timestamp ? Number(message.properties.timestamp) * 1000 : Date.now()));
  const base = Number(raw[AmqpHeaders.attempt] ?? 1);
  const redeliveries = raw['x-delivery-count'] !== undefined ? Number(raw['x-delivery-count']) : message.fields.redelivered ? 1 : 0;
  return {
    transport: {
      id: typeof message.properties.messageId === 'string' ? message.properties.messageId : randomUUID(),
      ...(key !== undefined ? { key: headerText(key) } : {}),
      headers,
      body: message.content,
      timestamp,
    },
    topic: typeof raw[AmqpHeaders.topic] === 'string' ? (raw[AmqpHeaders.topic] as string) : message.fields.routingKey,
    attempt: base + redeliveries,
  };
}
