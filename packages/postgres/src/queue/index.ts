import type { TransportFactory } from '@switchboard/core';
import { parseOptions } from '@switchboard/core/transport';
import { postgresQueueOptionsSchema, type PostgresQueueOptions, type PostgresQueueOptionsInput } from './options.js';
import { PostgresQueueTransport, postgresQueueCapabilities } from './transport.js';

export { postgresQueueOptionsSchema, type PostgresQueueOptions, type PostgresQueueOptionsInput } from './options.js';
export { PostgresQueueTransport, postgresQueueCapabilities } from './transport.js';
export { migratePostgresQueue, QUEUE_SCHEMA_VERSION } from './migrate.js';
export { createTransactionalPublisher, type TransactionalPublisher, type TransactionalPublisherOptions } from './in-transaction.js';

/** Connects a PostgreSQL queue transport from (partial) options. */
export async function createPostgresQueueTransport(options: PostgresQueueOptionsInput = {}): Promise<PostgresQueueTransport> {
  return PostgresQueueTransport.connect(parseOptions(postgresQueueOptionsSchema, options));
}

/**
 * The factory an application registers to use `transport.kind: postgres`:
 * `createBusFromConfig(config, { transports: [postgresTransport] })` or `registerTransport(postgresTransport)`.
 */
export const postgresTransport: TransportFactory<PostgresQueueOptions> = {
  kind: 'postgres',
  optionsSchema: postgresQueueOptionsSchema,
  capabilities: (options) => postgresQueueCapabilities(options),
  create: (options) => PostgresQueueTransport.connect(options),
};
