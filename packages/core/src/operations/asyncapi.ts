import { z, type ZodType } from 'zod';
import type { FailureReason } from '../ports/events.js';
import { DeadLetterHeaders, defaultDeadLetterTopic } from '../pipeline/dead-letter.js';

/** A topic contract as the document reads it (any `defineTopic` result): its name and schema. */
export interface DocumentedTopic {
  readonly name: string;
  readonly schema: ZodType;
}

/** A topic the application reads, and the group it reads it in. */
export interface AsyncApiSubscription {
  readonly contract: DocumentedTopic;
  readonly group?: string;
  /** Its dead letters go to `<topic>-dlq` (documented as a channel of their own). Default true. */
  readonly deadLetters?: boolean;
}

/** What the application owns, for {@link asyncApiDocument}. */
export interface AsyncApiDescription {
  readonly title: string;
  readonly version: string;
  readonly description?: string;
  /** Topics the application publishes. */
  readonly publishes?: readonly DocumentedTopic[];
  /** Topics the application subscribes to. */
  readonly subscribes?: readonly (DocumentedTopic | AsyncApiSubscription)[];
  /**
   * The broker: a transport kind (`kafka`, `rabbitmq`, `redis-pubsub`, `redis-streams`, `nats`, `mqtt`,
   * `postgres`, `memory`) and its address as `host[:port]` (never credentials: a URL's user and
   * password are dropped). Without it the document has no server.
   */
  readonly server?: { readonly kind: string; readonly host: string };
  /** Kafka: partitions of the topics the transport creates (channel binding). */
  readonly partitions?: number;
}

/** The protocol of each transport kind, as AsyncAPI names it. */
const PROTOCOLS: Record<string, string> = {
  kafka: 'kafka',
  rabbitmq: 'amqp',
  'redis-pubsub': 'redis',
  'redis-streams': 'redis',
  nats: 'nats',
  mqtt: 'mqtt',
  postgres: 'postgres',
  memory: 'memory',
};

const FAILURE_REASONS: readonly FailureReason[] = ['retries-exhausted', 'non-retryable', 'decode-failed', 'validation-failed', 'buffer-overflow'];

/** A component name AsyncAPI accepts (`^[a-zA-Z0-9.\-_]+$`) for a topic name. */
function componentName(topic: string): string {
  return topic.replace(/[^a-zA-Z0-9.\-_]/g, '_');
}

