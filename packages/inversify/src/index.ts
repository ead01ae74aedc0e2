/**
 * @switchboard/inversify — Switchboard in an inversify container. Application classes inject the
 * ports by token and never import an adapter:
 *
 *   @injectable() class OrderService { constructor(@inject(SWITCHBOARD.Publisher) private publisher: Publisher) {} }
 *
 * Decorators need `experimentalDecorators` (and `emitDecoratorMetadata` for constructor-type
 * injection) in the application's tsconfig, and `import 'reflect-metadata'` once at startup.
 */
import 'reflect-metadata';
import { Container, ContainerModule } from 'inversify';
import { createBusFromConfig, loadBusConfig, type Bus, type BusConfig, type BusFromConfigOptions, type ConfigSources, type Publisher, type Subscriber, type Transport } from '@switchboard/core';

/** Injection tokens. Application code injects these; it never imports an adapter. */
export const SWITCHBOARD = {
  Publisher: Symbol.for('switchboard.Publisher'),
  Subscriber: Symbol.for('switchboard.Subscriber'),
  Bus: Symbol.for('switchboard.Bus'),
  Config: Symbol.for('switchboard.Config'),
  Transport: Symbol.for('switchboard.Transport'),
} as const;

/**
 * A container module binding the ports of a connected bus, to load into the application's own
 * container. Unbinding `SWITCHBOARD.Bus` with `unbindAsync` (or `unloadAsync` of the module) closes the
 * bus: subscriptions, publisher, then transport. inversify runs deactivation only for a binding that
 * was resolved, so resolve `SWITCHBOARD.Bus` once after loading (`createSwitchboardContainer` does).
 */
export function switchboardModule(bus: Bus, config: BusConfig): ContainerModule {
  return new ContainerModule(({ bind }) => {
    bind<Publisher>(SWITCHBOARD.Publisher).toConstantValue(bus.publisher);
    bind<Subscriber>(SWITCHBOARD.Subscriber).toConstantValue(bus.subscriber);
    bind<Bus>(SWITCHBOARD.Bus)
      .toConstantValue(bus)
      .onDeactivation((deactivated) => deactivated.close());
    bind<Transport>(SWITCHBOARD.Transport).toConstantValue(bus.transport);
    bind<BusConfig>(SWITCHBOARD.Config).toConstantValue(config);
  });
}

/**
 * Loads config (file / object / env), connects the configured transport and loads the ports into
 * `container` (a new one by default). Changing `transport.kind` is all it takes to move between
 * brokers, given the adapter's factory in `options.transports` (or registered).
 */
export async function createSwitchboardContainer(
  sources: ConfigSources = {},
  options: BusFromConfigOptions & { readonly container?: Container } = {},
): Promise<{ container: Container; bus: Bus; config: BusConfig }> {
  const config = await loadBusConfig(sources);
  const bus = await createBusFromConfig(config, options);
  const container = options.container ?? new Container();
  await container.load(switchboardModule(bus, config));
  container.get<Bus>(SWITCHBOARD.Bus); // resolved once, so unbinding it closes the bus
  return { container, bus, config };
}
