import 'reflect-metadata';
import { Container } from 'inversify';
import { describe, expect, it } from 'vitest';
import { loadBusConfig } from '@switchboard/core';
import { createTestHarness } from '@switchboard/core/testing';
import { switchboardModule } from '@switchboard/inversify';
import { FlakyDatabase, OrderService, SalesCounter } from '../src/app/services.js';

// The demo's application services, tested without a broker: the harness's bus is bound where the
// application takes its ports.
describe('the demo application on the test harness', () => {
  it('counts sales, retries a timed-out write, dead-letters a malformed order and a deleted product', async () => {
    const config = await loadBusConfig({ env: false, object: { subscriptions: { sales: { topic: 'sales', group: 'sales-counter' }, mail: { topic: 'mail', group: 'notifier' } } } });
    const harness = createTestHarness({ defaults: { retry: { maxAttempts: 3, initialIntervalMs: 1, multiplier: 1, maxIntervalMs: 1 } } });
    const container = new Container();
    container.load(switchboardModule(harness.bus, config));
    container.bind(OrderService).toSelf();
    container.bind(SalesCounter).toSelf();
    try {
      const database = new FlakyDatabase(['-flaky']);
      await container.get(SalesCounter).start(database, () => undefined);
      await container.get(OrderService).placeOrders([
        { orderId: 'order-1', productId: 'p-1', quantity: 2, seq: 0, sentAt: 0 },
        { orderId: 'order-2-flaky', productId: 'p-1', quantity: 1, seq: 1, sentAt: 0 },
        { orderId: 'order-bad', productId: 'p-2', quantity: 'three', seq: 0, sentAt: 0 },
        { orderId: 'order-gone', productId: 'deleted-product', quantity: 1, seq: 0, sentAt: 0 },
      ]);
      const retried = await harness.handled('sales', (m) => m.id === 'order-2-flaky');
      expect(retried.attempt).toBe(2);
      expect(database.salesByProduct.get('p-1')).toBe(3);
      const malformed = await harness.deadLettered('sales', (l) => l.id === 'order-bad');
      expect(malformed.reason).toBe('validation-failed');
      const gone = await harness.deadLettered('sales', (l) => l.id === 'order-gone');
      expect(gone).toMatchObject({ reason: 'non-retryable', errorMessage: 'product deleted-product does not exist' });
    } finally {
      await harness.close();
    }
  });
});
