/** What the CLI connects to: the installed adapters, the parking lot, the fallback stores, a bus from the config. */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  type BusConfig,
  createBusFromConfig,
  defaultTransportRegistry,
  type FallbackStore,
  loadBusConfig,
  type OutboxStore,
  type ParkingLot,
  type AnyTransportFactory,
  type TransportRegistry,
} from '@switchboard/core';
import { describeFailure, redactUrl } from '@switchboard/core/transport';
import { UsageError, type GlobalOptions } from './options.js';

export async function openParkingLot(global: GlobalOptions): Promise<ParkingLot & { close(): Promise<void> }> {
  const url = global.databaseUrl ?? process.env.DATABASE_URL;
  if (!url) throw new UsageError('the parking lot needs --database-url or DATABASE_URL (postgres://...)');
  const { openPostgresParkingLot } = await import('@switchboard/postgres');
  return openPostgresParkingLot(url, global.parkingTable);
}

export async function openStore(url: string, name: string | undefined): Promise<FallbackStore & { close(): Promise<void> }> {
  if (/^postgres(ql)?:\/\//.test(url)) {
    const { openPostgresFallbackStore } = await import('@switchboard/postgres');
    return openPostgresFallbackStore(url, name);
  }
  if (/^rediss?:\/\//.test(url)) {
    const redis = (await optionalImport('@switchboard/redis-pubsub')) as { openRedisFallbackStore(url: string, key?: string): Promise<FallbackStore & { close(): Promise<void> }> } | undefined;
    if (!redis) throw new UsageError('a redis:// store needs the package @switchboard/redis-pubsub (npm install @switchboard/redis-pubsub)');
    return redis.openRedisFallbackStore(url, name);
  }
  throw new UsageError(`--store: expected postgres:// or redis:// (got "${redactUrl(url)}")`);
}

/** The outbox of `switchboard relay --outbox`: a PostgreSQL or MySQL/MariaDB table. */
export async function openOutboxStore(url: string, name: string | undefined): Promise<OutboxStore & { close(): Promise<void> }> {
  if (/^postgres(ql)?:\/\//.test(url)) {
    const { openPostgresOutboxStore } = await import('@switchboard/postgres');
    return openPostgresOutboxStore(url, name);
  }
  if (/^(mysql|mariadb):\/\//.test(url)) {
    const mysql = (await optionalImport('@switchboard/mysql')) as { openMySqlOutboxStore(url: string, table?: string): Promise<OutboxStore & { close(): Promise<void> }> } | undefined;
    if (!mysql) throw new UsageError('a mysql:// outbox needs the package @switchboard/mysql (npm install @switchboard/mysql)');
    return mysql.openMySqlOutboxStore(url, name);
  }
  throw new UsageError(`--store with --outbox: expected postgres://, mysql:// or mariadb:// (got "${redactUrl(url)}")`);
}

/** The first-party adapters the CLI uses when they are installed (optional peer dependencies). */
export const FIRST_PARTY_ADAPTERS = [
  '@switchboard/kafka',
  '@switchboard/rabbitmq',
  '@switchboard/redis-pubsub',
  '@switchboard/redis-streams',
  '@switchboard/nats',
  '@switchboard/postgres',
  '@switchboard/mqtt',
];

/**
 * Imports `name` as the application in the working directory has it installed (else as installed next
 * to the CLI), or undefined when that package itself is not installed; any other failure is reported.
 */
export async function optionalImport(name: string): Promise<Record<string, unknown> | undefined> {
  try {
    let resolved: string | undefined;
    try {
      resolved = pathToFileURL(createRequire(join(process.cwd(), 'package.json')).resolve(name)).href;
    } catch {
      resolved = undefined;
    }
    return (await import(resolved ?? name)) as Record<string, unknown>;
  } catch (error) {
    const code = (error as { code?: string } | undefined)?.code;
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String((error as Error).message).includes(`'${name}'`)) return undefined;
    throw new Error(`${name} is installed but failed to load: ${describeFailure(error, 500).message}`, { cause: error });
  }
}

/**
 * The transports the CLI can connect: memory, the installed first-party adapters, and the packages
 * named in --transport-module / SWITCHBOARD_TRANSPORT_MODULES (each exporting `transportFactory`).
 */
export async function transportRegistry(global: GlobalOptions): Promise<TransportRegistry> {
  const extra = [
    ...(global.transportModule ?? []),
    ...(process.env.SWITCHBOARD_TRANSPORT_MODULES ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  ];
  const factories: AnyTransportFactory[] = [];
  for (const name of [...FIRST_PARTY_ADAPTERS, ...extra]) {
    const module = await optionalImport(name);
    if (!module) {
      if (extra.includes(name)) throw new UsageError(`--transport-module: ${name} is not installed`);
      continue;
    }
    const factory = module.transportFactory as AnyTransportFactory | undefined;
    if (!factory) throw new UsageError(`${name} exports no transportFactory`);
    factories.push(factory);
  }
  return defaultTransportRegistry.with(factories);
}

export async function withBus<R>(global: GlobalOptions, run: (bus: Awaited<ReturnType<typeof createBusFromConfig>>, config: BusConfig) => Promise<R>): Promise<R> {
  const config = await loadBusConfig(global.config ? { file: global.config } : {});
  const bus = await createBusFromConfig(config, { registry: await transportRegistry(global) });
  try {
    return await run(bus, config);
  } finally {
    await bus.close();
  }
}
