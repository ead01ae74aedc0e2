/**
 * The example shop's topic contracts, in a module of their own: the application imports them, and
 * `switchboard asyncapi --module examples/dist/contracts.js` documents them (AsyncAPI 3.0).
 */
import { defineTopic, type AsyncApiDescription } from '@switchboard/core';
import { z } from 'zod';

export const OrderPlaced = defineTopic({
  name: 'orders.placed',
  schema: z.object({ orderId: z.string(), email: z.string().email(), total: z.number().nonnegative() }),
  key: (order) => order.orderId,
});

/** What the NestJS example owns: it publishes orders and its notifier reads them in group "notifier". */
export const asyncapi: AsyncApiDescription = {
  title: 'switchboard example shop',
  version: '0.1.0',
  description: 'The NestJS example of the Switchboard repository (examples/src/nest).',
  publishes: [OrderPlaced],
  subscribes: [{ contract: OrderPlaced, group: 'notifier' }],
};
