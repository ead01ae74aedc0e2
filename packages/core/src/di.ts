import 'reflect-metadata';
import { Container, ContainerModule } from 'inversify';
import { createBus, type Bus } from './bus.js';
import { loadBusConfig, type BusConfig, type ConfigSources, type SubscriptionConfig } from './config.js';
import { ConfigError } from './errors.js';
import type { BusObserver, Logger } from './observer.js';
import type { Publisher, SubscribeOptions, Subscriber, Transport } from './ports.js';
import { resolveTransportConfig } from './registry.js';
import type { DeliveryGuarantee } from './capabilities.js';

/** Injection tokens. Application code injects these; it never imports an adapter. */
export const SWITCHBOARD = {
  Publisher: Symbol.for('switchboard.Publisher'),
  Subscriber: Symbol.for('switchboard.Subscriber'),
  Bus: Symbol.for('switchboard.Bus'),
  Config: Symbol.for('switchboard.Config'),
  Transport: Symbol.for('switchboard.Transport'),
} as const;

export interface BusFromConfigOptions {
  readonly observer?: BusObserver;
  readonly logger?: Logger;
}

/**
 * Builds a connected {@link Bus} from a validated config: resolves the adapter by `transport.kind`,
 * refuses what it cannot honour, connects. Throws ConfigError/CapabilityError before connecting.
 */
export async function createBusFromConfig(config: BusConfig, options: BusFromConfigOptions = {}): Promise<Bus> {
  const resolved = await resolveTransportConfig(config);
  const transport = await resolved.factory.create(resolved.options);
  const { concurrency, retry, retryMode, deadLetter, stackTraceLimit } = config.defaults;
  return createBus({
    transport,
    ...(options.observer ? { observer: options.observer } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    publisher: {
      ...(config.publish.guarantee ? { guarantee: config.publish.guarantee as DeliveryGuarantee } : {}),
      ...(config.publish.noReceivers ? { noReceivers: config.publish.noReceivers } : {}),
    },
    defaults: {
      ...(concurrency !== undefined ? { concurrency } : {}),
      ...(retry !== undefined ? { retry } : {}),
      ...(retryMode !== undefined ? { retryMode } : {}),
      ...(deadLetter !== undefined ? { deadLetter } : {}),
      ...(stackTraceLimit !== undefined ? { stackTraceLimit } : {}),
    },
  });
}

/** The inversify module binding the ports for a connected bus. */
export function switchboardModule(bus: Bus, config: BusConfig): ContainerModule {
  return new ContainerModule(({ bind }) => {
    bind<Publisher>(SWITCHBOARD.Publisher).toConstantValue(bus.publisher);
    bind<Subscriber>(SWITCHBOARD.Subscriber).toConstantValue(bus.subscriber);
    bind<Bus>(SWITCHBOARD.Bus).toConstantValue(bus);
    bind<Transport>(SWITCHBOARD.Transport).toConstantValue(bus.transport);
    bind<BusConfig>(SWITCHBOARD.Config).toConstantValue(config);
  });
}

/**
 * Loads config (object / file / env), connects the configured transport and returns a container with
 * the ports bound. Changing `transport.kind` is all it takes to move between brokers.
 */
export async function createSwitchboardContainer(sources: ConfigSources = {}, options: BusFromConfigOptions = {}): Promise<{ container: Container; bus: Bus; config: BusConfig }> {
  const config = await loadBusConfig(sources);
  const bus = await createBusFromConfig(config, options);
  const container = new Container();
  await container.load(switchboardModule(bus, config));
  return { container, bus, config };
}

/** The topic and options of a subscription named in the config, ready for `Subscriber.subscribe`. */
export function namedSubscription<T>(config: BusConfig, name: string, extra: SubscribeOptions<T> = {}): { topic: string; options: SubscribeOptions<T> } {
  const found: SubscriptionConfig | undefined = config.subscriptions[name];
  if (!found) throw new ConfigError([{ path: `subscriptions.${name}`, message: `no such subscription (configured: ${Object.keys(config.subscriptions).join(', ') || 'none'})` }]);
  const { topic, ...options } = found;
  return { topic, options: { ...(options as SubscribeOptions<T>), ...extra } };
}
