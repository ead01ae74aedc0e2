import { randomUUID } from 'node:crypto';
import type { ConsumeMessage, Options } from 'amqplib';
import type { DeliveryGuarantee } from '@switchboard/core';
import { SIGNATURE_HEADER, type ControlSigner, type TransportMessage, utf8BytesIfOver } from '@switchboard/core/transport';

/** Headers Switchboard adds to AMQP messages for what AMQP properties cannot carry exactly. */
export const AmqpHeaders = {
  key: 'x-sb-key',
  /** Milliseconds (the AMQP timestamp property has seconds). */
  timestamp: 'x-sb-timestamp',
  /**
   * The core topic it was published to, where the routing key does not say it: a route with its own
   * routing key, a replay straight to a group's queue, a copy in a retry queue.
   */
  topic: 'x-sb-topic',
  /** Delivery attempt of a message republished for a broker-side delayed retry. */
  attempt: 'x-sb-attempt',
  /** HMAC of the control headers above (with a configured signing key). */
  signature: SIGNATURE_HEADER,
} as const;

const OWN = new Set<string>(Object.values(AmqpHeaders));

/** Highest attempt number read from a header without a signature: larger values are ignored as forged. */
const MAX_UNSIGNED_ATTEMPT = 1000;
/** Latest plausible epoch-ms timestamp (year 2286); beyond, a header value is ignored. */
const MAX_TIMESTAMP_MS = 10_000_000_000_000;

/** The control values a signature covers, in order. */
function controlFields(topic: string, attempt: string, timestamp: string, key: string): string[] {
  return [topic, attempt, timestamp, key];
}

/**
 * Publish properties for a message to `topic` sent with `routingKey`: id -> messageId; key, ms
 * timestamp -> x-sb-* headers; the topic -> `x-sb-topic` only where the routing key is not the topic
 * (every header entry costs the broker about 5-8% of its publish rate); guarantee "all" -> persistent.
 * With a signer, the control headers are signed (`x-sb-sig`). Headers named `x-sb-*` that the
 * application set are replaced: they are the adapter's.
 */
export function toPublishOptions(topic: string, routingKey: string, message: TransportMessage, guarantee: DeliveryGuarantee, signer?: ControlSigner, attempt = 1): Options.Publish {
  const carryTopic = routingKey !== topic;
  const headers: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(message.headers)) if (!OWN.has(name)) headers[name] = value;
  // The ms time as a header, unless the envelope keeps to the broker's field (the timestamp property, seconds).
  if (!message.brokerTimestamp || signer) headers[AmqpHeaders.timestamp] = message.timestamp;
  if (carryTopic) headers[AmqpHeaders.topic] = topic;
  if (attempt > 1) headers[AmqpHeaders.attempt] = attempt;
  if (message.key !== undefined) headers[AmqpHeaders.key] = message.key;
  if (signer) headers[AmqpHeaders.signature] = signer.sign(message.id, controlFields(carryTopic ? topic : '', attempt > 1 ? String(attempt) : '', String(message.timestamp), message.key ?? ''));
  // The broker owns x-death; a copy carried in a dead letter travels under another name.
  if ('x-death' in headers) {
    headers['x-dlq-x-death'] = headers['x-death'];
    delete headers['x-death'];
  }
  return {
    // Always, a local id too (envelope id 'given'): a basic.return (unroutable) is matched to its
    // publish by it, and it is a property, not a header table entry.
    messageId: message.id,
    timestamp: Math.floor(message.timestamp / 1000),
    headers,
    persistent: guarantee === 'all',
    mandatory: true,
  };
}

/** What amqplib encodes a message's header table into (a 64 KiB scratch buffer, less its length), bytes. */
const MAX_HEADER_TABLE_BYTES = 65_532;

/**
 * Why amqplib cannot encode `properties` (from {@link toPublishOptions}), naming the message's field,
 * or undefined when it can: a header name or the message id over 255 bytes (AMQP short strings), or
 * a header table over 64 KiB. amqplib throws a RangeError in the middle of a batch instead.
 */
export function publishOptionsProblem(properties: Options.Publish): { path: string; message: string } | undefined {
  const idBytes = utf8BytesIfOver(properties.messageId ?? '', 255);
  if (idBytes > 0) return { path: 'id', message: `it is ${idBytes} bytes of UTF-8: an AMQP message-id holds at most 255` };
  const headers = properties.headers as Record<string, unknown>;
  // Characters first: at most 3 bytes of UTF-8 each, so most tables skip the byte count.
  let chars = 0;
  let longName = false;
  for (const name in headers) {
    const value = headers[name];
    if (name.length > 85) longName = true;
    chars += 6 + name.length + (typeof value === 'string' ? value.length : 16);
  }
  if (!longName && chars * 3 <= MAX_HEADER_TABLE_BYTES) return undefined;
  let bytes = 0;
  for (const name in headers) {
    const value = headers[name];
    const nameBytes = Buffer.byteLength(name);
    if (nameBytes > 255) return { path: `headers.${name.slice(0, 40)}…`, message: `the name is ${nameBytes} bytes of UTF-8: an AMQP header name holds at most 255` };
    bytes += 6 + nameBytes + (typeof value === 'string' ? Buffer.byteLength(value) : 16);
  }
  if (bytes > MAX_HEADER_TABLE_BYTES) return { path: 'headers', message: `they encode to about ${bytes} bytes: amqplib sends at most ${MAX_HEADER_TABLE_BYTES} of headers per message` };
  return undefined;
}

function headerText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  try {
    return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? String(value);
  } catch {
    return String(value);
  }
}

