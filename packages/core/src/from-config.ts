import { createBus, type Bus, type SubscriptionDefaults } from './bus/bus.js';
import type { DeliveryGuarantee } from './ports/capabilities.js';
import type { Envelope } from './ports/envelope.js';
import { type BusConfig, type BusConfigInput, checkedBusConfig, type SubscriptionConfig } from './config/config.js';
import { ConfigError } from './ports/errors.js';
import type { BusObserver } from './ports/events.js';
import type { Logger } from './observability/observer.js';
import type { SubscribeOptions } from './ports/ports.js';
import { memoryTransportFactory } from './transports/memory/factory.js';
import {
  resolveTransportConfig as resolveIn,
  resolveTransportFactory as resolveFactoryIn,
  TransportRegistry,
  type AnyTransportFactory,
  type ResolvedTransportConfig,
  type TransportFactory,
} from './config/registry.js';

/** The process-wide registry `createBusFromConfig` uses by default: memory, plus what `registerTransport` adds. */
export const defaultTransportRegistry = new TransportRegistry([memoryTransportFactory]);

/** Registers an adapter's factory process-wide, e.g. `registerTransport(kafkaTransport)`. */
export function registerTransport(factory: AnyTransportFactory): void {
  defaultTransportRegistry.register(factory);
}

/** The factory for `kind` in `registry` (default: the process-wide one), or a ConfigError naming the registered kinds. */
export function resolveTransportFactory(kind: string, registry: TransportRegistry = defaultTransportRegistry): TransportFactory {
  return resolveFactoryIn(kind, registry);
}

/** {@link resolveIn}: the config (validated first unless {@link loadBusConfig} made it) checked against its transport, in `registry` (default: the process-wide one). */
export function resolveTransportConfig(config: BusConfig | BusConfigInput, registry: TransportRegistry = defaultTransportRegistry): ResolvedTransportConfig {
  return resolveIn(checkedBusConfig(config), registry);
}

export interface BusFromConfigOptions {
  readonly observer?: BusObserver;
  readonly logger?: Logger;
  /**
   * Adapter factories this bus may use besides the registered ones, e.g. `[kafkaTransport]` from
   * `@switchboard/kafka`. `transport.kind` picks one.
   */
  readonly transports?: readonly AnyTransportFactory[];
  /** Registry to resolve `transport.kind` in. Default: the process-wide one (`registerTransport`). */
  readonly registry?: TransportRegistry;
}

/**
 * Builds a connected {@link Bus} from a config: {@link loadBusConfig}'s, or a plain object validated
 * here (a {@link ConfigError} naming every bad field); finds the factory for `transport.kind`,
 * refuses what the transport cannot honour (before connecting), connects. The config's `publish` and
 * `defaults` become the bus's publisher options and subscription defaults.
 */
export async function createBusFromConfig(input: BusConfig | BusConfigInput, options: BusFromConfigOptions = {}): Promise<Bus> {
  const config = checkedBusConfig(input);
  const registry = (options.registry ?? defaultTransportRegistry).with(options.transports ?? []);
  const resolved = resolveTransportConfig(config, registry);
  const transport = await resolved.factory.create(resolved.options);
  return createBus({
    transport,
    ...(options.observer ? { observer: options.observer } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    publisher: {
      ...(config.publish.guarantee ? { guarantee: config.publish.guarantee as DeliveryGuarantee } : {}),
      ...(config.publish.noReceivers ? { noReceivers: config.publish.noReceivers } : {}),
      ...(config.publish.envelope ? { envelope: config.publish.envelope as Envelope } : {}),
    },
    defaults: Object.fromEntries(Object.entries(config.defaults).filter(([, value]) => value !== undefined)) as SubscriptionDefaults,
  });
}

/** The topic and options of a subscription named in the config, ready for `Subscriber.subscribe`. */
export function namedSubscription<T>(config: BusConfig, name: string, extra: SubscribeOptions<T> = {}): { topic: string; options: SubscribeOptions<T> } {
  const found: SubscriptionConfig | undefined = config.subscriptions[name];
  if (!found) throw new ConfigError([{ path: `subscriptions.${name}`, message: `no such subscription (configured: ${Object.keys(config.subscriptions).join(', ') || 'none'})` }]);
  const { topic, ...options } = found;
  return { topic, options: { ...(options as SubscribeOptions<T>), ...extra } };
}
