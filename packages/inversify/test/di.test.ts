import 'reflect-metadata';
import { Container } from 'inversify';
import { describe, expect, it } from 'vitest';
import type { Bus, Publisher, Subscriber } from '@switchboard/core';
import { SWITCHBOARD, createSwitchboardContainer } from '@switchboard/inversify';

/** An application class: it gets the port by token and knows nothing of the transport. */
class Greeter {
  constructor(readonly publisher: Publisher) {}
}

describe('dependency injection', () => {
  it("loads into the application's own container, and unbinding the bus closes it", async () => {
    const container = new Container();
    container.bind(Greeter).toDynamicValue((context) => new Greeter(context.get<Publisher>(SWITCHBOARD.Publisher)));
    const { bus } = await createSwitchboardContainer({ env: {}, object: { transport: { kind: 'memory' } } }, { container });
    expect(container.get(Greeter).publisher).toBe(bus.publisher);
    await container.unbindAsync(SWITCHBOARD.Bus);
    await expect((bus as Bus).publisher.publish('t', { value: 1 })).rejects.toThrow(/closed/);
  });

  it('binds the ports from config: application code injects Publisher and Subscriber only', async () => {
    const { container, bus } = await createSwitchboardContainer({ env: {}, object: { transport: { kind: 'memory' } } });
    const publisher = container.get<Publisher>(SWITCHBOARD.Publisher);
    const subscriber = container.get<Subscriber>(SWITCHBOARD.Subscriber);
    const got: unknown[] = [];
    const done = new Promise<void>((resolve) => {
      void subscriber.subscribe('greetings', (m) => {
        got.push(m.value);
        resolve();
      });
    });
    await new Promise((r) => setImmediate(r));
    await publisher.publish('greetings', { value: 'hello' });
    await done;
    expect(got).toEqual(['hello']);
    await bus.close();
  });
});