/** A whole number from a header value (number, numeric string, bigint), or undefined. */
function wholeNumber(value: unknown): number | undefined {
  const n =
    typeof value === 'number'
      ? value
      : typeof value === 'bigint'
        ? Number(value)
        : typeof value === 'string' && /^-?\d{1,16}$/.test(value)
          ? Number(value)
          : Buffer.isBuffer(value) && /^-?\d{1,16}$/.test(value.toString())
            ? Number(value.toString())
            : undefined;
  return n !== undefined && Number.isSafeInteger(n) ? n : undefined;
}

/** What the consumer knows about where a message came from, from broker metadata and its own subscription. */
export interface ReceiveContext {
  /** The subscription's topic (exact subscriptions) or pattern. */
  readonly subscribedTopic: string;
  /** Tests a concrete topic against the subscription's pattern; undefined for exact subscriptions. */
  readonly pattern?: RegExp | undefined;
  /** Quorum queues set x-delivery-count themselves on redelivery; classic queues do not. */
  readonly quorum: boolean;
  readonly signer?: ControlSigner | undefined;
}

export interface ReceivedMessage {
  readonly transport: TransportMessage;
  readonly topic: string;
  readonly attempt: number;
  /** Control headers that were present but ignored (forged, out of range, or failing the signature), with their raw values. */
  readonly untrusted: readonly { header: string; value: string }[];
}

/**
 * The message as delivered, across the trust boundary. Producers can set any header, so control values
 * are taken from broker metadata and this subscription where possible, and read from headers only
 * defensively:
 * - topic: an exact subscription's own topic; for a pattern subscription, `x-sb-topic` when it matches
 *   the pattern (and verifies, with a signer), else the routing key (the publisher leaves the header
 *   out where the routing key is the topic);
 * - attempt: `x-sb-attempt` (written by this adapter's retry queues) when it is a whole number in
 *   1..1000 (and verifies, with a signer), else 1; plus the broker's own count of redeliveries: quorum
 *   queues' `x-delivery-count` on a redelivered message, or 1 for the `redelivered` flag. The pipeline
 *   bounds the result by `maxAttempts` again;
 * - timestamp: `x-sb-timestamp` when it is a plausible epoch time (and verifies), else the AMQP
 *   timestamp property, else the receive time.
 * Anything ignored is listed in `untrusted` (the subscription counts it).
 */
export function fromConsumeMessage(message: ConsumeMessage, context: ReceiveContext): ReceivedMessage {
  const raw = (message.properties.headers ?? {}) as Record<string, unknown>;
  const untrusted: { header: string; value: string }[] = [];
  const distrust = (header: string) => untrusted.push({ header, value: headerText(raw[header]).slice(0, 200) });
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) if (!OWN.has(name) && value !== undefined && value !== null) headers[name] = headerText(value);
  const id = typeof message.properties.messageId === 'string' && message.properties.messageId !== '' ? message.properties.messageId : randomUUID();
  const key = raw[AmqpHeaders.key] !== undefined ? headerText(raw[AmqpHeaders.key]) : undefined;

  const claimedTopic = typeof raw[AmqpHeaders.topic] === 'string' ? (raw[AmqpHeaders.topic] as string) : undefined;
  const claimedAttempt = raw[AmqpHeaders.attempt];
  const claimedTimestamp = raw[AmqpHeaders.timestamp];
  const signed =
    context.signer === undefined ||
    context.signer.verify(
      id,
      controlFields(claimedTopic ?? '', claimedAttempt === undefined ? '' : headerText(claimedAttempt), claimedTimestamp === undefined ? '' : headerText(claimedTimestamp), key ?? ''),
      raw[AmqpHeaders.signature],
    );
  if (!signed) distrust(AmqpHeaders.signature);

  let topic = context.pattern ? message.fields.routingKey : context.subscribedTopic;
  if (claimedTopic !== undefined && claimedTopic !== topic) {
    if (context.pattern && signed && context.pattern.test(claimedTopic)) topic = claimedTopic;
    else distrust(AmqpHeaders.topic);
  }

  let attempt = 1;
  if (claimedAttempt !== undefined) {
    const n = wholeNumber(claimedAttempt);
    if (signed && n !== undefined && n >= 1 && n <= MAX_UNSIGNED_ATTEMPT) attempt = n;
    else distrust(AmqpHeaders.attempt);
  }
  if (message.fields.redelivered) {
    const count = context.quorum ? wholeNumber(raw['x-delivery-count']) : undefined;
    attempt += count !== undefined && count >= 1 && count <= MAX_UNSIGNED_ATTEMPT ? count : 1;
  } else if (raw['x-delivery-count'] !== undefined) {
    distrust('x-delivery-count'); // set by a producer: the broker adds it only on redelivery
  }

  let timestamp: number | undefined;
  if (claimedTimestamp !== undefined) {
    const n = wholeNumber(claimedTimestamp);
    if (signed && n !== undefined && n >= 0 && n <= MAX_TIMESTAMP_MS) timestamp = n;
    else distrust(AmqpHeaders.timestamp);
  }
  if (timestamp === undefined) {
    const seconds = wholeNumber(message.properties.timestamp);
    timestamp = seconds !== undefined && seconds >= 0 && seconds * 1000 <= MAX_TIMESTAMP_MS ? seconds * 1000 : Date.now();
  }

  return {
    transport: { id, ...(key !== undefined ? { key } : {}), headers, body: message.content, timestamp },
    topic,
    attempt,
    untrusted,
  };
}
