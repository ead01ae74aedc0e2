// Compiled (not run) by contract.test.ts with the strict settings of the repo: every `@ts-expect-error`
// below must be an error, so a payload that does not match its contract does not compile.
import { expectTypeOf } from 'vitest';
import { z } from 'zod';
import { defineTopic, type Message, type Publisher, type Subscriber } from '@switchboard/core';

declare const publisher: Publisher;
declare const subscriber: Subscriber;

const OrderPlaced = defineTopic({
  name: 'orders.placed',
  schema: z.object({ orderId: z.string(), quantity: z.number().int(), note: z.string().default('') }),
  key: (order) => order.orderId,
});

export async function typed(): Promise<void> {
  // Input type: `note` has a default, so producers may leave it out.
  await publisher.publish(OrderPlaced, { orderId: 'o-1', quantity: 2 });
  await publisher.publish(OrderPlaced, { orderId: 'o-1', quantity: 2, note: 'gift' }, { headers: { source: 'web' } });
  // @ts-expect-error quantity must be a number
  await publisher.publish(OrderPlaced, { orderId: 'o-1', quantity: '2' });
  // @ts-expect-error orderId is required
  await publisher.publish(OrderPlaced, { quantity: 2 });
  // @ts-expect-error unknown headers shape
  await publisher.publish(OrderPlaced, { orderId: 'o-1', quantity: 2 }, { headers: { n: 1 } });

  await subscriber.subscribe(OrderPlaced, (message) => {
    // Output type: defaults applied, so `note` is always a string.
    expectTypeOf(message).toEqualTypeOf<Message<{ orderId: string; quantity: number; note: string }>>();
    expectTypeOf(message.value.note).toEqualTypeOf<string>();
    // @ts-expect-error no such field
    message.value.price;
  });
  // @ts-expect-error the contract brings its schema; a second one is refused
  await subscriber.subscribe(OrderPlaced, () => {}, { schema: z.string() });

  // Plain topics keep working as before.
  await publisher.publish('orders.placed', { value: { anything: true } });
  await subscriber.subscribe<{ anything: boolean }>('orders.placed', (m) => {
    expectTypeOf(m.value.anything).toEqualTypeOf<boolean>();
  });
}
