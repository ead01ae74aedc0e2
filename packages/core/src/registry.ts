import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z, type ZodType } from 'zod';
import type { Capabilities, DeliveryGuarantee } from './capabilities.js';
import { guaranteeIssue, subscriptionCapabilityIssues } from './capability-checks.js';
import type { BusConfig, TransportKind } from './config.js';
import { envOriginsOf, parseWithEnv } from './config.js';
import { CapabilityError, ConfigError } from './errors.js';
import { describeFailure } from './failure.js';
import { MEMORY_CAPABILITIES, MemoryTransport } from './memory/memory-transport.js';
import type { Transport } from './ports.js';

/**
 * How an adapter package plugs in. Each adapter exports `transportFactory`; core finds it by
 * `transport.kind`, so application code never imports an adapter.
 */
export interface TransportFactory<Options = unknown> {
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

export const memoryTransportFactory: TransportFactory<Record<string, never>> = {
  kind: 'memory',
  optionsSchema: z.object({}).strict() as unknown as ZodType<Record<string, never>>,
  capabilities: () => MEMORY_CAPABILITIES,
  create: async () => new MemoryTransport(),
};

/** Package that provides each transport kind. */
export const TRANSPORT_PACKAGES: Readonly<Record<Exclude<TransportKind, 'memory'>, string>> = {
  kafka: '@switchboard/kafka',
  rabbitmq: '@switchboard/rabbitmq',
  redis: '@switchboard/redis-pubsub',
};

/**
 * Finds the factory for `kind`: memory is built in; others are imported from their package, resolved
 * from the application (working directory, then the main script), then from core itself.
 */
export async function resolveTransportFactory(kind: TransportKind): Promise<TransportFactory> {
  if (kind === 'memory') return memoryTransportFactory as TransportFactory;
  const pkg = TRANSPORT_PACKAGES[kind];
  let module: { transportFactory?: TransportFactory };
  try {
    module = await importFromApp<{ transportFactory?: TransportFactory }>(pkg);
  } catch (error) {
    const missing = (error as { code?: string })?.code === 'ERR_MODULE_NOT_FOUND' && String((error as Error).message).includes(`'${pkg}'`);
    const message = missing
      ? `"${kind}" needs the package ${pkg}; install it next to @switchboard/core (e.g. npm install ${pkg})`
      : `"${kind}": the package ${pkg} is installed but failed to load: ${describeFailure(error, 1000).message}`;
    throw Object.assign(new ConfigError([{ path: 'transport.kind', message }]), { cause: error });
  }
  if (module.transportFactory) return module.transportFactory;
  throw new ConfigError([{ path: 'transport.kind', message: `"${kind}": the package ${pkg} exports no transportFactory` }]);
}

/**
 * Imports an optional package as the application sees it: resolved from the working directory, then
 * from the main script, then from core itself. Rejects when none of them has it.
 */
export async function importFromApp<M>(pkg: string): Promise<M> {
  const bases = [join(process.cwd(), 'package.json'), process.argv[1] ?? '', import.meta.url].filter(Boolean);
  for (const base of bases) {
    let resolved: string;
    try {
      resolved = createRequire(base).resolve(pkg);
    } catch {
      continue;
    }
    return (await import(pathToFileURL(resolved).href)) as M;
  }
  return (await import(pkg)) as M;
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
 * CapabilityError naming the field paths.
 */
export async function resolveTransportConfig(config: BusConfig): Promise<ResolvedTransportConfig> {
  const { kind, ...rawOptions } = config.transport;
  const factory = await resolveTransportFactory(kind);
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
