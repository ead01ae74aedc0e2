import { inject, injectable } from 'inversify';
import { NonRetryableError, namedSubscription, type BusConfig, type Message, type Publisher, type Subscriber, type Subscription } from '@switchboard/core';
import { SWITCHBOARD } from '@switchboard/inversify';
import { mailRequested, productSalesUpdated, type MailRequested, type ProductSalesUpdated } from './events.js';

// Application code: it injects the ports and the config. It never imports an adapter.

/** Publishes "product sales updated" events keyed by product id. */
@injectable()
export class OrderService {
  constructor(
    @inject(SWITCHBOARD.Publisher) private readonly publisher: Publisher,
    @inject(SWITCHBOARD.Config) private readonly config: BusConfig,
  ) {}

  async placeOrders(orders: readonly (ProductSalesUpdated | Record<string, unknown>)[]): Promise<void> {
    const { topic } = namedSubscription(this.config, 'sales');
    await this.publisher.publish(
      topic,
      orders.map((order) => ({ id: String(order.orderId), key: String(order.productId), value: order })),
    );
  }

  async requestMails(mails: readonly MailRequested[]): Promise<void> {
    const { topic } = namedSubscription(this.config, 'mail');
    await this.publisher.publish(
      topic,
      mails.map((mail) => ({ id: mail.eventId, value: mail })),
    );
  }
}

/** A stand-in database that is down now and then (a retryable failure). */
export class FlakyDatabase {
  private readonly failedOnce = new Set<string>();
  readonly salesByProduct = new Map<string, number>();

  /** Fails the first write of orders whose id ends in the given suffixes, as a timeout would. */
  constructor(private readonly flakySuffixes: readonly string[]) {}

  async addSales(order: ProductSalesUpdated): Promise<void> {
    if (this.flakySuffixes.some((s) => order.orderId.endsWith(s)) && !this.failedOnce.has(order.orderId)) {
      this.failedOnce.add(order.orderId);
      throw Object.assign(new Error('database timeout'), { code: 'ETIMEDOUT' });
    }
    this.salesByProduct.set(order.productId, (this.salesByProduct.get(order.productId) ?? 0) + order.quantity);
  }
}

/** Updates sales counts. Malformed orders fail the schema and go straight to the DLQ. */
@injectable()
export class SalesCounter {
  constructor(
    @inject(SWITCHBOARD.Subscriber) private readonly subscriber: Subscriber,
    @inject(SWITCHBOARD.Config) private readonly config: BusConfig,
  ) {}

  start(database: FlakyDatabase, onHandled: (message: Message<ProductSalesUpdated>) => void): Promise<Subscription> {
    const { topic, options } = namedSubscription(this.config, 'sales', { schema: productSalesUpdated });
    return this.subscriber.subscribe<ProductSalesUpdated>(
      topic,
      async (message) => {
        if (message.value.productId === 'deleted-product') throw new NonRetryableError(`product ${message.value.productId} does not exist`);
        await database.addSales(message.value);
        onHandled(message);
      },
      options,
    );
  }
}

/** Sends "mail" (records it). */
@injectable()
export class Notifier {
  readonly sent: string[] = [];

  constructor(
    @inject(SWITCHBOARD.Subscriber) private readonly subscriber: Subscriber,
    @inject(SWITCHBOARD.Config) private readonly config: BusConfig,
  ) {}

  start(): Promise<Subscription> {
    const { topic, options } = namedSubscription(this.config, 'mail', { schema: mailRequested });
    return this.subscriber.subscribe<MailRequested>(topic, (message) => void this.sent.push(message.value.eventId), options);
  }
}