/** The JSON Schema (draft-07, AsyncAPI's default schema format) of a contract's messages as producers publish them. */
function payloadSchema(contract: DocumentedTopic): Record<string, unknown> {
  const { $schema: _, ...schema } = z.toJSONSchema(contract.schema as z.ZodType, { target: 'draft-7', io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return schema;
}

function serverOf(server: NonNullable<AsyncApiDescription['server']>): { host: string; protocol: string } {
  // A URL's credentials never reach the document.
  let host = server.host;
  try {
    const url = new URL(server.host.includes('://') ? server.host : `x://${server.host}`);
    host = url.port ? `${url.hostname}:${url.port}` : url.hostname;
  } catch {
    host = server.host.replace(/^[^@]*@/, '');
  }
  return { host, protocol: PROTOCOLS[server.kind] ?? server.kind };
}

/** Channel, operation and message bindings of the broker, where AsyncAPI defines them. */
function bindings(kind: string | undefined, topic: string, partitions: number | undefined, group: string | undefined) {
  if (kind === 'kafka')
    return {
      channel: { kafka: { topic, ...(partitions !== undefined ? { partitions } : {}), bindingVersion: '0.5.0' } },
      receive: group !== undefined ? { kafka: { groupId: { type: 'string', enum: [group] }, bindingVersion: '0.5.0' } } : undefined,
      message: { kafka: { key: { type: 'string' }, bindingVersion: '0.5.0' } },
    };
  if (kind === 'rabbitmq')
    return {
      channel: { amqp: { is: 'routingKey', exchange: { type: 'topic', durable: true, autoDelete: false }, bindingVersion: '0.3.0' } },
      receive: group !== undefined ? { amqp: { ack: true, bindingVersion: '0.3.0' } } : undefined,
      message: undefined,
    };
  if (kind === 'nats') return { channel: undefined, receive: group !== undefined ? { nats: { queue: group, bindingVersion: '0.1.0' } } : undefined, message: undefined };
  if (kind === 'mqtt') return { channel: undefined, receive: { mqtt: { qos: 1, bindingVersion: '0.2.0' } }, message: undefined };
  return { channel: undefined, receive: undefined, message: undefined };
}

/**
 * An AsyncAPI 3.0 document for the topics an application defines with `defineTopic`: one channel per
 * topic (address = the topic), its message with the payload schema converted from zod (the input
 * producers publish, JSON Schema draft-07), a `send` operation per published topic and a `receive`
 * operation per subscribed one (with its group), the dead-letter channel `<topic>-dlq` of each
 * subscribed topic with the dead-letter headers, and the broker's bindings where AsyncAPI has them.
 * Pure: it reads the contracts and the description, nothing else. A schema zod cannot express in JSON
 * Schema (a transform's output, a custom check) is documented as "any" at that place.
 */
export function asyncApiDocument(description: AsyncApiDescription): Record<string, unknown> {
  const kind = description.server?.kind;
  const channels: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  const messages: Record<string, unknown> = {};
  const schemas: Record<string, unknown> = {};

  const channel = (contract: DocumentedTopic, group: string | undefined) => {
    const name = componentName(contract.name);
    if (!(name in channels)) {
      schemas[name] = payloadSchema(contract);
      const b = bindings(kind, contract.name, description.partitions, group);
      messages[name] = {
        name: contract.name,
        contentType: 'application/json',
        payload: { $ref: `#/components/schemas/${name}` },
        ...(b.message ? { bindings: b.message } : {}),
      };
      channels[name] = {
        address: contract.name,
        messages: { [name]: { $ref: `#/components/messages/${name}` } },
        ...(b.channel ? { bindings: b.channel } : {}),
      };
    }
    return name;
  };

  for (const contract of description.publishes ?? []) {
    const name = channel(contract, undefined);
    operations[`send.${name}`] = { action: 'send', channel: { $ref: `#/channels/${name}` }, messages: [{ $ref: `#/channels/${name}/messages/${name}` }] };
  }
  for (const entry of description.subscribes ?? []) {
    const subscription: AsyncApiSubscription = 'contract' in entry ? entry : { contract: entry };
    const name = channel(subscription.contract, subscription.group);
    const b = bindings(kind, subscription.contract.name, description.partitions, subscription.group);
    operations[`receive.${name}${subscription.group !== undefined ? `.${componentName(subscription.group)}` : ''}`] = {
      action: 'receive',
      channel: { $ref: `#/channels/${name}` },
      messages: [{ $ref: `#/channels/${name}/messages/${name}` }],
      ...(subscription.group !== undefined ? { summary: `group "${subscription.group}"` } : {}),
      ...(b.receive ? { bindings: b.receive } : {}),
    };
    if (subscription.deadLetters === false) continue;
    const dlqTopic = defaultDeadLetterTopic(subscription.contract.name);
    const dlq = componentName(dlqTopic);
    if (dlq in channels) continue;
    messages[dlq] = {
      name: dlqTopic,
      summary: `A message of "${subscription.contract.name}" that could not be handled: the original id, key, headers and body, plus why.`,
      headers: { $ref: '#/components/schemas/switchboard.dead-letter-headers' },
      payload: { $ref: `#/components/schemas/${name}` },
    };
    channels[dlq] = {
      address: dlqTopic,
      messages: { [dlq]: { $ref: `#/components/messages/${dlq}` } },
      ...(bindings(kind, dlqTopic, description.partitions, undefined).channel ? { bindings: bindings(kind, dlqTopic, description.partitions, undefined).channel } : {}),
    };
    operations[`send.${dlq}`] = {
      action: 'send',
      channel: { $ref: `#/channels/${dlq}` },
      summary: 'dead letters, published by the consumer pipeline',
      messages: [{ $ref: `#/channels/${dlq}/messages/${dlq}` }],
    };
    schemas['switchboard.dead-letter-headers'] = deadLetterHeadersSchema();
  }

  return {
    asyncapi: '3.0.0',
    info: { title: description.title, version: description.version, ...(description.description ? { description: description.description } : {}) },
    ...(description.server ? { servers: { broker: serverOf(description.server) } } : {}),
    defaultContentType: 'application/json',
    channels,
    operations,
    components: { messages, schemas },
  };
}

/** The dead-letter headers every transport stamps (strings, as headers are). */
function deadLetterHeadersSchema(): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  for (const name of Object.values(DeadLetterHeaders)) properties[name] = { type: 'string' };
  properties[DeadLetterHeaders.reason] = { type: 'string', enum: [...FAILURE_REASONS] };
  properties[DeadLetterHeaders.retryable] = { type: 'string', enum: ['true', 'false'] };
  return { type: 'object', properties, required: [DeadLetterHeaders.originalTopic, DeadLetterHeaders.reason, DeadLetterHeaders.attempts] };
}
