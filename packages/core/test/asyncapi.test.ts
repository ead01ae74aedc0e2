import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { asyncApiDocument, defineTopic } from '@switchboard/core';

// The AsyncAPI 3.0.0 JSON Schema as the AsyncAPI initiative publishes it (@asyncapi/specs), checked with ajv.
const require = createRequire(import.meta.url);
const specs = require('@asyncapi/specs') as { schemas: Record<string, object> };
const Ajv = require('ajv') as new (options: object) => { compile(schema: object): ((data: unknown) => boolean) & { errors?: unknown[] | null } };

// meta: false: the AsyncAPI schema embeds the draft-07 meta-schema itself (ajv's own copy would clash with it).
const check = new Ajv({ allErrors: true, strict: false, validateFormats: false, meta: false }).compile(specs.schemas['3.0.0']!);

function validate(document: unknown): void {
  const valid = check(document);
  expect(check.errors ?? [], JSON.stringify(check.errors?.slice(0, 5), null, 1)).toEqual([]);
  expect(valid).toBe(true);
}

const OrderPlaced = defineTopic({
  name: 'orders.placed',
  schema: z.object({ orderId: z.string(), quantity: z.number().int().positive(), note: z.string().optional(), tags: z.array(z.enum(['gift', 'express'])).default([]) }),
  key: (o) => o.orderId,
});
const InvoiceCreated = defineTopic({ name: 'invoices.created', schema: z.object({ orderId: z.string(), total: z.number().transform((n) => Math.round(n * 100)) }) });

describe('asyncApiDocument (AsyncAPI 3.0 from topic contracts)', () => {
  it('documents each topic, its payload schema, send/receive operations, the group and the dead-letter channel; valid against the AsyncAPI 3.0.0 schema', () => {
    const document = asyncApiDocument({
      title: 'billing',
      version: '1.2.0',
      publishes: [InvoiceCreated],
      subscribes: [{ contract: OrderPlaced, group: 'billing' }],
      server: { kind: 'kafka', host: '127.0.0.1:9092' },
      partitions: 3,
    }) as {
      channels: Record<string, { address: string; bindings?: unknown }>;
      operations: Record<string, { action: string; bindings?: unknown }>;
      components: { schemas: Record<string, { properties?: Record<string, unknown>; required?: string[] }>; messages: Record<string, unknown> };
      servers: Record<string, unknown>;
    };
    validate(document);
    // The validator does refuse what AsyncAPI 3.0 does not allow (2.x's "publish" action, a channel without its "$ref").
    expect(check({ ...document, operations: { old: { action: 'publish', channel: { $ref: '#/channels/orders.placed' } } } })).toBe(false);
    expect(check({ ...document, operations: { bad: { action: 'send', channel: 'orders.placed' } } })).toBe(false);
    expect(Object.values(document.channels).map((c) => c.address)).toEqual(['invoices.created', 'orders.placed', 'orders.placed-dlq']);
    expect(document.operations['send.invoices.created']).toMatchObject({ action: 'send' });
    expect(document.operations['receive.orders.placed.billing']).toMatchObject({
      action: 'receive',
      bindings: { kafka: { groupId: { enum: ['billing'] } } },
    });
    expect(document.channels['orders.placed']!.bindings).toEqual({ kafka: { topic: 'orders.placed', partitions: 3, bindingVersion: '0.5.0' } });
    // The payload is what producers publish (the schema's input: a default makes a field optional).
    const order = document.components.schemas['orders.placed']!;
    expect(order.required).toEqual(['orderId', 'quantity']);
    expect(Object.keys(order.properties!)).toEqual(['orderId', 'quantity', 'note', 'tags']);
    expect(document.components.schemas['switchboard.dead-letter-headers']!.properties).toHaveProperty('x-dlq-reason');
    expect(document.servers).toEqual({ broker: { host: '127.0.0.1:9092', protocol: 'kafka' } });
  });

  it('never carries credentials; every transport kind yields a valid document', () => {
    for (const kind of ['kafka', 'rabbitmq', 'redis-pubsub', 'redis-streams', 'nats', 'mqtt', 'postgres', 'memory']) {
      const document = asyncApiDocument({
        title: 'shop',
        version: '1.0.0',
        publishes: [OrderPlaced],
        subscribes: [OrderPlaced, { contract: InvoiceCreated, group: 'shipping', deadLetters: false }],
        server: { kind, host: 'amqp://admin:s3cret@broker.internal:5672/vhost' },
      });
      validate(document);
      const text = JSON.stringify(document);
      expect(text).not.toContain('s3cret');
      expect(text).not.toContain('admin');
      expect(document.servers).toEqual({ broker: { host: 'broker.internal:5672', protocol: expect.any(String) } });
      expect(Object.keys(document.channels as object)).toEqual(['orders.placed', 'orders.placed-dlq', 'invoices.created']);
    }
  });
});
