import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { BusConfigInput, TransportFactory } from '@switchboard/core';
import { waitUntil } from '@switchboard/core/testing';
import { SWITCHBOARD_BUS, SwitchboardLifecycle } from '@switchboard/nestjs';
import { expect } from 'vitest';
import { CheckoutService, DeadLetterWatcher, NotificationService, ReadinessService, appModule } from '../src/nest/app.module.js';

/** Boots the example Nest application, places 20 orders (2 with an address the mail server refuses), checks what was handled, dead-lettered and reported healthy, then shuts it down. */
export async function runNestExample(config: BusConfigInput, transports: readonly TransportFactory[] = []): Promise<void> {
  const app = await NestFactory.createApplicationContext(appModule({ config, transports }), { logger: false });
  const notifier = app.get(NotificationService);
  const watcher = app.get(DeadLetterWatcher);
  const lifecycle = app.get(SwitchboardLifecycle);
  expect(lifecycle.subscribed.map((s) => s.topic).sort()).toEqual(['orders.placed', 'orders.placed-dlq']);
  const run = Date.now().toString(36);
  const checkout = app.get(CheckoutService);
  for (let i = 0; i < 20; i++) await checkout.placeOrder(`${run}-${i}`, i % 10 === 3 ? `user${i}@invalid.example` : `user${i}@example.com`, 10 * i);
  await waitUntil(() => notifier.sent.length === 18 && watcher.letters.length === 2, 30_000, 'orders handled and dead-lettered');
  expect(watcher.letters.map((l) => l.reason)).toEqual(['non-retryable', 'non-retryable']);
  const readiness = await app.get(ReadinessService).check();
  expect(readiness.status).toBe('ok');
  expect(readiness.info?.switchboard?.status).toBe('up');
  const bus = app.get<{ health(): { status: string } }>(SWITCHBOARD_BUS);
  await app.close();
  expect(lifecycle.lastShutdown).toMatchObject({ drained: 2, handedBack: 0, errors: [] });
  expect(bus.health().status).toBe('closed');
}
