import type { ZodType } from 'zod';
import type { Capabilities, DeliveryGuarantee } from '../ports/capabilities.js';
import { guaranteeIssue, subscriptionCapabilityIssues } from '../kit/capability-checks.js';
import type { BusConfig } from './config.js';
import { envOriginsOf, parseWithEnv } from './config.js';
import { CapabilityError, ConfigError } from '../ports/errors.js';
import type { Transport } from '../ports/ports.js';

/**
 * How a transport plugs in. Each adapter package exports one; the application (or a tool such as the
 * CLI) registers the factories it uses, and `transport.kind` in the config picks one. Core names no
 * adapter package: a third-party adapter plugs in exactly like the first-party ones.
 */
export interface TransportFactory<Options = unknown> {
  /** The `transport.kind` this factory answers to. */
  readonly kind: string;
  /** Validates `transport` (without `kind`), applying defaults. Errors are reported under `transport.`. */
  readonly optionsSchema: ZodType<Options>;
  /** Capabilities for these options (they may depend on them, e.g. RabbitMQ retry mode). */
  capabilities(options: Options): Capabilities;
  /** Extra checks of the whole config against this transport, as config issues. */
  validate?(options: Options, config: BusConfig): { path: string; message: string }[];
  /** Connects. Resolves when the transport can publish and subscribe. */
  create(options: Options): Promise<Transport>;
}

/** A factory of any options type (what registries hold). */
// biome-ignore lint/suspicious/noExplicitAny: a registry holds factories of unrelated option types
export type AnyTransportFactory = TransportFactory<any>;

/** Transport factories by kind. */
export class TransportRegistry {
  private readonly factories = new Map<string, TransportFactory>();

  constructor(factories: readonly AnyTransportFactory[] = []) {
    for (const factory of factories) this.register(factory);
  }

  /** Adds (or replaces) the factory for its kind. */
  register(factory: AnyTransportFactory): this {
    this.factories.set(factory.kind, factory as unknown as TransportFactory);
    return this;
  }

  get(kind: string): TransportFactory | undefined {
    return this.factories.get(kind);
  }

  kinds(): string[] {
    return [...this.factories.keys()];
  }

  /** A registry with this one's factories plus `extra` (this one is unchanged). */
  with(extra: readonly AnyTransportFactory[]): TransportRegistry {
    const copy = new TransportRegistry([]);
    for (const factory of this.factories.values()) copy.register(factory as AnyTransportFactory);
    for (const factory of extra) copy.register(factory);
    return copy;
  }
}

/** The factory for `kind`, or a ConfigError naming the registered kinds and how to add one. */
export function resolveTransportFactory(kind: string, registry: TransportRegistry): TransportFactory {
  const factory = registry.get(kind);
  if (factory) return factory;
  const known = registry
    .kinds()
    .map((k) => `"${k}"`)
    .join(', ');
  throw new ConfigError([
    {
      path: 'transport.kind',
      message: `no transport "${kind}" is registered (registered: ${known}); register the adapter's factory, e.g. createBusFromConfig(config, { transports: [kafkaTransport] }) with kafkaTransport from @switchboard/kafka`,
    },
  ]);
}

/** A config checked against its transport: options parsed, capabilities known. */
export interface ResolvedTransportConfig {
  readonly factory: TransportFactory;
  readonly options: unknown;
  readonly capabilities: Capabilities;
}

/**
 * Validates the transport options and refuses, with reasons, every combination the transport cannot
 * honour (a publish guarantee it lacks, groups on a transport without them, ...). Throws ConfigError /
 * CapabilityError naming the field paths (and the environment variables that set them).
 */
export function resolveTransportConfig(config: BusConfig, registry: TransportRegistry): ResolvedTransportConfig {
  const { kind, ...rawOptions } = config.transport;
  const factory = resolveTransportFactory(kind, registry);
  const options = parseWithEnv(factory.optionsSchema, rawOptions, envOriginsOf(config), 'transport');
  const capabilities = factory.capabilities(options);
  const issues: { path: string; message: string }[] = [];
  const guarantee = config.publish.guarantee as DeliveryGuarantee | undefined;
  const guaranteeProblem = guarantee && guaranteeIssue(kind, capabilities, guarantee);
  if (guaranteeProblem) issues.push(guaranteeProblem);
  issues.push(...subscriptionCapabilityIssues(kind, capabilities, config.defaults, 'defaults'));
  for (const [name, subscription] of Object.entries(config.subscriptions)) {
    issues.push(...subscriptionCapabilityIssues(kind, capabilities, subscription, `subscriptions.${name}`));
  }
  issues.push(...(factory.validate?.(options, config) ?? []));
  if (issues.length > 0) throw new CapabilityError(issues);
  return { factory, options, capabilities };
}
