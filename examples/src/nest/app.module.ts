/**
 * A NestJS application on Switchboard: a checkout service publishes `orders.placed` (a typed contract),
 * a notifier handles it with `@Subscribe`, a watcher reads the DLQ, and a terminus health indicator
 * reports the bus. The transport comes from config (memory when nothing is configured).
 */
import { Inject, Injectable, Module, type DynamicModule } from '@nestjs/common';
import { HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { NonRetryableError, createBusFromConfig, loadBusConfig, parseBusConfig, type BusConfigInput, type Message, type Publisher, type TransportFactory } from '@switchboard/core';
import { InjectPublisher, Subscribe, SwitchboardModule } from '@switchboard/nestjs';
import { SwitchboardHealthIndicator } from '@switchboard/nestjs/terminus';
import type { z } from 'zod';
import { OrderPlaced } from '../contracts.js';

export { OrderPlaced };

/** Publishes orders through the injected Publisher port (no adapter imported). */
@Injectable()
export class CheckoutService {
  constructor(@InjectPublisher() private readonly publisher: Publisher) {}

  placeOrder(orderId: string, email: string, total: number) {
    return this.publisher.publish(OrderPlaced, { orderId, email, total });
  }
}

/** Sends the confirmation mail; an address the mail server refuses is not retried (dead-lettered). */
@Injectable()
export class NotificationService {
  readonly sent: string[] = [];

  @Subscribe(OrderPlaced, { group: 'notifier', concurrency: 4, retry: { maxAttempts: 3, initialIntervalMs: 50 } })
  async onOrderPlaced(message: Message<z.output<typeof OrderPlaced.schema>>): Promise<void> {
    if (message.value.email.endsWith('@invalid.example')) throw new NonRetryableError(`mail server refused ${message.value.email}`);
    this.sent.push(message.value.orderId);
  }
}

/** Reads the notifier's dead letters (a real service would park them for manual reprocessing). */
@Injectable()
export class DeadLetterWatcher {
  readonly letters: { id: string; reason: string | undefined }[] = [];

  @Subscribe(`${OrderPlaced.name}-dlq`, { group: 'dlq-watcher' })
  onDeadLetter(message: Message): void {
    this.letters.push({ id: message.id, reason: message.headers['x-dlq-reason'] });
  }
}

/** The readiness check an HTTP controller would expose (`GET /health`). */
@Injectable()
export class ReadinessService {
  constructor(
    @Inject(HealthCheckService) private readonly health: HealthCheckService,
    @Inject(SwitchboardHealthIndicator) private readonly switchboard: SwitchboardHealthIndicator,
  ) {}

  check() {
    return this.health.check([() => this.switchboard.isHealthy()]);
  }
}

/**
 * The application module. `config` overrides the loaded config (file / SWITCHBOARD__* variables);
 * `transports` are the adapter factories this deployment may use.
 */
export function appModule(options: { readonly config?: BusConfigInput; readonly transports?: readonly TransportFactory[] } = {}): DynamicModule {
  @Module({
    imports: [
      SwitchboardModule.forRootAsync({
        useFactory: async () => ({
          bus: await createBusFromConfig(options.config ? parseBusConfig(options.config) : await loadBusConfig(), { transports: [...(options.transports ?? [])] }),
          shutdownDeadlineMs: 5000,
        }),
      }),
      TerminusModule,
    ],
    providers: [CheckoutService, NotificationService, DeadLetterWatcher, SwitchboardHealthIndicator, ReadinessService],
  })
  class AppModule {}
  return { module: AppModule };
}
